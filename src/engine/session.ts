// A loaded model ready to run: weights, tokenizer and a forward pass on the best execution provider.
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { loadModel, resolveModelDir, estimateModelMemory, checkFitsInMemory, isGgufPath } from './model/loader';
import { loadTokenizer, type ModelTokenizer } from './tokenizer/tokenizer';
import { createOnnxForward, type ProviderChoice } from './model/onnx/onnxForward';
import { createReferenceForward } from './model/reference';
import type { DecoderForward, LoadedModel } from './model/types';

export type ForwardBackend = 'onnx' | 'reference';

export interface SessionOptions {
  provider?: ProviderChoice;
  /** 'reference' runs the plain-TypeScript oracle instead of onnxruntime (slow; for checks). */
  backend?: ForwardBackend;
  /** Longest context the session will be asked to hold, for the up-front memory check. */
  contextTokens?: number;
}

export interface ModelSession {
  model: LoadedModel;
  tokenizer: ModelTokenizer;
  forward: DecoderForward;
  /** The execution provider that loaded ('cpu', 'cuda', 'webgpu' or 'reference'). */
  provider: string;
  /** One line per provider that was tried and failed before `provider` loaded. */
  fallbackReasons: string[];
  modelPath: string;
  dispose(): Promise<void>;
}

export async function openModel(spec: string, options: SessionOptions = {}): Promise<ModelSession> {
  const modelPath = resolveModelDir(spec);
  // Refuse a model that cannot fit before reading a byte of its weights.
  checkFitsInMemory(estimateModelMemory(modelPath, options.contextTokens ?? 4096, { weightCopies: 2 }), modelPath);
  const model = loadModel(modelPath);
  const tokenizer = loadTokenizer(isGgufPath(modelPath) ? join(modelPath, '..') : modelPath, { gguf: isGgufPath(modelPath) });
  if (options.backend === 'reference') {
    const forward = createReferenceForward(model);
    return { model, tokenizer, forward, provider: 'reference', fallbackReasons: [], modelPath, dispose: async () => {} };
  }
  const forward = await createOnnxForward(model, { provider: options.provider ?? 'auto' });
  return {
    model,
    tokenizer,
    forward,
    provider: forward.provider,
    fallbackReasons: forward.fallbackReasons.slice(),
    modelPath,
    dispose: async () => {
      await forward.dispose?.();
    },
  };
}

/** sha256 over the model's files (name and bytes, in name order): any changed weight changes the hash. */
export async function modelContentHash(modelPath: string): Promise<string> {
  const hash = createHash('sha256');
  const files = statSync(modelPath).isDirectory()
    ? readdirSync(modelPath)
        .filter((name) => /\.(json|safetensors|gguf)$/.test(name))
        .sort()
        .map((name) => join(modelPath, name))
    : [modelPath];
  for (const file of files) {
    hash.update(basename(file));
    hash.update('\0');
    await new Promise<void>((resolveHash, reject) => {
      createReadStream(file)
        .on('data', (chunk) => hash.update(chunk))
        .on('end', () => resolveHash())
        .on('error', reject);
    });
  }
  return `sha256:${hash.digest('hex')}`;
}
