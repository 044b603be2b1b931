// A minimal protobuf encoder for the slice of onnx.proto the graph builder writes.
// Messages are encoded into lists of byte chunks and joined once at the end, so multi-hundred-megabyte
// weight payloads are copied a single time (into the final buffer) instead of once per nesting level.

/** ONNX TensorProto.DataType values used by the engine. */
export const OnnxDataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
} as const;
export type OnnxDataTypeCode = (typeof OnnxDataType)[keyof typeof OnnxDataType];

const enum WireType {
  Varint = 0,
  LengthDelimited = 2,
  Fixed32 = 5,
}

const textEncoder = new TextEncoder();

/** An encoded message: chunks in order plus their total length (known without joining them). */
class Encoded {
  readonly chunks: Uint8Array[] = [];
  length = 0;

  push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }
}

function varintBytes(value: number | bigint): Uint8Array {
  // int64 fields: negative numbers are written as their 64-bit two's complement (10 bytes).
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

function smallVarintBytes(value: number): Uint8Array {
  if (value >= 0 && value < 0x80) return Uint8Array.of(value);
  return varintBytes(value);
}

/** Builds one protobuf message field by field. */
export class MessageWriter {
  private readonly encoded = new Encoded();

  private tag(field: number, wire: WireType): void {
    this.encoded.push(smallVarintBytes(field * 8 + wire));
  }

  int(field: number, value: number | bigint): this {
    this.tag(field, WireType.Varint);
    this.encoded.push(varintBytes(value));
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WireType.Fixed32);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.encoded.push(bytes);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WireType.LengthDelimited);
    this.encoded.push(smallVarintBytes(value.length));
    if (value.length > 0) this.encoded.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  message(field: number, child: MessageWriter): this {
    this.tag(field, WireType.LengthDelimited);
    this.encoded.push(smallVarintBytes(child.encoded.length));
    for (const chunk of child.encoded.chunks) this.encoded.push(chunk);
    return this;
  }

  /** A packed repeated varint field (int64/int32 lists). */
  packedInts(field: number, values: ArrayLike<number | bigint>): this {
    const parts = Array.from(values, (v) => varintBytes(v));
    const length = parts.reduce((sum, p) => sum + p.length, 0);
    this.tag(field, WireType.LengthDelimited);
    this.encoded.push(smallVarintBytes(length));
    for (const part of parts) this.encoded.push(part);
    return this;
  }

  /** A packed repeated float field. */
  packedFloats(field: number, values: ArrayLike<number>): this {
    const bytes = new Uint8Array(values.length * 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
    return this.bytes(field, bytes);
  }

  get byteLength(): number {
    return this.encoded.length;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.encoded.length);
    let offset = 0;
    for (const chunk of this.encoded.chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

// ---- onnx.proto messages (field numbers from onnx/onnx.proto3) ----

/** A typed value; `shape` undefined leaves the shape unknown (allowed for subgraph outputs). */
export function valueInfo(name: string, elemType: OnnxDataTypeCode, shape?: (number | string)[]): MessageWriter {
  const tensorType = new MessageWriter().int(1, elemType);
  if (shape) {
    const shapeProto = new MessageWriter();
    for (const dim of shape) {
      const dimProto = new MessageWriter();
      if (typeof dim === 'number') dimProto.int(1, dim);
      else dimProto.string(2, dim);
      shapeProto.message(1, dimProto);
    }
    tensorType.message(2, shapeProto);
  }
  const typeProto = new MessageWriter().message(1, tensorType);
  return new MessageWriter().string(1, name).message(2, typeProto);
}

/** Where a tensor's bytes live when they are kept out of the model file (ONNX external data). */
export interface ExternalLocation {
  file: string;
  offset: number;
  length: number;
}

export function tensorProto(
  name: string,
  elemType: OnnxDataTypeCode,
  dims: number[],
  raw: Uint8Array,
  external?: ExternalLocation,
): MessageWriter {
  const t = new MessageWriter();
  t.packedInts(1, dims);
  t.int(2, elemType);
  t.string(8, name);
  if (external) {
    const entry = (key: string, value: string): MessageWriter => new MessageWriter().string(1, key).string(2, value);
    t.message(13, entry('location', external.file));
    t.message(13, entry('offset', String(external.offset)));
    t.message(13, entry('length', String(external.length)));
    t.int(14, 1);
  } else {
    t.bytes(9, raw);
  }
  return t;
}

export type AttributeValue =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] }
  | { kind: 'tensor'; value: MessageWriter }
  | { kind: 'graph'; value: MessageWriter };

const enum AttributeType {
  FLOAT = 1,
  INT = 2,
  STRING = 3,
  TENSOR = 4,
  GRAPH = 5,
  FLOATS = 6,
  INTS = 7,
}

export function attributeProto(name: string, attr: AttributeValue): MessageWriter {
  const a = new MessageWriter().string(1, name);
  switch (attr.kind) {
    case 'float':
      return a.float(2, attr.value).int(20, AttributeType.FLOAT);
    case 'int':
      return a.int(3, attr.value).int(20, AttributeType.INT);
    case 'string':
      return a.string(4, attr.value).int(20, AttributeType.STRING);
    case 'tensor':
      return a.message(5, attr.value).int(20, AttributeType.TENSOR);
    case 'graph':
      return a.message(6, attr.value).int(20, AttributeType.GRAPH);
    case 'floats':
      return a.packedFloats(7, attr.value).int(20, AttributeType.FLOATS);
    case 'ints':
      return a.packedInts(8, attr.value).int(20, AttributeType.INTS);
  }
}

export function nodeProto(
  opType: string,
  inputs: string[],
  outputs: string[],
  name: string,
  attributes: Record<string, AttributeValue> = {},
  domain = '',
): MessageWriter {
  const n = new MessageWriter();
  for (const input of inputs) n.string(1, input);
  for (const output of outputs) n.string(2, output);
  n.string(3, name);
  n.string(4, opType);
  for (const [key, value] of Object.entries(attributes)) n.message(5, attributeProto(key, value));
  if (domain) n.string(7, domain);
  return n;
}

export interface GraphParts {
  name: string;
  nodes: MessageWriter[];
  initializers: MessageWriter[];
  inputs: MessageWriter[];
  outputs: MessageWriter[];
}

/** A GraphProto: the main graph, or a subgraph (If branches) that reads outer-scope values by name. */
export function graphProto(graph: GraphParts): MessageWriter {
  const g = new MessageWriter();
  for (const node of graph.nodes) g.message(1, node);
  g.string(2, graph.name);
  for (const init of graph.initializers) g.message(5, init);
  for (const input of graph.inputs) g.message(11, input);
  for (const output of graph.outputs) g.message(12, output);
  return g;
}

export function modelProto(graph: GraphParts, opsets: { domain: string; version: number }[], irVersion = 8): Uint8Array {
  const g = graphProto(graph);
  const m = new MessageWriter();
  m.int(1, irVersion);
  m.string(2, 'kvlens');
  m.message(7, g);
  for (const opset of opsets) m.message(8, new MessageWriter().string(1, opset.domain).int(2, opset.version));
  return m.finish();
}
