// LongBench v2 as its pred.py and result.py run it: four-choice questions over a long context, the 0-shot
// prompt (prompts/0shot.txt) filled by successive str.replace calls, the prompt cut in the middle to the
// model's length before it goes out as one user message, 128 new tokens, the letter taken by extract_answer's
// two regular expressions and judged against `answer`; accuracy × 100 to one decimal, overall, by difficulty
// (easy, hard) and by length (short, medium, long).
import { pyStrip } from './pyText';
import type { TokenCodec } from './longbench';
import type { RowReader } from './rowReader';
import type { Sample, SampleOptions } from './types';

/** prompts/0shot.txt, byte for byte (the file ends without a newline). */
export const LONGBENCH_V2_TEMPLATE =
  'Please read the following text and answer the question below.\n\n<text>\n$DOC$\n</text>\n\nWhat is the correct answer to this question: $Q$\nChoices:\n(A) $C_A$\n(B) $C_B$\n(C) $C_C$\n(D) $C_D$\n\nFormat your response as follows: "The correct answer is (insert answer here)".';

/** pred.py's max_new_tokens for a direct (no chain-of-thought) answer. */
export const LONGBENCH_V2_MAX_NEW_TOKENS = 128;

export const LONGBENCH_V2_CHOICES = ['A', 'B', 'C', 'D'] as const;
export type LongBenchV2Choice = (typeof LONGBENCH_V2_CHOICES)[number];

export const LONGBENCH_V2_DIFFICULTIES = ['easy', 'hard'] as const;
export const LONGBENCH_V2_LENGTHS = ['short', 'medium', 'long'] as const;

export interface LongBenchV2Row {
  context: string;
  question: string;
  choices: Record<LongBenchV2Choice, string>;
}

/** Python's str.replace: every occurrence, the replacement taken literally (no `$&` patterns). */
function replaceAllLiteral(text: string, token: string, value: string): string {
  return text.split(token).join(value);
}

/**
 * The template filled as pred.py fills it: context, question and each choice stripped, substituted one after
 * the other with str.replace (so a `$Q$` inside the context is filled by the question, as in the original).
 */
export function renderLongBenchV2Prompt(row: LongBenchV2Row): string {
  let prompt = replaceAllLiteral(LONGBENCH_V2_TEMPLATE, '$DOC$', pyStrip(row.context));
  prompt = replaceAllLiteral(prompt, '$Q$', pyStrip(row.question));
  for (const letter of LONGBENCH_V2_CHOICES) prompt = replaceAllLiteral(prompt, `$C_${letter}$`, pyStrip(row.choices[letter]));
  return prompt;
}

/**
 * query_llm's truncation: over `maxTokens` tokens, keep ids[:maxTokens // 2] + ids[-maxTokens // 2:] and
 * decode them together. In Python -maxTokens // 2 floors, so an odd budget keeps one more token at the end.
 */
export function truncateLongBenchV2(prompt: string, codec: TokenCodec, maxTokens: number): { prompt: string; truncated: boolean } {
  const ids = codec.encode(prompt);
  if (ids.length <= maxTokens) return { prompt, truncated: false };
  const head = Math.floor(maxTokens / 2);
  const tail = maxTokens - head;
  return { prompt: codec.decode([...ids.slice(0, head), ...ids.slice(ids.length - tail)]), truncated: true };
}

const WITH_PARENTHESES = /The correct answer is \(([A-D])\)/;
const WITHOUT_PARENTHESES = /The correct answer is ([A-D])/;

/** extract_answer on the stripped response: asterisks removed, "(X)" first, then a bare letter; null if neither. */
export function extractLongBenchV2Answer(prediction: string): LongBenchV2Choice | null {
  const response = pyStrip(prediction).split('*').join('');
  const match = WITH_PARENTHESES.exec(response) ?? WITHOUT_PARENTHESES.exec(response);
  return match ? (match[1] as LongBenchV2Choice) : null;
}

/** The row's reporting group, `<difficulty>/<length>` (e.g. `hard/long`), split again by longBenchV2Groups. */
export function longBenchV2Group(difficulty: string, length: string): string {
  return `${difficulty}/${length}`;
}

/**
 * The columns of result.py a row counts towards: its difficulty ("easy", anything else is hard) and its length
 * ("short", "medium", anything else is long).
 */
export function longBenchV2Columns(group: string | null): ['easy' | 'hard', 'short' | 'medium' | 'long'] {
  const [difficulty, length] = (group ?? '').split('/');
  return [difficulty === 'easy' ? 'easy' : 'hard', length === 'short' || length === 'medium' ? length : 'long'];
}

/** A LongBench v2 row of THUDM/LongBench-v2's data.json (or the same objects one a line) as a sample. */
export function longBenchV2Sample(reader: RowReader, options: SampleOptions): Sample {
  const id = reader.optionalString('_id') ?? reader.fail('"_id" is missing');
  const difficulty = reader.choice('difficulty', LONGBENCH_V2_DIFFICULTIES);
  const length = reader.choice('length', LONGBENCH_V2_LENGTHS);
  const answer = reader.choice('answer', LONGBENCH_V2_CHOICES);
  const choices = Object.fromEntries(LONGBENCH_V2_CHOICES.map((letter) => [letter, reader.string(`choice_${letter}`)])) as Record<LongBenchV2Choice, string>;
  let prompt = renderLongBenchV2Prompt({ context: reader.string('context'), question: reader.string('question'), choices });
  let truncated = false;
  const { counter, maxTokens } = options;
  if (counter && maxTokens !== undefined && counter.encode(prompt).length > maxTokens) {
    if (!counter.decode) reader.fail('cutting this prompt to the context needs a tokenizer that can decode');
    ({ prompt, truncated } = truncateLongBenchV2(prompt, { encode: (t) => counter.encode(t), decode: (ids) => counter.decode!(ids) }, maxTokens));
  }
  // pred.py sends every prompt as one user message of a chat completion.
  if (options.style?.formatChat) prompt = options.style.formatChat([{ role: 'user', content: prompt }]);
  const tokens = counter ? counter.encode(prompt).length : 0;
  return {
    id: `longbench-v2-${id}`,
    task: 'longbench-v2',
    targetLength: maxTokens ?? tokens,
    depth: null,
    prompt,
    promptTokens: tokens,
    answer,
    scoring: 'choice_accuracy',
    source: null,
    benchmark: { references: [answer], group: longBenchV2Group(difficulty, length) },
    generation: { maxNewTokens: LONGBENCH_V2_MAX_NEW_TOKENS, stopAtNewline: false },
    meta: { domain: reader.optionalString('domain'), subDomain: reader.optionalString('sub_domain'), difficulty, length, truncated },
  };
}
