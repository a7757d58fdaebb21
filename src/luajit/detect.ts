// Finds the LuaJIT library (or binary) a process has mapped, the offsets of
// its API functions for uprobes, and which offset table describes it.
import { findSymbol } from '../elf/elf-symbols.js';
import { runtimeAddressToVaddr, vaddrToFileOffset } from '../elf/elf-file.js';
import { findFunctionRange } from '../elf/function-ranges.js';
import { type ElfObject, loadElfObject } from '../elf/elf-cache.js';
import { isExecutable, type Mapping } from '../target/proc-maps.js';
import { targetFilePath } from '../target/target-files.js';
import { type Fit, type LuajitIdentity, versionKey } from './layout-choice.js';
import type { LuajitTable } from './offset-tables.js';
import { luajitVersionOf } from './version-string.js';

/** Public API functions that take the lua_State first; ngx_lua calls
 * lua_resume for every request handler. */
export const LEARN_G_FUNCTIONS = ['lua_resume', 'lua_pcall', 'lua_call', 'lua_yield'] as const;

export interface LuajitInProcess extends LuajitIdentity {
  /** Path as the process maps it. */
  path: string;
  /** Path the host can open (through /proc/<pid>/root). */
  hostPath: string;
  object: ElfObject;
  /** Executable mapping of the object (where the VM runs). */
  textMapping: Mapping;
  /** File offsets of the functions to put uprobes on. */
  probeOffsets: { name: string; fileOffset: bigint }[];
}

export function findLuajit(pid: number, maps: readonly Mapping[]): LuajitInProcess | null {
  const seen = new Set<string>();
  for (const m of maps) {
    if (!isExecutable(m) || m.path === '' || m.path.startsWith('[') || seen.has(m.path)) continue;
    seen.add(m.path);
    const hostPath = targetFilePath(pid, m);
    const object = loadElfObject(hostPath);
    if (!object || !findSymbol(object.symbols, 'lua_resume')) continue;
    const probeOffsets = LEARN_G_FUNCTIONS.flatMap((name) => {
      const sym = findSymbol(object.symbols, name);
      return sym?.fileOffset !== undefined ? [{ name, fileOffset: sym.fileOffset }] : [];
    });
    return { path: m.path, hostPath, object, textMapping: m, probeOffsets, ...identityOf(object) };
  }
  return null;
}

/** What the object says about itself: its version string and symbol, its family. */
function identityOf(object: ElfObject): Omit<LuajitIdentity, 'path'> {
  const symbol = [...object.symbols.byName.keys()].find((n) => n.startsWith('luaJIT_version_'));
  return {
    version: luajitVersionOf(object),
    versionSymbol: symbol ? versionKey(symbol) : null,
    openresty: findSymbol(object.symbols, 'lua_setexdata') !== undefined,
  };
}

/** Where global_State came from: the uprobe's lua_State, the DISPATCH register, or words of the sampled stack. */
export type StateSource =
  | { via: 'uprobe'; L: bigint }
  | { via: 'DISPATCH register'; dispatch: bigint }
  | { via: 'stack'; words: readonly bigint[] };

/** The executable range of the LuaJIT object, where every dispatch table entry points. */
export interface CodeRange {
  start: bigint;
  end: bigint;
}

/**
 * Every candidate table under which the source leads to a consistent
 * global_State (validateGlobalState), in candidate order. From stack words,
 * the fits of the first word that is a lua_State under any table.
 */
export function fittingLayouts(mem: MemoryRead, candidates: readonly LuajitTable[], code: CodeRange | null, source: StateSource): Fit[] {
  const check = (table: LuajitTable, g: bigint | null): Fit[] => (g && g > 0n && validateGlobalState(mem, table, g, code) ? [{ table, g }] : []);
  const fromL = (L: bigint) => candidates.flatMap((table) => check(table, readRef(mem, L + BigInt(table.offsets.L_glref), table.offsets.gc64 === 1)));
  switch (source.via) {
    case 'uprobe':
      return fromL(source.L);
    case 'DISPATCH register':
      // DISPATCH points at GG_State's dispatch table; global_State sits at a
      // fixed offset from it in the same struct.
      return candidates.flatMap((table) => check(table, source.dispatch - BigInt(table.offsets.GG_dispatch) + BigInt(table.offsets.GG_g)));
    case 'stack': {
      // Words that are not pointers, or point elsewhere, fail validation.
      const seen = new Set<bigint>();
      for (const w of source.words) {
        if (w < 0x10000n || w >= 1n << 47n || w % 4n !== 0n || seen.has(w)) continue;
        seen.add(w);
        const fits = fromL(w);
        if (fits.length > 0) return fits;
      }
      return [];
    }
  }
}

export interface MemoryRead {
  read(addr: bigint, length: number): Buffer | null;
}

function readRef(mem: MemoryRead, addr: bigint, gc64: boolean): bigint | null {
  const b = mem.read(addr, gc64 ? 8 : 4);
  if (!b) return null;
  return gc64 ? b.readBigUInt64LE(0) : BigInt(b.readUInt32LE(0));
}

/** ~LJ_VMST__MAX: vmstate is -1..-7 for the VM's own states, else a trace number. */
const VMSTATE_MIN = -7;
/** LJ_MAX_TRACE is 65535 in every release; J->sizetrace never exceeds it by much. */
const MAX_SIZETRACE = 1 << 17;

/**
 * Checks a global_State address against the table. The round trips (the
 * main thread and cur_L point back to it) only prove lua_State's and
 * global_State's first fields; releases that share those can differ
 * further in. So also: vmstate is a VM state or a trace number the
 * jit_State knows, the jit_State (at GG_State's J offset) has a plausible
 * trace array, and, given the object's code range, every bytecode's entry
 * in GG_State's dispatch table points into it: a table whose GG_State
 * offsets are off reads anything but code there.
 */
export function validateGlobalState(mem: MemoryRead, table: LuajitTable, g: bigint, code: CodeRange | null = null): boolean {
  const o = table.offsets;
  const gc64 = o.gc64 === 1;
  const mainL = readRef(mem, g + BigInt(o.G_mainthref), gc64);
  if (!mainL || readRef(mem, mainL + BigInt(o.L_glref), gc64) !== g) return false;
  const curL = readRef(mem, g + BigInt(o.G_cur_L), gc64);
  if (curL && readRef(mem, curL + BigInt(o.L_glref), gc64) !== g) return false;
  const vm = mem.read(g + BigInt(o.G_vmstate), 4);
  if (!vm) return false;
  const vmstate = vm.readInt32LE(0);
  const J = g - BigInt(o.GG_g) + BigInt(o.GG_J);
  if (o.J_trace >= 0 && o.J_sizetrace >= 0) {
    const size = mem.read(J + BigInt(o.J_sizetrace), 4);
    const traces = readRef(mem, J + BigInt(o.J_trace), true);
    if (!size || traces === null) return false;
    const sizetrace = size.readUInt32LE(0);
    if (sizetrace > MAX_SIZETRACE || (sizetrace > 0 && (traces === 0n || !mem.read(traces, 8)))) return false;
    if (vmstate < VMSTATE_MIN || (vmstate >= 0 && vmstate >= Math.max(sizetrace, 1))) return false;
  } else if (vmstate < VMSTATE_MIN) {
    return false;
  }
  return code === null || dispatchPointsIntoCode(mem, table, g, code);
}

/**
 * Whether addr holds what a dispatch table holds whatever the layout: 64
 * words in a row that all point into the object's code. The DISPATCH
 * register (r14) holds such an address only while the VM runs, so seeing it
 * again and again while no table fits means a LuaJIT we cannot read, not
 * one we have not caught running yet.
 */
export function looksLikeDispatchTable(mem: MemoryRead, addr: bigint, code: CodeRange): boolean {
  const buf = addr > 0n ? mem.read(addr, 64 * 8) : null;
  if (!buf) return false;
  for (let i = 0; i < 64; i++) {
    const a = buf.readBigUInt64LE(i * 8);
    if (a < code.start || a >= code.end) return false;
  }
  return true;
}

/**
 * GG_State ends { jit_State J; HotCount hotcount[64]; ASMFunction
 * dispatch[]; ... }. Under the right table every bytecode's dispatch entry
 * is code, and the word just before the first is four hot counters (small
 * numbers), not code: a table whose dispatch offset is 8 bytes too far
 * (luajit2 2.1-20230119's on a 2.1-20210510 process, whose jit_State is 8
 * bytes smaller) sees a code pointer there; one 8 bytes too short sees the
 * counters as the first entry.
 */
function dispatchPointsIntoCode(mem: MemoryRead, table: LuajitTable, g: bigint, code: CodeRange): boolean {
  const o = table.offsets;
  const count = table.bytecodes?.length || 64;
  const buf = mem.read(g - BigInt(o.GG_g) + BigInt(o.GG_dispatch) - 8n, (count + 1) * 8);
  if (!buf) return false;
  const inCode = (i: number) => {
    const a = buf.readBigUInt64LE(i * 8);
    return a >= code.start && a < code.end;
  };
  if (inCode(0)) return false;
  for (let i = 1; i <= count; i++) if (!inCode(i)) return false;
  return true;
}

/**
 * The address range of the interpreter's bytecode handlers, from the
 * dispatch table in GG_State: where a sample's instruction pointer lies when
 * the BASE register, not L->base, holds the current frame.
 */
export function interpreterRange(
  mem: MemoryRead,
  table: LuajitTable,
  g: bigint,
  text: { start: bigint; end: bigint },
): { lo: bigint; hi: bigint } | null {
  const o = table.offsets;
  const dispatch = g - BigInt(o.GG_g) + BigInt(o.GG_dispatch);
  const entries = 256;
  const buf = mem.read(dispatch, entries * 8);
  if (!buf) return null;
  let lo = text.end;
  let hi = text.start;
  for (let i = 0; i < entries; i++) {
    const a = buf.readBigUInt64LE(i * 8);
    if (a < text.start || a >= text.end) continue;
    if (a < lo) lo = a;
    if (a > hi) hi = a;
  }
  if (lo >= hi) return null;
  // The last handler runs on past its entry point; 1 KiB covers it.
  const end = hi + 1024n < text.end ? hi + 1024n : text.end;
  return { lo, hi: end };
}

/**
 * The whole VM: LuaJIT describes its hand-written interpreter (bytecode
 * handlers, fast functions and helpers such as vm_mod, all of which keep
 * BASE in its register) with one FDE. Widen the dispatch-table range to it.
 */
export function widenToVm(
  range: { lo: bigint; hi: bigint },
  lj: Pick<LuajitInProcess, 'object' | 'textMapping'>,
): { lo: bigint; hi: bigint } {
  const m = lj.textMapping;
  const vaddr = runtimeAddressToVaddr(lj.object.info, m, range.lo);
  if (vaddr === undefined) return range;
  const fde = findFunctionRange(lj.object.functionRanges, vaddr);
  if (!fde) return range;
  const startOff = vaddrToFileOffset(lj.object.info, fde.start);
  const endOff = vaddrToFileOffset(lj.object.info, fde.end - 1n);
  if (startOff === undefined || endOff === undefined) return range;
  const lo = m.start + startOff - m.offset;
  const hi = m.start + endOff - m.offset + 1n;
  // Only ever widen, and only within the mapping.
  return {
    lo: lo < range.lo && lo >= m.start ? lo : range.lo,
    hi: hi > range.hi && hi <= m.end ? hi : range.hi,
  };
}
