import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ElfInfo, parseElf, vaddrToFileOffset } from '../../src/elf/elf-file.js';
import { type SymbolTable, readSymbols } from '../../src/elf/elf-symbols.js';
import { framePointerStats, looksLikeReturnAddress, moduleUsesFramePointers } from '../../src/elf/frame-pointers.js';

const FIXTURES = new URL('../../fixtures/elf/', import.meta.url).pathname;

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
}

interface Obj {
  file: string;
  buf: Buffer;
  info: ElfInfo;
  table: SymbolTable;
}

function load(file: string): Obj {
  const buf = readFileSync(file);
  const info = parseElf(buf);
  return { file, buf, info, table: readSymbols(info, buf) };
}

/** Instructions from objdump: vaddr, length, mnemonic. */
function disassemble(file: string): { vaddr: bigint; len: number; mnemonic: string }[] {
  const out = run('objdump', ['-d', '--no-show-raw-insn', '--insn-width=16', '-j', '.text', file]);
  const raw = run('objdump', ['-d', '--insn-width=16', '-j', '.text', file]);
  const lens = new Map<string, number>();
  for (const line of raw.split('\n')) {
    const m = /^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)/.exec(line);
    if (m) lens.set(m[1], m[2].trim().split(' ').length);
  }
  const insns: { vaddr: bigint; len: number; mnemonic: string }[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*([0-9a-f]+):\t\s*(\S+)/.exec(line);
    if (m && lens.has(m[1])) insns.push({ vaddr: BigInt('0x' + m[1]), len: lens.get(m[1])!, mnemonic: m[2] });
  }
  return insns;
}

let dir: string;
let withFp: Obj;
let withoutFp: Obj;
let libWithFp: Obj;
let libWithoutFp: Obj;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'elf-fp-'));
  const src = join(FIXTURES, 'fpfuncs.c');
  const build = (name: string, flags: string[]) => {
    const out = join(dir, name);
    run('gcc', [...flags, '-o', out, src]);
    return load(out);
  };
  withFp = build('fp', ['-O2', '-fno-omit-frame-pointer']);
  withoutFp = build('nofp', ['-O2', '-fomit-frame-pointer']);
  libWithFp = build('libfp.so', ['-O2', '-fPIC', '-shared', '-fno-omit-frame-pointer', '-fcf-protection=full']);
  libWithoutFp = build('libnofp.so', ['-O2', '-fPIC', '-shared', '-fomit-frame-pointer', '-fcf-protection=full']);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('looksLikeReturnAddress: encodings', () => {
  const ends = (hex: string) => {
    const b = Buffer.from(hex.replace(/\s/g, ''), 'hex');
    return looksLikeReturnAddress(b, b.length);
  };

  it('accepts call rel32 and FF /2 forms of every length', () => {
    expect(ends('90 e8 10 20 30 40')).toBe(true); // call rel32
    expect(ends('ff d0')).toBe(true); // call *%rax
    expect(ends('41 ff d3')).toBe(true); // call *%r11
    expect(ends('ff 10')).toBe(true); // call *(%rax)
    expect(ends('ff 50 08')).toBe(true); // call *0x8(%rax)
    expect(ends('ff 54 24 08')).toBe(true); // call *0x8(%rsp)
    expect(ends('41 ff 54 24 08')).toBe(true); // call *0x8(%r12)
    expect(ends('ff 15 00 10 00 00')).toBe(true); // call *0x1000(%rip)
    expect(ends('ff 90 00 01 00 00')).toBe(true); // call *0x100(%rax)
    expect(ends('ff 14 c5 00 10 40 00')).toBe(true); // call *0x401000(,%rax,8)
    expect(ends('ff 94 24 00 01 00 00')).toBe(true); // call *0x100(%rsp)
    expect(ends('ff 14 24')).toBe(true); // call *(%rsp)
  });

  it('rejects other instructions and truncated input', () => {
    expect(ends('ff e0')).toBe(false); // jmp *%rax (reg field 4)
    expect(ends('ff 60 08')).toBe(false); // jmp *0x8(%rax)
    expect(ends('ff c0')).toBe(false); // inc %eax (reg field 0)
    expect(ends('ff 15 00 10 00')).toBe(false); // too short for rip-relative
    expect(ends('ff 50')).toBe(false); // disp8 missing
    expect(ends('90 90 90 90 90 90 90 90')).toBe(false);
    expect(ends('48 89 e5 c3')).toBe(false);
    expect(looksLikeReturnAddress(Buffer.from([0xff, 0xd0]), 1)).toBe(false);
    expect(looksLikeReturnAddress(Buffer.from([0xff, 0xd0]), 3)).toBe(false);
    expect(looksLikeReturnAddress(Buffer.from([0xff, 0xd0]), -1)).toBe(false);
    expect(looksLikeReturnAddress(Buffer.alloc(0), 0)).toBe(false);
  });
});

describe('looksLikeReturnAddress: gcc-built code', () => {
  for (const which of ['withFp', 'withoutFp'] as const) {
    it(`accepts every return address after a call, rarely other instruction ends (${which})`, () => {
      const obj = which === 'withFp' ? withFp : withoutFp;
      const insns = disassemble(obj.file);
      let calls = 0;
      let indirect = 0;
      let others = 0;
      let falsePositives = 0;
      for (const ins of insns) {
        const ret = vaddrToFileOffset(obj.info, ins.vaddr + BigInt(ins.len))!;
        const ok = looksLikeReturnAddress(obj.buf, Number(ret));
        if (ins.mnemonic.startsWith('call')) {
          calls++;
          if (obj.buf[Number(ret) - ins.len] !== 0xe8) indirect++;
          expect(ok, `call at 0x${ins.vaddr.toString(16)}`).toBe(true);
        } else {
          others++;
          if (ok) falsePositives++;
        }
      }
      expect(calls).toBeGreaterThan(60);
      expect(indirect).toBeGreaterThan(20); // cb(...) and ops->cb[...]()
      expect(others).toBeGreaterThan(500);
      expect(falsePositives / others).toBeLessThan(0.02);
    });
  }
});

describe('moduleUsesFramePointers', () => {
  it('is true with -fno-omit-frame-pointer, false with -fomit-frame-pointer -O2', () => {
    expect(moduleUsesFramePointers(withFp.info, withFp.buf, withFp.table)).toBe(true);
    expect(moduleUsesFramePointers(withoutFp.info, withoutFp.buf, withoutFp.table)).toBe(false);
    const a = framePointerStats(withFp.info, withFp.buf, withFp.table);
    const b = framePointerStats(withoutFp.info, withoutFp.buf, withoutFp.table);
    expect(a.examined).toBeGreaterThan(30);
    expect(a.withPrologue / a.examined).toBeGreaterThan(0.9);
    expect(b.withPrologue).toBe(0);
  });

  it('recognises the prologue after endbr64 (-fcf-protection)', () => {
    const fn = libWithFp.table.symbols.find((s) => s.name === 'fp_fn_3')!;
    const off = Number(vaddrToFileOffset(libWithFp.info, fn.start)!);
    expect(libWithFp.buf.subarray(off, off + 5).toString('hex')).toBe('f30f1efa55');
    expect(moduleUsesFramePointers(libWithFp.info, libWithFp.buf, libWithFp.table)).toBe(true);
    expect(moduleUsesFramePointers(libWithoutFp.info, libWithoutFp.buf, libWithoutFp.table)).toBe(false);
  });

  it('is false for Debian nginx, libluajit and libcrypto (built without frame pointers)', () => {
    for (const file of ['/usr/sbin/nginx', '/usr/lib/x86_64-linux-gnu/libluajit-5.1.so.2', '/usr/lib/x86_64-linux-gnu/libcrypto.so.3']) {
      const o = load(file);
      const st = framePointerStats(o.info, o.buf, o.table);
      expect(st.examined).toBeGreaterThan(100);
      expect(moduleUsesFramePointers(o.info, o.buf, o.table)).toBe(false);
    }
  });

  it('is false when nothing can be examined', () => {
    expect(moduleUsesFramePointers(withFp.info, withFp.buf, { symbols: [], byName: new Map(), segments: [] })).toBe(false);
  });
});
