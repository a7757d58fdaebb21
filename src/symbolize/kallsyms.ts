/**
 * Kernel symbols from /proc/kallsyms.
 *
 * Text symbols only: `t`/`T`, plus `w`/`W` (weak text symbols such as
 * `abort`; without them their addresses would fall to the neighbouring
 * `__pfx_` padding symbol). When kptr_restrict hides addresses (all zero),
 * the table is empty and every lookup misses.
 */
import { readFileSync } from 'node:fs';

export interface KernelSymbol {
  name: string;
  start: bigint;
  /** Module name without brackets, e.g. 'nf_tables', or undefined for vmlinux. */
  module: string | undefined;
}

export interface KernelSymbols {
  /** Sorted by start, one per address. */
  symbols: KernelSymbol[];
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

export function parseKallsyms(text: string): KernelSymbols {
  const entries: { sym: KernelSymbol; pref: number }[] = [];
  let anyNonZero = false;
  let start = 0;
  while (start < text.length) {
    let nl = text.indexOf('\n', start);
    if (nl < 0) nl = text.length;
    const line = text.slice(start, nl);
    start = nl + 1;
    // "ffffffff81000000 T _stext" or "... t name\t[module]"
    const sp1 = line.indexOf(' ');
    if (sp1 <= 0) continue;
    const type = line[sp1 + 1];
    if (type !== 't' && type !== 'T' && type !== 'w' && type !== 'W') continue;
    if (line[sp1 + 2] !== ' ') continue;
    const rest = line.slice(sp1 + 3);
    const tab = rest.search(/[\t ]/);
    const name = tab < 0 ? rest : rest.slice(0, tab);
    if (name === '') continue;
    let module: string | undefined;
    if (tab >= 0) {
      const m = /\[([^\]]+)\]/.exec(rest.slice(tab));
      if (m) module = m[1];
    }
    let addr: bigint;
    try {
      addr = BigInt('0x' + line.slice(0, sp1));
    } catch {
      continue;
    }
    if (addr !== 0n) anyNonZero = true;
    entries.push({ sym: { name, start: addr, module }, pref: preference(type, name) });
  }
  if (!anyNonZero) return { symbols: [] };

  entries.sort((a, b) => (a.sym.start < b.sym.start ? -1 : a.sym.start > b.sym.start ? 1 : a.pref - b.pref));
  const symbols: KernelSymbol[] = [];
  for (const e of entries) {
    const last = symbols[symbols.length - 1];
    if (last && last.start === e.sym.start) continue; // sorted by preference within an address
    symbols.push(e.sym);
  }
  return { symbols };
}

/**
 * The kernel text symbol containing addr: the last symbol starting at or
 * before it (kallsyms has no sizes). Past the last symbol only a short span
 * is accepted.
 */
export function lookupKernel(table: KernelSymbols, addr: bigint): KernelLookup | undefined {
  const syms = table.symbols;
  let lo = 0;
  let hi = syms.length - 1;
  let ans = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (syms[mid].start <= addr) {
      ans = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (ans < 0) return undefined;
  const s = syms[ans];
  if (ans === syms.length - 1 && addr - s.start >= LAST_SYMBOL_SPAN) return undefined;
  return { ...s, offset: addr - s.start };
}

/** Thin IO wrapper: parses /proc/kallsyms (empty table if unreadable). */
export function readKallsyms(path = '/proc/kallsyms'): KernelSymbols {
  try {
    return parseKallsyms(readFileSync(path, 'utf8'));
  } catch {
    return { symbols: [] };
  }
}
