/**
 * `.eh_frame` and `.eh_frame_hdr` parsing (x86-64 ELF, little-endian).
 *
 * Layout facts (LSB "Exception Frames", DWARF 5 §6.4.1):
 * - `.eh_frame` is a sequence of entries: u32 length (0xffffffff: a u64
 *   extended length follows), then a 4-byte (8-byte when extended) id. Id 0
 *   is a CIE; otherwise an FDE whose id is the distance from the id field back
 *   to its CIE. A zero length is a terminator.
 * - CIE: u8 version (1 or 3), NUL-terminated augmentation string, uleb128
 *   code alignment, sleb128 data alignment, return address register (u8 in
 *   version 1, uleb128 after), then, if the augmentation starts with "z", a
 *   uleb128 length and the augmentation data ("P": personality encoding +
 *   pointer, "L": LSDA encoding, "R": FDE pointer encoding; "S", "B", "G"
 *   carry no data), then the initial instructions up to the entry's end.
 * - FDE: pc_begin (FDE encoding), pc_range (same format, no relative base),
 *   with "z" a uleb128 length + augmentation data (the LSDA pointer), then the
 *   instructions up to the entry's end.
 * - `.eh_frame_hdr`: u8 version (1), u8 eh_frame_ptr encoding, u8 fde_count
 *   encoding, u8 table encoding, eh_frame_ptr, fde_count, then fde_count
 *   pairs (initial_loc, fde address) sorted by initial_loc, normally
 *   datarel|sdata4 relative to the start of `.eh_frame_hdr`.
 *
 * Parsers take the section bytes and the section's vaddr; they never read
 * files. Entries that cannot be parsed are skipped and reported in `errors`.
 */
import { lastAtOrBelow } from '../search.js';

// Pointer encodings (DW_EH_PE_*): low nibble is the format, bits 4-6 the base.
export const DW_EH_PE_absptr = 0x00;
export const DW_EH_PE_uleb128 = 0x01;
export const DW_EH_PE_udata2 = 0x02;
export const DW_EH_PE_udata4 = 0x03;
export const DW_EH_PE_udata8 = 0x04;
export const DW_EH_PE_sleb128 = 0x09;
export const DW_EH_PE_sdata2 = 0x0a;
export const DW_EH_PE_sdata4 = 0x0b;
export const DW_EH_PE_sdata8 = 0x0c;
export const DW_EH_PE_pcrel = 0x10;
export const DW_EH_PE_textrel = 0x20;
export const DW_EH_PE_datarel = 0x30;
export const DW_EH_PE_funcrel = 0x40;
export const DW_EH_PE_aligned = 0x50;
export const DW_EH_PE_indirect = 0x80;
export const DW_EH_PE_omit = 0xff;

/** Bases for textrel/datarel pointers; pcrel needs none. */
export interface PointerBases {
  text?: bigint;
  data?: bigint;
  func?: bigint;
}

export interface Cie {
  /** Offset of the entry in `.eh_frame`. */
  offset: number;
  version: number;
  augmentation: string;
  codeAlign: number;
  dataAlign: number;
  /** DWARF register holding the return address (16 = rip on x86-64). */
  raReg: number;
  /** Encoding of FDE pc_begin/pc_range and DW_CFA_set_loc operands. */
  fdeEncoding: number;
  lsdaEncoding: number;
  personalityEncoding: number;
  /** Personality routine pointer (the GOT slot address when indirect). */
  personality: bigint | undefined;
  /** "S": frames of this CIE are signal trampolines. */
  signalFrame: boolean;
  initialInstructions: Buffer;
  /** vaddr of the first initial instruction byte. */
  initialInstructionsVaddr: bigint;
}

export interface Fde {
  /** Offset of the entry in `.eh_frame`. */
  offset: number;
  cie: Cie;
  pcBegin: bigint;
  /** pcBegin + pc_range (exclusive), wrapped to 64 bits. */
  pcEnd: bigint;
  lsda: bigint | undefined;
  instructions: Buffer;
  /** vaddr of the first instruction byte (base of pcrel DW_CFA_set_loc). */
  instructionsVaddr: bigint;
}

export interface EhFrame {
  cies: Cie[];
  /** In section order. */
  fdes: Fde[];
  /** One line per entry that was skipped. */
  errors: string[];
}

export interface EhFrameHdr {
  version: number;
  /** Address of `.eh_frame` as recorded in the header. */
  ehFramePtr: bigint;
  fdeCount: number;
  /** Sorted search table; empty when the header has none. */
  initialLocs: BigUint64Array;
  fdeAddrs: BigUint64Array;
}

const U64 = (v: bigint) => BigInt.asUintN(64, v);

/** Minimal little-endian cursor over a Buffer. Reads past `end` throw. */
export class ByteReader {
  constructor(
    readonly buf: Buffer,
    public pos = 0,
    public end = buf.length,
  ) {}

  private need(n: number): void {
    if (this.pos + n > this.end) throw new RangeError(`read past end at offset ${this.pos}`);
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  i16(): number {
    this.need(2);
    const v = this.buf.readInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  i64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Unsigned LEB128 as a number (exact up to 2^53). */
  uleb(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      const b = this.u8();
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
  }

  /** Signed LEB128 as a number (exact within ±2^53). */
  sleb(): number {
    let result = 0;
    let mul = 1;
    let b: number;
    do {
      b = this.u8();
      result += (b & 0x7f) * mul;
      mul *= 128;
    } while (b & 0x80);
    if (b & 0x40) result -= mul;
    return result;
  }

  ulebBig(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.u8();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) return result;
    }
  }

  slebBig(): bigint {
    let result = 0n;
    let shift = 0n;
    let b: number;
    do {
      b = this.u8();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
    } while (b & 0x80);
    if (b & 0x40) result -= 1n << shift;
    return result;
  }

  cstring(): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul < 0 || nul >= this.end) throw new RangeError(`unterminated string at offset ${this.pos}`);
    const s = this.buf.toString('latin1', this.pos, nul);
    this.pos = nul + 1;
    return s;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

/** Reads the value of a pointer format (low nibble of an encoding) without applying a base. */
function readPointerFormat(r: ByteReader, format: number): bigint {
  switch (format) {
    case DW_EH_PE_absptr:
    case DW_EH_PE_udata8:
      return r.u64();
    case DW_EH_PE_uleb128:
      return r.ulebBig();
    case DW_EH_PE_udata2:
      return BigInt(r.u16());
    case DW_EH_PE_udata4:
      return BigInt(r.u32());
    case DW_EH_PE_sleb128:
      return r.slebBig();
    case DW_EH_PE_sdata2:
      return BigInt(r.i16());
    case DW_EH_PE_sdata4:
      return BigInt(r.i32());
    case DW_EH_PE_sdata8:
      return r.i64();
    default:
      throw new Error(`unsupported pointer format 0x${format.toString(16)}`);
  }
}

/**
 * Reads an encoded pointer at `r.pos`. `readerVaddr` is the vaddr of byte 0 of
 * `r.buf` (pcrel pointers are relative to their own address). The indirect
 * flag is not followed: the caller gets the address of the slot.
 */
export function readEncodedPointer(
  r: ByteReader,
  encoding: number,
  readerVaddr: bigint,
  bases: PointerBases = {},
): bigint {
  if (encoding === DW_EH_PE_omit) throw new Error('omitted pointer read');
  const app = encoding & 0x70;
  if (app === DW_EH_PE_aligned) {
    r.pos = (r.pos + 7) & ~7;
    return r.u64();
  }
  const fieldVaddr = readerVaddr + BigInt(r.pos);
  const v = readPointerFormat(r, encoding & 0x0f);
  switch (app) {
    case 0:
      return U64(v);
    case DW_EH_PE_pcrel:
      return U64(fieldVaddr + v);
    case DW_EH_PE_textrel:
      if (bases.text === undefined) throw new Error('textrel pointer without a text base');
      return U64(bases.text + v);
    case DW_EH_PE_datarel:
      if (bases.data === undefined) throw new Error('datarel pointer without a data base');
      return U64(bases.data + v);
    case DW_EH_PE_funcrel:
      if (bases.func === undefined) throw new Error('funcrel pointer without a function base');
      return U64(bases.func + v);
    default:
      throw new Error(`unsupported pointer encoding 0x${encoding.toString(16)}`);
  }
}

interface EntryHeader {
  offset: number;
  /** Offset just past the entry. */
  end: number;
  /** Offset of the id field. */
  idPos: number;
  id: bigint;
  /** Offset just past the id field. */
  bodyPos: number;
}

/** Reads an entry header at `offset`; undefined for a terminator. */
function readEntryHeader(data: Buffer, offset: number): EntryHeader | undefined {
  const r = new ByteReader(data, offset);
  let length = r.u32();
  if (length === 0) return undefined;
  let idSize = 4;
  if (length === 0xffffffff) {
    const big = r.u64();
    if (big > BigInt(data.length)) throw new RangeError(`entry at 0x${offset.toString(16)} is too long`);
    length = Number(big);
    idSize = 8;
  }
  const idPos = r.pos;
  const end = idPos + length;
  if (end > data.length || length < idSize) {
    throw new RangeError(`entry at 0x${offset.toString(16)} runs past the section end`);
  }
  const id = idSize === 4 ? BigInt(r.u32()) : r.u64();
  return { offset, end, idPos, id, bodyPos: r.pos };
}

/** Random access to the entries of one `.eh_frame` section. CIEs are cached. */
export class EhFrameReader {
  private readonly cieCache = new Map<number, Cie>();

  constructor(
    readonly data: Buffer,
    readonly vaddr: bigint,
    readonly bases: PointerBases = {},
  ) {}

  cieAt(offset: number): Cie {
    const cached = this.cieCache.get(offset);
    if (cached) return cached;
    const h = readEntryHeader(this.data, offset);
    if (!h) throw new Error(`CIE reference 0x${offset.toString(16)} points at a terminator`);
    if (h.id !== 0n) throw new Error(`CIE reference 0x${offset.toString(16)} points at an FDE`);
    const cie = this.parseCie(h);
    this.cieCache.set(offset, cie);
    return cie;
  }

  /** Parses the FDE at `offset` (and its CIE). */
  fdeAt(offset: number): Fde {
    const h = readEntryHeader(this.data, offset);
    if (!h) throw new Error(`no FDE at 0x${offset.toString(16)} (terminator)`);
    if (h.id === 0n) throw new Error(`entry at 0x${offset.toString(16)} is a CIE, not an FDE`);
    return this.parseFde(h);
  }

  /** Walks every entry in section order. */
  parseAll(): EhFrame {
    const cies: Cie[] = [];
    const fdes: Fde[] = [];
    const errors: string[] = [];
    let offset = 0;
    while (offset + 4 <= this.data.length) {
      let h: EntryHeader | undefined;
      try {
        h = readEntryHeader(this.data, offset);
      } catch (e) {
        errors.push(`.eh_frame: ${(e as Error).message}; stopped`);
        break;
      }
      if (!h) {
        offset += 4; // terminator (or padding): keep scanning
        continue;
      }
      try {
        if (h.id === 0n) {
          cies.push(this.cieAt(h.offset));
        } else {
          fdes.push(this.parseFde(h));
        }
      } catch (e) {
        const what = h.id === 0n ? 'CIE' : 'FDE';
        errors.push(`.eh_frame ${what} at 0x${h.offset.toString(16)}: ${(e as Error).message}`);
      }
      offset = h.end;
    }
    return { cies, fdes, errors };
  }

  private parseCie(h: EntryHeader): Cie {
    const r = new ByteReader(this.data, h.bodyPos, h.end);
    const version = r.u8();
    if (version !== 1 && version !== 3) throw new Error(`unsupported CIE version ${version}`);
    const augmentation = r.cstring();
    if (augmentation !== '' && augmentation[0] !== 'z') {
      throw new Error(`unsupported augmentation "${augmentation}"`);
    }
    const codeAlign = r.uleb();
    const dataAlign = r.sleb();
    const raReg = version === 1 ? r.u8() : r.uleb();
    let fdeEncoding = DW_EH_PE_absptr;
    let lsdaEncoding = DW_EH_PE_omit;
    let personalityEncoding = DW_EH_PE_omit;
    let personality: bigint | undefined;
    let signalFrame = false;
    if (augmentation !== '') {
      const augLen = r.uleb();
      const augEnd = r.pos + augLen;
      if (augEnd > h.end) throw new Error('augmentation data runs past the entry');
      const ar = new ByteReader(this.data, r.pos, augEnd);
      for (const c of augmentation.slice(1)) {
        switch (c) {
          case 'R':
            fdeEncoding = ar.u8();
            break;
          case 'L':
            lsdaEncoding = ar.u8();
            break;
          case 'P':
            personalityEncoding = ar.u8();
            personality = readEncodedPointer(ar, personalityEncoding & 0x7f, this.vaddr, this.bases);
            break;
          case 'S':
            signalFrame = true;
            break;
          case 'B': // AArch64 BTI, no data
          case 'G': // memory tagging, no data
            break;
          default:
            throw new Error(`unknown augmentation '${c}' in "${augmentation}"`);
        }
      }
      r.pos = augEnd;
    }
    return {
      offset: h.offset,
      version,
      augmentation,
      codeAlign,
      dataAlign,
      raReg,
      fdeEncoding,
      lsdaEncoding,
      personalityEncoding,
      personality,
      signalFrame,
      initialInstructions: this.data.subarray(r.pos, h.end),
      initialInstructionsVaddr: this.vaddr + BigInt(r.pos),
    };
  }

  private parseFde(h: EntryHeader): Fde {
    const cieOffset = h.idPos - Number(h.id);
    if (cieOffset < 0) throw new Error(`CIE pointer ${h.id} points before the section`);
    const cie = this.cieAt(cieOffset);
    const r = new ByteReader(this.data, h.bodyPos, h.end);
    const pcBegin = readEncodedPointer(r, cie.fdeEncoding, this.vaddr, this.bases);
    const pcRange = readPointerFormat(r, cie.fdeEncoding & 0x0f);
    let lsda: bigint | undefined;
    if (cie.augmentation !== '') {
      const augLen = r.uleb();
      const augEnd = r.pos + augLen;
      if (augEnd > h.end) throw new Error('augmentation data runs past the entry');
      if (cie.lsdaEncoding !== DW_EH_PE_omit && augLen > 0) {
        const ar = new ByteReader(this.data, r.pos, augEnd);
        lsda = readEncodedPointer(ar, cie.lsdaEncoding & 0x7f, this.vaddr, { ...this.bases, func: pcBegin });
      }
      r.pos = augEnd;
    }
    return {
      offset: h.offset,
      cie,
      pcBegin,
      pcEnd: U64(pcBegin + pcRange),
      lsda,
      instructions: this.data.subarray(r.pos, h.end),
      instructionsVaddr: this.vaddr + BigInt(r.pos),
    };
  }
}

/** Parses every CIE and FDE of an `.eh_frame` section located at `vaddr`. */
export function parseEhFrame(data: Buffer, vaddr: bigint, bases: PointerBases = {}): EhFrame {
  return new EhFrameReader(data, vaddr, bases).parseAll();
}

/** Parses `.eh_frame_hdr` located at `vaddr`. Throws on a malformed header. */
export function parseEhFrameHdr(data: Buffer, vaddr: bigint): EhFrameHdr {
  const r = new ByteReader(data);
  const version = r.u8();
  if (version !== 1) throw new Error(`unsupported .eh_frame_hdr version ${version}`);
  const ptrEnc = r.u8();
  const countEnc = r.u8();
  const tableEnc = r.u8();
  const bases = { data: vaddr };
  const ehFramePtr = ptrEnc === DW_EH_PE_omit ? 0n : readEncodedPointer(r, ptrEnc, vaddr, bases);
  let fdeCount = 0;
  if (countEnc !== DW_EH_PE_omit) fdeCount = Number(readEncodedPointer(r, countEnc, vaddr, bases));
  if (tableEnc === DW_EH_PE_omit) fdeCount = 0;
  // Every table entry takes at least two bytes: a count the section cannot
  // hold is malformed (and must not size an allocation).
  if (fdeCount * 2 > data.length - r.pos) throw new RangeError(`.eh_frame_hdr claims ${fdeCount} entries, more than the section holds`);
  const initialLocs = new BigUint64Array(fdeCount);
  const fdeAddrs = new BigUint64Array(fdeCount);
  if (tableEnc === (DW_EH_PE_datarel | DW_EH_PE_sdata4)) {
    // The encoding every linker emits: a fast path without a reader per field.
    if (r.pos + fdeCount * 8 > data.length) throw new RangeError('.eh_frame_hdr table runs past the section');
    for (let i = 0, p = r.pos; i < fdeCount; i++, p += 8) {
      initialLocs[i] = U64(vaddr + BigInt(data.readInt32LE(p)));
      fdeAddrs[i] = U64(vaddr + BigInt(data.readInt32LE(p + 4)));
    }
  } else {
    for (let i = 0; i < fdeCount; i++) {
      initialLocs[i] = readEncodedPointer(r, tableEnc, vaddr, bases);
      fdeAddrs[i] = readEncodedPointer(r, tableEnc, vaddr, bases);
    }
  }
  return { version, ehFramePtr, fdeCount, initialLocs, fdeAddrs };
}

/**
 * Binary search of the header table: the address of the FDE whose
 * initial_loc is the greatest one <= pc, or undefined. The caller parses that
 * FDE and checks pc < pcEnd (the table does not record the ranges).
 */
export function lookupFdeAddress(hdr: EhFrameHdr, pc: bigint): bigint | undefined {
  const locs = hdr.initialLocs;
  const found = lastAtOrBelow(locs.length, (i) => locs[i], pc);
  return found < 0 ? undefined : hdr.fdeAddrs[found];
}
