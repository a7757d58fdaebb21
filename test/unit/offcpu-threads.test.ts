// What the kernel's per-thread entries still hold at the end of a run.
import { describe, expect, it } from 'vitest';
import type { OffCpuThread } from '../../src/native/abi.js';
import { offCpuLeftInThreads } from '../../src/profile/offcpu-threads.js';

function id(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n, 0);
  return b;
}

function thread(over: Partial<OffCpuThread>): OffCpuThread {
  return { tid: 1, startNs: 0n, id: id(0n), idleId: id(0n), idleNs: 0n, ...over };
}

function pairs(threads: OffCpuThread[], now: bigint): [bigint, bigint][] {
  const { ids, counts } = offCpuLeftInThreads(threads, now);
  const out: [bigint, bigint][] = [];
  for (let off = 0; off < ids.length; off += 8) out.push([ids.readBigUInt64LE(off), counts.readBigUInt64LE(off)]);
  return out;
}

describe('offCpuLeftInThreads', () => {
  it('adds a blocked thread its time so far, and a thread on a CPU nothing', () => {
    expect(pairs([thread({ startNs: 400n, id: id(7n) }), thread({ tid: 2 })], 1000n)).toEqual([[7n, 600n]]);
  });
  it('leaves out preempted threads (id 0) and starts after now', () => {
    expect(pairs([thread({ startNs: 400n }), thread({ startNs: 2000n, id: id(7n) })], 1000n)).toEqual([]);
  });
  it('adds the idle time summed in the entry under the idle stack, and the wait in progress too', () => {
    const t = thread({ idleId: id(9n), idleNs: 5000n, startNs: 900n, id: id(9n) });
    expect(pairs([t], 1000n)).toEqual([
      [9n, 5000n],
      [9n, 100n],
    ]);
  });
  it('drops idle time without an idle stack', () => {
    expect(pairs([thread({ idleNs: 5000n })], 1000n)).toEqual([]);
  });
});
