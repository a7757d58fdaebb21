// Threads already blocked when a time profile starts: what /proc says of
// them, the id and stack they are counted under, and the table's preset.
import { describe, expect, it } from 'vitest';
import { SampleFlags } from '../../src/native/abi.js';
import {
  BLOCKED_AT_START_FRAME,
  blockedAtStartFrames,
  blockedAtStartId,
  blockedAtStartKey,
  parseTaskSyscall,
  syscallFrame,
  taskState,
} from '../../src/profile/blocked-at-start.js';
import { StackTable } from '../../src/profile/stack-table.js';
import { isIdleWait } from '../../src/profile/weights.js';

describe('threads blocked before the start', () => {
  it('reads the state letter after a command name that holds spaces and parentheses', () => {
    expect(taskState('4242 (nginx: worker (x)) S 4241 4241 4241 0 -1')).toBe('S');
    expect(taskState('7 (lua) D 1')).toBe('D');
    expect(taskState('garbage')).toBeNull();
  });

  it('reads /proc/<tid>/syscall in a call, outside one, and running', () => {
    expect(parseTaskSyscall('232 0x5 0x55d0c0a0 0x200 0xffffffff 0x0 0x0 0x7ffc1a2b3c40 0x7f1e2d3c4b5a\n')).toEqual({ syscall: 232, pc: 0x7f1e2d3c4b5an });
    expect(parseTaskSyscall('-1 0x7ffc1a2b3c40 0x55d0c0a01234')).toEqual({ syscall: -1, pc: 0x55d0c0a01234n });
    expect(parseTaskSyscall('running')).toBeNull();
    expect(parseTaskSyscall('232 0x7ffc 0x7f1e')).toBeNull();
    expect(parseTaskSyscall('x 1 2 3 4 5 6 7 8')).toBeNull();
  });

  it('counts each thread under an id of its own, as off-CPU time at its resume point', () => {
    expect(blockedAtStartId(77)).not.toBe(blockedAtStartId(78));
    expect(blockedAtStartId(77) >> 32n).toBe(0xb10ced00n);
    const key = blockedAtStartKey(10, { tid: 11, syscall: 232, pc: 0x1234n });
    expect(key.flags).toBe(SampleFlags.OffCpu);
    expect(key.user).toEqual([0x1234n]);
    expect(key.kernel).toEqual([]);
  });

  it('names the system call at the leaf; an epoll wait is idle', () => {
    const frames = blockedAtStartFrames({ tid: 1, syscall: 232, pc: 0x10n }, () => 'epoll_wait');
    expect(frames).toEqual([BLOCKED_AT_START_FRAME, 'epoll_wait', '[syscall epoll_wait]']);
    expect(isIdleWait([BLOCKED_AT_START_FRAME, '[libc.so.6+0x1234]', syscallFrame(281)], false)).toBe(true);
    expect(isIdleWait([BLOCKED_AT_START_FRAME, 'clock_nanosleep', syscallFrame(230)], false)).toBe(false);
    expect(syscallFrame(-1)).toBe('[blocked outside a system call]');
    expect(syscallFrame(999)).toBe('[syscall 999]');
  });

  it('adds drained counts to a preset stack, and folds it only once it has any', () => {
    const asked: bigint[] = [];
    const table = new StackTable(
      {
        stack: (id) => {
          asked.push(id.readBigUInt64LE(0));
          return null;
        },
        markKnown: () => true,
        dropStack: () => {},
      },
      () => [],
    );
    const id = blockedAtStartId(5);
    table.preset(id, { key: blockedAtStartKey(4, { tid: 5, syscall: 232, pc: 1n }), luaNames: [] });
    expect(table.fold((e) => ({ frames: ['x'], count: e.count }))).toEqual([]);
    const ids = Buffer.alloc(8);
    ids.writeBigUInt64LE(id);
    const counts = Buffer.alloc(8);
    counts.writeBigUInt64LE(2_500_000n);
    table.add({ ids, counts });
    // Never looked up in the kernel's copies: user space made it.
    expect(asked).toEqual([]);
    expect(table.fold((e) => ({ frames: ['x'], count: e.count }))).toEqual([{ frames: ['x'], count: 2_500_000 }]);
  });
});
