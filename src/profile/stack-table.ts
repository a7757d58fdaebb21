// The stacks of one run, by the 64-bit id the kernel counts them under.
// While sampling, a drain adds counts by id; a new id's stack is copied out
// of the kernel once, its Lua functions named at once (the target's GC may
// free a prototype), and the id marked known so the kernel stops copying
// it. Native frames are named, and stacks folded, only after sampling: a
// drain's CPU time is taken from the target, the report's is not.
import { SampleFlags, type SampleKey } from '../native/abi.js';
import type { DrainedCounts } from '../native/profiler-object.js';
import type { LuaFrameName } from '../luajit/lua-frames.js';
import { mergeIdentical, type Stack, type UniqueStacks } from '../report/stack.js';
import { KNOWN_STACKS_MAX } from '../native/abi.js';
import type { BlockedThread } from './blocked-at-start.js';

/** What the table needs of the BPF object: the stack copies and the known set. */
export interface StackSource {
  stack(id: Buffer): SampleKey | null;
  markKnown(id: Buffer): boolean;
  dropStack(id: Buffer): void;
}

/** One stack as counted: its key, its Lua frames' names, its samples. */
export interface CountedStack {
  key: SampleKey;
  luaNames: LuaFrameName[];
  count: number;
  /** A thread blocked before the profile started: its stack as /proc shows it, not walked. */
  blockedAtStart?: BlockedThread;
}

export class StackTable {
  private readonly byId = new Map<bigint, CountedStack>();
  private readonly knownInKernel = new Set<bigint>();
  /** Samples counted so far (off-CPU: nanoseconds blocked, added in). */
  samples = 0;
  /** Counts whose id had no stack copy: short of a bug, none. */
  lostWithoutStack = 0;

  constructor(
    private readonly source: StackSource,
    /** Names a key's Lua frames from the live process (leaf first). */
    private readonly nameLiveLua: (key: SampleKey) => LuaFrameName[],
  ) {}

  /**
   * A stack user space made (never in the kernel's copies): counts drained
   * under its id add to it. Counts nothing until they come.
   */
  preset(id: bigint, entry: Omit<CountedStack, 'count'>): void {
    this.byId.set(id, { ...entry, count: 0 });
    this.knownInKernel.add(id);
  }

  /** Adds one drained counts map. */
  add({ ids, counts }: DrainedCounts): void {
    for (let off = 0; off + 8 <= ids.length; off += 8) {
      const id = ids.readBigUInt64LE(off);
      const count = Number(counts.readBigUInt64LE(off));
      const idBuf = ids.subarray(off, off + 8);
      let entry = this.byId.get(id);
      if (!entry) {
        const key = this.source.stack(idBuf);
        if (!key) {
          // The kernel writes the stack before its first count.
          this.lostWithoutStack += count;
          continue;
        }
        entry = { key, luaNames: key.flags & SampleFlags.InLua ? this.nameLiveLua(key) : [], count: 0 };
        this.byId.set(id, entry);
      }
      if (!this.knownInKernel.has(id)) this.forget(idBuf, id);
      entry.count += count;
      this.samples += count;
    }
  }

  /**
   * Known first, then the copy deleted: the kernel never lacks the stack of
   * an id user space has not named. When `known` is full the copy stays, and
   * is deleted again at each drain that sees the id.
   */
  private forget(idBuf: Buffer, id: bigint): void {
    if (this.knownInKernel.size < KNOWN_STACKS_MAX && this.source.markKnown(idBuf)) this.knownInKernel.add(id);
    this.source.dropStack(idBuf);
  }

  /** Every stack counted (and any preset still at 0), for statistics. */
  entries(): Iterable<CountedStack> {
    return this.byId.values();
  }

  /**
   * Root-first stacks, merged once: `place` names each counted stack and
   * gives its weight in the profile's unit, or null to leave it out.
   */
  fold(place: (entry: CountedStack) => Stack | null): UniqueStacks {
    const stacks: Stack[] = [];
    for (const entry of this.byId.values()) {
      if (entry.count === 0) continue;
      const stack = place(entry);
      if (stack) stacks.push(stack);
    }
    return mergeIdentical(stacks);
  }
}
