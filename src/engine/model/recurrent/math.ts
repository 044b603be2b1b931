// The few dense kernels the recurrent forward passes share, on row-major fp32 arrays.

/** out[t, o] = sum_i x[t, i] * w[o, i] (+ bias[o]) for t < rows: a Linear layer over `rows` tokens. */
export function linear(x: Float32Array, rows: number, w: Float32Array, outDim: number, inDim: number, bias: Float32Array | null = null): Float32Array {
  const out = new Float32Array(rows * outDim);
  let t = 0;
  // Prefill: four tokens at a time share each weight read, and their four sums run side by side.
  for (; t + 3 < rows; t += 4) {
    const x0 = t * inDim;
    const x1 = x0 + inDim;
    const x2 = x1 + inDim;
    const x3 = x2 + inDim;
    for (let o = 0; o < outDim; o++) {
      const wOffset = o * inDim;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let i = 0; i < inDim; i++) {
        const weight = w[wOffset + i];
        s0 += x[x0 + i] * weight;
        s1 += x[x1 + i] * weight;
        s2 += x[x2 + i] * weight;
        s3 += x[x3 + i] * weight;
      }
      const b = bias ? bias[o] : 0;
      out[t * outDim + o] = s0 + b;
      out[(t + 1) * outDim + o] = s1 + b;
      out[(t + 2) * outDim + o] = s2 + b;
      out[(t + 3) * outDim + o] = s3 + b;
    }
  }
  for (; t < rows; t++) {
    const xOffset = t * inDim;
    for (let o = 0; o < outDim; o++) {
      const wOffset = o * inDim;
      // Four independent sums: one running sum waits on each add, four keep the FPU busy (about 2x here).
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let i = 0;
      for (; i + 3 < inDim; i += 4) {
        s0 += x[xOffset + i] * w[wOffset + i];
        s1 += x[xOffset + i + 1] * w[wOffset + i + 1];
        s2 += x[xOffset + i + 2] * w[wOffset + i + 2];
        s3 += x[xOffset + i + 3] * w[wOffset + i + 3];
      }
      for (; i < inDim; i++) s0 += x[xOffset + i] * w[wOffset + i];
      const sum = s0 + s1 + s2 + s3;
      out[t * outDim + o] = bias ? sum + bias[o] : sum;
    }
  }
  return out;
}

/** weight * x / sqrt(mean(x^2) + eps), per row of width `dim`. */
export function rmsNorm(x: Float32Array, rows: number, dim: number, weight: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let t = 0; t < rows; t++) {
    let squares = 0;
    for (let i = 0; i < dim; i++) squares += x[t * dim + i] * x[t * dim + i];
    const scale = 1 / Math.sqrt(squares / dim + eps);
    for (let i = 0; i < dim; i++) out[t * dim + i] = weight[i] * (x[t * dim + i] * scale);
  }
  return out;
}

/** weight * (x - mean) / sqrt(var + eps) + bias, per row of width `dim` (biased variance, as torch). */
export function layerNorm(x: Float32Array, rows: number, dim: number, weight: Float32Array, bias: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let t = 0; t < rows; t++) {
    let mean = 0;
    for (let i = 0; i < dim; i++) mean += x[t * dim + i];
    mean /= dim;
    let variance = 0;
    for (let i = 0; i < dim; i++) variance += (x[t * dim + i] - mean) ** 2;
    const scale = 1 / Math.sqrt(variance / dim + eps);
    for (let i = 0; i < dim; i++) out[t * dim + i] = (x[t * dim + i] - mean) * scale * weight[i] + bias[i];
  }
  return out;
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** log(1 + e^x), linear above 20 as torch's softplus. */
export function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

/** The rows of `x` ([rows, dim]) that logits are wanted for: all, or only the last. */
export function pickRows(x: Float32Array, rows: number, dim: number, which: 'all' | 'last'): { data: Float32Array; rows: number } {
  return which === 'all' ? { data: x, rows } : { data: x.subarray((rows - 1) * dim, rows * dim), rows: 1 };
}
