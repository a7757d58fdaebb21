// What the symbolizer tells about a sample's frames: the contract between
// the process symbolizer (which implements it for a live process) and the
// stack assembly in src/profile/assemble.ts (which only calls it), so the
// assembly's rules are tested with plain functions.
import type { SampleKey } from '../native/abi.js';

/** What the user-space side knows about one native user address. */
export interface UserFrame {
  name: string;
  /** 'vm': LuaJIT's interpreter; 'jit': anonymous executable memory (trace
   * machine code); 'luajit': other code in the LuaJIT library; 'native'. */
  region: 'vm' | 'jit' | 'luajit' | 'native';
  /** The function at this address keeps a frame-pointer chain, so the next
   * frame the kernel's frame-pointer walk reported can be trusted. */
  keepsFramePointer: boolean;
  /** The bytes before this address decode as a call instruction. */
  isReturnSite: boolean;
}

export interface FrameResolvers {
  kernel(addr: bigint): string;
  user(pid: number, addr: bigint): UserFrame;
  /** Names of the sample's Lua frames, leaf first (key.lua order). */
  luaFrames(key: SampleKey): string[];
}
