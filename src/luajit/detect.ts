// Finds the LuaJIT library (or binary) a process has mapped, the offsets of
// its API functions for uprobes, and which offset table describes it.
import { basename } from 'node:path';
import { findSymbol } from '../elf/elf-symbols.js';
import { runtimeAddressToVaddr, vaddrToFileOffset } from '../elf/elf-file.js';
import { findFunctionRange } from '../elf/function-ranges.js';
import { type ElfObject, loadElfObject } from '../elf/elf-cache.js';
import { isExecutable, type Mapping } from '../target/proc-maps.js';
import { targetFilePath } from '../target/target-files.js';
import type { LuajitTable } from './offset-tables.js';

/** Public API functions that take the lua_State first; ngx_lua calls
 * lua_resume for every request handler. */
export const LEARN_G_FUNCTIONS = ['lua_resume', 'lua_pcall', 'lua_call', 'lua_yield'] as const;

export interface LuajitInProcess {
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
    return { path: m.path, hostPath, object, textMapping: m, probeOffsets };
  }
  return null;
}

/**
 * The offset tables that may describe this LuaJIT, most likely first.
 * OpenResty's branch ("luajit2") exports lua_setexdata, upstream does not;
 * GC64 is the default on x86-64 in both, so it goes first. Which one is
 * right is decided against live memory (chooseTable).
 */
export function candidateTables(lj: LuajitInProcess, tables: readonly LuajitTable[]): LuajitTable[] {
  const openresty = findSymbol(lj.object.symbols, 'lua_setexdata') !== undefined;
  const family = tables.filter((t) => (t.package === 'luajit2') === openresty);
  const pool = family.length > 0 ? family : [...tables];
  return pool.sort((a, b) => rank(b, lj) - rank(a, lj));
}

function rank(t: LuajitTable, lj: LuajitInProcess): number {
  let score = t.mode === 'gc64' ? 2 : 0;
  if (basename(lj.path).includes(t.version)) score += 4;
  return score;
}

/**
 * Given the VM's DISPATCH register (r14) from a sample, the first candidate
 * table under which it leads to a consistent global_State: DISPATCH points
 * at GG_State's dispatch table, and global_State sits at a fixed offset
 * from it in the same struct.
 */
export function chooseTableFromDispatch(
  mem: MemoryRead,
  candidates: readonly LuajitTable[],
  dispatch: bigint,
): { table: LuajitTable; g: bigint } | null {
  for (const table of candidates) {
    const g = dispatch - BigInt(table.offsets.GG_dispatch) + BigInt(table.offsets.GG_g);
    if (g > 0n && validateGlobalState(mem, table, g)) return { table, g };
  }
  return null;
}

/**
 * Given words from the top of a sampled user stack, the first that is a
 * lua_State under some candidate table. Words that are not pointers, or
 * point elsewhere, fail validation; duplicates are tried once.
 */
export function chooseTableFromWords(
  mem: MemoryRead,
  candidates: readonly LuajitTable[],
  words: readonly bigint[],
): { table: LuajitTable; g: bigint } | null {
  const seen = new Set<bigint>();
  for (const w of words) {
    if (w < 0x10000n || w >= 1n << 47n || w % 4n !== 0n || seen.has(w)) continue;
    seen.add(w);
    const found = chooseTable(mem, candidates, w);
    if (found) return found;
  }
  return null;
}

/**
 * Given a lua_State the process really used, the first candidate table under
 * which it leads to a consistent global_State, and that state's address.
 */
export function chooseTable(
  mem: MemoryRead,
  candidates: readonly LuajitTable[],
  L: bigint,
): { table: LuajitTable; g: bigint } | null {
  for (const table of candidates) {
    const g = readRef(mem, L + BigInt(table.offsets.L_glref), table.offsets.gc64 === 1);
    if (g && validateGlobalState(mem, table, g)) return { table, g };
  }
  return null;
}

export interface MemoryRead {
  read(addr: bigint, length: number): Buffer | null;
}

function readRef(mem: MemoryRead, addr: bigint, gc64: boolean): bigint | null {
  const b = mem.read(addr, gc64 ? 8 : 4);
  if (!b) return null;
  return gc64 ? b.readBigUInt64LE(0) : BigInt(b.readUInt32LE(0));
}

/**
 * Checks a global_State address against the table: the main thread it
 * names must point back to it, and so must cur_L when set.
 */
export function validateGlobalState(mem: MemoryRead, table: LuajitTable, g: bigint): boolean {
  const o = table.offsets;
  const gc64 = o.gc64 === 1;
  const mainL = readRef(mem, g + BigInt(o.G_mainthref), gc64);
  if (!mainL || readRef(mem, mainL + BigInt(o.L_glref), gc64) !== g) return false;
  const curL = readRef(mem, g + BigInt(o.G_cur_L), gc64);
  if (curL && readRef(mem, curL + BigInt(o.L_glref), gc64) !== g) return false;
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
