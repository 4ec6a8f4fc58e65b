/**
 * A minimal ONNX (protobuf) writer: just enough of onnx.proto to describe small
 * feed-forward graphs, so that the project can make its own models without downloads.
 * Field numbers follow onnx/onnx.proto (IR version 8, default domain opset 13).
 */

class ProtoWriter {
  private readonly chunks: Buffer[] = [];

  varint(field: number, value: number | bigint): this {
    return this.key(field, 0).raw(encodeVarint(BigInt(value)));
  }

  bytes(field: number, value: Uint8Array): this {
    return this.key(field, 2)
      .raw(encodeVarint(BigInt(value.length)))
      .raw(Buffer.from(value));
  }

  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  message(field: number, build: (writer: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Buffer {
    return Buffer.concat(this.chunks);
  }

  private key(field: number, wireType: number): this {
    return this.raw(encodeVarint(BigInt((field << 3) | wireType)));
  }

  private raw(chunk: Uint8Array): this {
    this.chunks.push(Buffer.from(chunk));
    return this;
  }
}

function encodeVarint(value: bigint): Buffer {
  // Negative int64 values are written as their 64-bit two's complement, as protobuf does.
  let v = value < 0n ? (1n << 64n) + value : value;
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

const FLOAT = 1;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_INTS = 7;

/** A dimension: a fixed size, or a symbolic name such as "batch". */
export type Dim = number | string;

export interface TensorInit {
  name: string;
  dims: number[];
  values: Float32Array;
}

export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  ints?: Record<string, number>;
  intLists?: Record<string, number[]>;
}

export interface GraphSpec {
  name: string;
  inputs: { name: string; dims: Dim[] }[];
  outputs: { name: string; dims: Dim[] }[];
  initializers: TensorInit[];
  nodes: NodeSpec[];
}

function writeValueInfo(w: ProtoWriter, name: string, dims: Dim[]): void {
  w.string(1, name).message(2, (type) =>
    type.message(1, (tensor) =>
      tensor.varint(1, FLOAT).message(2, (shape) => {
        for (const dim of dims) {
          shape.message(1, (d) => (typeof dim === 'number' ? d.varint(1, dim) : d.string(2, dim)));
        }
      }),
    ),
  );
}

/** Serialises a float32 graph as an ONNX ModelProto. */
export function encodeModel(graph: GraphSpec, producer = 'objinfer', versions: { irVersion?: number; opset?: number } = {}): Buffer {
  const model = new ProtoWriter()
    .varint(1, versions.irVersion ?? 8) // ir_version
    .string(2, producer)
    .message(7, (g) => {
      graph.nodes.forEach((node, index) =>
        g.message(1, (n) => {
          node.inputs.forEach((input) => n.string(1, input));
          node.outputs.forEach((output) => n.string(2, output));
          n.string(3, `${node.opType.toLowerCase()}_${index}`).string(4, node.opType);
          for (const [name, value] of Object.entries(node.ints ?? {})) {
            n.message(5, (a) => a.string(1, name).varint(3, value).varint(20, ATTRIBUTE_INT));
          }
          for (const [name, values] of Object.entries(node.intLists ?? {})) {
            n.message(5, (a) => {
              a.string(1, name);
              values.forEach((value) => a.varint(8, value));
              a.varint(20, ATTRIBUTE_INTS);
            });
          }
        }),
      );
      g.string(2, graph.name);
      for (const init of graph.initializers) {
        g.message(5, (t) => {
          init.dims.forEach((dim) => t.varint(1, dim));
          t.varint(2, FLOAT).string(8, init.name);
          t.bytes(9, new Uint8Array(init.values.buffer, init.values.byteOffset, init.values.byteLength));
        });
      }
      graph.inputs.forEach((input) => g.message(11, (v) => writeValueInfo(v, input.name, input.dims)));
      graph.outputs.forEach((output) => g.message(12, (v) => writeValueInfo(v, output.name, output.dims)));
    })
    .message(8, (opset) => opset.string(1, '').varint(2, versions.opset ?? 13));
  return model.finish();
}
