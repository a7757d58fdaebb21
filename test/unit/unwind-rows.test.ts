import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, SYSTEM_LIBS } from '../support/unwind.js';
import { type ElfInfo, parseElf } from '../../src/elf/elf-file.js';
import { type UnwindRow, compileUnwindRows, compileUnwindTable, lookupRow } from '../../src/unwind/rows.js';
import { UNWIND_ROW_SIZE, decodeUnwindRows as decodeRows, encodeUnwindRows as encodeRows } from '../../src/native/abi.js';

const FIXTURES = new URL('../../fixtures/unwind/', import.meta.url).pathname;
const LUAJIT = SYSTEM_LIBS[2];


// ---------------------------------------------------------------------------
// readelf --debug-dump=frames-interp as the reference (see unwind-eh-frame.test.ts
// for the per-FDE comparison of the full rules).

interface RefRow {
  loc: bigint;
  cfa: string;
  rbp: string;
  ra: string;
}

interface RefFde {
  pcBegin: bigint;
  pcEnd: bigint;
  signal: boolean;
  rows: RefRow[];
}

function readelfFrames(file: string): RefFde[] {
  const cies = new Map<number, { row?: RefRow; signal: boolean }>();
  const fdes: (RefFde & { cie: number })[] = [];
  let cur: { cie?: { row?: RefRow; signal: boolean }; fde?: RefFde } = {};
  let cols: string[] = [];
  const text = run('readelf', ['--debug-dump=no-follow-links', '--debug-dump=frames-interp', file]);
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\br\d+ \((\w+)\)/g, '$1');
    const cieHead = /^([0-9a-f]{8}) [0-9a-f]{16} [0-9a-f]{8} CIE "([^"]*)"/.exec(line);
    if (cieHead) {
      const cie = { signal: cieHead[2].includes('S') };
      cies.set(parseInt(cieHead[1], 16), cie);
      cur = { cie };
      continue;
    }
    const fdeHead = /^[0-9a-f]{8} [0-9a-f]{16} [0-9a-f]{8} FDE cie=([0-9a-f]{8}) pc=([0-9a-f]+)\.\.([0-9a-f]+)/.exec(line);
    if (fdeHead) {
      const fde = { cie: parseInt(fdeHead[1], 16), pcBegin: BigInt('0x' + fdeHead[2]), pcEnd: BigInt('0x' + fdeHead[3]), signal: false, rows: [] };
      fdes.push(fde);
      cur = { fde };
      continue;
    }
    const hdr = /^\s+LOC\s+CFA\s+(.*?)\s*$/.exec(line);
    if (hdr) {
      cols = hdr[1].split(/\s+/);
      continue;
    }
    const row = /^([0-9a-f]{16}) (.*?)\s*$/.exec(line);
    if (row) {
      const f = row[2].split(/\s+/);
      const get = (name: string) => (cols.includes(name) ? f[1 + cols.indexOf(name)] : 'u');
      const r = { loc: BigInt('0x' + row[1]), cfa: f[0], rbp: get('rbp'), ra: get('ra') };
      if (cur.cie) cur.cie.row = r;
      else cur.fde?.rows.push(r);
    }
  }
  for (const fde of fdes) {
    const cie = cies.get(fde.cie)!;
    fde.signal = cie.signal;
    if (fde.rows.length === 0) fde.rows.push({ ...cie.row!, loc: fde.pcBegin });
  }
  return fdes.filter((f) => f.pcEnd > f.pcBegin).sort((a, b) => (a.pcBegin < b.pcBegin ? -1 : a.pcBegin > b.pcBegin ? 1 : 0));
}

/** What a readelf row must compile to; 'exp' CFAs may be 'plt' or 'unsupported'. */
function expected(r: RefRow, signal: boolean): Omit<UnwindRow, 'pc' | 'pltThreshold'> | 'exp' {
  const unsupported = { cfaReg: 'unsupported' as const, cfaOffset: 0, rbpOffset: null, raOffset: 0 };
  if (r.ra === 'u') return { cfaReg: 'end', cfaOffset: 0, rbpOffset: null, raOffset: 0 };
  const ra = /^c([+-]\d+)$/.exec(r.ra);
  if (signal || !ra) return unsupported;
  let rbpOffset: number | null;
  if (r.rbp === 'u' || r.rbp === 's') rbpOffset = null;
  else if (/^c[+-]\d+$/.test(r.rbp)) rbpOffset = Number(r.rbp.slice(1));
  else return unsupported;
  if (r.cfa === 'exp') return 'exp';
  const cfa = /^(rsp|rbp)([+-]\d+)$/.exec(r.cfa);
  if (!cfa) return unsupported;
  return { cfaReg: cfa[1] as 'rsp' | 'rbp', cfaOffset: Number(cfa[2]), rbpOffset, raOffset: Number(ra[1]) };
}

interface Check {
  refRows: number;
  checked: number;
  mismatches: string[];
}

/** Every readelf row location must look up to the matching compact row; FDE ends before a gap to 'undefined'. */
function checkAgainstReadelf(file: string, rows: UnwindRow[]): Check {
  const ref = readelfFrames(file);
  const mismatches: string[] = [];
  let refRows = 0;
  let checked = 0;
  const starts = new Set(ref.map((f) => f.pcBegin));
  for (const fde of ref) {
    refRows += fde.rows.length;
    for (let i = 0; i < fde.rows.length; i++) {
      const r = fde.rows[i];
      if (r.loc >= fde.pcEnd) continue;
      const got = lookupRow(rows, r.loc);
      const want = expected(r, fde.signal);
      checked++;
      const ok =
        got !== undefined &&
        (want === 'exp'
          ? got.cfaReg === 'plt' || got.cfaReg === 'unsupported'
          : got.cfaReg === want.cfaReg &&
            got.cfaOffset === want.cfaOffset &&
            got.rbpOffset === want.rbpOffset &&
            got.raOffset === want.raOffset);
      // readelf prints the row in force before each advance, so a later row at the same location wins.
      const later = fde.rows[i + 1]?.loc === r.loc;
      if (!ok && !later) mismatches.push(`0x${r.loc.toString(16)}: ${JSON.stringify(r)} -> ${JSON.stringify(got, big)}`);
    }
    if (!starts.has(fde.pcEnd)) {
      const got = lookupRow(rows, fde.pcEnd);
      if (got?.cfaReg !== 'undefined') mismatches.push(`end 0x${fde.pcEnd.toString(16)}: ${JSON.stringify(got, big)}`);
    }
  }
  return { refRows, checked, mismatches };
}

const big = (_k: string, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v);

function checkInvariants(rows: UnwindRow[]): void {
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1];
    const b = rows[i];
    expect(a.pc < b.pc, `row ${i} not sorted`).toBe(true);
    const same =
      a.cfaReg === b.cfaReg && a.cfaOffset === b.cfaOffset && a.rbpOffset === b.rbpOffset && a.raOffset === b.raOffset && a.pltThreshold === b.pltThreshold;
    expect(same, `row ${i} repeats row ${i - 1}`).toBe(false);
  }
  if (rows.length > 0) expect(rows[rows.length - 1].cfaReg).toBe('undefined');
}

/** Symbol name -> [start, end) from nm. */
function symbols(file: string): Map<string, [bigint, bigint]> {
  const out = new Map<string, [bigint, bigint]>();
  for (const line of run('nm', ['-S', '--defined-only', file]).split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) [tTwW] (\S+)$/.exec(line);
    if (m) out.set(m[3], [BigInt('0x' + m[1]), BigInt('0x' + m[1]) + BigInt('0x' + m[2])]);
  }
  return out;
}

function rowsIn(rows: UnwindRow[], [start, end]: [bigint, bigint]): UnwindRow[] {
  const first = lookupRow(rows, start)!;
  return [first, ...rows.filter((r) => r.pc > start && r.pc < end)];
}

// ---------------------------------------------------------------------------

let dir: string;
const built: Record<string, { file: string; info: ElfInfo; rows: UnwindRow[] }> = {};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'unwind-rows-'));
  const funcs = join(FIXTURES, 'funcs.c');
  const main = join(FIXTURES, 'main.c');
  const build = (name: string, args: string[]) => {
    const file = join(dir, name);
    run('gcc', [...args, '-o', file]);
    const info = parseElf(readFileSync(file));
    built[name] = { file, info, rows: compileUnwindRows(info) };
  };
  build('exe-o2', ['-O2', '-fomit-frame-pointer', '-fexceptions', funcs, main]);
  build('exe-o0', ['-O0', '-fno-omit-frame-pointer', funcs, main]);
  build('lib-o2.so', ['-O2', '-fomit-frame-pointer', '-fPIC', '-shared', funcs]);
  build('lib-o0.so', ['-O0', '-fno-omit-frame-pointer', '-fPIC', '-shared', funcs]);
  build('libcfi.so', ['-O2', '-fPIC', '-shared', join(FIXTURES, 'cfi_asm.c')]);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('compileUnwindRows on gcc-built fixtures', () => {
  for (const name of ['exe-o2', 'exe-o0', 'lib-o2.so', 'lib-o0.so', 'libcfi.so']) {
    it(`${name}: sorted, merged, terminated, and equal to readelf at every row`, () => {
      const { file, info, rows } = built[name];
      checkInvariants(rows);
      const table = compileUnwindTable(info);
      expect(table.errors).toEqual([]);
      expect(table.badFdes).toBe(0);
      expect(table.overlaps).toBe(0);
      const c = checkAgainstReadelf(file, rows);
      expect(c.mismatches).toEqual([]);
      expect(c.checked).toBeGreaterThan(5);
    });
  }

  it('-O2 -fomit-frame-pointer: rsp-based, except VLA/alloca functions (rbp-based) and a 100 KB frame', () => {
    const { file, rows } = built['exe-o2'];
    const syms = symbols(file);
    const kinds = (sym: string) => new Set(rowsIn(rows, syms.get(sym)!).map((r) => r.cfaReg));
    expect(kinds('leaf')).toEqual(new Set(['rsp']));
    expect(kinds('many_saved')).toEqual(new Set(['rsp']));
    expect(kinds('with_vla').has('rbp')).toBe(true);
    expect(kinds('with_alloca').has('rbp')).toBe(true);
    const vla = rowsIn(rows, syms.get('with_vla')!).find((r) => r.cfaReg === 'rbp')!;
    expect(vla).toMatchObject({ cfaOffset: 16, rbpOffset: -16, raOffset: -8 });
    expect(Math.max(...rowsIn(rows, syms.get('big_frame')!).map((r) => r.cfaOffset))).toBeGreaterThan(100000);
  });

  it('-O0 -fno-omit-frame-pointer: every function body is rbp+16 with rbp at CFA-16', () => {
    const { file, rows } = built['exe-o0'];
    const syms = symbols(file);
    for (const sym of ['leaf', 'many_saved', 'big_frame', 'with_vla', 'main']) {
      const [start, end] = syms.get(sym)!;
      // push %rbp; mov %rsp,%rbp: CFA rsp+8, rsp+16, then rbp+16.
      expect(lookupRow(rows, start)).toMatchObject({ cfaReg: 'rsp', cfaOffset: 8, rbpOffset: null, raOffset: -8 });
      expect(lookupRow(rows, start + 1n)).toMatchObject({ cfaReg: 'rsp', cfaOffset: 16, rbpOffset: -16 });
      expect(lookupRow(rows, start + 4n)).toMatchObject({ cfaReg: 'rbp', cfaOffset: 16, rbpOffset: -16 });
      expect(lookupRow(rows, end - 1n)).toMatchObject({ cfaReg: 'rsp', cfaOffset: 8 }); // after leave, at ret
    }
  });

  it('PLT stubs get the plt kind; _start is the outermost frame', () => {
    const { info, file, rows } = built['exe-o2'];
    const plt = info.sectionsByName.get('.plt')!;
    expect(lookupRow(rows, plt.addr)).toMatchObject({ cfaReg: 'rsp', cfaOffset: 16 }); // PLT0 after its push
    expect(lookupRow(rows, plt.addr + 16n)).toMatchObject({ cfaReg: 'plt', cfaOffset: 8, pltThreshold: 11, raOffset: -8 });
    expect(lookupRow(rows, plt.addr + BigInt(plt.size) - 1n)?.cfaReg).toBe('plt');
    const start = symbols(file).get('_start')!;
    expect(lookupRow(rows, start[0])?.cfaReg).toBe('end');
  });

  it('hand-written CFI: rare instructions map to the right kinds', () => {
    const { file, rows } = built['libcfi.so'];
    const syms = symbols(file);
    const [rare, rareEnd] = syms.get('cfi_rare')!;
    const seq = rowsIn(rows, [rare, rareEnd]).map((r) => [r.cfaReg, r.cfaOffset, r.rbpOffset, r.pltThreshold]);
    expect(seq).toEqual([
      ['rsp', 8, null, 0],
      ['rsp', 16, -16, 0],
      ['rbp', 16, -16, 0], // advance_loc2 follows
      ['rsp', 8, null, 0], // same_value rbp, def_cfa rsp+8, then advance_loc4
      ['rbp', 16, -16, 0], // restore_state
      ['unsupported', 0, null, 0], // rbp in rbx (DW_CFA_register)
      ['rbp', 16, null, 0], // undefined rbp, restore to the CIE, GNU_args_size
      ['unsupported', 0, null, 0], // val_offset rbp, expression rbp, CFA deref expression
      ['rsp', 16, null, 0], // def_cfa_sf + restore_extended
      ['rsp', 24, -24, 0], // def_cfa_offset_sf + offset_extended
      ['rsp', 24, 32, 0], // offset_extended_sf (a positive offset)
      ['unsupported', 0, null, 0], // CFA in r10
      ['plt', 8, null, 10], // PLT expression, threshold 10
      ['end', 0, null, 0], // undefined rip
    ]);
    expect(lookupRow(rows, rareEnd)?.cfaReg).toBe('undefined'); // a nop without CFI before cfi_signal
    expect(lookupRow(rows, syms.get('cfi_signal')![0])?.cfaReg).toBe('unsupported'); // "S" CIE
    // 64 bytes of padding without CFI between cfi_signal and cfi_after_gap.
    const gap = syms.get('cfi_signal')![1] + 8n;
    expect(lookupRow(rows, gap)?.cfaReg).toBe('undefined');
    expect(lookupRow(rows, syms.get('cfi_after_gap')![0])?.cfaReg).toBe('rsp');
  });
});

describe('lookupRow', () => {
  const rows: UnwindRow[] = [
    { pc: 0x1000n, cfaReg: 'rsp', cfaOffset: 8, rbpOffset: null, raOffset: -8, pltThreshold: 0 },
    { pc: 0x1004n, cfaReg: 'rsp', cfaOffset: 16, rbpOffset: -16, raOffset: -8, pltThreshold: 0 },
    { pc: 0x1010n, cfaReg: 'undefined', cfaOffset: 0, rbpOffset: null, raOffset: 0, pltThreshold: 0 },
    { pc: 0x2000n, cfaReg: 'rbp', cfaOffset: 16, rbpOffset: -16, raOffset: -8, pltThreshold: 0 },
    { pc: 0x2100n, cfaReg: 'undefined', cfaOffset: 0, rbpOffset: null, raOffset: 0, pltThreshold: 0 },
  ];
  it('answers the row in force, undefined before the first', () => {
    expect(lookupRow(rows, 0xfffn)).toBeUndefined();
    expect(lookupRow(rows, 0x1000n)?.cfaOffset).toBe(8);
    expect(lookupRow(rows, 0x1003n)?.cfaOffset).toBe(8);
    expect(lookupRow(rows, 0x1004n)?.cfaOffset).toBe(16);
    expect(lookupRow(rows, 0x100fn)?.cfaOffset).toBe(16);
    expect(lookupRow(rows, 0x1010n)?.cfaReg).toBe('undefined');
    expect(lookupRow(rows, 0x1fffn)?.cfaReg).toBe('undefined');
    expect(lookupRow(rows, 0x20ffn)?.cfaReg).toBe('rbp');
    expect(lookupRow(rows, 0xffffffffn)?.cfaReg).toBe('undefined');
    expect(lookupRow([], 0x1000n)).toBeUndefined();
  });
});

describe('encodeRows', () => {
  it('packs the documented 16-byte layout', () => {
    const buf = encodeRows([
      { pc: 0x123456789an, cfaReg: 'rbp', cfaOffset: 100016, rbpOffset: -16, raOffset: -8, pltThreshold: 0 },
      { pc: 0x2000n, cfaReg: 'plt', cfaOffset: 8, rbpOffset: null, raOffset: -8, pltThreshold: 11 },
      { pc: 0x3000n, cfaReg: 'end', cfaOffset: 0, rbpOffset: null, raOffset: 0, pltThreshold: 0 },
    ]);
    expect(buf.length).toBe(3 * UNWIND_ROW_SIZE);
    expect(buf.subarray(0, 16).toString('hex')).toBe('9a78563412000000' + 'b0860100' + '02' + 'f8' + 'f0ff');
    expect(buf.subarray(16, 32).toString('hex')).toBe('0020000000000000' + '08000000' + 'b3' + 'f8' + '0000');
    expect(buf.subarray(32, 48).toString('hex')).toBe('0030000000000000' + '00000000' + '05' + '00' + '0000');
  });

  it('round-trips every fixture', () => {
    for (const { rows } of Object.values(built)) expect(decodeRows(encodeRows(rows))).toEqual(rows);
  });
});

describe('system objects', () => {
  for (const file of SYSTEM_LIBS) {
    it(`${file.split('/').pop()}: agrees with readelf; timing`, () => {
      const buf = readFileSync(file);
      const t0 = performance.now();
      const info = parseElf(buf);
      const t1 = performance.now();
      const table = compileUnwindTable(info);
      const t2 = performance.now();
      compileUnwindTable(info);
      const t3 = performance.now();
      const encoded = encodeRows(table.rows);
      const t4 = performance.now();
      checkInvariants(table.rows);
      expect(table.errors).toEqual([]);
      expect(table.badFdes).toBe(0);
      const c = checkAgainstReadelf(file, table.rows);
      expect(c.mismatches).toEqual([]);
      expect(decodeRows(encoded)).toEqual(table.rows);
      const kinds: Record<string, number> = {};
      for (const r of table.rows) kinds[r.cfaReg] = (kinds[r.cfaReg] ?? 0) + 1;
      console.log(
        `${file.split('/').pop()}: ${table.fdeCount} FDEs, readelf ${c.refRows} rows -> ${table.rows.length} rows ` +
          `(${encoded.length} bytes) ${JSON.stringify(kinds)}, overlaps ${table.overlaps}; ` +
          `parseElf ${(t1 - t0).toFixed(1)} ms, compile ${(t2 - t1).toFixed(1)} ms (again ${(t3 - t2).toFixed(1)} ms), ` +
          `encode ${(t4 - t3).toFixed(1)} ms`,
      );
      expect(t2 - t1).toBeLessThan(5000);
    });
  }

  it('libluajit: one large FDE with CFA rsp+80 covers the VM', () => {
    const info = parseElf(readFileSync(LUAJIT));
    const rows = compileUnwindRows(info);
    const vm = readelfFrames(LUAJIT).filter((f) => f.pcEnd - f.pcBegin > 8192n && f.rows.length === 1 && f.rows[0].cfa === 'rsp+80');
    expect(vm).toHaveLength(1);
    const [fde] = vm;
    console.log(`libluajit VM FDE: 0x${fde.pcBegin.toString(16)}..0x${fde.pcEnd.toString(16)}`);
    const inside = rows.filter((r) => r.pc >= fde.pcBegin && r.pc < fde.pcEnd);
    expect(inside).toEqual([{ pc: fde.pcBegin, cfaReg: 'rsp', cfaOffset: 80, rbpOffset: -16, raOffset: -8, pltThreshold: 0 }]);
    expect(lookupRow(rows, fde.pcEnd - 1n)?.cfaOffset).toBe(80);
  });
});
