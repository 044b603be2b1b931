// Line classification the completion tasks need: which lines are code worth predicting, which are comments,
// which import other files, and which define a symbol other files may use.

const HASH_COMMENT_LANGUAGES = new Set(['python', 'shell', 'ruby', 'perl', 'r', 'elixir', 'julia', 'nim']);
const DASH_COMMENT_LANGUAGES = new Set(['lua', 'haskell']);

export function isCommentLine(line: string, language: string): boolean {
  const t = line.trim();
  if (t.startsWith('//') || t.startsWith('/*') || t.startsWith('*') || t.startsWith('<!--')) return true;
  if (HASH_COMMENT_LANGUAGES.has(language) && t.startsWith('#')) return true;
  if (DASH_COMMENT_LANGUAGES.has(language) && t.startsWith('--')) return true;
  if (language === 'python' && (t.startsWith('"""') || t.startsWith("'''"))) return true;
  return false;
}

/**
 * A line a completion can be asked for: code, not a comment, and with enough substance that predicting it
 * says something (a lone `}` or `end` would inflate every score).
 */
export function isTargetLine(line: string, language: string): boolean {
  const t = line.trim();
  return t.length >= 6 && /[A-Za-z]/.test(t) && !isCommentLine(line, language);
}

const IMPORT_LINE = /^\s*(import\b|from\s+\S+\s+import\b|export\s+.*\bfrom\s|#\s*include\b|using\s+[\w.]+\s*;|use\s+[\w:{}, ]+;|package\s+[\w.]+|require\s*\(|(const|let|var)\s+.*=\s*require\s*\()/;

export function isImportLine(line: string): boolean {
  return IMPORT_LINE.test(line);
}

const DEFINITION_PATTERNS: readonly RegExp[] = [
  // JavaScript / TypeScript, top level (optionally exported)
  /^(?:export\s+)?(?:default\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?:function\*?|class|interface|type|enum|const|let|var)\s+([A-Za-z_$][\w$]*)/,
  // Python, top level
  /^(?:async\s+)?def\s+([A-Za-z_]\w*)/,
  /^class\s+([A-Za-z_]\w*)/,
  /^([A-Z][A-Z0-9_]+)\s*(?::[^=]+)?=/,
  // Go
  /^func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)/,
  /^(?:type|var|const)\s+([A-Za-z_]\w*)/,
  // Rust
  /^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?(?:fn|struct|enum|trait|mod)\s+([A-Za-z_]\w*)/,
  // Java, Kotlin, C#, Scala, Swift, C++ types
  /^\s*(?:(?:public|private|protected|internal|static|final|abstract|sealed|data|open|partial)\s+)*(?:class|interface|enum|struct|record|object|trait|protocol)\s+([A-Za-z_]\w*)/,
  // C preprocessor
  /^#\s*define\s+([A-Za-z_]\w*)/,
];

/** Names too generic to tie a use to one definition. */
const GENERIC_NAMES = new Set([
  'main', 'init', 'test', 'self', 'this', 'data', 'value', 'name', 'type', 'index', 'result', 'error', 'config',
  'options', 'default', 'string', 'number', 'object', 'list', 'item', 'items', 'args', 'kwargs', 'props', 'state',
  'setup', 'start', 'stop', 'update', 'create', 'delete', 'module', 'exports', 'require', 'self', 'true', 'false',
  'null', 'none', 'None', 'True', 'False', 'String', 'Object', 'Array', 'Error', 'Promise', 'Record', 'const',
  'function', 'return', 'export', 'import', 'class', 'interface', 'async', 'await',
]);

export function definedSymbols(line: string): string[] {
  const out: string[] = [];
  for (const pattern of DEFINITION_PATTERNS) {
    const match = pattern.exec(line);
    if (match && match[1] && match[1].length >= 4 && !GENERIC_NAMES.has(match[1])) out.push(match[1]);
  }
  return out;
}

export function identifiers(line: string): string[] {
  return line.match(/[A-Za-z_$][\w$]*/g) ?? [];
}
