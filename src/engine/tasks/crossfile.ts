// RepoBench-style cross-file completion: the target line of file A uses a symbol defined only in file B.
// B opens the context (the farthest place from the query), filler follows, then A up to the target line.
import { KvlensError } from '../errors';
import { definedSymbols, identifiers, isImportLine, isTargetLine } from './codelines';
import { fileBlock, preferFocusLines, rotation, splitLines, type ContextLine } from './context';
import { fitCodeContext, MIN_PREFIX_LINES } from './completion';
import { requireFiles, sampleId } from './haystack';
import { Rng } from './random';
import type { CodeFile, GeneratorOptions, Sample } from './types';

interface Definition {
  file: CodeFile;
  line: number;
}

export interface CrossFileSite {
  target: CodeFile;
  targetLine: number;
  symbol: string;
  definition: Definition;
}

const definitionCache = new WeakMap<readonly CodeFile[], Map<string, Definition>>();

/** Symbols defined in exactly one file (a name defined twice cannot be tied to one source). */
export function uniqueDefinitions(files: readonly CodeFile[]): Map<string, Definition> {
  const cached = definitionCache.get(files);
  if (cached) return cached;
  const found = new Map<string, Definition | null>();
  for (const file of files) {
    splitLines(file.text).forEach((text, line) => {
      for (const symbol of definedSymbols(text)) {
        const seen = found.get(symbol);
        if (seen === undefined) found.set(symbol, { file, line });
        else if (seen !== null && seen.file !== file) found.set(symbol, null);
      }
    });
  }
  const out = new Map<string, Definition>();
  for (const [symbol, def] of found) if (def) out.set(symbol, def);
  definitionCache.set(files, out);
  return out;
}

/** Languages that can use each other's symbols directly. */
function languageFamily(language: string): string {
  if (language === 'typescript' || language === 'javascript' || language === 'vue' || language === 'svelte') return 'js';
  if (language === 'c' || language === 'cpp' || language === 'objective-c') return 'c';
  if (language === 'java' || language === 'kotlin' || language === 'scala' || language === 'groovy') return 'jvm';
  return language;
}

/**
 * Lines of `file` that use a symbol defined only in another file and not mentioned earlier in `file` except
 * on import lines, so predicting them needs the other file.
 */
export function crossFileSites(file: CodeFile, definitions: Map<string, Definition>): CrossFileSite[] {
  const lines = splitLines(file.text);
  const seenEarlier = new Set<string>();
  const sites: CrossFileSite[] = [];
  lines.forEach((text, i) => {
    const names = identifiers(text);
    if (i >= MIN_PREFIX_LINES && isTargetLine(text, file.language) && !isImportLine(text)) {
      for (const symbol of names) {
        const definition = definitions.get(symbol);
        if (
          definition &&
          definition.file.path !== file.path &&
          languageFamily(definition.file.language) === languageFamily(file.language) &&
          !seenEarlier.has(symbol)
        ) {
          sites.push({ target: file, targetLine: i, symbol, definition });
          break;
        }
      }
    }
    if (!isImportLine(text)) for (const name of names) seenEarlier.add(name);
  });
  return sites;
}

/** Window radii tried for B, largest first, until B takes at most half the budget. */
const LEAD_RADII = [Infinity, 256, 128, 64, 32, 16, 8, 4, 0];

export function generateCrossfile(files: readonly CodeFile[], options: GeneratorOptions): Sample {
  requireFiles(files, 'crossfile');
  // Not keyed by length: a sample index asks for the same line at every length, so only the context varies.
  const rng = Rng.derive(options.seed, 'crossfile', options.sampleIndex);
  const definitions = uniqueDefinitions(files);
  let sites: CrossFileSite[] = [];
  for (const file of rotation(files, options)) {
    sites = crossFileSites(file, definitions);
    if (sites.length > 0) break;
  }
  if (sites.length === 0) {
    throw new KvlensError('crossfile: no line in the workspace uses a symbol defined in another file (needs at least two related code files)');
  }
  const site = rng.pick(preferFocusLines(sites, sites[0].target.path, (s) => s.targetLine, options.focusLines));
  const defFile = site.definition.file;
  const defLines = splitLines(defFile.text).length;
  let lead: ContextLine[] = [];
  for (const radius of LEAD_RADII) {
    const from = radius === Infinity ? 0 : Math.max(0, site.definition.line - radius);
    const to = radius === Infinity ? defLines : Math.min(defLines, site.definition.line + radius + 1);
    lead = fileBlock(defFile, from, to);
    if (options.counter.encode(lead.map((l) => l.text).join('\n')).length <= options.targetLength / 2) break;
  }
  const context = fitCodeContext(files, options, {
    task: 'crossfile',
    lead,
    exclude: new Set([site.target.path, defFile.path]),
    target: site.target,
    targetLine: site.targetLine,
  });
  return {
    id: sampleId('crossfile', { ...options, depth: null }),
    task: 'crossfile',
    targetLength: options.targetLength,
    depth: null,
    prompt: context.prompt,
    promptTokens: context.tokens,
    answer: splitLines(site.target.text)[site.targetLine].trim(),
    scoring: 'edit-similarity',
    source: { file: site.target.path, line: site.targetLine },
    segments: context.segments,
    meta: {
      symbol: site.symbol,
      definedIn: defFile.path,
      definitionLine: site.definition.line,
      leadLines: [lead[0].line, lead[lead.length - 1].line],
      fillerLines: context.fillerLines,
      prefixStart: context.prefixStart,
      contextFiles: context.contextFiles,
    },
  };
}
