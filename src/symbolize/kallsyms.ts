/**
 * Kernel symbols from /proc/kallsyms.
 *
 * Text symbols only: `t`/`T`, plus `w`/`W` (weak text symbols such as
 * `abort`; without them their addresses would fall to the neighbouring
 * `__pfx_` padding symbol). When kptr_restrict hides addresses (all zero),
 * the table is empty and every lookup misses.
 */
import { readFileSync } from 'node:fs';
import { lastAtOrBelow } from '../search.js';

export interface KernelSymbol {
  name: string;
  start: bigint;
  /** Module name without brackets, e.g. 'nf_tables', or undefined for vmlinux. */
  module: string | undefined;
}

/**
 * The table, compact: a kernel has ~100k text symbols, and one object per
 * symbol costs tens of megabytes of profiler memory. Index i is one symbol.
 */
export interface KernelSymbols {
  /** Sorted, one per address. */
  starts: BigUint64Array;
  names: string[];
  /** Module name without brackets, e.g. 'nf_tables'; undefined for vmlinux. */
  modules: (string | undefined)[];
}

export interface KernelLookup extends KernelSymbol {
  offset: bigint;
}

/** How far past the last symbol an address may still be attributed to it. */
const LAST_SYMBOL_SPAN = 0x10000n;

function preference(type: string, name: string): number {
  // Lower is better: global over local, real names over __pfx_ padding and
  // fewer leading underscores (e.g. _stext/_text share an address with a function).
  let score = type === 'T' || type === 'W' ? 0 : 1;
  if (name.startsWith('__pfx_')) score += 100;
  let u = 0;
  while (u < name.length && name[u] === '_') u++;
  return score * 10 + Math.min(u, 9);
}

export const EMPTY_KERNEL_SYMBOLS: KernelSymbols = { starts: new BigUint64Array(0), names: [], modules: [] };

/** Value of the hex digit with char code c, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Parses /proc/kallsyms without allocating per line (the file has ~250k
 * lines; a string or BigInt per line makes the profiler's heap balloon):
 * addresses are read digit by digit into two 32-bit halves, and only the
 * kept text symbols become strings.
 */
export function parseKallsyms(text: string): KernelSymbols {
  const cap = 1024;
  let hi = new Uint32Array(cap);
  let lo = new Uint32Array(cap);
  let nameStart = new Int32Array(cap);
  let nameEnd = new Int32Array(cap);
  let prefs = new Uint8Array(cap);
  const modules: (string | undefined)[] = [];
  let n = 0;
  let anyNonZero = false;
  let pos = 0;
  const len = text.length;
  while (pos < len) {
    let nl = text.indexOf('\n', pos);
    if (nl < 0) nl = len;
    const lineStart = pos;
    pos = nl + 1;
    // "ffffffff81000000 T _stext" or "... t name\t[module]"
    let h = 0;
    let l = 0;
    let i = lineStart;
    let digits = 0;
    for (; i < nl; i++) {
      const d = hexDigit(text.charCodeAt(i));
      if (d < 0) break;
      h = ((h << 4) | (l >>> 28)) >>> 0;
      l = ((l << 4) | d) >>> 0;
      digits++;
    }
    if (digits === 0 || digits > 16 || text.charCodeAt(i) !== 32) continue;
    const type = text[i + 1];
    if (type !== 't' && type !== 'T' && type !== 'w' && type !== 'W') continue;
    if (text.charCodeAt(i + 2) !== 32) continue;
    const ns = i + 3;
    let ne = ns;
    while (ne < nl && text.charCodeAt(ne) !== 9 && text.charCodeAt(ne) !== 32) ne++;
    if (ne === ns) continue;
    let module: string | undefined;
    if (ne < nl) {
      const open = text.indexOf('[', ne);
      const close = open >= 0 && open < nl ? text.indexOf(']', open) : -1;
      if (close > open && close < nl) module = text.slice(open + 1, close);
    }
    if (h !== 0 || l !== 0) anyNonZero = true;
    if (n === hi.length) {
      const grow = <T extends Uint32Array | Int32Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      hi = grow(hi);
      lo = grow(lo);
      nameStart = grow(nameStart);
      nameEnd = grow(nameEnd);
      prefs = grow(prefs);
    }
    hi[n] = h;
    lo[n] = l;
    nameStart[n] = ns;
    nameEnd[n] = ne;
    prefs[n] = preference(type, text.slice(ns, Math.min(ne, ns + 10)));
    modules[n] = module;
    n++;
  }
  if (!anyNonZero) return EMPTY_KERNEL_SYMBOLS;

  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => hi[a] - hi[b] || lo[a] - lo[b] || prefs[a] - prefs[b]);
  const kept: number[] = [];
  for (let k = 0; k < n; k++) {
    const i = order[k];
    const last = kept.length > 0 ? kept[kept.length - 1] : -1;
    // Sorted by preference within an address: the first one stays.
    if (last >= 0 && hi[last] === hi[i] && lo[last] === lo[i]) continue;
    kept.push(i);
  }
  const starts = new BigUint64Array(kept.length);
  kept.forEach((i, k) => (starts[k] = (BigInt(hi[i]) << 32n) | BigInt(lo[i])));
  return {
    starts,
    // Copies, so the table does not keep the whole file text alive.
    names: kept.map((i) => Buffer.from(text.slice(nameStart[i], nameEnd[i]), 'latin1').toString('latin1')),
    modules: kept.map((i) => modules[i]),
  };
}

/** Symbol i of the table as an object (for callers that want one). */
export function kernelSymbolAt(table: KernelSymbols, i: number): KernelSymbol {
  return { name: table.names[i], start: table.starts[i], module: table.modules[i] };
}

/**
 * The kernel text symbol containing addr: the last symbol starting at or
 * before it (kallsyms has no sizes). Past the last symbol only a short span
 * is accepted.
 */
export function lookupKernel(table: KernelSymbols, addr: bigint): KernelLookup | undefined {
  const starts = table.starts;
  const ans = lastAtOrBelow(starts.length, (i) => starts[i], addr);
  if (ans < 0) return undefined;
  if (ans === starts.length - 1 && addr - starts[ans] >= LAST_SYMBOL_SPAN) return undefined;
  return { ...kernelSymbolAt(table, ans), offset: addr - starts[ans] };
}

/** Thin IO wrapper: parses /proc/kallsyms (empty table if unreadable). */
export function readKallsyms(path = '/proc/kallsyms'): KernelSymbols {
  try {
    return parseKallsyms(readFileSync(path, 'utf8'));
  } catch {
    return EMPTY_KERNEL_SYMBOLS;
  }
}
