import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { kernelSymbolAt, type KernelSymbols, lookupKernel, parseKallsyms, readKallsyms } from '../../src/symbolize/kallsyms.js';

/** The table as objects, for readable assertions. */
const symbolsOf = (k: KernelSymbols) => k.names.map((_, i) => kernelSymbolAt(k, i));

const SAMPLE = [
  'ffffffff81000000 T srso_alias_untrain_ret',
  'ffffffff81000000 T _stext',
  'ffffffff81000000 t _text',
  'ffffffff81001000 T __pfx_schedule',
  'ffffffff81001010 T schedule',
  'ffffffff81001200 t __pfx_abort',
  'ffffffff81001210 W abort',
  'ffffffff81001300 D some_data',
  'ffffffff81001400 r some_rodata',
  'ffffffff81001500 t do_sys_poll',
  'ffffffff81001480 b some_bss',
  'ffffffff82200000 T _etext',
  'ffffffffc0201000 t ftrace_trampoline\t[__builtin__ftrace]',
  'ffffffffc0300000 t nft_do_chain\t[nf_tables]',
  '',
].join('\n');

describe('parseKallsyms', () => {
  const k = parseKallsyms(SAMPLE);

  it('keeps text symbols only, sorted, one per address', () => {
    expect(symbolsOf(k).map((s) => s.name)).toEqual([
      'srso_alias_untrain_ret',
      '__pfx_schedule',
      'schedule',
      '__pfx_abort',
      'abort',
      'do_sys_poll',
      '_etext',
      'ftrace_trampoline',
      'nft_do_chain',
    ]);
    expect(symbolsOf(k)[0].start).toBe(0xffffffff81000000n);
  });

  it('records module names', () => {
    expect(symbolsOf(k).find((s) => s.name === 'nft_do_chain')!.module).toBe('nf_tables');
    expect(symbolsOf(k).find((s) => s.name === 'schedule')!.module).toBeUndefined();
  });

  it('looks up the containing symbol with its offset', () => {
    expect(lookupKernel(k, 0xffffffff81001010n)).toMatchObject({ name: 'schedule', offset: 0n });
    expect(lookupKernel(k, 0xffffffff810011ffn)).toMatchObject({ name: 'schedule', offset: 0x1efn });
    expect(lookupKernel(k, 0xffffffff81001215n)?.name).toBe('abort');
    expect(lookupKernel(k, 0xffffffff81001450n)?.name).toBe('abort'); // data symbols do not end functions
    expect(lookupKernel(k, 0xffffffffc0300010n)).toMatchObject({ name: 'nft_do_chain', module: 'nf_tables' });
    expect(lookupKernel(k, 0xffffffff80ffffffn)).toBeUndefined();
    expect(lookupKernel(k, 0xffffffffc0400000n)).toBeUndefined(); // far past the last symbol
    expect(lookupKernel(k, 0n)).toBeUndefined();
  });

  it('gives an empty table when addresses are hidden (kptr_restrict)', () => {
    const hidden = SAMPLE.replace(/^[0-9a-f]{16}/gm, '0000000000000000');
    const t = parseKallsyms(hidden);
    expect(symbolsOf(t)).toEqual([]);
    expect(lookupKernel(t, 0xffffffff81001010n)).toBeUndefined();
  });

  it('ignores garbage lines', () => {
    expect(symbolsOf(parseKallsyms('hello\n\nzz T name\nffffffff81000000 Tname\n'))).toEqual([]);
  });
});

describe('real /proc/kallsyms', () => {
  it('parses this kernel (or yields an empty table if addresses are hidden)', () => {
    const text = readFileSync('/proc/kallsyms', 'utf8');
    const t0 = performance.now();
    const k = readKallsyms();
    const ms = performance.now() - t0;
    const line = text.split('\n').find((l) => / [tT] schedule$/.test(l))!;
    expect(line).toBeDefined();
    const addr = BigInt('0x' + line.split(' ')[0]);
    if (addr === 0n) {
      expect(symbolsOf(k)).toEqual([]);
      return;
    }
    expect(k.starts.length).toBeGreaterThan(10000);
    let sorted = true;
    for (let i = 1; i < k.starts.length; i++) if (k.starts[i - 1] >= k.starts[i]) sorted = false;
    expect(sorted).toBe(true);
    expect(ms).toBeLessThan(2000);
    expect(lookupKernel(k, addr + 1n)?.name).toBe('schedule');
  });

  it('returns an empty table for an unreadable file', () => {
    expect(symbolsOf(readKallsyms('/nonexistent/kallsyms'))).toEqual([]);
  });
});
