// Keeps every token in the cache's dtype (fp16 by default, as deployments hold it): the uncompressed baseline every other method is measured against.
// No paper: this is the reference point.
import type { MethodDefinition } from '../definition';

export const full: MethodDefinition = {
  name: 'full',
  family: 'baseline',
  phases: [],
  summary: 'keeps the whole cache at the KV dtype, fp16 by default (no compression)',
  params: [],
  paper: null,
  build: () => ({ kind: 'baseline' }),
};
