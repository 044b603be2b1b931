// Growable storage for quantized caches: a bit stream of codes and fp16/fp32 parameter lists.
// Their byteLength over the used part is what the cache reports as held.

export class BitStream {
  private buffer = new Uint8Array(64);
  bitLength = 0;

  constructor(readonly bits: number) {}

  write(codes: ArrayLike<number>): number {
    const start = this.bitLength;
    // One spare byte: a code may straddle two bytes, and the second write below touches it even when empty.
    const needed = Math.ceil((start + codes.length * this.bits) / 8) + 1;
    if (needed > this.buffer.length) {
      const next = new Uint8Array(Math.max(needed, this.buffer.length * 2));
      next.set(this.buffer);
      this.buffer = next;
    }
    let bit = start;
    for (let i = 0; i < codes.length; i++, bit += this.bits) {
      const shifted = codes[i] << (bit & 7); // at most 15 bits wide for codes of up to 8 bits
      this.buffer[bit >>> 3] |= shifted & 0xff;
      this.buffer[(bit >>> 3) + 1] |= shifted >>> 8;
    }
    this.bitLength = bit;
    return start;
  }

  read(startBit: number, out: Uint8Array): void {
    const mask = (1 << this.bits) - 1;
    let bit = startBit;
    for (let i = 0; i < out.length; i++, bit += this.bits) {
      const byte = bit >>> 3;
      out[i] = ((this.buffer[byte] | (this.buffer[byte + 1] << 8)) >>> (bit & 7)) & mask;
    }
  }

  /**
   * The packed bytes, with at least one byte past the last code (`write` keeps that spare byte), so any code can be read
   * as the two bytes it starts in without a bounds check. Read-only use: decoding a whole stream in one pass.
   */
  get packed(): Uint8Array {
    return this.buffer;
  }

  get codeCount(): number {
    return this.bitLength / this.bits;
  }

  /** Removes `count` codes starting at code `index`, moving the later codes down. */
  removeCodes(index: number, count: number): void {
    if (index < 0 || count < 0 || index + count > this.codeCount) throw new Error(`removeCodes: ${index}+${count} outside ${this.codeCount} codes`);
    const tail = new Uint8Array(this.codeCount - index - count);
    this.read((index + count) * this.bits, tail);
    const end = Math.ceil(this.bitLength / 8);
    this.bitLength = index * this.bits;
    const byte = this.bitLength >>> 3;
    this.buffer[byte] &= (1 << (this.bitLength & 7)) - 1;
    this.buffer.fill(0, byte + 1, end + 1);
    this.write(tail);
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

  remove(index: number, count: number): void {
    this.buffer.copyWithin(index, index + count, this.length);
    this.length -= count;
  }

  used(): Uint16Array | Float32Array {
    return this.buffer.subarray(0, this.length);
  }
}
