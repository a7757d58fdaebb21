// Mirror of bpf/profiler.h: sizes, enums and (de)serialisers for the structs
// that cross between the kernel and user space. test/unit/abi.test.ts checks
// the names and order against the header so the two cannot drift apart.

export const MAX_KERNEL_FRAMES = 32;
export const MAX_USER_FRAMES = 64;
export const MAX_LUA_FRAMES = 256;
export const MAX_LJ_TABLES = 8;
export const MAX_PROCS = 1024;
export const STACK_SNAPSHOT_WORDS = 64;
export const MAX_UNWIND_ROWS = 1 << 19;
export const MAX_MAPPINGS = 64;
export const LUA_POS_FROM_C = 0x80000000;
export const LUA_POS_MASK = LUA_POS_FROM_C - 1;
export const PROC_NO_LUAJIT = 0xffffffff;

export const LUA_FRAME_KIND_SHIFT = 60n;
export const LUA_FRAME_PAYLOAD_MASK = (1n << LUA_FRAME_KIND_SHIFT) - 1n;
export const LuaFrameKind = { Lua: 1, C: 2, Fast: 3, Bad: 4 } as const;

export const SampleFlags = {
  InLua: 1 << 0,
  LuaTruncated: 1 << 1,
  LuaBadRead: 1 << 2,
  BaseFromReg: 1 << 3,
  BaseFromJit: 1 << 4,
  NoG: 1 << 5,
  UnwindCfi: 1 << 6,
  UnwindEnd: 1 << 7,
  UnwindNoCfi: 1 << 8,
  UnwindBadRead: 1 << 9,
  UnwindDepth: 1 << 10,
  UnwindUnsupported: 1 << 11,
  /** The thread blocked in this stack: its count is nanoseconds off the CPU. */
  OffCpu: 1 << 12,
} as const;

export const VmState = {
  Interp: -1,
  C: -2,
  GC: -3,
  Exit: -4,
  Record: -5,
  Opt: -6,
  Asm: -7,
  None: -100,
} as const;

export const StatIndex = {
  Samples: 0,
  LostMapFull: 1,
  UserStackFail: 2,
  LuaBadRead: 3,
  UprobeHits: 4,
  LostNoMemory: 5,
  SwitchesBlocked: 6,
  SwitchesPreempted: 7,
  PreemptedNs: 8,
  OffCpuLost: 9,
  OffCpuInterrupted: 10,
  OffCpuIdleReused: 11,
} as const;
export const STAT_COUNT = 12;

/** Words of the target_pids bitmap: one bit per pid below 64 * TARGET_PID_WORDS. */
export const TARGET_PID_WORDS = 65536;

/** Where pid's bit sits in target_pids: the word's index and the bit's mask. */
export function targetPidBit(pid: number): { word: number; mask: bigint } {
  return { word: Math.floor(pid / 64), mask: 1n << BigInt(pid % 64) };
}

/** Target threads the kernel holds an off-CPU entry for at once (offcpu_threads). */
export const MAX_OFFCPU_THREADS = 16384;

/**
 * A target thread's offcpu_threads entry: off the CPU since startNs (0: on
 * a CPU) in stack id (0: preempted), and idleNs waited in its idle stack
 * idleId that the kernel has not added to the counts yet.
 */
export interface OffCpuThread {
  tid: number;
  startNs: bigint;
  id: Buffer;
  idleId: Buffer;
  idleNs: bigint;
}
/** struct offcpu_thread: start_ns, id, the last idle wait's site (ip, sp, bp, id), idle_ns. */
export const OFFCPU_THREAD_SIZE = 56;

/** An offcpu_threads entry for a thread off the CPU since startNs in stack id (no idle wait seen). */
export function encodeOffCpuThread(startNs: bigint, id: bigint): Buffer {
  const value = Buffer.alloc(OFFCPU_THREAD_SIZE);
  value.writeBigUInt64LE(startNs, 0);
  value.writeBigUInt64LE(id, 8);
  return value;
}

/** One offcpu_threads entry (key: the thread id), as the kernel holds it. */
export function decodeOffCpuThread(key: Buffer, value: Buffer): OffCpuThread {
  return {
    tid: key.readUInt32LE(0),
    startNs: value.readBigUInt64LE(0),
    id: Buffer.from(value.subarray(8, 16)),
    idleId: Buffer.from(value.subarray(40, 48)),
    idleNs: value.readBigUInt64LE(48),
  };
}

/** struct lj_offsets field order; every field is an s32. */
export const LJ_OFFSET_FIELDS = [
  'gc64',
  'fr2',
  'L_glref',
  'L_base',
  'L_stack',
  'L_maxstack',
  'L_cframe',
  'G_vmstate',
  'G_cur_L',
  'G_jit_base',
  'fn_ffid',
  'fn_pc',
  'fn_c_f',
  'pt_size',
  'GG_g',
  'GG_J',
  'J_trace',
  'trace_spadjust',
] as const;
export type LjOffsetField = (typeof LJ_OFFSET_FIELDS)[number];

export function encodeLjOffsets(offsets: Record<string, number>): Buffer {
  const buf = Buffer.alloc(LJ_OFFSET_FIELDS.length * 4);
  LJ_OFFSET_FIELDS.forEach((name, i) => {
    const value = offsets[name];
    if (!Number.isInteger(value)) throw new Error(`offset table lacks ${name}`);
    buf.writeInt32LE(value, i * 4);
  });
  return buf;
}

export interface ProcState {
  L: bigint;
  dispatch: bigint;
  g: bigint;
  vmLo: bigint;
  vmHi: bigint;
  table: number;
  uprobeHits: number;
  /** Top of the user stack at a recent sample while g was unknown. */
  stackWords: bigint[];
}
export const PROC_STATE_SIZE = 48 + STACK_SNAPSHOT_WORDS * 8;

export function encodeProcState(s: ProcState): Buffer {
  const buf = Buffer.alloc(PROC_STATE_SIZE);
  buf.writeBigUInt64LE(s.L, 0);
  buf.writeBigUInt64LE(s.dispatch, 8);
  buf.writeBigUInt64LE(s.g, 16);
  buf.writeBigUInt64LE(s.vmLo, 24);
  buf.writeBigUInt64LE(s.vmHi, 32);
  buf.writeUInt32LE(s.table, 40);
  buf.writeUInt32LE(s.uprobeHits, 44);
  s.stackWords.slice(0, STACK_SNAPSHOT_WORDS).forEach((w, i) => buf.writeBigUInt64LE(w, 48 + i * 8));
  return buf;
}

export function decodeProcState(buf: Buffer): ProcState {
  return {
    L: buf.readBigUInt64LE(0),
    dispatch: buf.readBigUInt64LE(8),
    g: buf.readBigUInt64LE(16),
    vmLo: buf.readBigUInt64LE(24),
    vmHi: buf.readBigUInt64LE(32),
    table: buf.readUInt32LE(40),
    uprobeHits: buf.readUInt32LE(44),
    stackWords: readWords(buf, 48, STACK_SNAPSHOT_WORDS),
  };
}

export function encodeConfig(c: { kernelStacks: boolean; leafPc: boolean; unwindCfi: boolean; uriLabels?: boolean }): Buffer {
  const buf = Buffer.alloc(16);
  buf.writeUInt32LE(c.kernelStacks ? 1 : 0, 0);
  buf.writeUInt32LE(c.leafPc ? 1 : 0, 4);
  buf.writeUInt32LE(c.unwindCfi ? 1 : 0, 8);
  buf.writeUInt32LE(c.uriLabels ? 1 : 0, 12);
  return buf;
}

/* --- --label uri ------------------------------------------------------------ */

export const URI_LABEL_BYTES = 64;
export const MAX_URI_LABELS = 4096;

/** struct request_uri_state: where a process's requests keep their URI. */
export interface RequestUriState {
  /** While uriOffset is 0: a request (ngx_http_request_t *) a sample saw. */
  request: bigint;
  /** lua_State.exdata; -1: this LuaJIT has none. */
  exdataOffset: number;
  /** ngx_http_request_t.uri; 0: not learned yet. */
  uriOffset: number;
}
export const REQUEST_URI_STATE_SIZE = 16;

export function encodeRequestUriState(s: RequestUriState): Buffer {
  const buf = Buffer.alloc(REQUEST_URI_STATE_SIZE);
  buf.writeBigUInt64LE(s.request, 0);
  buf.writeInt32LE(s.exdataOffset, 8);
  buf.writeUInt32LE(s.uriOffset, 12);
  return buf;
}

export function decodeRequestUriState(buf: Buffer): RequestUriState {
  return { request: buf.readBigUInt64LE(0), exdataOffset: buf.readInt32LE(8), uriOffset: buf.readUInt32LE(12) };
}

/** struct uri_label: a label id's URI path bytes (latin1: nginx keeps bytes, not text). */
export function decodeUriLabel(buf: Buffer): string {
  const len = Math.min(buf.readUInt32LE(0), URI_LABEL_BYTES);
  return buf.toString('latin1', 4, 4 + len);
}

/** struct exec_mapping: a mapping and its rows in unwind_rows. */
export interface ExecMapping {
  start: bigint;
  end: bigint;
  bias: bigint;
  rowFirst: number;
  rowCount: number;
}
export const PROC_MAPPINGS_SIZE = 8 + MAX_MAPPINGS * 32;

/**
 * struct proc_mappings. `generation` must differ from every earlier write's
 * for the same process: the kernel caches rows per (pid, generation, address).
 */
export function encodeProcMappings(mappings: readonly ExecMapping[], generation: number): Buffer {
  const sorted = [...mappings].sort((a, b) => (a.start < b.start ? -1 : 1)).slice(0, MAX_MAPPINGS);
  const buf = Buffer.alloc(PROC_MAPPINGS_SIZE);
  buf.writeUInt32LE(sorted.length, 0);
  buf.writeUInt32LE(generation >>> 0, 4);
  sorted.forEach((m, i) => {
    const at = 8 + i * 32;
    buf.writeBigUInt64LE(m.start, at);
    buf.writeBigUInt64LE(m.end, at + 8);
    buf.writeBigUInt64LE(BigInt.asUintN(64, m.bias), at + 16);
    buf.writeUInt32LE(m.rowFirst, at + 24);
    buf.writeUInt32LE(m.rowCount, at + 28);
  });
  return buf;
}

export function u32Key(n: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(n, 0);
  return buf;
}

const KERNEL_OFFSET = 24;
const USER_OFFSET = KERNEL_OFFSET + MAX_KERNEL_FRAMES * 8;
const LUA_OFFSET = USER_OFFSET + MAX_USER_FRAMES * 8;
const LUA_POS_OFFSET = LUA_OFFSET + MAX_LUA_FRAMES * 8;
export const SAMPLE_KEY_SIZE = LUA_POS_OFFSET + MAX_LUA_FRAMES * 4;

/** Counts and stacks are keyed by a 64-bit stack id (bpf/profiler.h). */
export const STACK_ID_SIZE = 8;
/** max_entries of the `known` map (bpf/profiler.bpf.c): stack ids user space has named. */
export const KNOWN_STACKS_MAX = 65536;

/** One unique stack as the kernel counted it; frame arrays are leaf first. */
export interface SampleKey {
  pid: number;
  flags: number;
  vmstate: number;
  kernel: bigint[];
  user: bigint[];
  lua: bigint[];
  /** Per Lua frame: bytecode position (next instruction index), 0 unknown. */
  luaPos: number[];
  /** Per Lua frame: it was entered from C (a VM entry begins below it). */
  luaFromC: boolean[];
  /** --label uri: the request URI's label id (uri_labels), 0 for none. */
  label: number;
}

/**
 * count little-endian u64 words at offset. A typed-array view (x86-64 is
 * little-endian, like the kernel side that wrote them) costs a tenth of
 * reading word by word, in the drains that run while the target is sampled.
 */
function readWords(buf: Buffer, offset: number, count: number): bigint[] {
  const start = buf.byteOffset + offset;
  const view = start % 8 === 0 ? new BigUint64Array(buf.buffer, start, count) : new BigUint64Array(buf.buffer.slice(start, start + count * 8));
  return Array.from(view);
}

export function decodeSampleKey(buf: Buffer): SampleKey {
  if (buf.length !== SAMPLE_KEY_SIZE) {
    throw new Error(`sample key is ${buf.length} bytes, expected ${SAMPLE_KEY_SIZE}`);
  }
  const nKernel = Math.min(buf.readUInt16LE(12), MAX_KERNEL_FRAMES);
  const nUser = Math.min(buf.readUInt16LE(14), MAX_USER_FRAMES);
  const nLua = Math.min(buf.readUInt16LE(16), MAX_LUA_FRAMES);
  return {
    pid: buf.readUInt32LE(0),
    flags: buf.readUInt32LE(4),
    vmstate: buf.readInt32LE(8),
    label: buf.readUInt32LE(20),
    kernel: readWords(buf, KERNEL_OFFSET, nKernel),
    user: readWords(buf, USER_OFFSET, nUser),
    lua: readWords(buf, LUA_OFFSET, nLua),
    luaPos: Array.from({ length: nLua }, (_, i) => (buf.readUInt32LE(LUA_POS_OFFSET + i * 4) & LUA_POS_MASK) >>> 0),
    luaFromC: Array.from({ length: nLua }, (_, i) => (buf.readUInt32LE(LUA_POS_OFFSET + i * 4) & LUA_POS_FROM_C) !== 0),
  };
}

export function luaFrameKind(word: bigint): number {
  return Number(word >> LUA_FRAME_KIND_SHIFT);
}

export function luaFramePayload(word: bigint): bigint {
  return word & LUA_FRAME_PAYLOAD_MASK;
}

/* --- struct unwind_row: one compact .eh_frame rule, 16 bytes ---------------- */

export type UnwindKind = 'rsp' | 'rbp' | 'plt' | 'undefined' | 'unsupported' | 'end';

export interface UnwindRow {
  /** First vaddr (ELF virtual address) this row covers. */
  pc: bigint;
  cfaReg: UnwindKind;
  cfaOffset: number;
  /** Offset from the CFA where the caller's rbp is saved; null = rbp unchanged. */
  rbpOffset: number | null;
  /** Offset from the CFA where the return address is saved (-8 on x86-64). */
  raOffset: number;
  /** Only for 'plt' (0..15); 0 otherwise. */
  pltThreshold: number;
}

/** Numeric kind codes in the encoded form (see encodeUnwindRows); enum unwind_kind in profiler.h. */
export const UNWIND_KIND_CODE: Readonly<Record<UnwindKind, number>> = {
  undefined: 0,
  rsp: 1,
  rbp: 2,
  plt: 3,
  unsupported: 4,
  end: 5,
};
export const KIND_BY_CODE: UnwindKind[] = ['undefined', 'rsp', 'rbp', 'plt', 'unsupported', 'end'];

/** Bytes per encoded row. */
export const UNWIND_ROW_SIZE = 16;

/**
 * Packs rows into 16 bytes each, little-endian, for a BPF array map:
 *
 *   offset size
 *    0     u64  pc          first ELF vaddr the row covers (rows sorted by pc)
 *    8     s32  cfaOffset   'rsp'/'rbp': CFA = reg + cfaOffset;
 *                           'plt': CFA = rsp + cfaOffset + ((rip & 15) >= thr ? 8 : 0)
 *   12     u8   kind | thr << 4
 *                           kind (low nibble): 0 undefined (no CFI), 1 rsp,
 *                           2 rbp, 3 plt, 4 unsupported, 5 end (outermost)
 *                           thr (high nibble): PLT threshold, 0 otherwise
 *   13     s8   raOffset    return address at CFA + raOffset
 *   14     s16  rbpOffset   caller's rbp at CFA + rbpOffset; 0 = rbp unchanged
 *
 * Rows for kinds other than rsp/rbp/plt have zeros after the kind byte.
 * src/unwind/rows.ts (toUnwindRow) guarantees every field fits.
 */
export function encodeUnwindRows(rows: readonly UnwindRow[]): Buffer {
  const buf = Buffer.alloc(rows.length * UNWIND_ROW_SIZE);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const o = i * UNWIND_ROW_SIZE;
    dv.setBigUint64(o, r.pc, true);
    dv.setInt32(o + 8, r.cfaOffset, true);
    dv.setUint8(o + 12, UNWIND_KIND_CODE[r.cfaReg] | (r.pltThreshold << 4));
    dv.setInt8(o + 13, r.raOffset);
    dv.setInt16(o + 14, r.rbpOffset ?? 0, true);
  }
  return buf;
}

/** Inverse of encodeUnwindRows. */
export function decodeUnwindRows(buf: Buffer): UnwindRow[] {
  if (buf.length % UNWIND_ROW_SIZE !== 0) throw new RangeError(`row buffer length ${buf.length} is not a multiple of 16`);
  const rows: UnwindRow[] = [];
  for (let o = 0; o < buf.length; o += UNWIND_ROW_SIZE) {
    const kb = buf.readUInt8(o + 12);
    const cfaReg = KIND_BY_CODE[kb & 15];
    if (cfaReg === undefined) throw new RangeError(`unknown row kind ${kb & 15} at offset ${o}`);
    const rbp = buf.readInt16LE(o + 14);
    rows.push({
      pc: buf.readBigUInt64LE(o),
      cfaReg,
      cfaOffset: buf.readInt32LE(o + 8),
      rbpOffset: rbp === 0 ? null : rbp,
      raOffset: buf.readInt8(o + 13),
      pltThreshold: kb >> 4,
    });
  }
  return rows;
}
