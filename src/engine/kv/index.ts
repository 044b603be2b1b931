// Public surface of the KV compression library for the bench runner and the CLI.
export { createMethod } from './compose';
export { listMethods, METHODS, type MethodInfo } from './registry';
export { parseSpec, formatSpec, canonicalSpec, type ParsedSpec } from './spec';
export { verifyCompression, verifyDecode, type Verification } from './verify';
export { mergeNeeds } from './method';
export type { CacheBytes, CompressInput, CompressionPromise, KvMethod, MethodCache, PromptCompressionContext, Family, Phase } from './method';
