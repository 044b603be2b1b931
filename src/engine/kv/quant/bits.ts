// Growable storage for quantized caches: a bit stream of codes and fp16/fp32 parameter lists.
// Their byteLength over the used part is what the cache reports as held.

export class BitStream {
  private buffer = new Uint8Array(64);
  bitLength = 0;

  constructor(readonly bits: number) {}

  write(codes: ArrayLike<number>): number {
    const start = this.bitLength;
    const needed = Math.ceil((start + codes.length * this.bits) / 8);
    if (needed > this.buffer.length) {
      const next = new Uint8Array(Math.max(needed, this.buffer.length * 2));
      next.set(this.buffer);
      this.buffer = next;
    }
    let bit = start;
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i];
      for (let b = 0; b < this.bits; b++, bit++) {
        if ((code >>> b) & 1) this.buffer[bit >>> 3] |= 1 << (bit & 7);
      }
    }
    this.bitLength = bit;
    return start;
  }

  read(startBit: number, out: Uint8Array): void {
    let bit = startBit;
    for (let i = 0; i < out.length; i++) {
      let code = 0;
      for (let b = 0; b < this.bits; b++, bit++) code |= ((this.buffer[bit >>> 3] >>> (bit & 7)) & 1) << b;
      out[i] = code;
    }
  }

  /** The bytes in use (codes are packed back to back, so only the last byte may be partly filled). */
  used(): Uint8Array {
    return this.buffer.subarray(0, Math.ceil(this.bitLength / 8));
  }
}

/** A growable list of quantization parameters stored as fp16 bit patterns or fp32. */
export class ParamList {
  private buffer: Uint16Array | Float32Array;
  length = 0;

  constructor(readonly storage: 'fp16' | 'fp32') {
    this.buffer = storage === 'fp16' ? new Uint16Array(64) : new Float32Array(64);
  }

  /** Appends a raw stored value (fp16 bits or fp32 number); returns its index. */
  push(stored: number): number {
    if (this.length === this.buffer.length) {
      const next = this.storage === 'fp16' ? new Uint16Array(this.length * 2) : new Float32Array(this.length * 2);
      next.set(this.buffer);
      this.buffer = next;
    }
    this.buffer[this.length] = stored;
    return this.length++;
  }

  get(index: number): number {
    return this.buffer[index];
  }

  used(): Uint16Array | Float32Array {
    return this.buffer.subarray(0, this.length);
  }
}
