// How a query is worded. Base models continue a code comment (`// NAME =`); chat models get the same context
// as a user message with the question spelled out, formatted by the tokenizer's own chat template.

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/**
 * Renders messages with the model's chat template, ending where the assistant's reply begins. When the
 * template writes BOS itself, the TokenCounter used with it must not add another one.
 */
export type FormatChat = (messages: ChatMessage[]) => string;

export interface PromptStyle {
  /** When present the query becomes a chat question; when absent, a plain code-comment continuation. */
  formatChat?: FormatChat;
}

export interface Query {
  /** The last line a base model continues, e.g. `// RETRY_LIMIT_a8f3 =`. Empty for pure continuation. */
  cue: string;
  /** The same ask for a chat model. */
  question: string;
}

/**
 * Base style: the context, then the cue on its own line, with nothing after the cue, so the prompt ends
 * exactly with "\n" + cue (or with "\n" when the cue is empty: the model writes the next line).
 */
export function renderPrompt(context: string, query: Query, style: PromptStyle = {}): string {
  if (style.formatChat) {
    return style.formatChat([{ role: 'user', content: `${context}\n\n${query.question}` }]);
  }
  return `${context}\n${query.cue}`;
}
