// Reads LuaJIT function prototypes (GCproto) out of a process's memory and
// answers what a frame needs: chunk name, definition line, the line of a
// bytecode position, the bytecode itself, constants and debug names.
// Everything goes through a MemoryRead, so tests can give it fake memory.
import type { LuajitTable } from './offset-tables.js';
import { decodeProtoHeader, decodeStringLength, displayChunkName } from './proto.js';

export interface MemoryRead {
  read(addr: bigint, length: number): Buffer | null;
}

export interface Prototype {
  addr: bigint;
  chunk: string;
  firstline: number;
  numline: number;
  sizebc: number;
  /** Bytecode, one 32-bit instruction each; [0] is the function header. */
  bc: Uint32Array;
  k: bigint;
  sizekgc: number;
  lineinfo: bigint;
  uvinfo: bigint;
  varinfo: bigint;
}

const MAX_STRING = 4096;
const MAX_SIZEBC = 1 << 20;

export class PrototypeReader {
  private readonly protos = new Map<bigint, Prototype | null>();
  private readonly strings = new Map<bigint, string | null>();
  private readonly debugInfo = new Map<bigint, Buffer | null>();
  private readonly ref: number;

  constructor(
    private readonly mem: MemoryRead,
    readonly table: LuajitTable,
  ) {
    this.ref = table.offsets.gc64 ? 8 : 4;
  }

  /** A GCRef/MRef field: 8 bytes in GC64 builds, 4 otherwise. */
  readRef(addr: bigint): bigint | null {
    const b = this.mem.read(addr, this.ref);
    if (!b) return null;
    return this.ref === 8 ? b.readBigUInt64LE(0) : BigInt(b.readUInt32LE(0));
  }

  /** Raw bytes of the process (for structures without a reader here). */
  readBytes(addr: bigint, length: number): Buffer | null {
    return this.mem.read(addr, length);
  }

  /** A native pointer field (8 bytes on x86-64 in every mode). */
  readPointer(addr: bigint): bigint | null {
    const b = this.mem.read(addr, 8);
    return b ? b.readBigUInt64LE(0) : null;
  }

  /** The bytes of a GCstr. */
  string(addr: bigint): string | null {
    if (this.strings.has(addr)) return this.strings.get(addr)!;
    const o = this.table.offsets;
    let value: string | null = null;
    const header = addr ? this.mem.read(addr, o.str_size) : null;
    if (header) {
      const len = Math.min(decodeStringLength(header, o), MAX_STRING);
      const bytes = len > 0 ? this.mem.read(addr + BigInt(o.str_size), len) : Buffer.alloc(0);
      value = bytes ? bytes.toString('utf8') : null;
    }
    this.strings.set(addr, value);
    return value;
  }

  proto(addr: bigint): Prototype | null {
    if (this.protos.has(addr)) return this.protos.get(addr)!;
    const p = this.readProto(addr);
    this.protos.set(addr, p);
    return p;
  }

  private readProto(addr: bigint): Prototype | null {
    const o = this.table.offsets;
    const header = this.mem.read(addr, o.pt_size);
    if (!header) return null;
    const h = decodeProtoHeader(header, o);
    const raw = this.string(h.chunkname);
    if (raw === null) return null;
    const sizebc = header.readUInt32LE(o.pt_sizebc);
    if (sizebc === 0 || sizebc > MAX_SIZEBC) return null;
    const bcBytes = this.mem.read(addr + BigInt(o.pt_size), sizebc * 4);
    const ref = (off: number) => (this.ref === 8 ? header.readBigUInt64LE(off) : BigInt(header.readUInt32LE(off)));
    return {
      addr,
      chunk: displayChunkName(raw),
      firstline: h.firstline,
      numline: h.numline,
      sizebc,
      bc: bcBytes ? new Uint32Array(bcBytes.buffer.slice(bcBytes.byteOffset, bcBytes.byteOffset + sizebc * 4)) : new Uint32Array(0),
      k: ref(o.pt_k),
      sizekgc: header.readUInt32LE(o.pt_sizekgc),
      lineinfo: ref(o.pt_lineinfo),
      uvinfo: ref(o.pt_uvinfo),
      varinfo: ref(o.pt_varinfo),
    };
  }

  /** Source line of bytecode index pc, or the definition line if unknown. */
  line(pt: Prototype, pc: number): number {
    if (pc < 0 || pc >= pt.sizebc || !pt.lineinfo) return pt.firstline;
    // lineinfo holds offsets from firstline, 1, 2 or 4 bytes wide by span.
    const width = pt.numline < 256 ? 1 : pt.numline < 65536 ? 2 : 4;
    const b = this.mem.read(pt.lineinfo + BigInt(pc * width), width);
    if (!b) return pt.firstline;
    const delta = width === 1 ? b.readUInt8(0) : width === 2 ? b.readUInt16LE(0) : b.readUInt32LE(0);
    return pt.firstline + delta;
  }

  /** GC constant number idx (negative, as bytecode operands give them). */
  constantString(pt: Prototype, idx: number): string | null {
    if (idx >= 0 || -idx > pt.sizekgc) return null;
    const ref = this.readRef(pt.k + BigInt(idx * this.ref));
    return ref ? this.string(ref) : null;
  }

  /** NUL-separated debug strings starting at addr, read in one bounded chunk. */
  debugBytes(addr: bigint): Buffer | null {
    if (!addr) return null;
    if (this.debugInfo.has(addr)) return this.debugInfo.get(addr)!;
    let found: Buffer | null = null;
    for (const size of [4096, 512, 64]) {
      found = this.mem.read(addr, size);
      if (found) break;
    }
    this.debugInfo.set(addr, found);
    return found;
  }
}
