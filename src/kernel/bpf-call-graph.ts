// Which functions each BPF program of an object calls, read from the object
// file itself (ELF64, little-endian, as clang writes it for -target bpf):
// the verifier's stats log gives one stack depth per subprogram but neither
// their names nor who calls whom, and the kernel's 512-byte limit is on the
// frames along a call chain, so the chains come from here.

/** One program: its subprograms in the order libbpf appends them, and the calls. */
export interface ProgramCallGraph {
  program: string;
  /**
   * The functions the program can reach, in the order libbpf appends them
   * after the program's own code (depth-first, each at its first call):
   * the order of the verifier's "stack depth" figures after the first.
   */
  subprograms: string[];
  /** Caller -> the functions it calls (the program's own name for its body). */
  calls: Map<string, string[]>;
}

const SHT_SYMTAB = 2;
const SHT_REL = 9;
const SHF_EXECINSTR = 0x4n;
const STT_FUNC = 2;
const STT_SECTION = 3;
/** BPF_JMP | BPF_CALL; src_reg BPF_PSEUDO_CALL marks a call to a BPF function. */
const BPF_CALL = 0x85;
const BPF_PSEUDO_CALL = 1;
const INSN = 8;

interface Section {
  name: string;
  type: number;
  flags: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
}

interface Symbol {
  name: string;
  type: number;
  section: number;
  value: number;
  size: number;
}

function cString(buf: Buffer, at: number): string {
  const end = buf.indexOf(0, at);
  return buf.toString('latin1', at, end < 0 ? buf.length : end);
}

function sections(elf: Buffer): Section[] {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) {
    throw new Error('not a 64-bit little-endian ELF object');
  }
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const raw = Array.from({ length: shnum }, (_, i) => {
    const at = shoff + i * shentsize;
    return {
      nameOff: elf.readUInt32LE(at),
      type: elf.readUInt32LE(at + 4),
      flags: elf.readBigUInt64LE(at + 8),
      offset: Number(elf.readBigUInt64LE(at + 0x18)),
      size: Number(elf.readBigUInt64LE(at + 0x20)),
      link: elf.readUInt32LE(at + 0x28),
      info: elf.readUInt32LE(at + 0x2c),
    };
  });
  const names = raw[shstrndx]!;
  return raw.map((s) => ({ ...s, name: cString(elf, names.offset + s.nameOff) }));
}

function symbols(elf: Buffer, secs: Section[]): Symbol[] {
  const symtab = secs.find((s) => s.type === SHT_SYMTAB);
  if (!symtab) throw new Error('the object has no symbol table');
  const strtab = secs[symtab.link]!;
  const out: Symbol[] = [];
  for (let at = symtab.offset; at + 24 <= symtab.offset + symtab.size; at += 24) {
    out.push({
      name: cString(elf, strtab.offset + elf.readUInt32LE(at)),
      type: elf[at + 4]! & 0xf,
      section: elf.readUInt16LE(at + 6),
      value: Number(elf.readBigUInt64LE(at + 8)),
      size: Number(elf.readBigUInt64LE(at + 16)),
    });
  }
  return out;
}

/** Every program's call graph, from the bytes of a BPF object file. */
export function bpfCallGraphs(elf: Buffer): ProgramCallGraph[] {
  const secs = sections(elf);
  const syms = symbols(elf, secs);
  const funcs = syms.filter((s) => s.type === STT_FUNC && (secs[s.section]?.flags ?? 0n) & SHF_EXECINSTR);
  const funcAt = (section: number, offset: number): Symbol | undefined =>
    funcs.find((f) => f.section === section && offset >= f.value && offset < f.value + f.size);
  // Relocations by (section, offset): a call into another section carries one.
  const relocs = new Map<string, Symbol>();
  for (const rel of secs.filter((s) => s.type === SHT_REL)) {
    for (let at = rel.offset; at + 16 <= rel.offset + rel.size; at += 16) {
      const symIndex = Number(elf.readBigUInt64LE(at + 8) >> 32n);
      relocs.set(`${rel.info}:${Number(elf.readBigUInt64LE(at))}`, syms[symIndex]!);
    }
  }
  const calleesOf = new Map<Symbol, Symbol[]>();
  const callees = (f: Symbol): Symbol[] => {
    const known = calleesOf.get(f);
    if (known) return known;
    const out: Symbol[] = [];
    const base = secs[f.section]!.offset;
    for (let off = f.value; off + INSN <= f.value + f.size; off += INSN) {
      const code = elf[base + off]!;
      const src = elf[base + off + 1]! >> 4;
      if (code !== BPF_CALL || src !== BPF_PSEUDO_CALL) continue;
      const imm = elf.readInt32LE(base + off + 4);
      const target = relocs.get(`${f.section}:${off}`);
      let callee: Symbol | undefined;
      if (!target) callee = funcAt(f.section, off + (imm + 1) * INSN);
      else if (target.type === STT_FUNC) callee = target;
      else if (target.type === STT_SECTION) callee = funcAt(target.section, target.value + (imm + 1) * INSN);
      if (callee && !out.includes(callee)) out.push(callee);
    }
    calleesOf.set(f, out);
    return out;
  };
  const programs = funcs.filter((f) => secs[f.section]!.name !== '.text');
  return programs.map((p) => {
    const subprograms: string[] = [];
    const calls = new Map<string, string[]>();
    const visit = (f: Symbol): void => {
      const list = callees(f);
      calls.set(f.name, list.map((c) => c.name));
      for (const c of list) {
        if (c === p || subprograms.includes(c.name)) continue;
        subprograms.push(c.name);
        visit(c);
      }
    };
    visit(p);
    return { program: p.name, subprograms, calls };
  });
}
