import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, SYSTEM_LIBS } from '../support/unwind.js';
import { parseElf } from '../../src/elf/elf-file.js';
import { CfaError, type CfaRule, type RegRule, matchPltExpression, runCfaProgram } from '../../src/elf/cfa-program.js';
import {
  ByteReader,
  EhFrameReader,
  lookupFdeAddress,
  parseEhFrame,
  parseEhFrameHdr,
  readEncodedPointer,
} from '../../src/elf/eh-frame.js';

const FIXTURES = new URL('../../fixtures/unwind/', import.meta.url).pathname;


// ---------------------------------------------------------------------------
// readelf --debug-dump=frames-interp as the reference.

/** readelf's x86-64 DWARF register names. */
const REG_NAMES = ['rax', 'rdx', 'rcx', 'rbx', 'rsi', 'rdi', 'rbp', 'rsp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip'];

interface RefRow {
  loc: bigint;
  cfa: string;
  rbp: string;
  ra: string;
}

interface RefFde {
  offset: number;
  cie: number;
  pcBegin: bigint;
  pcEnd: bigint;
  rows: RefRow[];
}

function readelfFrames(file: string): RefFde[] {
  const cieRows = new Map<number, RefRow>();
  const fdes: RefFde[] = [];
  let cur: { kind: 'CIE'; offset: number } | { kind: 'FDE'; fde: RefFde } | undefined;
  let cols: string[] = [];
  for (const raw of run('readelf', ['--debug-dump=no-follow-links', '--debug-dump=frames-interp', file]).split('\n')) {
    const line = raw.replace(/\br\d+ \((\w+)\)/g, '$1'); // "r3 (rbx)" in register rules
    const head = /^([0-9a-f]{8}) [0-9a-f]{16} ([0-9a-f]{8}) (CIE|FDE)(?: cie=([0-9a-f]{8}) pc=([0-9a-f]+)\.\.([0-9a-f]+))?/.exec(line);
    if (head) {
      const offset = parseInt(head[1], 16);
      if (head[3] === 'CIE') {
        cur = { kind: 'CIE', offset };
      } else {
        const cie = parseInt(head[4], 16);
        const fde: RefFde = { offset, cie, pcBegin: BigInt('0x' + head[5]), pcEnd: BigInt('0x' + head[6]), rows: [] };
        cur = { kind: 'FDE', fde };
        fdes.push(fde);
      }
      cols = [];
      continue;
    }
    const hdr = /^\s+LOC\s+CFA\s+(.*?)\s*$/.exec(line);
    if (hdr) {
      cols = hdr[1].split(/\s+/);
      continue;
    }
    const row = /^([0-9a-f]{16}) (.*?)\s*$/.exec(line);
    if (row && cur) {
      const f = row[2].split(/\s+/);
      const get = (name: string) => (cols.includes(name) ? f[1 + cols.indexOf(name)] : 'u');
      const r: RefRow = { loc: BigInt('0x' + row[1]), cfa: f[0], rbp: get('rbp'), ra: get('ra') };
      if (cur.kind === 'CIE') cieRows.set(cur.offset, r);
      else cur.fde.rows.push(r);
    }
  }
  // FDEs without instructions print no table: the CIE's row holds.
  for (const fde of fdes) {
    if (fde.rows.length === 0) {
      const c = cieRows.get(fde.cie)!;
      fde.rows.push({ ...c, loc: fde.pcBegin });
    }
  }
  return fdes;
}

/** Rows as comparable strings: clipped to the FDE, one per location, repeats merged. */
function normalize(rows: RefRow[], pcEnd: bigint): string[] {
  const out: RefRow[] = [];
  for (const r of rows) {
    if (r.loc >= pcEnd) continue;
    if (out.length > 0 && out[out.length - 1].loc === r.loc) out.pop();
    const last = out[out.length - 1];
    if (last && last.cfa === r.cfa && last.rbp === r.rbp && last.ra === r.ra) continue;
    out.push(r);
  }
  return out.map((r) => `${r.loc.toString(16)} ${r.cfa} ${r.rbp} ${r.ra}`);
}

const signed = (n: number) => (n < 0 ? `${n}` : `+${n}`);

function fmtCfa(c: CfaRule): string {
  return c.kind === 'reg' ? `${REG_NAMES[c.reg] ?? `r${c.reg}`}${signed(c.offset)}` : 'exp';
}

function fmtReg(r: RegRule): string {
  switch (r.kind) {
    case 'unreferenced':
    case 'undefined':
      return 'u';
    case 'same':
      return 's';
    case 'offset':
      return `c${signed(r.offset)}`;
    case 'valOffset':
      return `v${signed(r.offset)}`;
    case 'register':
      return REG_NAMES[r.reg] ?? `r${r.reg}`;
    case 'expression':
      return 'exp';
    case 'valExpression':
      return 'vexp';
  }
}

interface Comparison {
  fdes: number;
  refRows: number;
  mismatches: string[];
}

/** Runs every FDE of `file` and compares its rows with readelf's. */
function compareWithReadelf(file: string): Comparison {
  const info = parseElf(readFileSync(file));
  const sec = info.sectionsByName.get('.eh_frame')!;
  const parsed = parseEhFrame(sec.data, sec.addr);
  expect(parsed.errors).toEqual([]);
  const ref = readelfFrames(file);
  const ours = new Map(parsed.fdes.map((f) => [f.offset, f]));
  expect(parsed.fdes.length).toBe(ref.length);
  const mismatches: string[] = [];
  let refRows = 0;
  for (const r of ref) {
    refRows += r.rows.length;
    const fde = ours.get(r.offset);
    if (!fde) {
      mismatches.push(`FDE 0x${r.offset.toString(16)} missing`);
      continue;
    }
    expect(fde.pcBegin, `FDE 0x${r.offset.toString(16)} begin`).toBe(r.pcBegin);
    expect(fde.pcEnd, `FDE 0x${r.offset.toString(16)} end`).toBe(r.pcEnd);
    if (r.pcEnd <= r.pcBegin) continue;
    const rows = runCfaProgram(fde).map((x) => ({ loc: x.start, cfa: fmtCfa(x.cfa), rbp: fmtReg(x.rbp), ra: fmtReg(x.ra) }));
    const a = normalize(rows, fde.pcEnd);
    const b = normalize(r.rows, r.pcEnd);
    if (a.join('\n') !== b.join('\n')) {
      mismatches.push(`FDE 0x${r.offset.toString(16)}:\n ours ${a.join('\n      ')}\n ref  ${b.join('\n      ')}`);
    }
  }
  return { fdes: ref.length, refRows, mismatches };
}

// ---------------------------------------------------------------------------

let dir: string;
const built: Record<string, string> = {};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'unwind-eh-'));
  const funcs = join(FIXTURES, 'funcs.c');
  const main = join(FIXTURES, 'main.c');
  const build = (name: string, args: string[]) => {
    const out = join(dir, name);
    run('gcc', [...args, '-o', out]);
    built[name] = out;
  };
  build('exe-o2', ['-O2', '-fomit-frame-pointer', '-fexceptions', funcs, main]);
  build('exe-o0', ['-O0', '-fno-omit-frame-pointer', funcs, main]);
  build('lib-o2.so', ['-O2', '-fomit-frame-pointer', '-fexceptions', '-fPIC', '-shared', funcs]);
  build('lib-o0.so', ['-O0', '-fno-omit-frame-pointer', '-fPIC', '-shared', funcs]);
  build('libcfi.so', ['-O2', '-fPIC', '-shared', join(FIXTURES, 'cfi_asm.c')]);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('pointer encodings', () => {
  const read = (hex: string, enc: number, vaddr = 0x1000n, pos = 0) =>
    readEncodedPointer(new ByteReader(Buffer.from(hex.replace(/\s/g, ''), 'hex'), pos), enc, vaddr, {
      text: 0x100000n,
      data: 0x200000n,
    });

  it('reads every format', () => {
    expect(read('efcdab8967452301', 0x00)).toBe(0x0123456789abcdefn); // absptr
    expect(read('e58e26', 0x01)).toBe(624485n); // uleb128
    expect(read('feff', 0x02)).toBe(0xfffen); // udata2
    expect(read('fcffffff', 0x03)).toBe(0xfffffffcn); // udata4
    expect(read('0100000000000080', 0x04)).toBe(0x8000000000000001n); // udata8
    expect(read('c0bb78', 0x09)).toBe(2n ** 64n - 123456n); // sleb128 -123456, wrapped
    expect(read('feff', 0x0a)).toBe(2n ** 64n - 2n); // sdata2 -2
    expect(read('fcffffff', 0x0b)).toBe(2n ** 64n - 4n); // sdata4 -4
    expect(read('f8ffffffffffffff', 0x0c)).toBe(2n ** 64n - 8n); // sdata8 -8
  });

  it('applies pcrel, textrel, datarel and aligned', () => {
    expect(read('00 f0ffffff', 0x1b, 0x1000n, 1)).toBe(0x1001n - 16n); // pcrel from the field's own address
    expect(read('10000000', 0x23)).toBe(0x100010n); // textrel udata4
    expect(read('f0ffffff', 0x3b)).toBe(0x200000n - 16n); // datarel sdata4
    expect(read('ffff 000000000000 3412000000000000', 0x50, 0n, 2)).toBe(0x1234n); // aligned to 8
    expect(() => readEncodedPointer(new ByteReader(Buffer.alloc(4)), 0x3b, 0n)).toThrow(/datarel/);
    expect(() => read('00', 0x0d)).toThrow(/unsupported/);
    expect(() => read('0000', 0x03)).toThrow(RangeError);
  });
});

describe('synthetic .eh_frame', () => {
  it('parses a version 1 CIE, a 64-bit-length FDE, DW_CFA_set_loc and advance_loc4', () => {
    const cieBody = Buffer.from([
      0, 0, 0, 0, // CIE id
      1, 0, // version 1, augmentation ""
      1, 0x78, 16, // caf 1, daf -8, ra 16 (a byte in version 1)
      0x0c, 7, 8, // def_cfa rsp+8
      0x90, 1, // offset r16 at cfa-8
      0, 0, // nops
    ]);
    const cie = Buffer.concat([u32(cieBody.length), cieBody]);
    const insns = Buffer.concat([
      Buffer.from([0x01]), u64(0x401010n), // set_loc 0x401010 (absptr)
      Buffer.from([0x0e, 16, 0x86, 2]), // def_cfa_offset 16; offset rbp at cfa-16
      Buffer.from([0x04]), u32(0x20), // advance_loc4 0x20
      Buffer.from([0x0d, 6]), // def_cfa_register rbp
    ]);
    const fdeStart = cie.length;
    const idPos = fdeStart + 12;
    const fdeBody = Buffer.concat([u64(BigInt(idPos)), u64(0x401000n), u64(0x100n), insns]);
    const fde = Buffer.concat([u32(0xffffffff), u64(BigInt(fdeBody.length)), fdeBody]);
    const data = Buffer.concat([cie, fde, u32(0)]);

    const parsed = parseEhFrame(data, 0x500000n);
    expect(parsed.errors).toEqual([]);
    expect(parsed.cies).toHaveLength(1);
    expect(parsed.cies[0]).toMatchObject({ version: 1, augmentation: '', codeAlign: 1, dataAlign: -8, raReg: 16 });
    expect(parsed.fdes).toHaveLength(1);
    const f = parsed.fdes[0];
    expect(f).toMatchObject({ offset: fdeStart, pcBegin: 0x401000n, pcEnd: 0x401100n });
    const rows = runCfaProgram(f).map((r) => [r.start, r.end, fmtCfa(r.cfa), fmtReg(r.rbp), fmtReg(r.ra)]);
    expect(rows).toEqual([
      [0x401000n, 0x401010n, 'rsp+8', 'u', 'c-8'],
      [0x401010n, 0x401030n, 'rsp+16', 'c-16', 'c-8'],
      [0x401030n, 0x401100n, 'rbp+16', 'c-16', 'c-8'],
    ]);
  });

  it('parses "zPLR" with indirect personality, LSDA, udata4 FDE pointers and a uleb128 RA register', () => {
    const vaddr = 0x10000n;
    // CIE: length, id, version 3, "zPLR", caf 4, daf -4, ra uleb 16, aug len 7,
    // P enc 0x9b + sdata4 pcrel, L enc 0x1b, R enc 0x03 (udata4 absolute).
    const cieBody = Buffer.concat([
      u32(0), Buffer.from([3]), Buffer.from('zPLR\0', 'latin1'), Buffer.from([4, 0x7c, 16, 7, 0x9b]),
      i32(0x100), Buffer.from([0x1b, 0x03]), Buffer.from([0x0c, 7, 8, 0x90, 2]),
    ]);
    const cie = Buffer.concat([u32(cieBody.length), cieBody]);
    const personalityField = 4 + 4 + 1 + 5 + 5; // offset of the personality pointer
    const fdeStart = cie.length;
    const fdeBody = Buffer.concat([
      u32(fdeStart + 4), u32(0x2000), u32(0x40), Buffer.from([4]), i32(-0x20), // aug len 4, LSDA pcrel
      Buffer.from([0x42, 0x0e, 16]), // advance 2*4, def_cfa_offset 16
    ]);
    const fde = Buffer.concat([u32(fdeBody.length), fdeBody]);
    const data = Buffer.concat([cie, fde]);
    const parsed = parseEhFrame(data, vaddr);
    expect(parsed.errors).toEqual([]);
    const c = parsed.cies[0];
    expect(c).toMatchObject({ version: 3, augmentation: 'zPLR', codeAlign: 4, dataAlign: -4, raReg: 16, fdeEncoding: 3, lsdaEncoding: 0x1b });
    expect(c.personality).toBe(vaddr + BigInt(personalityField) + 0x100n);
    const f = parsed.fdes[0];
    expect(f.pcBegin).toBe(0x2000n);
    expect(f.pcEnd).toBe(0x2040n);
    expect(f.lsda).toBe(vaddr + BigInt(fdeStart + 4 + 4 + 4 + 4 + 1) - 0x20n);
    const rows = runCfaProgram(f).map((r) => [r.start, fmtCfa(r.cfa), fmtReg(r.ra)]);
    expect(rows).toEqual([
      [0x2000n, 'rsp+8', 'c-8'],
      [0x2008n, 'rsp+16', 'c-8'],
    ]);
  });

  it('reports bad entries and keeps going', () => {
    const badCie = Buffer.concat([u32(8), u32(0), Buffer.from([2, 0, 1, 0x78])]); // version 2
    const fdeOfBad = Buffer.concat([u32(20), u32(12 + 4), u64(0x1000n), u64(0x10n)]);
    const goodCie = Buffer.concat([u32(12), u32(0), Buffer.from([1, 0, 1, 0x78, 16, 0x0c, 7, 8])]);
    const goodFdeStart = badCie.length + fdeOfBad.length + goodCie.length;
    const goodFde = Buffer.concat([u32(20), u32(goodFdeStart + 4 - (badCie.length + fdeOfBad.length)), u64(0x2000n), u64(0x10n)]);
    const truncated = Buffer.concat([u32(100), u32(0)]);
    const parsed = parseEhFrame(Buffer.concat([badCie, fdeOfBad, goodCie, goodFde, truncated]), 0n);
    expect(parsed.fdes.map((f) => f.pcBegin)).toEqual([0x2000n]);
    expect(parsed.errors).toHaveLength(3);
    expect(parsed.errors[0]).toMatch(/CIE at 0x0: unsupported CIE version 2/);
    expect(parsed.errors[1]).toMatch(/FDE at 0xc: unsupported CIE version 2/);
    expect(parsed.errors[2]).toMatch(/runs past the section end; stopped/);
  });

  it('throws CfaError on unknown opcodes and unbalanced restore_state', () => {
    const make = (insns: number[]) => {
      const cie = Buffer.concat([u32(12), u32(0), Buffer.from([1, 0, 1, 0x78, 16, 0x0c, 7, 8])]);
      const body = Buffer.concat([u32(cie.length + 4), u64(0x1000n), u64(0x10n), Buffer.from(insns)]);
      const data = Buffer.concat([cie, u32(body.length), body]);
      return new EhFrameReader(data, 0n).fdeAt(cie.length);
    };
    expect(() => runCfaProgram(make([0x3f]))).toThrow(CfaError);
    expect(() => runCfaProgram(make([0x0b]))).toThrow(/empty stack/);
    expect(() => runCfaProgram(make([0x0f, 1, 0x96, 0x0e, 8]))).toThrow(/expression/); // def_cfa_offset after an expression
    expect(runCfaProgram(make([0x2e, 8, 0x0a, 0x41, 0x0e, 16, 0x0b]))).toHaveLength(1 + 1); // args_size, remember/restore
  });
});

describe('matchPltExpression', () => {
  const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');
  it('recognises the lazy PLT expression and its threshold', () => {
    expect(matchPltExpression(hex('7708 8000 3f 1a 3b 2a 33 24 22'))).toEqual({ offset: 8, threshold: 11 });
    expect(matchPltExpression(hex('7708 8000 3f 1a 3a 2a 33 24 22'))).toEqual({ offset: 8, threshold: 10 });
  });
  it('rejects other expressions', () => {
    expect(matchPltExpression(hex('7708 06'))).toBeUndefined(); // breg7 8; deref
    expect(matchPltExpression(hex('7708 8000 3f 1a 3b 2a 33 24 22 22'))).toBeUndefined();
    expect(matchPltExpression(hex('7608 8000 3f 1a 3b 2a 33 24 22'))).toBeUndefined(); // rbp base
    expect(matchPltExpression(hex('7708 8000 3f 1a'))).toBeUndefined();
  });
});

describe('compiled fixtures agree with readelf --debug-dump=frames-interp', () => {
  for (const name of ['exe-o2', 'exe-o0', 'lib-o2.so', 'lib-o0.so', 'libcfi.so']) {
    it(name, () => {
      const c = compareWithReadelf(built[name]);
      expect(c.mismatches).toEqual([]);
      expect(c.fdes).toBeGreaterThan(name === 'libcfi.so' ? 4 : 8);
    });
  }

  it('reads personality/LSDA ("zPLR") and signal frame ("zRS") CIEs', () => {
    const lib = parseElf(readFileSync(built['lib-o2.so']));
    const sec = lib.sectionsByName.get('.eh_frame')!;
    const parsed = parseEhFrame(sec.data, sec.addr);
    const zplr = parsed.cies.find((c) => c.augmentation === 'zPLR')!;
    expect(zplr).toBeDefined();
    expect(zplr.personality).toBeDefined();
    expect(parsed.fdes.filter((f) => f.cie === zplr && f.lsda !== undefined).length).toBeGreaterThan(0);
    const cfi = parseElf(readFileSync(built['libcfi.so']));
    const s2 = cfi.sectionsByName.get('.eh_frame')!;
    expect(parseEhFrame(s2.data, s2.addr).cies.some((c) => c.signalFrame && c.augmentation === 'zRS')).toBe(true);
  });
});

describe('.eh_frame_hdr', () => {
  for (const file of [...['exe-o2', 'lib-o2.so', 'libcfi.so'], ...SYSTEM_LIBS]) {
    it(`finds every FDE of ${file.split('/').pop()}`, () => {
      const info = parseElf(readFileSync(built[file] ?? file));
      const eh = info.sectionsByName.get('.eh_frame')!;
      const hdrSec = info.sectionsByName.get('.eh_frame_hdr')!;
      const hdr = parseEhFrameHdr(hdrSec.data, hdrSec.addr);
      expect(hdr.version).toBe(1);
      expect(hdr.ehFramePtr).toBe(eh.addr);
      const reader = new EhFrameReader(eh.data, eh.addr);
      const all = reader.parseAll();
      const live = all.fdes.filter((f) => f.pcEnd > f.pcBegin);
      expect(hdr.fdeCount).toBe(live.length);
      for (let i = 1; i < hdr.fdeCount; i++) expect(hdr.initialLocs[i - 1] <= hdr.initialLocs[i]).toBe(true);
      for (const f of live) {
        const mid = f.pcBegin + (f.pcEnd - f.pcBegin) / 2n;
        for (const pc of [f.pcBegin, mid, f.pcEnd - 1n]) {
          const addr = lookupFdeAddress(hdr, pc);
          expect(addr).toBe(eh.addr + BigInt(f.offset));
          const found = reader.fdeAt(Number(addr! - eh.addr));
          expect(found.pcBegin).toBe(f.pcBegin);
        }
      }
      expect(lookupFdeAddress(hdr, hdr.initialLocs[0] - 1n)).toBeUndefined();
    });
  }

  it('reads a table in another encoding (udata8 absolute)', () => {
    const data = Buffer.concat([Buffer.from([1, 0x04, 0x03, 0x04]), u64(0x9000n), u32(2), u64(0x100n), u64(0x9010n), u64(0x200n), u64(0x9040n)]);
    const hdr = parseEhFrameHdr(data, 0x8000n);
    expect(hdr).toMatchObject({ version: 1, ehFramePtr: 0x9000n, fdeCount: 2 });
    expect(lookupFdeAddress(hdr, 0x1ffn)).toBe(0x9010n);
    expect(lookupFdeAddress(hdr, 0x200n)).toBe(0x9040n);
    expect(lookupFdeAddress(hdr, 0xffn)).toBeUndefined();
  });
});

describe('system objects agree with readelf --debug-dump=frames-interp', () => {
  for (const file of SYSTEM_LIBS) {
    it(file.split('/').pop()!, () => {
      const c = compareWithReadelf(file);
      expect(c.mismatches).toEqual([]);
      expect(c.fdes).toBeGreaterThan(100);
    });
  }
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function i32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(n);
  return b;
}

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
}
