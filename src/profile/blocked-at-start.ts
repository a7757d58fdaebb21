// Target threads already blocked when an off-CPU or wall profile starts.
// The switch program sees a thread only when it leaves a CPU, so a worker
// that has waited in epoll since before the start (an idle gateway) would
// count no time at all, and one stuck in a blocking call would count none
// until the call returned. Before the program is attached, each such thread
// gets an entry as if it had just blocked, under a stack made from what
// /proc shows of it from outside: the system call it waits in and the
// instruction after it. Its Lua frames and the rest of its native stack
// cannot be read from outside the thread, so the stack says so at its root.
import { readdirSync, readFileSync } from 'node:fs';
import { SampleFlags, type SampleKey, VmState } from '../native/abi.js';

/** Root frame of such a stack: the rest of it could not be seen. */
export const BLOCKED_AT_START_FRAME = '[blocked before the profile started]';

export interface BlockedThread {
  tid: number;
  /** x86-64 system call number, or -1: blocked outside a system call. */
  syscall: number;
  /** The user instruction the thread resumes at. */
  pc: bigint;
}

/** The state letter of a /proc/<pid>/task/<tid>/stat line (after the command name). */
export function taskState(stat: string): string | null {
  const end = stat.lastIndexOf(')');
  return end < 0 ? null : (stat[end + 2] ?? null);
}

/**
 * /proc/<pid>/task/<tid>/syscall: "nr arg1 .. arg6 sp pc" in a system
 * call, "-1 sp pc" blocked outside one, "running" on a CPU.
 */
export function parseTaskSyscall(text: string): { syscall: number; pc: bigint } | null {
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 9 && fields.length !== 3) return null;
  const syscall = Number(fields[0]);
  if (!Number.isInteger(syscall) || (fields.length === 3) !== (syscall === -1)) return null;
  try {
    return { syscall, pc: BigInt(fields[fields.length - 1]) };
  } catch {
    return null;
  }
}

/** Sleeping (S) or in uninterruptible wait (D): off the CPU, not runnable. */
const BLOCKED_STATES = new Set(['S', 'D']);

/** The threads of pid blocked now; threads that end meanwhile are skipped. */
export function blockedThreads(pid: number, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): BlockedThread[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: BlockedThread[] = [];
  for (const tid of tids) {
    try {
      const state = taskState(read(`/proc/${pid}/task/${tid}/stat`));
      if (!state || !BLOCKED_STATES.has(state)) continue;
      const where = parseTaskSyscall(read(`/proc/${pid}/task/${tid}/syscall`));
      if (where && where.pc !== 0n) out.push({ tid: Number(tid), ...where });
    } catch {
      // The thread ended between the listing and the reads.
    }
  }
  return out;
}

/**
 * The id such a thread's time is counted under. Kernel ids are 64-bit
 * hashes; this fixed high half makes a clash a 1 in 2^32 chance per stack.
 */
const BLOCKED_AT_START_ID = 0xb10c_ed00n << 32n;
export function blockedAtStartId(tid: number): bigint {
  return BLOCKED_AT_START_ID | BigInt(tid >>> 0);
}

/** The key it is counted under: off-CPU, one user frame (the resume point). */
export function blockedAtStartKey(pid: number, t: BlockedThread): SampleKey {
  return { pid, flags: SampleFlags.OffCpu, vmstate: VmState.None, kernel: [], user: [t.pc], lua: [], luaPos: [], luaFromC: [], label: 0 };
}

/** x86-64 numbers of the system calls a worker or its threads usually wait in. */
const SYSCALL_NAMES = new Map<number, string>([
  [0, 'read'],
  [1, 'write'],
  [7, 'poll'],
  [17, 'pread64'],
  [18, 'pwrite64'],
  [19, 'readv'],
  [20, 'writev'],
  [23, 'select'],
  [34, 'pause'],
  [35, 'nanosleep'],
  [42, 'connect'],
  [43, 'accept'],
  [44, 'sendto'],
  [45, 'recvfrom'],
  [46, 'sendmsg'],
  [47, 'recvmsg'],
  [61, 'wait4'],
  [72, 'fcntl'],
  [74, 'fsync'],
  [75, 'fdatasync'],
  [202, 'futex'],
  [230, 'clock_nanosleep'],
  [232, 'epoll_wait'],
  [247, 'waitid'],
  [270, 'pselect6'],
  [271, 'ppoll'],
  [281, 'epoll_pwait'],
  [288, 'accept4'],
  [441, 'epoll_pwait2'],
]);

/** The leaf frame naming the system call (IDLE_WAIT_FRAMES knows the epoll ones). */
export function syscallFrame(nr: number): string {
  if (nr < 0) return '[blocked outside a system call]';
  return `[syscall ${SYSCALL_NAMES.get(nr) ?? nr}]`;
}

/** Root-first frames: the marker, the function it resumes in, the system call. */
export function blockedAtStartFrames(t: BlockedThread, nameUser: (pc: bigint) => string): string[] {
  return [BLOCKED_AT_START_FRAME, nameUser(t.pc), syscallFrame(t.syscall)];
}
