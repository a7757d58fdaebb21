/**
 * Compact unwind rows for one ELF object, compiled from `.eh_frame`.
 *
 * A row holds from its `pc` up to the next row's `pc`. Rows are sorted,
 * consecutive identical rows are merged, and a row of kind 'undefined'
 * follows every FDE that is not immediately followed by another one, so a
 * lookup between or after FDEs answers "no CFI here".
 *
 * Kinds:
 * - 'rsp' / 'rbp': CFA = rsp/rbp + cfaOffset.
 * - 'plt': CFA = rsp + cfaOffset + ((rip & 15) >= pltThreshold ? 8 : 0)
 *   (lazy-binding PLT stubs).
 * - 'undefined': no CFI covers this address.
 * - 'end': the return address is undefined: the outermost frame (_start,
 *   thread entry points); stop unwinding.
 * - 'unsupported': CFI exists but is not expressible here (CFA in another
 *   register or a general expression, return address or rbp not saved at
 *   CFA + offset, signal trampolines, undecodable instructions).
 * For 'rsp', 'rbp' and 'plt', the return address is at CFA + raOffset and
 * the caller's rbp at CFA + rbpOffset (null: rbp is unchanged).
 */
import type { ElfInfo } from '../elf/elf-file.js';
import { type CfaState, type RegRule, X86_64_RBP, X86_64_RSP, cieInitialState, forEachCfaRow } from '../elf/cfa-program.js';
import { type Cie, type Fde, parseEhFrame } from '../elf/eh-frame.js';
import { lastAtOrBelow } from '../search.js';
import { encodeUnwindRows, type UnwindKind, type UnwindRow } from '../native/abi.js';

export type { UnwindKind, UnwindRow };

export interface UnwindTable {
  rows: UnwindRow[];
  /** FDEs with a non-empty range that contributed rows. */
  fdeCount: number;
  /** FDEs whose instructions could not be decoded (their range is 'unsupported'). */
  badFdes: number;
  /** FDEs that overlap the next one (the earlier one is cut short). */
  overlaps: number;
  /** Parse errors, one line each. */
  errors: string[];
}

const I32_MIN = -0x80000000;
const I32_MAX = 0x7fffffff;

function makeRow(
  pc: bigint,
  cfaReg: UnwindKind,
  cfaOffset: number,
  rbpOffset: number | null,
  raOffset: number,
  pltThreshold: number,
): UnwindRow {
  return { pc, cfaReg, cfaOffset, rbpOffset, raOffset, pltThreshold };
}

function special(pc: bigint, kind: 'undefined' | 'unsupported' | 'end'): UnwindRow {
  return makeRow(pc, kind, 0, null, 0, 0);
}

function rbpOffsetOf(rule: RegRule): number | null | 'unsupported' {
  switch (rule.kind) {
    case 'unreferenced':
    case 'same':
    case 'undefined': // not recoverable; the walker keeps the current value
      return null;
    case 'offset':
      // 0 is the encoded "unchanged"; a saved rbp at CFA+0 does not occur.
      return rule.offset !== 0 && rule.offset >= -0x8000 && rule.offset <= 0x7fff ? rule.offset : 'unsupported';
    default:
      return 'unsupported';
  }
}

/** Converts one state of the CFA machine into a compact row at `pc`. */
function toUnwindRow(pc: bigint, s: CfaState, signalFrame = false): UnwindRow {
  if (s.ra.kind === 'undefined') return special(pc, 'end');
  if (signalFrame || s.ra.kind !== 'offset' || s.ra.offset < -128 || s.ra.offset > 127) {
    return special(pc, 'unsupported');
  }
  const rbpOffset = rbpOffsetOf(s.rbp);
  if (rbpOffset === 'unsupported') return special(pc, 'unsupported');
  const cfa = s.cfa;
  if (cfa.kind === 'expression' || cfa.offset < I32_MIN || cfa.offset > I32_MAX) return special(pc, 'unsupported');
  if (cfa.kind === 'plt') return makeRow(pc, 'plt', cfa.offset, rbpOffset, s.ra.offset, cfa.threshold);
  if (cfa.reg === X86_64_RSP) return makeRow(pc, 'rsp', cfa.offset, rbpOffset, s.ra.offset, 0);
  if (cfa.reg === X86_64_RBP) return makeRow(pc, 'rbp', cfa.offset, rbpOffset, s.ra.offset, 0);
  return special(pc, 'unsupported');
}

function sameRule(a: UnwindRow, b: UnwindRow): boolean {
  return (
    a.cfaReg === b.cfaReg &&
    a.cfaOffset === b.cfaOffset &&
    a.rbpOffset === b.rbpOffset &&
    a.raOffset === b.raOffset &&
    a.pltThreshold === b.pltThreshold
  );
}

/** Appends a row, replacing a row at the same pc and dropping a repeat of the previous rule. */
function pushRow(out: UnwindRow[], row: UnwindRow): void {
  while (out.length > 0 && out[out.length - 1].pc >= row.pc) out.pop();
  if (out.length > 0 && sameRule(out[out.length - 1], row)) return;
  out.push(row);
}

interface FdeItem {
  fde: Fde;
  init: CfaState | undefined; // undefined: the CIE's instructions are undecodable
}

/** Compiles the rows of an `.eh_frame` section located at `vaddr`. */
export function compileEhFrame(data: Buffer, vaddr: bigint): UnwindTable {
  const parsed = parseEhFrame(data, vaddr);
  const errors = [...parsed.errors];
  const initialByCie = new Map<Cie, CfaState | undefined>();
  const items: FdeItem[] = [];
  for (const fde of parsed.fdes) {
    if (fde.pcEnd <= fde.pcBegin) continue; // empty or discarded (pc_begin 0, range 0)
    if (!initialByCie.has(fde.cie)) {
      let init: CfaState | undefined;
      try {
        init = cieInitialState(fde.cie);
      } catch (e) {
        errors.push(`.eh_frame CIE at 0x${fde.cie.offset.toString(16)}: ${(e as Error).message}`);
      }
      initialByCie.set(fde.cie, init);
    }
    items.push({ fde, init: initialByCie.get(fde.cie) });
  }
  items.sort((a, b) => (a.fde.pcBegin < b.fde.pcBegin ? -1 : a.fde.pcBegin > b.fde.pcBegin ? 1 : 0));

  const out: UnwindRow[] = [];
  let overlaps = 0;
  let badFdes = 0;
  for (let i = 0; i < items.length; i++) {
    const { fde, init } = items[i];
    const next = items[i + 1]?.fde.pcBegin;
    let end = fde.pcEnd;
    if (next !== undefined && next < end) {
      overlaps++;
      end = next;
    }
    const limit = Number(end - fde.pcBegin);
    const mark = out.length;
    let ok = init !== undefined;
    if (init) {
      const signal = fde.cie.signalFrame;
      try {
        forEachCfaRow(fde, init, (startOff, _endOff, s) => {
          if (startOff >= limit) return;
          const row = toUnwindRow(0n, s, signal);
          const last = out[out.length - 1];
          if (last !== undefined && sameRule(last, row) && startOff > 0) return; // merged, no pc needed
          row.pc = fde.pcBegin + BigInt(startOff);
          pushRow(out, row);
        });
      } catch (e) {
        errors.push(`.eh_frame FDE at 0x${fde.offset.toString(16)}: ${(e as Error).message}`);
        ok = false;
      }
    }
    if (!ok) {
      badFdes++;
      out.length = mark;
      pushRow(out, special(fde.pcBegin, 'unsupported'));
    }
    if (next === undefined || next > end) pushRow(out, special(end, 'undefined'));
  }
  return { rows: out, fdeCount: items.length, badFdes, overlaps, errors };
}

/** Compiles an object's `.eh_frame` into rows plus statistics; no section, no rows. */
export function compileUnwindTable(info: ElfInfo): UnwindTable {
  const sec = info.sectionsByName.get('.eh_frame');
  if (!sec || sec.data.length === 0) return { rows: [], fdeCount: 0, badFdes: 0, overlaps: 0, errors: [] };
  return compileEhFrame(sec.data, sec.addr);
}

export function compileUnwindRows(info: ElfInfo): UnwindRow[] {
  return compileUnwindTable(info).rows;
}

/** The row covering `vaddr` (binary search), or undefined before the first row. */
export function lookupRow(rows: readonly UnwindRow[], vaddr: bigint): UnwindRow | undefined {
  return rows[lastAtOrBelow(rows.length, (i) => rows[i].pc, vaddr)];
}

