/**
 * Executes DWARF call frame instructions (DWARF 5 §6.4.2) into a row table.
 *
 * Only the rules a stack walker needs on x86-64 are kept: the CFA, the
 * return address column (the CIE's, 16 = rip) and rbp (6). Instructions for
 * other registers are decoded and skipped. A new row starts at every
 * location advance; rows are not merged here (see rows.ts).
 *
 * remember_state/restore_state save and restore the CFA rule together with
 * the register rules, as compilers expect around mid-function epilogues.
 */
import { ByteReader, type Cie, type Fde, type PointerBases, readEncodedPointer } from './eh-frame.js';

/** DWARF register numbers on x86-64 (System V psABI, figure 3.36). */
export const X86_64_RBP = 6;
export const X86_64_RSP = 7;
export const X86_64_RA = 16;

export type CfaRule =
  /** CFA = reg + offset. */
  | { kind: 'reg'; reg: number; offset: number }
  /**
   * The lazy-binding PLT expression linkers emit:
   * CFA = rsp + offset + ((rip & 15) >= threshold ? 8 : 0).
   */
  | { kind: 'plt'; offset: number; threshold: number }
  /** Any other DW_CFA_def_cfa_expression. */
  | { kind: 'expression'; expr: Buffer };

export type RegRule =
  /** Not mentioned: callee-saved registers keep their value. */
  | { kind: 'unreferenced' }
  | { kind: 'undefined' }
  | { kind: 'same' }
  /** Saved at CFA + offset. */
  | { kind: 'offset'; offset: number }
  /** Value is CFA + offset. */
  | { kind: 'valOffset'; offset: number }
  /** Value is in another register. */
  | { kind: 'register'; reg: number }
  | { kind: 'expression' }
  | { kind: 'valExpression' };

export interface CfaState {
  cfa: CfaRule;
  rbp: RegRule;
  ra: RegRule;
}

export interface CfaRow extends CfaState {
  start: bigint;
  /** Exclusive. */
  end: bigint;
}

export class CfaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CfaError';
  }
}

// Primary opcodes (high two bits) and extended opcodes.
const DW_CFA_advance_loc = 0x40;
const DW_CFA_offset = 0x80;
const DW_CFA_restore = 0xc0;
const DW_CFA_nop = 0x00;
const DW_CFA_set_loc = 0x01;
const DW_CFA_advance_loc1 = 0x02;
const DW_CFA_advance_loc2 = 0x03;
const DW_CFA_advance_loc4 = 0x04;
const DW_CFA_offset_extended = 0x05;
const DW_CFA_restore_extended = 0x06;
const DW_CFA_undefined = 0x07;
const DW_CFA_same_value = 0x08;
const DW_CFA_register = 0x09;
const DW_CFA_remember_state = 0x0a;
const DW_CFA_restore_state = 0x0b;
const DW_CFA_def_cfa = 0x0c;
const DW_CFA_def_cfa_register = 0x0d;
const DW_CFA_def_cfa_offset = 0x0e;
const DW_CFA_def_cfa_expression = 0x0f;
const DW_CFA_expression = 0x10;
const DW_CFA_offset_extended_sf = 0x11;
const DW_CFA_def_cfa_sf = 0x12;
const DW_CFA_def_cfa_offset_sf = 0x13;
const DW_CFA_val_offset = 0x14;
const DW_CFA_val_offset_sf = 0x15;
const DW_CFA_val_expression = 0x16;
const DW_CFA_GNU_args_size = 0x2e;
const DW_CFA_GNU_negative_offset_extended = 0x2f;

// DWARF expression opcodes used by the PLT pattern.
const DW_OP_and = 0x1a;
const DW_OP_plus = 0x22;
const DW_OP_shl = 0x24;
const DW_OP_ge = 0x2a;
const DW_OP_lit0 = 0x30;
const DW_OP_breg0 = 0x70;

const UNREFERENCED: RegRule = { kind: 'unreferenced' };
const UNDEFINED: RegRule = { kind: 'undefined' };
const SAME: RegRule = { kind: 'same' };

/**
 * Recognises the PLT CFA expression
 *   DW_OP_breg7 (rsp) A; DW_OP_breg16 (rip) 0; DW_OP_lit15; DW_OP_and;
 *   DW_OP_litT; DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus
 * i.e. rsp + A + ((rip & 15) >= T ? 8 : 0). T is 11 in classic lazy PLTs
 * (the push of the lazy stub is 11 bytes into each 16-byte entry) and can
 * differ in IBT-enabled layouts, so it is kept as a parameter.
 */
export function matchPltExpression(expr: Buffer): { offset: number; threshold: number } | undefined {
  try {
    const r = new ByteReader(expr);
    if (r.u8() !== DW_OP_breg0 + X86_64_RSP) return undefined;
    const offset = r.sleb();
    if (r.u8() !== DW_OP_breg0 + X86_64_RA) return undefined;
    if (r.sleb() !== 0) return undefined;
    if (r.u8() !== DW_OP_lit0 + 15) return undefined;
    if (r.u8() !== DW_OP_and) return undefined;
    const lit = r.u8() - DW_OP_lit0;
    if (lit < 0 || lit > 15) return undefined;
    if (r.u8() !== DW_OP_ge) return undefined;
    if (r.u8() !== DW_OP_lit0 + 3) return undefined;
    if (r.u8() !== DW_OP_shl) return undefined;
    if (r.u8() !== DW_OP_plus) return undefined;
    if (r.pos !== expr.length) return undefined;
    return { offset, threshold: lit };
  } catch {
    return undefined;
  }
}

interface Context {
  cie: Cie;
  /** State after the CIE's initial instructions (the target of restore). */
  initial: CfaState | undefined;
  bases: PointerBases;
  /** Address that location 0 stands for (DW_CFA_set_loc is absolute). */
  pcBegin: bigint;
  /** Code location, as an offset from pcBegin (FDE) or 0 (CIE). */
  loc: number;
  /** Called before the location moves to `newLoc` (> loc). */
  onAdvance: (newLoc: number, state: CfaState) => void;
}

function setReg(state: CfaState, ctx: Context, reg: number, rule: RegRule): void {
  if (reg === X86_64_RBP) state.rbp = rule;
  if (reg === ctx.cie.raReg) state.ra = rule;
}

function restoreReg(state: CfaState, ctx: Context, reg: number): void {
  // In the CIE itself there is nothing to restore to: "unreferenced".
  const init = ctx.initial;
  if (reg === X86_64_RBP) state.rbp = init ? init.rbp : UNREFERENCED;
  if (reg === ctx.cie.raReg) state.ra = init ? init.ra : UNREFERENCED;
}

function requireRegCfa(state: CfaState, op: string): { reg: number; offset: number } {
  if (state.cfa.kind !== 'reg') throw new CfaError(`${op} while the CFA is an expression`);
  return state.cfa;
}

/** Runs one instruction stream, mutating `state`. */
function execute(code: Buffer, codeVaddr: bigint, state: CfaState, ctx: Context): void {
  const { cie } = ctx;
  const caf = cie.codeAlign;
  const daf = cie.dataAlign;
  const r = new ByteReader(code);
  const stack: CfaState[] = [];
  const advance = (delta: number) => {
    if (delta === 0) return;
    const newLoc = ctx.loc + delta;
    ctx.onAdvance(newLoc, state);
    ctx.loc = newLoc;
  };

  while (r.pos < code.length) {
    const op = r.u8();
    const high = op & 0xc0;
    const low = op & 0x3f;
    if (high === DW_CFA_advance_loc) {
      advance(low * caf);
      continue;
    }
    if (high === DW_CFA_offset) {
      setReg(state, ctx, low, { kind: 'offset', offset: r.uleb() * daf });
      continue;
    }
    if (high === DW_CFA_restore) {
      restoreReg(state, ctx, low);
      continue;
    }
    switch (op) {
      case DW_CFA_nop:
        break;
      case DW_CFA_set_loc: {
        const addr = readEncodedPointer(r, cie.fdeEncoding, codeVaddr, ctx.bases);
        const newLoc = Number(addr - ctx.pcBegin);
        if (newLoc < ctx.loc) throw new CfaError('DW_CFA_set_loc moves backwards');
        advance(newLoc - ctx.loc);
        break;
      }
      case DW_CFA_advance_loc1:
        advance(r.u8() * caf);
        break;
      case DW_CFA_advance_loc2:
        advance(r.u16() * caf);
        break;
      case DW_CFA_advance_loc4:
        advance(r.u32() * caf);
        break;
      case DW_CFA_offset_extended: {
        const reg = r.uleb();
        setReg(state, ctx, reg, { kind: 'offset', offset: r.uleb() * daf });
        break;
      }
      case DW_CFA_offset_extended_sf: {
        const reg = r.uleb();
        setReg(state, ctx, reg, { kind: 'offset', offset: r.sleb() * daf });
        break;
      }
      case DW_CFA_GNU_negative_offset_extended: {
        const reg = r.uleb();
        setReg(state, ctx, reg, { kind: 'offset', offset: -r.uleb() * daf });
        break;
      }
      case DW_CFA_val_offset: {
        const reg = r.uleb();
        setReg(state, ctx, reg, { kind: 'valOffset', offset: r.uleb() * daf });
        break;
      }
      case DW_CFA_val_offset_sf: {
        const reg = r.uleb();
        setReg(state, ctx, reg, { kind: 'valOffset', offset: r.sleb() * daf });
        break;
      }
      case DW_CFA_restore_extended:
        restoreReg(state, ctx, r.uleb());
        break;
      case DW_CFA_undefined:
        setReg(state, ctx, r.uleb(), UNDEFINED);
        break;
      case DW_CFA_same_value:
        setReg(state, ctx, r.uleb(), SAME);
        break;
      case DW_CFA_register: {
        const reg = r.uleb();
        setReg(state, ctx, reg, { kind: 'register', reg: r.uleb() });
        break;
      }
      case DW_CFA_remember_state:
        stack.push({ ...state });
        break;
      case DW_CFA_restore_state: {
        const saved = stack.pop();
        if (!saved) throw new CfaError('DW_CFA_restore_state with an empty stack');
        state.cfa = saved.cfa;
        state.rbp = saved.rbp;
        state.ra = saved.ra;
        break;
      }
      case DW_CFA_def_cfa: {
        const reg = r.uleb();
        state.cfa = { kind: 'reg', reg, offset: r.uleb() };
        break;
      }
      case DW_CFA_def_cfa_sf: {
        const reg = r.uleb();
        state.cfa = { kind: 'reg', reg, offset: r.sleb() * daf };
        break;
      }
      case DW_CFA_def_cfa_register: {
        const cur = requireRegCfa(state, 'DW_CFA_def_cfa_register');
        state.cfa = { kind: 'reg', reg: r.uleb(), offset: cur.offset };
        break;
      }
      case DW_CFA_def_cfa_offset: {
        const cur = requireRegCfa(state, 'DW_CFA_def_cfa_offset');
        state.cfa = { kind: 'reg', reg: cur.reg, offset: r.uleb() };
        break;
      }
      case DW_CFA_def_cfa_offset_sf: {
        const cur = requireRegCfa(state, 'DW_CFA_def_cfa_offset_sf');
        state.cfa = { kind: 'reg', reg: cur.reg, offset: r.sleb() * daf };
        break;
      }
      case DW_CFA_def_cfa_expression: {
        const expr = r.bytes(r.uleb());
        const plt = matchPltExpression(expr);
        state.cfa = plt ? { kind: 'plt', ...plt } : { kind: 'expression', expr };
        break;
      }
      case DW_CFA_expression: {
        const reg = r.uleb();
        r.bytes(r.uleb());
        setReg(state, ctx, reg, { kind: 'expression' });
        break;
      }
      case DW_CFA_val_expression: {
        const reg = r.uleb();
        r.bytes(r.uleb());
        setReg(state, ctx, reg, { kind: 'valExpression' });
        break;
      }
      case DW_CFA_GNU_args_size:
        r.uleb();
        break;
      default:
        throw new CfaError(`unknown CFA opcode 0x${op.toString(16)} at +${r.pos - 1}`);
    }
  }
}

/** The state after a CIE's initial instructions (location advances are ignored). */
export function cieInitialState(cie: Cie, bases: PointerBases = {}): CfaState {
  const state: CfaState = { cfa: { kind: 'reg', reg: X86_64_RSP, offset: 8 }, rbp: UNREFERENCED, ra: UNREFERENCED };
  const ctx: Context = { cie, initial: undefined, bases, pcBegin: 0n, loc: 0, onAdvance: () => {} };
  execute(cie.initialInstructions, cie.initialInstructionsVaddr, state, ctx);
  return state;
}

/**
 * Runs an FDE's program and calls `emit` once per row, in address order,
 * with offsets from pcBegin ([startOff, endOff), clipped to the FDE range)
 * and the state in force. The state object is reused: copy what you keep.
 * Throws CfaError on instructions it cannot decode.
 */
export function forEachCfaRow(
  fde: Fde,
  init: CfaState,
  emit: (startOff: number, endOff: number, state: CfaState) => void,
  bases: PointerBases = {},
): void {
  const state: CfaState = { ...init };
  const range = fde.pcEnd - fde.pcBegin;
  const length = range > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(range);
  let rowStart = 0;
  const ctx: Context = {
    cie: fde.cie,
    initial: init,
    bases: { ...bases, func: fde.pcBegin },
    pcBegin: fde.pcBegin,
    loc: 0,
    onAdvance: (newLoc, s) => {
      if (rowStart < length) emit(rowStart, Math.min(newLoc, length), s);
      rowStart = newLoc;
    },
  };
  execute(fde.instructions, fde.instructionsVaddr, state, ctx);
  if (rowStart < length) emit(rowStart, length, state);
}

/**
 * The row table of one FDE: rows cover [pcBegin, pcEnd) without gaps, in
 * address order. Throws CfaError on instructions it cannot decode.
 * `initial` may pass a cached cieInitialState(fde.cie).
 */
export function runCfaProgram(fde: Fde, bases: PointerBases = {}, initial?: CfaState): CfaRow[] {
  const init = initial ?? cieInitialState(fde.cie, bases);
  const rows: CfaRow[] = [];
  forEachCfaRow(
    fde,
    init,
    (startOff, endOff, s) => {
      rows.push({
        start: fde.pcBegin + BigInt(startOff),
        end: fde.pcBegin + BigInt(endOff),
        cfa: s.cfa,
        rbp: s.rbp,
        ra: s.ra,
      });
    },
    bases,
  );
  return rows;
}
