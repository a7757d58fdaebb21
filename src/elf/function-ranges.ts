// Function boundaries from .eh_frame: every FDE covers one function (or one
// hand-written code block, like LuaJIT's whole VM). Stripped objects keep
// their .eh_frame, so this names code that has no symbol by where its
// function starts, and finds the extent of LuaJIT's interpreter.
import { type ElfInfo } from './elf-file.js';
import { parseEhFrame } from './eh-frame.js';
import { lastAtOrBelow } from '../search.js';

export interface FunctionRange {
  start: bigint;
  end: bigint;
}

/** Sorted, non-empty FDE ranges of the object (vaddrs); [] without .eh_frame. */
export function functionRangesFromEhFrame(info: ElfInfo): FunctionRange[] {
  const sec = info.sectionsByName.get('.eh_frame');
  if (!sec || sec.data.length === 0) return [];
  let fdes;
  try {
    fdes = parseEhFrame(sec.data, sec.addr).fdes;
  } catch {
    return [];
  }
  return fdes
    .filter((f) => f.pcEnd > f.pcBegin)
    .map((f) => ({ start: f.pcBegin, end: f.pcEnd }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

/** The range holding vaddr (binary search), or undefined. */
export function findFunctionRange(ranges: readonly FunctionRange[], vaddr: bigint): FunctionRange | undefined {
  const r = ranges[lastAtOrBelow(ranges.length, (i) => ranges[i].start, vaddr)];
  return r && vaddr < r.end ? r : undefined;
}
