// Keeps every token in fp32: the uncompressed baseline every other method is measured against.
// No paper: this is the reference point.
import type { MethodDefinition } from '../definition';

export const full: MethodDefinition = {
  name: 'full',
  family: 'baseline',
  phases: [],
  summary: 'keeps the whole cache in fp32 (no compression)',
  params: [],
  paper: null,
  build: () => ({ kind: 'baseline' }),
};
