// Fast-function names from lj_ffdef.h (ffnames.mjs); the committed tables
// themselves are checked in offset-tables-files.test.ts.
import { describe, it, expect } from 'vitest';
import { ffdefToNames, ffdefName } from '../../luajit-offsets/ffnames.mjs';

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
