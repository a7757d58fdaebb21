/**
 * Helpers for validating frame-pointer walks (x86-64).
 *
 * - looksLikeReturnAddress: does the code just before a candidate return
 *   address end with a call instruction?
 * - moduleUsesFramePointers: do the module's functions start with the
 *   `push %rbp; mov %rsp,%rbp` prologue?
 */
import { type ElfInfo, vaddrToFileOffset } from './elf-file.js';
import type { SymbolTable } from './elf-symbols.js';

/**
 * Length of an `FF /r` instruction whose opcode byte is at `p` (opcode,
 * ModRM, optional SIB, displacement), or -1 if the bytes run out.
 */
function ffInstructionLength(code: Buffer, p: number): number {
  if (p + 1 >= code.length) return -1;
  const modrm = code[p + 1];
  const mod = modrm >> 6;
  const rm = modrm & 7;
  if (mod === 3) return 2;
  let len = 2;
  if (rm === 4) {
    if (p + 2 >= code.length) return -1;
    const sib = code[p + 2];
    len += 1;
    if (mod === 0 && (sib & 7) === 5) len += 4; // no base: disp32
  } else if (mod === 0 && rm === 5) {
    len += 4; // RIP-relative disp32
  }
  if (mod === 1) len += 1;
  else if (mod === 2) len += 4;
  return len;
}

/**
 * True when the bytes ending at `offsetOfReturnAddress` (exclusive) decode as
 * an x86-64 call: `E8 rel32`, or `FF /2` (indirect near call through a
 * register or memory operand, 2..7 bytes, optionally after a REX prefix,
 * which does not change where the instruction ends).
 */
export function looksLikeReturnAddress(textBytes: Buffer, offsetOfReturnAddress: number): boolean {
  const off = offsetOfReturnAddress;
  if (!Number.isInteger(off) || off < 2 || off > textBytes.length) return false;
  if (off >= 5 && textBytes[off - 5] === 0xe8) return true;
  for (let len = 2; len <= 7; len++) {
    const p = off - len;
    if (p < 0) break;
    if (textBytes[p] !== 0xff) continue;
    const modrm = textBytes[p + 1];
    if (((modrm >> 3) & 7) !== 2) continue;
    if (ffInstructionLength(textBytes, p) === len) return true;
  }
  return false;
}

const PUSH_RBP = 0x55;
const ENDBR64 = [0xf3, 0x0f, 0x1e, 0xfa];
/**
 * How far after `push %rbp` the `mov %rsp,%rbp` may be: at -O2 gcc schedules
 * other instructions (register moves, SSE setup) between the two.
 */
const PROLOGUE_WINDOW = 64;

/**
 * `push %rbp` at the entry (optionally after endbr64), followed within
 * PROLOGUE_WINDOW bytes by `mov %rsp,%rbp` (48 89 e5, or the alternate
 * encoding 48 8b ec).
 */
function hasFramePointerPrologue(code: Buffer, p: number): boolean {
  if (
    p + 4 <= code.length &&
    code[p] === ENDBR64[0] &&
    code[p + 1] === ENDBR64[1] &&
    code[p + 2] === ENDBR64[2] &&
    code[p + 3] === ENDBR64[3]
  ) {
    p += 4;
  }
  if (p >= code.length || code[p] !== PUSH_RBP) return false;
  const end = Math.min(code.length - 3, p + 1 + PROLOGUE_WINDOW);
  for (let i = p + 1; i <= end; i++) {
    if (code[i] !== 0x48) continue;
    if ((code[i + 1] === 0x89 && code[i + 2] === 0xe5) || (code[i + 1] === 0x8b && code[i + 2] === 0xec)) return true;
  }
  return false;
}

export interface FramePointerStats {
  /** Functions of size >= minSize whose bytes were available. */
  examined: number;
  /** Of those, how many start with the frame-pointer prologue. */
  withPrologue: number;
}

/** Counts functions (size >= minSize) that start with a frame-pointer prologue. */
export function framePointerStats(info: ElfInfo, buf: Buffer, table: SymbolTable, minSize = 16n): FramePointerStats {
  let examined = 0;
  let withPrologue = 0;
  for (const s of table.symbols) {
    if (s.size < minSize) continue;
    const off = vaddrToFileOffset(info, s.start);
    if (off === undefined || off + 8n > BigInt(buf.length)) continue;
    examined++;
    if (hasFramePointerPrologue(buf, Number(off))) withPrologue++;
  }
  return { examined, withPrologue };
}

/**
 * True when at least `threshold` (default 80%) of the function symbols with
 * size >= 16 start with `push %rbp; mov %rsp,%rbp` (optionally after
 * endbr64; other instructions may be scheduled between the two). False when
 * there is nothing to examine.
 */
export function moduleUsesFramePointers(info: ElfInfo, buf: Buffer, table: SymbolTable, threshold = 0.8): boolean {
  const { examined, withPrologue } = framePointerStats(info, buf, table);
  if (examined === 0) return false;
  return withPrologue >= threshold * examined;
}
