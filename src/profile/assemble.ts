// Turns one kernel-counted sample key into a root-first list of frame names.
// Pure: every lookup that needs the target process comes in as a resolver,
// so the rules (what to trust, where Lua frames go) are unit-tested alone.
import { SampleFlags, VmState, type SampleKey } from '../native/abi.js';
import { safeFrameName } from '../report/frame.js';
import type { FrameResolvers, UserFrame } from '../symbolize/frame-resolvers.js';

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

/** Lua frames (leaf first) cut into one run per VM entry, leaf first. */
function luaSegments(names: string[], fromC: boolean[]): string[][] {
  const segments: string[][] = [];
  let current: string[] = [];
  names.forEach((name, i) => {
    current.push(name);
    if (fromC[i]) {
      segments.push(current);
      current = [];
    }
  });
  if (current.length > 0) segments.push(current);
  return segments;
}

/**
 * A stack whose native frames came from the .eh_frame unwinder: every
 * native frame is real, so the Lua frames go exactly where the walk passed
 * through the VM (interpreter or trace code), one VM entry per run of Lua
 * frames, innermost first.
 */
function spliceUnwound(key: SampleKey, natives: UserFrame[], resolve: FrameResolvers, kernel: string[]): AssembledStack {
  const inLua = (key.flags & SampleFlags.InLua) !== 0;
  const segments = inLua ? luaSegments(resolve.luaFrames(key), key.luaFromC) : [];
  const vmFrame = inLua ? VM_STATE_FRAMES.get(key.vmstate) : undefined;
  const leafFirst: string[] = [];
  let next = 0;
  const isVm = (f: UserFrame) => f.region === 'vm' || f.region === 'jit';
  for (let i = 0; i < natives.length; ) {
    if (!isVm(natives[i])) {
      leafFirst.push(natives[i].name);
      i++;
      continue;
    }
    while (i < natives.length && isVm(natives[i])) i++;
    const segment = segments[next++];
    if (!segment) {
      leafFirst.push('[LuaJIT VM]');
      continue;
    }
    // A C function the Lua walk names is the native frame just above the VM.
    if (leafFirst.length > 0 && segment[0] === leafFirst[leafFirst.length - 1]) leafFirst.pop();
    if (next === 1 && vmFrame) leafFirst.push(vmFrame);
    leafFirst.push(...segment);
  }
  // The walk stopped before reaching every VM entry: the rest are below.
  if (next === 0 && vmFrame) leafFirst.push(vmFrame);
  for (; next < segments.length; next++) leafFirst.push(...segments[next]);
  if (key.flags & SampleFlags.LuaTruncated) leafFirst.push('[more Lua frames]');
  const stoppedEarly = (key.flags & SampleFlags.UnwindEnd) === 0;
  return { frames: [...leafFirst.reverse(), ...kernel], nativeCutShort: stoppedEarly };
}

/**
 * One key's frames, root first. Every name is made safe for every output
 * here, where the stack is made (a Lua chunk named by its source text may
 * hold `;`, which would split the frame in a folded line).
 */
export function assembleStack(key: SampleKey, resolve: FrameResolvers): AssembledStack {
  const stack = assembleNames(key, resolve);
  return { frames: stack.frames.map(safeFrameName), nativeCutShort: stack.nativeCutShort };
}

function assembleNames(key: SampleKey, resolve: FrameResolvers): AssembledStack {
  if (key.flags & SampleFlags.UnwindCfi) {
    const kernel = key.kernel.map((addr) => resolve.kernel(addr)).reverse();
    // Return addresses point after their call: name the call instruction.
    const natives = key.user.map((addr, i) => resolve.user(key.pid, i === 0 ? addr : addr - 1n));
    return spliceUnwound(key, natives, resolve, kernel);
  }
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
