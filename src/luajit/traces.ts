// Where compiled code is in Lua terms: the sampled machine-code address is
// mapped to the trace's snapshot with the nearest lower machine-code offset;
// that snapshot's PC is the bytecode the trace was executing.
import type { PrototypeReader } from './prototypes.js';

export interface TracePosition {
  /** The bytecode address the snapshot resumes at. */
  pc: bigint;
}

const MAX_SNAPSHOTS = 1 << 16;

/**
 * Snapshot PC for instruction address ip inside trace traceNo, or null when
 * ip is not in that trace's machine code (or the trace is gone).
 */
export function tracePosition(reader: PrototypeReader, g: bigint, traceNo: number, ip: bigint): TracePosition | null {
  const o = reader.table.offsets;
  if (o.J_trace < 0 || traceNo <= 0) return null;
  const J = g - BigInt(o.GG_g) + BigInt(o.GG_J);
  const traces = reader.readPointer(J + BigInt(o.J_trace));
  const sizeBuf = reader.readBytes(J + BigInt(o.J_sizetrace), 4);
  if (!traces || !sizeBuf || traceNo >= sizeBuf.readUInt32LE(0)) return null;
  const T = reader.readRef(traces + BigInt(traceNo * (o.gc64 ? 8 : 4)));
  if (!T) return null;
  const mcode = reader.readPointer(T + BigInt(o.trace_mcode));
  const head = reader.readBytes(T, Math.max(o.trace_szmcode, o.trace_nsnap) + 4);
  if (!mcode || !head) return null;
  const szmcode = head.readUInt32LE(o.trace_szmcode);
  const nsnap = head.readUInt16LE(o.trace_nsnap);
  if (ip < mcode || ip >= mcode + BigInt(szmcode) || nsnap === 0 || nsnap > MAX_SNAPSHOTS) return null;
  const offset = Number(ip - mcode);
  // Releases before SnapShot.mcofs (luajit2 up to 2.1-20210510) keep no
  // machine-code position per snapshot: the trace's first bytecode is the
  // closest line they can give.
  if (o.snap_mcofs < 0) {
    const start = o.trace_startpc >= 0 ? reader.readRef(T + BigInt(o.trace_startpc)) : null;
    return start ? { pc: start } : null;
  }
  const snaps = reader.readPointer(T + BigInt(o.trace_snap));
  const snapmap = reader.readPointer(T + BigInt(o.trace_snapmap));
  if (!snaps || !snapmap) return null;
  const all = reader.readBytes(snaps, nsnap * o.snap_size);
  if (!all) return null;
  let best = -1;
  let bestOfs = -1;
  for (let i = 0; i < nsnap; i++) {
    const mcofs = all.readUInt16LE(i * o.snap_size + o.snap_mcofs);
    if (mcofs <= offset && mcofs >= bestOfs) {
      best = i;
      bestOfs = mcofs;
    }
  }
  if (best < 0) best = 0;
  const mapofs = all.readUInt32LE(best * o.snap_size + o.snap_mapofs);
  const nent = all.readUInt8(best * o.snap_size + o.snap_nent);
  // The PC follows the snapshot's entries: 64 bits shifted by 8 in GC64
  // (FR2) builds, a plain 32-bit pointer otherwise.
  const at = snapmap + BigInt((mapofs + nent) * 4);
  if (o.fr2) {
    const b = reader.readBytes(at, 8);
    return b ? { pc: b.readBigUInt64LE(0) >> 8n } : null;
  }
  const b = reader.readBytes(at, 4);
  return b ? { pc: BigInt(b.readUInt32LE(0)) } : null;
}
