// Thin wrapper over @huggingface/tokenizers: loads a model folder's tokenizer.json + tokenizer_config.json.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { KvlensError } from '../errors';

export interface ChatMessage {
  role: string;
  content: string;
}

type Json = Record<string, unknown>;

function readJsonFile(file: string, required: boolean, hint: string): Json | null {
  if (!existsSync(file)) {
    if (!required) return null;
    throw new KvlensError(`missing ${hint}`, file);
  }
  const bytes = readFileSync(file);
  let text: string;
  try {
    // A lenient decode would silently turn bad bytes into U+FFFD tokens and change the vocabulary.
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new KvlensError('not valid UTF-8 (the file is corrupt or not a tokenizer file)', file);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new KvlensError(`not valid JSON (${(error as Error).message})`, file);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new KvlensError('must hold a JSON object', file);
  return json as Json;
}

/** Special-token fields of tokenizer_config.json are either a string or an AddedToken-like object. */
function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as Json).content === 'string') return (value as Json).content as string;
  return null;
}

export interface EncodeOptions {
  /** Add the tokenizer's template tokens (e.g. a BOS). Default true, as in transformers. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export class ModelTokenizer {
  readonly tokenizerFile: string;
  readonly bosId: number | null;
  readonly eosIds: number[];
  /** Ids of every special added token (BOS, EOS, chat markers, ...). */
  readonly specialIds: ReadonlySet<number>;
  /** Chat template source from tokenizer_config.json, if any; rendered by applyChatTemplate. */
  readonly chatTemplate: string | null;
  private compiledTemplate: Template | null = null;
  private readonly specialTokenText: Record<string, string>;
  readonly vocabSize: number;

  private constructor(
    private readonly tokenizer: Tokenizer,
    tokenizerFile: string,
    tokenizerJson: Json,
    config: Json,
    generationEos: number[],
  ) {
    this.tokenizerFile = tokenizerFile;
    const idOf = (token: string | null): number | null => (token === null ? null : (tokenizer.token_to_id(token) ?? null));
    this.bosId = idOf(tokenContent(config.bos_token));
    this.specialTokenText = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
      const text = tokenContent(config[key]);
      if (text !== null) this.specialTokenText[key] = text;
    }
    const eos = idOf(tokenContent(config.eos_token));
    // Chat models often stop on more than the tokenizer's eos (e.g. <|eot_id|>, <|endoftext|>): generation_config lists them.
    this.eosIds = [...new Set([...(eos === null ? [] : [eos]), ...generationEos])];
    const specials = new Set<number>();
    const added = Array.isArray(tokenizerJson.added_tokens) ? (tokenizerJson.added_tokens as Json[]) : [];
    for (const token of added) if (token.special === true && typeof token.id === 'number') specials.add(token.id);
    this.specialIds = specials;
    const template = config.chat_template;
    if (typeof template === 'string') this.chatTemplate = template;
    else if (Array.isArray(template)) {
      // Some tokenizers ship named templates; "default" is the one transformers uses.
      const named = (template as Json[]).find((t) => t.name === 'default') ?? template[0];
      this.chatTemplate = typeof named?.template === 'string' ? (named.template as string) : null;
    } else this.chatTemplate = null;
    this.vocabSize = tokenizer.get_vocab(true).size;
  }

  /** Loads tokenizer.json (required), tokenizer_config.json and generation_config.json (optional) from a folder. */
  static fromDir(dir: string, options: { missingHint?: string } = {}): ModelTokenizer {
    const tokenizerFile = join(dir, 'tokenizer.json');
    const tokenizerJson = readJsonFile(tokenizerFile, true, options.missingHint ?? 'tokenizer.json (the model folder needs the Hugging Face fast-tokenizer file)')!;
    const configFile = join(dir, 'tokenizer_config.json');
    const config = readJsonFile(configFile, false, 'tokenizer_config.json') ?? {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (error) {
      throw new KvlensError(`cannot build a tokenizer from it (${(error as Error).message})`, tokenizerFile);
    }
    const generation = readJsonFile(join(dir, 'generation_config.json'), false, 'generation_config.json') ?? {};
    const eos = generation.eos_token_id;
    const generationEos = (Array.isArray(eos) ? eos : [eos]).filter((id): id is number => Number.isInteger(id));
    return new ModelTokenizer(tokenizer, tokenizerFile, tokenizerJson, config, generationEos);
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate !== null;
  }

  /**
   * Renders messages with the model's own chat template (Jinja, as transformers' apply_chat_template does),
   * ending where the assistant's reply begins. The text already holds any BOS the template writes, so encode
   * it with `addSpecialTokens: false`.
   */
  applyChatTemplate(messages: ChatMessage[]): string {
    if (this.chatTemplate === null) throw new KvlensError('the tokenizer has no chat_template', this.tokenizerFile);
    try {
      this.compiledTemplate ??= new Template(this.chatTemplate);
      return this.compiledTemplate.render({ messages, add_generation_prompt: true, ...this.specialTokenText });
    } catch (error) {
      throw new KvlensError(`cannot render its chat_template (${(error as Error).message})`, this.tokenizerFile);
    }
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    // The library rejects an empty list; nothing decodes to nothing.
    if (ids.length === 0) return '';
    // Clean-up (dropping spaces before punctuation) would corrupt decoded code; transformers 5 skips it for BPE too.
    return this.tokenizer.decode(Array.from(ids), {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  tokenToId(token: string): number | null {
    return this.tokenizer.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    return this.tokenizer.id_to_token(id) ?? null;
  }
}

/** The tokenizer of a loaded model: its folder, or the folder of its .gguf file. */
export function loadTokenizer(modelDir: string, options: { gguf?: boolean } = {}): ModelTokenizer {
  return ModelTokenizer.fromDir(modelDir, options.gguf ? { missingHint: 'tokenizer.json: GGUF file has no tokenizer.json beside it (put the model\'s Hugging Face tokenizer.json next to the .gguf file)' } : {});
}
