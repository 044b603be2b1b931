// LongBench's metrics against examples worked out by hand from the definitions in LongBench's metrics.py, the
// `rouge` package's rouge_l_summary_level and rapidfuzz's Indel ratio (each expectation says how it was
// derived), and against values the reference implementations computed on random texts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  classificationScore,
  codeSimLine,
  codeSimScore,
  countScore,
  fuzzRatio,
  normalizeAnswer,
  normalizeZhAnswer,
  qaF1Score,
  qaF1ZhScore,
  retrievalScore,
  retrievalZhScore,
  rougeScore,
  rougeZhScore,
  segmentChinese,
  tokenF1,
} from '../../src/engine/tasks/longbenchMetrics';
import { reconstructLcs, rougeL, rougeSentences } from '../../src/engine/tasks/rouge';
import { pyRound2, pyRoundHalfEven, pySplit } from '../../src/engine/tasks/pyText';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);
/** The package's F: 2 · (p·r) / (p + r + 1e-8). */
const packageF = (p: number, r: number) => 2.0 * ((p * r) / (p + r + 1e-8));
const perCharacter = (text: string) => Array.from(text);

test('Python helpers: str.split whitespace, round half to even, round(x, 2)', () => {
  assert.deepEqual(pySplit('  a\u00a0b\u3000c\x1fd\n'), ['a', 'b', 'c', 'd'], 'NBSP, ideographic space and \\x1f split in Python');
  assert.deepEqual(pySplit('a\ufeffb'), ['a\ufeffb'], 'U+FEFF is not whitespace to Python');
  assert.equal(pyRoundHalfEven(62.5), 62);
  assert.equal(pyRoundHalfEven(87.5), 88);
  assert.equal(pyRoundHalfEven(96.55), 97);
  assert.equal(pyRound2(33.125), 33.12, '33.125 is exact in binary: a tie, even neighbour');
  assert.equal(pyRound2(33.375), 33.38);
  assert.equal(pyRound2(66.66666666666667), 66.67);
  assert.equal(pyRound2(50), 50);
});

test('qa_f1_score: SQuAD normalisation with ASCII punctuation only, multiset token F1', () => {
  // "The Eiffel Tower, in Paris." → "eiffel tower in paris" (4 tokens); truth "eiffel tower" (2); 2 shared:
  // P = 2/4, R = 2/2, F1 = 2·0.5·1 / 1.5 = 2/3.
  close(qaF1Score('The Eiffel Tower, in Paris.', 'Eiffel Tower'), 2 / 3);
  // "no no yes" against "no": one "no" is shared (multiset), P = 1/3, R = 1, F1 = 0.5.
  close(qaF1Score('no no yes', 'no'), 0.5);
  // Curly quotes are not in string.punctuation, so “paris” stays a different token.
  assert.equal(normalizeAnswer('“Paris”'), '“paris”');
  assert.equal(qaF1Score('“Paris”', 'Paris'), 0);
  // Articles go only as whole words: "banana" keeps its "an", "a café" loses its "a".
  assert.equal(normalizeAnswer('A banana and an apple, the end'), 'banana and apple end');
  close(qaF1Score('a café', 'café'), 1);
  // "thé" is one word to Python's Unicode \b, so its "th" + "é" is not the article "the".
  assert.equal(normalizeAnswer('thé'), 'thé');
  assert.equal(qaF1Score('', 'anything'), 0);
  assert.equal(tokenF1([], ['x']), 0);
});

test('qa_f1_zh_score: segmented words, Chinese and ASCII punctuation and spaces removed, empties dropped', () => {
  assert.equal(normalizeZhAnswer('北京，Ａ b。'), '北京ａb', 'full-width Ａ is lowered, not removed');
  // One character a word: 北 京 大 学 (。 normalises away) against 北 京: P = 2/4, R = 1, F1 = 2/3.
  close(qaF1ZhScore('北京大学。', '北京', perCharacter), 2 / 3);
  // With ICU's dictionary: 我 | 喜欢 | 苹果 | 。 against 喜欢 | 苹果: P = 2/3, R = 1, F1 = 0.8.
  assert.deepEqual(segmentChinese('我喜欢苹果。'), ['我', '喜欢', '苹果', '。']);
  assert.deepEqual(segmentChinese('喜欢苹果'), ['喜欢', '苹果']);
  close(qaF1ZhScore('我喜欢苹果。', '喜欢苹果'), 0.8);
});

test('ROUGE-L as the rouge package computes it: distinct-word union LCS, its tie-breaking, its 1e-8', () => {
  // One sentence each. LCS("the cat is on the mat", "the cat sat on the mat") = the cat on the mat, whose
  // distinct words are {the, cat, on, mat}: 4. Distinct words: reference 5, hypothesis 5. p = r = 4/5.
  // (Plain ROUGE-L would say 5/6: the package counts each word once.)
  close(rougeScore('the cat sat on the mat', 'the cat is on the mat'), packageF(0.8, 0.8));
  // The package's docstring example: r = w1 w2 w3 w4 w5, C = {w1 w2 w6 w7 w8, w1 w3 w8 w9 w5}: the union LCS is
  // {w1, w2, w3, w5} = 4; reference has 5 distinct words, the two hypothesis sentences 8.
  close(rougeScore('w1 w2 w6 w7 w8. w1 w3 w8 w9 w5', 'w1 w2 w3 w4 w5'), packageF(4 / 8, 4 / 5));
  // Tie-breaking: reference "a b a", hypothesis "a a b" have two LCSs, "a a" and "a b". Walking back from the
  // end the package moves left on ties, and reads "a a": one distinct word. Both sides have 2 distinct words.
  assert.deepEqual(reconstructLcs(['a', 'b', 'a'], ['a', 'a', 'b']), ['a', 'a']);
  close(rougeScore('a a b', 'a b a'), packageF(1 / 2, 1 / 2));
  // Identical texts score just under 1 because of the 1e-8.
  close(rougeScore('same words here', 'same words here'), packageF(1, 1));
  assert.ok(rougeScore('same words here', 'same words here') < 1);
  // Case is kept: nothing matches.
  assert.equal(rougeScore('The Cat', 'the cat'), 0);
  // "cat. " splits into "cat" and " ", which collapses to an empty word: hypothesis words {cat, ""} = 2.
  assert.deepEqual(rougeSentences('cat. '), ['cat', '']);
  close(rougeScore('cat. ', 'cat'), packageF(1 / 2, 1));
  // An empty hypothesis, or one of dots only, has no sentence: the package raises and LongBench scores 0.
  assert.equal(rougeL('', 'cat'), null);
  assert.equal(rougeScore('...', 'cat'), 0);
});

test('rouge_zh_score: words joined by spaces, then ROUGE-L', () => {
  // Per character: hypothesis 今 天 好 (3 distinct), reference 今 天 很 好 (4 distinct); LCS 今 天 好 = 3.
  close(rougeZhScore('今天好', '今天很好', perCharacter), packageF(3 / 3, 3 / 4));
});

test('classification_score: classes named in the prediction, sub-classes of the truth dropped, Python list quirk kept', () => {
  const classes = ['Animal', 'Animal food', 'Food'];
  // Named: "Animal", "Animal food" ("Food" is not: case). "Animal" is part of the truth → dropped; 1 left → 1.
  assert.equal(classificationScore('Animal food', 'Animal food', classes), 1);
  // Two unrelated classes named, the truth among them: 1/2.
  assert.equal(classificationScore('Animal or Color', 'Animal', ['Animal', 'Color']), 0.5);
  assert.equal(classificationScore('Food', 'Animal', classes), 0);
  // metrics.py removes from the list it iterates: after dropping "a" the loop skips "ab", which stays:
  // ["ab", "abc"] left, so 1/2 where a clean filter would give 1.
  assert.equal(classificationScore('abc', 'abc', ['a', 'ab', 'abc']), 0.5);
});

test('retrieval_score, retrieval_zh_score and count_score: the share of the numbers that are right', () => {
  assert.equal(retrievalScore('Paragraph 12', 'Paragraph 12'), 1);
  assert.equal(retrievalScore('Paragraph 3 or Paragraph 12', 'Paragraph 12'), 0.5);
  assert.equal(retrievalScore('Paragraph 012', 'Paragraph 12'), 0, 'compared as strings');
  assert.equal(retrievalScore('none', 'Paragraph 12'), 0);
  // Python's \d matches full-width digits: "１２" is a number, and not the string "12".
  assert.equal(retrievalScore('12 and １２', 'Paragraph 12'), 0.5);
  assert.equal(retrievalZhScore('答案是段落5和段落15', '段落5'), 0.5);
  assert.equal(countScore('There are 7 unique paragraphs out of 30', '7'), 0.5);
  assert.equal(countScore('7', '7'), 1);
  assert.equal(countScore('seven', '7'), 0);
});

test('fuzz ratio is the Indel similarity × 100, rounded half to even; code_sim_score on the first code line', () => {
  // |a| + |b| = 29, LCS 14, Indel distance 1: 100 · (1 − 1/29) = 96.55 → 97.
  assert.equal(fuzzRatio('this is a test', 'this is a test!'), 97);
  // "abcdefgh" / "abcdexyz": LCS 5, distance 16 − 10 = 6, 100 · (1 − 6/16) = 62.5 → 62 (even).
  assert.equal(fuzzRatio('abcdefgh', 'abcdexyz'), 62);
  // "abcdefgh" / "abcdefgx": LCS 7, distance 2, 87.5 → 88 (even).
  assert.equal(fuzzRatio('abcdefgh', 'abcdefgx'), 88);
  assert.equal(fuzzRatio('', ''), 100);
  assert.equal(fuzzRatio('', 'x'), 0);
  // Leading newlines dropped; lines with a comment marker or backtick skipped.
  assert.equal(codeSimLine('\n\n# add them\n```\n// no\n    return a + b\nprint(x)\n'), '    return a + b');
  assert.equal(codeSimLine('# only\n// comments'), '');
  assert.equal(codeSimScore('\n# add them\n    return a + b\n', '    return a + b'), 1);
  assert.equal(codeSimScore('x = 1 # set', 'x = 1'), 0, 'every line has a marker: "" against the truth');
  // Whitespace counts: "return a + b" against "    return a + b": LCS 12, distance 4, 100 · (1 − 4/28) = 85.71 → 86.
  assert.equal(codeSimScore('return a + b', '    return a + b'), 0.86);
});

test('every metric matches the reference implementations on random texts (values they computed)', () => {
  const fixture = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'longbench', 'reference-scores.json'), 'utf8')) as {
    classes: string[];
    rouge_score: { p: string; g: string; rouge: number }[];
    fuzz_ratio: { a: string; b: string; ratio: number }[];
    metrics: { p: string; g: string; gc: string; qa: number; qazh: number; rzh: number; count: number; ret: number | null; retzh: number | null; cls: number; code: number }[];
  };
  const same = (actual: number, expected: number | null, what: string) => {
    if (expected !== null) assert.equal(actual, expected, what);
  };
  for (const c of fixture.rouge_score) same(rougeScore(c.p, c.g), c.rouge, `rouge ${JSON.stringify(c)}`);
  for (const c of fixture.fuzz_ratio) same(fuzzRatio(c.a, c.b), c.ratio, `ratio ${JSON.stringify(c)}`);
  for (const c of fixture.metrics) {
    const at = JSON.stringify({ p: c.p, g: c.g });
    same(qaF1Score(c.p, c.g), c.qa, `qa_f1 ${at}`);
    same(qaF1ZhScore(c.p, c.g, perCharacter), c.qazh, `qa_f1_zh ${at}`);
    same(rougeZhScore(c.p, c.g, perCharacter), c.rzh, `rouge_zh ${at}`);
    same(countScore(c.p, c.g), c.count, `count ${at}`);
    // null: metrics.py raises (the truth names no paragraph).
    same(retrievalScore(c.p, c.g), c.ret, `retrieval ${at}`);
    same(retrievalZhScore(c.p, c.g), c.retzh, `retrieval_zh ${at}`);
    same(classificationScore(c.p, c.gc, fixture.classes), c.cls, `classification ${at} / ${c.gc}`);
    same(codeSimScore(c.p, c.g), c.code, `code_sim ${at}`);
  }
  assert.ok(fixture.rouge_score.length + fixture.fuzz_ratio.length + fixture.metrics.length >= 250);
});
