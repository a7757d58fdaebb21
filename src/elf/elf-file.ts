/**
 * ELF headers, load segments, sections and build-id.
 *
 * elfy parses the headers, program headers and section headers (and resolves
 * section names). We call its parser step by step so that files without
 * section headers (sstrip'ed) still parse, convert its numbers to bigint where
 * they are addresses, and re-read what elfy gets wrong on 64-bit files
 * (sh_addralign/sh_entsize) and what it maps to strings (sh_type) directly
 * from the section header table.
 *
 * Only 64-bit little-endian files are supported (x86-64 targets).
 */
import elfy from 'elfy';

export type ElfType = 'NONE' | 'REL' | 'EXEC' | 'DYN' | 'CORE';

export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;

export const SHT_PROGBITS = 1;
export const SHT_SYMTAB = 2;
export const SHT_STRTAB = 3;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_DYNSYM = 11;

export const SHF_ALLOC = 0x2n;
export const SHF_EXECINSTR = 0x4n;

export interface LoadSegment {
  vaddr: bigint;
  offset: bigint;
  filesz: bigint;
  memsz: bigint;
  /** PF_R | PF_W | PF_X bits. */
  flags: number;
  align: bigint;
}

export interface ElfSection {
  index: number;
  name: string;
  /** Raw sh_type (SHT_*). */
  type: number;
  /** Raw sh_flags (SHF_*). */
  flags: bigint;
  addr: bigint;
  /** File offset; number since it indexes the Buffer. */
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
  /** Section contents; empty for SHT_NOBITS. A view into the file buffer. */
  data: Buffer;
}

export interface ElfInfo {
  type: ElfType;
  /** e_machine (62 = x86-64). */
  machine: number;
  entry: bigint;
  /** PT_LOAD segments in program header order. */
  segments: LoadSegment[];
  sections: ElfSection[];
  sectionsByName: Map<string, ElfSection>;
  /** Lower-case hex of NT_GNU_BUILD_ID, if present. */
  buildId: string | undefined;
}

const TYPE_NAMES: Record<string, ElfType> = {
  none: 'NONE',
  rel: 'REL',
  exec: 'EXEC',
  dyn: 'DYN',
  core: 'CORE',
};

const NT_GNU_BUILD_ID = 3;

/** Parses an ELF file held in memory. Throws on malformed or unsupported input. */
export function parseElf(buf: Buffer): ElfInfo {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error('not an ELF file');
  if (buf[4] !== 2) throw new Error('unsupported ELF class (only 64-bit)');
  if (buf[5] !== 1) throw new Error('unsupported ELF byte order (only little-endian)');

  // elfy and the raw reads below use Buffer accessors that throw RangeErrors
  // on sizes pointing past the file: all of that is a malformed file.
  const phentsize = buf.readUInt16LE(54);
  const shentsize = buf.readUInt16LE(58);
  if ((buf.readUInt16LE(56) > 0 && phentsize < 56) || (buf.readUInt16LE(60) > 0 && shentsize < 64)) {
    throw new Error('malformed ELF file: header table entries too small');
  }
  try {
    return parseElfTables(buf);
  } catch (err) {
    throw new Error(`malformed ELF file: ${(err as Error).message}`);
  }
}

function parseElfTables(buf: Buffer): ElfInfo {
  const parser = new elfy.Parser();
  const header = parser.parseHeader(buf);
  let body = parser.parseBody(buf, header);
  const hasNames =
    header.shstrndx > 0 &&
    header.shstrndx < body.sections.length &&
    body.sections[header.shstrndx].type === 'strtab';
  if (hasNames) body = parser.resolveBody(body, header);

  const type = TYPE_NAMES[header.type ?? ''] ?? 'NONE';
  const machine = buf.readUInt16LE(18);

  const segments: LoadSegment[] = [];
  for (const p of body.programs) {
    if (p.type !== 'load') continue;
    segments.push({
      vaddr: BigInt(p.vaddr),
      offset: BigInt(p.offset),
      filesz: BigInt(p.filesz),
      memsz: BigInt(p.memsz),
      flags: (p.flags.r ? PF_R : 0) | (p.flags.w ? PF_W : 0) | (p.flags.x ? PF_X : 0),
      align: BigInt(p.align),
    });
  }

  const sections: ElfSection[] = [];
  const sectionsByName = new Map<string, ElfSection>();
  body.sections.forEach((s, index) => {
    // Raw fields elfy misreads or stringifies (Elf64_Shdr layout).
    const hdr = header.shoff + index * header.shentsize;
    const rawType = buf.readUInt32LE(hdr + 4);
    const rawFlags = buf.readBigUInt64LE(hdr + 8);
    const addralign = Number(buf.readBigUInt64LE(hdr + 48));
    const entsize = Number(buf.readBigUInt64LE(hdr + 56));
    const name = hasNames ? String(s.name) : '';
    const sec: ElfSection = {
      index,
      name,
      type: rawType,
      flags: rawFlags,
      addr: BigInt(s.addr),
      offset: s.off,
      size: s.size,
      link: s.link,
      info: s.info,
      addralign,
      entsize,
      data: rawType === SHT_NOBITS ? buf.subarray(0, 0) : s.data,
    };
    sections.push(sec);
    if (name !== '' && !sectionsByName.has(name)) sectionsByName.set(name, sec);
  });

  let buildId: string | undefined;
  const noteSources: Buffer[] = [];
  const bid = sectionsByName.get('.note.gnu.build-id');
  if (bid) noteSources.push(bid.data);
  for (const s of sections) if (s.type === SHT_NOTE && s !== bid) noteSources.push(s.data);
  if (sections.length === 0) for (const p of body.programs) if (p.type === 'note') noteSources.push(p.data);
  for (const data of noteSources) {
    buildId = findBuildId(data);
    if (buildId !== undefined) break;
  }

  return { type, machine, entry: BigInt(header.entry), segments, sections, sectionsByName, buildId };
}

/** Scans a note section/segment for NT_GNU_BUILD_ID with owner "GNU". */
export function findBuildId(notes: Buffer): string | undefined {
  let off = 0;
  while (off + 12 <= notes.length) {
    const namesz = notes.readUInt32LE(off);
    const descsz = notes.readUInt32LE(off + 4);
    const type = notes.readUInt32LE(off + 8);
    const nameOff = off + 12;
    const descOff = nameOff + align4(namesz);
    const next = descOff + align4(descsz);
    if (next > notes.length) break;
    if (
      type === NT_GNU_BUILD_ID &&
      namesz === 4 &&
      notes.toString('latin1', nameOff, nameOff + 3) === 'GNU' &&
      descsz > 0
    ) {
      return notes.toString('hex', descOff, descOff + descsz);
    }
    off = next;
  }
  return undefined;
}

/** n rounded up to a multiple of 4; n is a u32, so plain arithmetic (not 32-bit ops, which wrap). */
function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

export function getSection(info: ElfInfo, name: string): ElfSection | undefined {
  return info.sectionsByName.get(name);
}

/** File offset -> vaddr through the PT_LOAD segment whose file bytes contain it. */
export function fileOffsetToVaddr(info: ElfInfo, off: bigint): bigint | undefined {
  for (const s of info.segments) {
    if (off >= s.offset && off < s.offset + s.filesz) return off - s.offset + s.vaddr;
  }
  return undefined;
}

/** vaddr -> file offset through the PT_LOAD segment whose file bytes contain it. */
export function vaddrToFileOffset(info: ElfInfo, vaddr: bigint): bigint | undefined {
  return vaddrToFileOffsetIn(info.segments, vaddr);
}

export function vaddrToFileOffsetIn(segments: readonly LoadSegment[], vaddr: bigint): bigint | undefined {
  for (const s of segments) {
    if (vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) return vaddr - s.vaddr + s.offset;
  }
  return undefined;
}

/**
 * Runtime address in a process -> ELF vaddr, given the mapping that contains
 * it (its start and file offset, as in /proc/<pid>/maps).
 */
export function runtimeAddressToVaddr(
  info: ElfInfo,
  mapping: { start: bigint; offset: bigint },
  addr: bigint,
): bigint | undefined {
  return fileOffsetToVaddr(info, addr - mapping.start + mapping.offset);
}

/** True if vaddr lies in an executable PT_LOAD segment. */
export function isExecutableVaddr(info: ElfInfo, vaddr: bigint): boolean {
  for (const s of info.segments) {
    if ((s.flags & PF_X) !== 0 && vaddr >= s.vaddr && vaddr < s.vaddr + s.memsz) return true;
  }
  return false;
}
