import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';
import { ffdefToNames, ffdefName } from '../../luajit-offsets/ffnames.mjs';

const tablesDir = join(dirname(fileURLToPath(import.meta.url)), '../../luajit-offsets/tables');

const OFFSET_KEYS = [
  'gc64', 'fr2',
  'L_size', 'L_glref', 'L_base', 'L_top', 'L_maxstack', 'L_stack', 'L_cframe', 'L_stacksize',
  'G_vmstate', 'G_mainthref', 'G_cur_L', 'G_jit_base',
  'GG_g', 'GG_J', 'GG_dispatch',
  'fn_ffid', 'fn_pc', 'fn_c_f',
  'pt_size', 'pt_chunkname', 'pt_firstline', 'pt_numline', 'pt_lineinfo', 'pt_sizebc',
  'pt_k', 'pt_sizekgc', 'pt_sizeuv', 'pt_uvinfo', 'pt_varinfo',
  'str_size', 'str_len',
  'J_trace', 'J_sizetrace', 'trace_nsnap', 'trace_snap', 'trace_snapmap', 'trace_mcode',
  'trace_szmcode', 'trace_startpt', 'trace_startpc', 'trace_spadjust',
  'snap_size', 'snap_mcofs', 'snap_mapofs', 'snap_nent',
];
const TOP_KEYS = ['package', 'version', 'mode', 'source', 'generator', 'offsets', 'fastFunctions', 'bytecodes'];

describe('ffdefToNames', () => {
  const header = [
    '/* This is a generated file. DO NOT EDIT! */',
    '',
    'FFDEF(assert)',
    'FFDEF(ipairs_aux)',
    'FFDEF(pcall)',
    'FFDEF(coroutine_wrap_aux)',
    'FFDEF(thread_exdata)',
    'FFDEF(string_format)',
    'FFDEF(string_gmatch_aux)',
    'FFDEF(io_method___gc)',
    'FFDEF(io_method_write)',
    'FFDEF(io_write)',
    'FFDEF(jit_util_funcinfo)',
    'FFDEF(ffi_meta___call)',
    'FFDEF(ffi_clib___index)',
    'FFDEF(ffi_callback_free)',
    'FFDEF(ffi_new)',
    'FFDEF(buffer_method_put)',
    'FFDEF(buffer_new)',
    '',
    '#undef FFDEF',
    '',
    '#ifndef FF_NUM_ASMFUNC',
    '#define FF_NUM_ASMFUNC 57',
    '#endif',
  ].join('\n');

  it('converts names in order, module prefix to dotted Lua names', () => {
    expect(ffdefToNames(header)).toEqual([
      'assert',
      'ipairs_aux',
      'pcall',
      'coroutine.wrap_aux',
      'thread.exdata',
      'string.format',
      'string.gmatch_aux',
      'io.method.__gc',
      'io.method.write',
      'io.write',
      'jit.util.funcinfo',
      'ffi.meta.__call',
      'ffi.clib.__index',
      'ffi.callback.free',
      'ffi.new',
      'buffer.method.put',
      'buffer.new',
    ]);
  });

  it('keeps unknown and bare prefixes unchanged', () => {
    expect(ffdefName('newproxy')).toBe('newproxy');
    expect(ffdefName('utf8_char')).toBe('utf8_char');
    expect(ffdefName('string_')).toBe('string_');
    expect(ffdefName('string')).toBe('string');
  });

  it('accepts an explicit module list', () => {
    expect(ffdefName('utf8_char', ['utf8'])).toBe('utf8.char');
    expect(ffdefName('string_format', [])).toBe('string_format');
  });

  it('ignores everything but FFDEF lines', () => {
    expect(ffdefToNames('#define FFDEF(x)\n/* FFDEF */\n')).toEqual([]);
    expect(ffdefToNames('FFDEF(a)\r\nFFDEF(math_floor)\r\n')).toEqual(['a', 'math.floor']);
  });
});

describe('committed offset tables', () => {
  const files = readdirSync(tablesDir).filter((f) => f.endsWith('.json')).sort();

  it('include the Debian luajit2 GC64 table', () => {
    expect(files).toContain('luajit2-2.1-20230119-gc64.json');
  });

  for (const file of files) {
    describe(file, () => {
      const table = JSON.parse(readFileSync(join(tablesDir, file), 'utf8'));

      it('has exactly the schema keys', () => {
        expect(Object.keys(table)).toEqual(TOP_KEYS);
        expect(Object.keys(table.offsets)).toEqual(OFFSET_KEYS);
        expect(`${table.package}-${table.version}-${table.mode}.json`).toBe(file);
        expect(['gc64', 'nogc64']).toContain(table.mode);
        expect(table.generator).toBe('luajit-offsets/generate.sh');
        expect(table.source).toMatch(/^Debian source package \S+ \S+ \(dsc sha256 [0-9a-f]{64}\)$/);
      });

      it('lists every bytecode with its operand-A mode and metamethod', () => {
        const names = table.bytecodes.map((b: string[]) => b[0]);
        expect(names.slice(0, 2)).toEqual(['ISLT', 'ISGE']);
        for (const op of ['MOV', 'GGET', 'TGETS', 'UGET', 'CALL', 'CALLM', 'ITERC', 'KNIL', 'FUNCF', 'FUNCC']) expect(names).toContain(op);
        const byName = new Map(table.bytecodes.map((b: string[]) => [b[0], b]));
        expect(byName.get('CALL')).toEqual(['CALL', 'base', 'call']);
        expect(byName.get('TGETS')).toEqual(['TGETS', 'dst', 'index']);
        expect(byName.get('MOV')).toEqual(['MOV', 'dst', '___']);
      });

      it('has integer offsets consistent with the mode', () => {
        for (const key of OFFSET_KEYS) {
          const v = table.offsets[key];
          expect(Number.isInteger(v), `${key} = ${v}`).toBe(true);
          expect(v, key).toBeGreaterThanOrEqual(-1);
        }
        const gc64 = table.mode === 'gc64' ? 1 : 0;
        expect(table.offsets.gc64).toBe(gc64);
        expect(table.offsets.fr2).toBe(gc64);
        // GG_State starts with the main lua_State, then global_State.
        expect(table.offsets.GG_g).toBe(table.offsets.L_size);
        expect(table.offsets.GG_dispatch).toBeGreaterThan(table.offsets.GG_J);
      });

      it('lists fast functions with the expected names and ids', () => {
        const ff: string[] = table.fastFunctions;
        expect(ff[0]).toBe('assert'); // ffid 2
        for (const name of ['string.format', 'pcall', 'table.concat', 'coroutine.wrap_aux']) {
          expect(ff).toContain(name);
        }
        expect(new Set(ff).size).toBe(ff.length);
        // ffid = index + 2; pcall follows error in lib_base.c on every 2.1 tree.
        expect(ff.indexOf('pcall') + 2).toBe(ff.indexOf('error') + 3);
      });
    });
  }

  it('luajit2 2.1-20230119 matches offsetof values checked by hand against its headers', () => {
    const gc64 = JSON.parse(readFileSync(join(tablesDir, 'luajit2-2.1-20230119-gc64.json'), 'utf8'));
    expect(gc64.offsets).toMatchObject({
      L_size: 112, L_glref: 16, L_base: 32, L_stack: 56, L_cframe: 80,
      G_vmstate: 184, G_mainthref: 192, G_cur_L: 368, G_jit_base: 376,
      GG_g: 112, GG_J: 848, GG_dispatch: 4120,
      fn_ffid: 10, fn_pc: 32,
      pt_size: 104, pt_chunkname: 64, pt_firstline: 72, pt_numline: 76, pt_lineinfo: 80,
      str_size: 24,
    });
    expect(gc64.fastFunctions.indexOf('pcall') + 2).toBe(20);

    const nogc64 = JSON.parse(readFileSync(join(tablesDir, 'luajit2-2.1-20230119-nogc64.json'), 'utf8'));
    expect(nogc64.offsets).toMatchObject({
      L_size: 80, L_glref: 8, L_base: 16, L_stack: 36, L_cframe: 48,
      G_vmstate: 136, G_mainthref: 140, G_cur_L: 288, G_jit_base: 292,
      GG_g: 80, GG_J: 576, GG_dispatch: 3296,
      fn_ffid: 6, fn_pc: 16,
      pt_size: 64, pt_chunkname: 40, pt_firstline: 44, pt_numline: 48, pt_lineinfo: 52,
      str_size: 20,
    });
    expect(nogc64.fastFunctions).toEqual(gc64.fastFunctions);
  });
});
