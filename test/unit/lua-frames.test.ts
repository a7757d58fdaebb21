// Naming a sample's Lua frames while sampling: what needs the live process
// is named then, C functions are left as addresses for after sampling, and
// stacks that share their Lua part share its names.
import { describe, expect, it } from 'vitest';
import { nameLuaFrames } from '../../src/luajit/lua-frames.js';
import { type SampleKey, SampleFlags } from '../../src/native/abi.js';
import { EMPTY_KERNEL_SYMBOLS } from '../../src/symbolize/kallsyms.js';
import { type ProcessContext, ProcessSymbolizer } from '../../src/symbolize/process-symbolizer.js';

const word = (kind: number, payload: bigint) => (BigInt(kind) << 60n) | payload;
const LUA = 1;
const C = 2;
const FAST = 3;

describe('nameLuaFrames', () => {
  it('leaves a C function as its address and names the rest', () => {
    const names = nameLuaFrames({ words: [word(C, 0x401000n), word(FAST, 21n), word(LUA, 0x7000n)], positions: [0, 0, 3] }, { reader: null, lines: 'definition' });
    expect(names).toEqual([0x401000n, 'builtin#21', '[unknown Lua frame]']);
  });
});

describe('ProcessSymbolizer Lua frames', () => {
  const pid = 4242;
  const ctx: ProcessContext = {
    pid,
    // A library that cannot be read: frames are named by file offset.
    maps: [{ start: 0x400000n, end: 0x500000n, perms: 'r-xp', offset: 0n, dev: '00:00', inode: 0, path: '/nonexistent/libfoo.so' }],
    mem: null,
    table: null,
    luajitPath: null,
    vm: null,
    g: null,
  };
  const key = (user: bigint[], lua: bigint[]): SampleKey => ({
    pid,
    flags: SampleFlags.InLua,
    vmstate: 0,
    kernel: [],
    user,
    lua,
    luaPos: lua.map(() => 0),
    luaFromC: lua.map(() => false),
  });

  it('names the Lua part of two stacks that differ only in native frames once', () => {
    const symbolizer = new ProcessSymbolizer(new Map([[pid, ctx]]), EMPTY_KERNEL_SYMBOLS);
    const lua = [word(C, 0x401000n), word(FAST, 21n)];
    const first = symbolizer.liveLuaFrames(key([0x401234n], lua));
    expect(symbolizer.liveLuaFrames(key([0x401999n, 0x402000n], lua))).toBe(first);
    expect(symbolizer.liveLuaFrames(key([0x401234n], [word(FAST, 22n)]))).not.toBe(first);
    expect(first).toEqual([0x401000n, 'builtin#21']);
  });

  it('names the C functions afterwards from the process mappings, as luaFrames does at once', () => {
    const symbolizer = new ProcessSymbolizer(new Map([[pid, ctx]]), EMPTY_KERNEL_SYMBOLS);
    const k = key([0x401234n], [word(C, 0x401000n), word(FAST, 21n)]);
    const names = symbolizer.nameCFunctions(pid, symbolizer.liveLuaFrames(k));
    expect(names).toEqual(['[libfoo.so+0x1000]', 'builtin#21']);
    expect(symbolizer.luaFrames(k)).toEqual(names);
  });
});
