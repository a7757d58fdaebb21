import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ElfInfo,
  PF_R,
  PF_W,
  PF_X,
  fileOffsetToVaddr,
  findBuildId,
  parseElf,
  runtimeAddressToVaddr,
  vaddrToFileOffset,
} from '../../src/elf/elf-file.js';
import { type RawSymbol, buildSymbolTable, findSymbol, lookup, readSymbols } from '../../src/elf/elf-symbols.js';

const FIXTURES = new URL('../../fixtures/elf/', import.meta.url).pathname;
const LIBLUAJIT = '/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2';

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
}

interface NmSym {
  addr: bigint;
  size: bigint | undefined;
  type: string;
  name: string;
}

/** `nm -S --defined-only [-D]`: text symbols (t/T/w/W/i). */
function nmText(file: string, dynamic = false): NmSym[] {
  const out = run('nm', ['-S', '--defined-only', ...(dynamic ? ['-D'] : []), file]);
  const syms: NmSym[] = [];
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    let addr: string, size: string | undefined, type: string, name: string;
    if (f.length === 4) [addr, size, type, name] = f;
    else if (f.length === 3) [addr, type, name] = f;
    else continue;
    if (!/^[tTwWi]$/.test(type)) continue;
    syms.push({ addr: BigInt('0x' + addr), size: size === undefined ? undefined : BigInt('0x' + size), type, name: name.replace(/@.*$/, '') });
  }
  // nm's w/W only says "weak": keep those in executable segments (not data_start & co).
  const exec = readelfLoads(file).filter((l) => l.flags.includes('E'));
  return syms.filter((s) => !/^[wW]$/.test(s.type) || exec.some((l) => s.addr >= l.vaddr && s.addr < l.vaddr + l.memsz));
}

/** `readelf -SW`: name -> { addr, offset }. */
function readelfSections(file: string): Map<string, { addr: bigint; offset: bigint; size: bigint }> {
  const out = run('readelf', ['-SW', file]);
  const m = new Map<string, { addr: bigint; offset: bigint; size: bigint }>();
  for (const line of out.split('\n')) {
    const r = /\]\s+(\S+)\s+\S+\s+([0-9a-f]{8,})\s+([0-9a-f]+)\s+([0-9a-f]+)/.exec(line);
    if (r) m.set(r[1], { addr: BigInt('0x' + r[2]), offset: BigInt('0x' + r[3]), size: BigInt('0x' + r[4]) });
  }
  return m;
}

/** `readelf -lW`: the LOAD program headers. */
function readelfLoads(file: string) {
  const out = run('readelf', ['-lW', file]);
  const loads: { offset: bigint; vaddr: bigint; filesz: bigint; memsz: bigint; flags: string }[] = [];
  for (const line of out.split('\n')) {
    const r = /^\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+([RWE ]+?)\s+0x/.exec(line);
    if (r) loads.push({ offset: BigInt('0x' + r[1]), vaddr: BigInt('0x' + r[2]), filesz: BigInt('0x' + r[3]), memsz: BigInt('0x' + r[4]), flags: r[5].replace(/\s/g, '') });
  }
  return loads;
}

function readelfBuildId(file: string): string | undefined {
  return /Build ID: ([0-9a-f]+)/.exec(run('readelf', ['-n', file]))?.[1];
}

let dir: string;
let lib: string; // PIC shared library with symtab
let libStripped: string;
let libHighBase: string; // shared library linked at a non-zero base (vaddr != file offset)
let prog: string; // PIE
let progExec: string; // non-PIE (ET_EXEC)

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'elf-symbols-'));
  lib = join(dir, 'libsymlib.so');
  libStripped = join(dir, 'libsymlib-stripped.so');
  libHighBase = join(dir, 'libsymlib-high.so');
  prog = join(dir, 'symprog');
  progExec = join(dir, 'symprog-exec');
  const src = (f: string) => join(FIXTURES, f);
  run('gcc', ['-O1', '-fPIC', '-shared', '-o', lib, src('symlib.c')]);
  run('gcc', ['-O1', '-fPIC', '-shared', '-Wl,-Ttext-segment=0x200000', '-o', libHighBase, src('symlib.c')]);
  run('strip', ['--strip-all', '-o', libStripped, lib]);
  run('gcc', ['-O1', '-fPIE', '-pie', '-o', prog, src('symprog.c'), '-L', dir, '-lsymlib', `-Wl,-rpath,${dir}`]);
  run('gcc', ['-O1', '-fno-pie', '-no-pie', '-o', progExec, src('symprog.c'), '-L', dir, '-lsymlib', `-Wl,-rpath,${dir}`]);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function load(file: string): { info: ElfInfo; buf: Buffer } {
  const buf = readFileSync(file);
  return { info: parseElf(buf), buf };
}

describe('parseElf', () => {
  it('reads type, load segments, sections and build-id like readelf', () => {
    for (const file of [lib, libHighBase, prog, progExec, LIBLUAJIT]) {
      const { info } = load(file);
      expect(info.type).toBe(file === progExec ? 'EXEC' : 'DYN');
      expect(info.machine).toBe(62);
      const loads = readelfLoads(file);
      expect(info.segments.map((s) => ({ offset: s.offset, vaddr: s.vaddr, filesz: s.filesz, memsz: s.memsz }))).toEqual(
        loads.map(({ flags: _f, ...rest }) => rest),
      );
      info.segments.forEach((s, i) => {
        const f = loads[i].flags;
        expect(s.flags).toBe((f.includes('R') ? PF_R : 0) | (f.includes('W') ? PF_W : 0) | (f.includes('E') ? PF_X : 0));
      });
      const secs = readelfSections(file);
      for (const name of ['.text', '.dynsym', '.dynstr']) {
        const s = info.sectionsByName.get(name)!;
        expect(s.addr).toBe(secs.get(name)!.addr);
        expect(BigInt(s.offset)).toBe(secs.get(name)!.offset);
        expect(BigInt(s.size)).toBe(secs.get(name)!.size);
      }
      expect(info.sectionsByName.get('.dynsym')!.entsize).toBe(24);
      expect(info.buildId).toBe(readelfBuildId(file));
      expect(info.buildId).toMatch(/^[0-9a-f]{40}$/);
    }
  });

  it('gives empty data for NOBITS sections', () => {
    const { info } = load(prog);
    expect(info.sectionsByName.get('.bss')!.data.length).toBe(0);
  });

  it('rejects non-ELF and 32-bit input', () => {
    expect(() => parseElf(Buffer.from('#!/bin/sh\necho hi\n'.padEnd(128)))).toThrow(/not an ELF/);
    const b = Buffer.from(readFileSync(lib));
    b[4] = 1;
    expect(() => parseElf(b)).toThrow(/64-bit/);
  });

  it('parses a file without section headers', () => {
    const b = Buffer.from(readFileSync(lib));
    b.writeBigUInt64LE(0n, 0x28); // e_shoff
    b.writeUInt16LE(0, 0x3c); // e_shnum
    b.writeUInt16LE(0, 0x3e); // e_shstrndx
    const info = parseElf(b);
    expect(info.sections).toEqual([]);
    expect(info.segments.length).toBeGreaterThan(0);
    expect(info.buildId).toBe(readelfBuildId(lib)); // from PT_NOTE
    expect(readSymbols(info, b).symbols).toEqual([]);
  });

  it('findBuildId skips other notes', () => {
    const note = (type: number, name: string, desc: Buffer) => {
      const n = Buffer.alloc((name.length + 1 + 3) & ~3);
      n.write(name, 'latin1');
      const d = Buffer.alloc((desc.length + 3) & ~3);
      desc.copy(d);
      const h = Buffer.alloc(12);
      h.writeUInt32LE(name.length + 1, 0);
      h.writeUInt32LE(desc.length, 4);
      h.writeUInt32LE(type, 8);
      return Buffer.concat([h, n, d]);
    };
    const notes = Buffer.concat([note(1, 'GNU', Buffer.alloc(16)), note(3, 'XYZ', Buffer.from([1])), note(3, 'GNU', Buffer.from([0xde, 0xad, 0xbe]))]);
    expect(findBuildId(notes)).toBe('deadbe');
    expect(findBuildId(Buffer.alloc(0))).toBeUndefined();
  });

  it('maps file offsets to vaddrs through PT_LOAD segments', () => {
    const { info } = load(libHighBase);
    const text = info.sectionsByName.get('.text')!;
    expect(text.addr).not.toBe(BigInt(text.offset)); // the point of this build
    expect(fileOffsetToVaddr(info, BigInt(text.offset) + 5n)).toBe(text.addr + 5n);
    expect(vaddrToFileOffset(info, text.addr + 5n)).toBe(BigInt(text.offset) + 5n);
    expect(fileOffsetToVaddr(info, 1n << 40n)).toBeUndefined();
    expect(vaddrToFileOffset(info, 1n)).toBeUndefined();
    // A runtime address in a mapping of the text segment.
    const seg = info.segments.find((s) => s.flags & PF_X)!;
    const mapping = { start: 0x7f0000100000n, offset: seg.offset & ~0xfffn };
    const addr = mapping.start + (BigInt(text.offset) - mapping.offset) + 0x10n;
    expect(runtimeAddressToVaddr(info, mapping, addr)).toBe(text.addr + 0x10n);
  });
});

describe('readSymbols', () => {
  it('finds every text symbol nm reports, at nm addresses', () => {
    for (const file of [lib, libHighBase, prog, progExec]) {
      const { info, buf } = load(file);
      const table = readSymbols(info, buf);
      const syms = nmText(file);
      expect(syms.length).toBeGreaterThan(8);
      for (const s of syms) {
        expect(findSymbol(table, s.name)?.vaddr, `${file}: ${s.name}`).toBe(s.addr);
      }
    }
  });

  it('is sorted and has one symbol per address', () => {
    const { info, buf } = load(lib);
    const { symbols } = readSymbols(info, buf);
    for (let i = 1; i < symbols.length; i++) expect(symbols[i - 1].start < symbols[i].start).toBe(true);
  });

  it('looks up addresses inside functions', () => {
    for (const file of [lib, libHighBase, progExec]) {
      const { info, buf } = load(file);
      const table = readSymbols(info, buf);
      const starts = new Set(nmText(file).map((s) => s.addr));
      for (const s of nmText(file)) {
        if (!s.size) continue;
        const at = lookup(table, s.addr)!;
        expect(at.start).toBe(s.addr);
        expect(lookup(table, s.addr + s.size - 1n)!.start).toBe(s.addr);
        expect(lookup(table, s.addr + s.size / 2n)!.start).toBe(s.addr);
        const after = lookup(table, s.addr + s.size);
        if (!starts.has(s.addr + s.size)) expect(after?.start === s.addr).toBe(false);
      }
      expect(lookup(table, 0n)).toBeUndefined();
      expect(lookup(table, 1n << 45n)).toBeUndefined();
    }
  });

  it('handles aliases, weak, IFUNC, zero-size and NOTYPE symbols', () => {
    const { info, buf } = load(lib);
    const table = readSymbols(info, buf);
    const nm = new Map(nmText(lib).map((s) => [s.name, s]));
    // Aliases: both names resolve to one address; lookup prefers one name.
    expect(findSymbol(table, 'symlib_alias')!.vaddr).toBe(findSymbol(table, 'symlib_exported')!.vaddr);
    expect(['symlib_exported', 'symlib_alias']).toContain(lookup(table, nm.get('symlib_exported')!.addr + 2n)!.name);
    expect(lookup(table, nm.get('symlib_weak')!.addr + 1n)!.name).toBe('symlib_weak');
    expect(findSymbol(table, 'symlib_ifunc')!.vaddr).toBe(nm.get('symlib_ifunc')!.addr);
    expect(lookup(table, nm.get('symlib_static_helper')!.addr + 3n)!.name).toBe('symlib_static_helper');
    // Zero-size function: covers up to the next symbol.
    const zero = nm.get('symlib_zero_size')!;
    const notype = nm.get('symlib_notype')!;
    const after = nm.get('symlib_after_asm')!;
    expect(zero.size).toBeUndefined();
    expect(findSymbol(table, 'symlib_zero_size')!.size).toBe(0n);
    expect(lookup(table, zero.addr)!.name).toBe('symlib_zero_size');
    expect(lookup(table, notype.addr - 1n)!.name).toBe('symlib_zero_size');
    expect(lookup(table, notype.addr)!.name).toBe('symlib_notype');
    expect(lookup(table, after.addr - 1n)!.name).toBe('symlib_notype');
    expect(lookup(table, after.addr)!.name).toBe('symlib_after_asm');
    // Data symbols are not functions.
    expect(findSymbol(table, 'symlib_counter')).toBeUndefined();
  });

  it('uses .dynsym alone when the file is stripped', () => {
    const { info, buf } = load(libStripped);
    expect(info.sectionsByName.has('.symtab')).toBe(false);
    const table = readSymbols(info, buf);
    const dyn = nmText(lib, true);
    expect(dyn.map((s) => s.name)).toContain('symlib_exported');
    for (const s of dyn) expect(findSymbol(table, s.name)!.vaddr).toBe(s.addr);
    expect(findSymbol(table, 'symlib_static_helper')).toBeUndefined();
    const exp = findSymbol(table, 'symlib_exported')!;
    expect(lookup(table, exp.vaddr + 4n)!.start).toBe(exp.vaddr);
  });

  it('gives the file offset of a dynamic symbol like readelf does', () => {
    for (const file of [libHighBase, lib, progExec]) {
      const { info, buf } = load(file);
      const table = readSymbols(info, buf);
      const text = readelfSections(file).get('.text')!;
      const dynsyms = run('readelf', ['--dyn-syms', '-W', file]);
      const name = file === progExec ? 'symprog_global' : 'symlib_exported';
      const line = dynsyms.split('\n').find((l) => l.trim().endsWith(` ${name}`));
      if (file === progExec) {
        // Non-PIE programs export nothing by default; use .symtab via nm.
        expect(line).toBeUndefined();
      } else {
        expect(line).toBeDefined();
        const value = BigInt('0x' + line!.trim().split(/\s+/)[1]);
        expect(findSymbol(table, name)!.vaddr).toBe(value);
      }
      const found = findSymbol(table, name)!;
      expect(found.fileOffset).toBe(found.vaddr - text.addr + text.offset);
      if (file === libHighBase) expect(found.fileOffset).not.toBe(found.vaddr);
      if (file === progExec) expect(found.vaddr - found.fileOffset!).toBe(0x400000n);
    }
  });
});

describe('buildSymbolTable', () => {
  const raw = (name: string, value: bigint, size: bigint, extra: Partial<RawSymbol> = {}): RawSymbol => ({
    name,
    value,
    size,
    type: 2,
    bind: 1,
    sectionEnd: 0x2000n,
    fromSymtab: true,
    ...extra,
  });

  it('prefers sized, global, less-underscored names at one address, keeps all names findable', () => {
    const t = buildSymbolTable(
      [
        raw('__foo_internal', 0x1000n, 0x20n, { bind: 0 }),
        raw('foo', 0x1000n, 0x20n),
        raw('foo_unsized', 0x1000n, 0n),
        raw('_foo', 0x1000n, 0x20n, { bind: 2 }),
        raw('bar', 0x1100n, 0n),
      ],
      [],
    );
    expect(t.symbols.map((s) => s.name)).toEqual(['foo', 'bar']);
    expect(t.byName.size).toBe(5);
    expect(lookup(t, 0x101fn)?.name).toBe('foo');
    expect(lookup(t, 0x1020n)).toBeUndefined();
    // The last unsized symbol is capped at its section end.
    expect(lookup(t, 0x1fffn)?.name).toBe('bar');
    expect(lookup(t, 0x2000n)).toBeUndefined();
    expect(findSymbol(t, 'bar')).toEqual({ name: 'bar', vaddr: 0x1100n, size: 0n, fileOffset: undefined });
  });

  it('gives the size of an aliased sized symbol to an unsized winner', () => {
    const t = buildSymbolTable([raw('a', 0x1000n, 0n, { bind: 1 }), raw('__b', 0x1000n, 0x10n, { bind: 0 })], []);
    expect(t.symbols).toHaveLength(1);
    expect(lookup(t, 0x100fn)).toBeDefined();
    expect(lookup(t, 0x1010n)).toBeUndefined();
  });

  it('prefers a global definition over a local one of the same name', () => {
    const t = buildSymbolTable([raw('dup', 0x1000n, 0x10n, { bind: 0 }), raw('dup', 0x1800n, 0x10n, { bind: 1 })], []);
    expect(findSymbol(t, 'dup')!.vaddr).toBe(0x1800n);
  });
});

describe('real libluajit', () => {
  it('finds lua_resume at the address nm -D shows, with its file offset', () => {
    const { info, buf } = load(LIBLUAJIT);
    const table = readSymbols(info, buf);
    const nmD = new Map(nmText(LIBLUAJIT, true).map((s) => [s.name, s]));
    for (const name of ['lua_resume', 'lua_pcall', 'luaL_newstate', 'lua_yield']) {
      const f = findSymbol(table, name)!;
      expect(f, name).toBeDefined();
      expect(f.vaddr).toBe(nmD.get(name)!.addr);
      const text = readelfSections(LIBLUAJIT).get('.text')!;
      expect(f.fileOffset).toBe(f.vaddr - text.addr + text.offset);
      expect(lookup(table, f.vaddr + 1n)!.name).toBe(name);
    }
    // Every dynamic function symbol is found at nm's address.
    for (const [name, s] of nmD) expect(findSymbol(table, name)?.vaddr, name).toBe(s.addr);
  });
});
