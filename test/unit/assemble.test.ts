import { describe, expect, it } from 'vitest';
import { type SampleKey, SampleFlags, VmState, LuaFrameKind, LUA_FRAME_KIND_SHIFT } from '../../src/native/abi.js';
import { assembleStack, trustedUserFrames } from '../../src/profile/assemble.js';
import type { FrameResolvers, UserFrame } from '../../src/symbolize/frame-resolvers.js';

// A fake process: addresses name themselves; 0x1xxx is the VM, 0x2xxx is
// trace code, 0x3xxx keeps frame pointers, 0x4xxx does not.
function frameAt(addr: bigint): UserFrame {
  const page = Number(addr >> 12n);
  return {
    name: `f${addr.toString(16)}`,
    region: page === 1 ? 'vm' : page === 2 ? 'jit' : 'native',
    keepsFramePointer: page === 3,
    isReturnSite: true,
  };
}

const resolvers: FrameResolvers = {
  kernel: (a) => `k${a.toString(16)}_[k]`,
  user: (_pid, a) => frameAt(a),
  luaFrames: (k) => k.lua.map((w) => `lua${(w & 0xffffn).toString(16)}`),
};

function key(partial: Partial<SampleKey>): SampleKey {
  return { pid: 7, flags: 0, vmstate: VmState.None, kernel: [], user: [], lua: [], luaPos: [], ...partial };
}

const luaWord = (n: number) => (BigInt(LuaFrameKind.Lua) << LUA_FRAME_KIND_SHIFT) | BigInt(n);

describe('trustedUserFrames', () => {
  it('keeps the leaf always and further frames only below frame-pointer code at call sites', () => {
    const f = (n: number, fp: boolean, ret = true): UserFrame => ({ name: `${n}`, region: 'native', keepsFramePointer: fp, isReturnSite: ret });
    expect(trustedUserFrames([f(1, false), f(2, true)])).toEqual({ kept: [f(1, false)], complete: false });
    expect(trustedUserFrames([f(1, true), f(2, true), f(3, false)])).toEqual({ kept: [f(1, true), f(2, true), f(3, false)], complete: true });
    expect(trustedUserFrames([f(1, true), f(2, true, false)])).toEqual({ kept: [f(1, true)], complete: false });
    expect(trustedUserFrames([])).toEqual({ kept: [], complete: true });
  });
});

describe('assembleStack', () => {
  it('puts native frames root first and kernel frames on top outside Lua', () => {
    const s = assembleStack(key({ user: [0x3001n, 0x3002n, 0x3003n], kernel: [0x10n, 0x20n] }), resolvers);
    expect(s.frames).toEqual(['f3003', 'f3002', 'f3001', 'k20_[k]', 'k10_[k]']);
    expect(s.nativeCutShort).toBe(false);
  });

  it('keeps only the leaf when frame pointers cannot be trusted, and says so', () => {
    const s = assembleStack(key({ user: [0x4001n, 0x4002n] }), resolvers);
    expect(s.frames).toEqual(['f4001']);
    expect(s.nativeCutShort).toBe(true);
  });

  it('places C frames called from Lua above the Lua frames, stopping at the VM', () => {
    const s = assembleStack(
      key({ flags: SampleFlags.InLua, vmstate: VmState.C, user: [0x3001n, 0x3002n, 0x1005n, 0x3009n], lua: [luaWord(2), luaWord(1)] }),
      resolvers,
    );
    expect(s.frames).toEqual(['lua1', 'lua2', 'f3002', 'f3001']);
    expect(s.nativeCutShort).toBe(false);
  });

  it('lets the Lua frames stand for the interpreter and trace code', () => {
    const interp = assembleStack(key({ flags: SampleFlags.InLua, vmstate: VmState.Interp, user: [0x1004n], lua: [luaWord(3)] }), resolvers);
    expect(interp.frames).toEqual(['lua3']);
    const trace = assembleStack(key({ flags: SampleFlags.InLua, vmstate: 12, user: [0x2004n], lua: [luaWord(3)] }), resolvers);
    expect(trace.frames).toEqual(['lua3']);
  });

  it('adds a VM-state pseudo-frame for GC, trace exits and the JIT compiler', () => {
    for (const [vmstate, name] of [
      [VmState.GC, '[GC]'],
      [VmState.Exit, '[trace exit]'],
      [VmState.Record, '[JIT compiler]'],
      [VmState.Asm, '[JIT compiler]'],
    ] as const) {
      const s = assembleStack(key({ flags: SampleFlags.InLua, vmstate, user: [0x4001n], lua: [luaWord(1)] }), resolvers);
      expect(s.frames).toEqual(['lua1', name, 'f4001']);
    }
  });

  it('marks a Lua stack cut at the kernel side\'s depth limit at its root', () => {
    const s = assembleStack(key({ flags: SampleFlags.InLua | SampleFlags.LuaTruncated, vmstate: VmState.Interp, user: [0x1000n], lua: [luaWord(2), luaWord(1)] }), resolvers);
    expect(s.frames).toEqual(['[more Lua frames]', 'lua1', 'lua2']);
  });

  it('does not repeat a C function that both walks found', () => {
    const cWord = (BigInt(LuaFrameKind.C) << LUA_FRAME_KIND_SHIFT) | 0x3002n;
    const r: FrameResolvers = { ...resolvers, luaFrames: (k) => k.lua.map((w) => (w === cWord ? 'f3002' : `lua${(w & 0xffffn).toString(16)}`)) };
    const s = assembleStack(key({ flags: SampleFlags.InLua, vmstate: VmState.C, user: [0x3001n, 0x3002n, 0x1000n], lua: [cWord, luaWord(1)] }), r);
    expect(s.frames).toEqual(['lua1', 'f3002', 'f3001']);
  });
});
