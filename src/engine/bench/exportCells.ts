// Cells of the CSV and Markdown exports: text from a results file stays inert (no formulas, markup, links or HTML).

export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  let text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  // A text cell a spreadsheet would run as a formula (= + - @, or a leading tab/CR) is kept as text by a quote
  // mark, as OWASP recommends; numbers stay numbers.
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Text from a results file (answers, paths, task and method names) as literal Markdown: no markup, links or HTML. */
export function mdCell(text: string): string {
  return text.replace(/[\\`*_{}[\]()<>#+!|~]/g, (c) => `\\${c}`).replace(/\r?\n|\r/g, ' ');
}
