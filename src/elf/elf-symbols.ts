/**
 * Function symbols from .symtab and .dynsym (Elf64_Sym decoded here: elfy
 * does not decode symbols), sorted and deduplicated for address lookup.
 *
 * Kept: STT_FUNC and STT_GNU_IFUNC, plus STT_NOTYPE symbols defined in an
 * executable section (hand-written assembly often omits `.type`). A symbol of
 * size 0 covers addresses up to the next symbol, capped at the end of its
 * section.
 *
 * `.gnu_debugdata` (MiniDebugInfo) and separate debug files are supported by
 * passing their parsed ELF as `extra` objects (see elf-cache.ts, which finds
 * and decompresses them); this module stays pure.
 */
import {
  type ElfInfo,
  type LoadSegment,
  SHF_EXECINSTR,
  SHT_DYNSYM,
  SHT_NOBITS,
  SHT_SYMTAB,
  vaddrToFileOffsetIn,
} from './elf-file.js';
import { lastAtOrBelow } from '../search.js';

const STT_NOTYPE = 0;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
const STB_LOCAL = 0;
const STB_GLOBAL = 1;
const STB_WEAK = 2;
const SHN_UNDEF = 0;
const SHN_LORESERVE = 0xff00;
const SHN_ABS = 0xfff1;
const ELF64_SYM_SIZE = 24;

export interface ElfSymbol {
  name: string;
  start: bigint;
  /** st_size as in the file (0 for unsized symbols). */
  size: bigint;
  /** Exclusive end used for lookups (start+size, or the next symbol / section end). */
  end: bigint;
}

/** A decoded symbol before sorting/deduplication. */
export interface RawSymbol {
  name: string;
  value: bigint;
  size: bigint;
  /** STT_* */
  type: number;
  /** STB_* */
  bind: number;
  /** End of the section the symbol is defined in (cap for size-0 symbols). */
  sectionEnd: bigint | undefined;
  /** true if from .symtab (full table), false if from .dynsym. */
  fromSymtab: boolean;
}

export interface SymbolTable {
  /** Sorted by start, one per address. */
  symbols: ElfSymbol[];
  /** Every kept name (including aliases dropped by deduplication) -> symbol. */
  byName: Map<string, { start: bigint; size: bigint }>;
  /** PT_LOAD segments of the main file, to turn vaddrs into file offsets. */
  segments: LoadSegment[];
}

export interface SymbolLookup {
  name: string;
  start: bigint;
  size: bigint;
}

export interface FoundSymbol {
  name: string;
  vaddr: bigint;
  size: bigint;
  /** File offset of vaddr (what uprobes attach to); undefined if not in a PT_LOAD file range. */
  fileOffset: bigint | undefined;
}

/** Decodes the function symbols of every SHT_SYMTAB / SHT_DYNSYM section. */
export function decodeSymbols(info: ElfInfo): RawSymbol[] {
  const out: RawSymbol[] = [];
  for (const sec of info.sections) {
    if (sec.type !== SHT_SYMTAB && sec.type !== SHT_DYNSYM) continue;
    const strtab = info.sections[sec.link];
    if (!strtab || strtab.type === SHT_NOBITS) continue;
    const strs = strtab.data;
    const data = sec.data;
    const entsize = sec.entsize >= ELF64_SYM_SIZE ? sec.entsize : ELF64_SYM_SIZE;
    const fromSymtab = sec.type === SHT_SYMTAB;
    for (let off = entsize; off + ELF64_SYM_SIZE <= data.length; off += entsize) {
      // Elf64_Sym: st_name u32, st_info u8, st_other u8, st_shndx u16, st_value u64, st_size u64
      const stInfo = data[off + 4];
      const type = stInfo & 0xf;
      if (type !== STT_FUNC && type !== STT_GNU_IFUNC && type !== STT_NOTYPE) continue;
      const shndx = data.readUInt16LE(off + 6);
      if (shndx === SHN_UNDEF) continue;
      const value = data.readBigUInt64LE(off + 8);
      if (value === 0n) continue;
      let sectionEnd: bigint | undefined;
      if (shndx < SHN_LORESERVE) {
        const target = info.sections[shndx];
        if (!target) continue;
        if ((target.flags & SHF_EXECINSTR) === 0n) {
          if (type === STT_NOTYPE) continue; // data labels (_edata, __bss_start, ...)
        }
        sectionEnd = target.addr + BigInt(target.size);
      } else if (shndx !== SHN_ABS || type === STT_NOTYPE) {
        continue;
      }
      const nameOff = data.readUInt32LE(off);
      if (nameOff === 0 || nameOff >= strs.length) continue;
      let nameEnd = strs.indexOf(0, nameOff);
      if (nameEnd < 0) nameEnd = strs.length;
      const name = strs.toString('latin1', nameOff, nameEnd);
      if (name === '' || name.startsWith('$') || name.startsWith('.L')) continue;
      out.push({
        name,
        value,
        size: data.readBigUInt64LE(off + 16),
        type,
        bind: stInfo >> 4,
        sectionEnd,
        fromSymtab,
      });
    }
  }
  return out;
}

/**
 * Reads the function symbols of `info` (and of `extra` ELF objects describing
 * the same file, e.g. a separate debug file or the decompressed
 * `.gnu_debugdata`), sorted and deduplicated. `buf` is the main file's bytes;
 * it is not needed for decoding (section data already references it) and is
 * accepted for symmetry with other readers.
 */
export function readSymbols(info: ElfInfo, _buf?: Buffer, extra: readonly ElfInfo[] = []): SymbolTable {
  const raw = decodeSymbols(info);
  for (const e of extra) raw.push(...decodeSymbols(e));
  return buildSymbolTable(raw, info.segments);
}

/** Rank for choosing one name among symbols at the same address (lower wins). */
function rank(s: RawSymbol): number[] {
  const bindRank = s.bind === STB_GLOBAL ? 0 : s.bind === STB_WEAK ? 1 : s.bind === STB_LOCAL ? 2 : 3;
  const typeRank = s.type === STT_NOTYPE ? 1 : 0;
  let underscores = 0;
  while (underscores < s.name.length && s.name[underscores] === '_') underscores++;
  return [s.size > 0n ? 0 : 1, typeRank, bindRank, underscores, s.name.length];
}

function better(a: RawSymbol, b: RawSymbol): boolean {
  const ra = rank(a);
  const rb = rank(b);
  for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i] < rb[i];
  return a.name < b.name;
}

/** Sorts, deduplicates and computes lookup ends. Exported for tests. */
export function buildSymbolTable(raw: RawSymbol[], segments: LoadSegment[]): SymbolTable {
  const byName = new Map<string, { start: bigint; size: bigint; bind: number }>();
  for (const s of raw) {
    const prev = byName.get(s.name);
    // Prefer a global definition over local ones of the same name, then a sized one.
    if (
      !prev ||
      (prev.bind === STB_LOCAL && s.bind !== STB_LOCAL) ||
      (prev.bind === s.bind && prev.size === 0n && s.size > 0n)
    ) {
      byName.set(s.name, { start: s.value, size: s.size, bind: s.bind });
    }
  }

  // Sort on Number keys (exact below 2^53, monotonic above), bigint only for ties.
  const keyed = raw.map((s) => ({ s, k: Number(s.value) }));
  keyed.sort((a, b) => a.k - b.k || (a.s.value < b.s.value ? -1 : a.s.value > b.s.value ? 1 : 0));
  const sorted = keyed.map((x) => x.s);
  const chosen: RawSymbol[] = [];
  for (const s of sorted) {
    const last = chosen[chosen.length - 1];
    if (last && last.value === s.value) {
      if (better(s, last)) chosen[chosen.length - 1] = s;
      // Keep the largest known size for the address.
      else if (last.size === 0n && s.size > 0n) chosen[chosen.length - 1] = { ...last, size: s.size };
    } else {
      chosen.push(s);
    }
  }

  const symbols: ElfSymbol[] = chosen.map((s, i) => {
    let end: bigint;
    if (s.size > 0n) {
      end = s.value + s.size;
    } else {
      const next = i + 1 < chosen.length ? chosen[i + 1].value : undefined;
      const cap = s.sectionEnd !== undefined && s.sectionEnd > s.value ? s.sectionEnd : undefined;
      if (next !== undefined && cap !== undefined) end = next < cap ? next : cap;
      else end = next ?? cap ?? s.value + 1n;
    }
    return { name: s.name, start: s.value, size: s.size, end };
  });

  return { symbols, byName, segments };
}

/** Index of the last symbol with start <= vaddr, or -1. */
function floorIndex(symbols: readonly ElfSymbol[], vaddr: bigint): number {
  return lastAtOrBelow(symbols.length, (i) => symbols[i].start, vaddr);
}

/** The function containing vaddr (an ELF virtual address, not a runtime one). */
export function lookup(table: SymbolTable, vaddr: bigint): SymbolLookup | undefined {
  const i = floorIndex(table.symbols, vaddr);
  if (i < 0) return undefined;
  const s = table.symbols[i];
  if (vaddr >= s.end) return undefined;
  return { name: s.name, start: s.start, size: s.size };
}

/** Finds a function by exact name; gives its vaddr and its file offset (for uprobes). */
export function findSymbol(table: SymbolTable, name: string): FoundSymbol | undefined {
  const s = table.byName.get(name);
  if (!s) return undefined;
  return { name, vaddr: s.start, size: s.size, fileOffset: vaddrToFileOffsetIn(table.segments, s.start) };
}
