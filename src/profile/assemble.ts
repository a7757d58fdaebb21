// Turns one kernel-counted sample key into a root-first list of frame names.
// Pure: every lookup that needs the target process comes in as a resolver,
// so the rules (what to trust, where Lua frames go) are unit-tested alone.
import { SampleFlags, VmState, type SampleKey } from '../native/abi.js';

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

export interface AssembledStack {
  frames: string[];
  /** Native frames were dropped because the frame-pointer chain was not
   * trustworthy (no frame pointers in the code it passed through). */
  nativeCutShort: boolean;
}

const VM_STATE_FRAMES = new Map<number, string>([
  [VmState.GC, '[GC]'],
  [VmState.Exit, '[trace exit]'],
  [VmState.Record, '[JIT compiler]'],
  [VmState.Opt, '[JIT compiler]'],
  [VmState.Asm, '[JIT compiler]'],
]);

/**
 * The trusted prefix (leaf first) of the kernel's frame-pointer walk. The
 * leaf is the sampled instruction and always true; each further address is
 * kept only while the frame below it keeps frame pointers and the address
 * sits right after a call instruction.
 */
export function trustedUserFrames(frames: UserFrame[]): { kept: UserFrame[]; complete: boolean } {
  if (frames.length === 0) return { kept: [], complete: true };
  const kept = [frames[0]];
  for (let i = 1; i < frames.length; i++) {
    if (!frames[i - 1].keepsFramePointer || !frames[i].isReturnSite) return { kept, complete: false };
    kept.push(frames[i]);
  }
  return { kept, complete: true };
}

export function assembleStack(key: SampleKey, resolve: FrameResolvers): AssembledStack {
  const userFrames = key.user.map((addr) => resolve.user(key.pid, addr));
  const { kept, complete } = trustedUserFrames(userFrames);
  const kernel = key.kernel.map((addr) => resolve.kernel(addr)).reverse();
  const inLua = (key.flags & SampleFlags.InLua) !== 0;

  if (!inLua) {
    return { frames: [...kept.map((f) => f.name).reverse(), ...kernel], nativeCutShort: !complete };
  }

  const lua = resolve.luaFrames(key).reverse();
  // Deeper than the kernel side keeps: say so where the missing root is.
  if (key.flags & SampleFlags.LuaTruncated) lua.unshift('[more Lua frames]');
  // Native frames above the VM: the C code that Lua called, leaf first, up
  // to where the walk reaches the VM or trace code (the Lua frames stand
  // for those) or stops being trustworthy.
  const above: string[] = [];
  let reachedVm = false;
  for (const f of kept) {
    if (f.region === 'vm' || f.region === 'jit') {
      reachedVm = true;
      break;
    }
    above.push(f.name);
  }
  // A C function the Lua walk already named is the same frame as the
  // native walk's outermost one: keep it once.
  if (above.length > 0 && lua.length > 0 && above[above.length - 1] === lua[lua.length - 1]) above.pop();
  const vmFrame = VM_STATE_FRAMES.get(key.vmstate);
  const frames = [...lua, ...(vmFrame ? [vmFrame] : []), ...above.reverse(), ...kernel];
  return { frames, nativeCutShort: !reachedVm && !complete && kept.length < userFrames.length };
}
