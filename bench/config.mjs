// What `npm run bench` measures and for how long: the full run, or the quick
// smoke run with BENCH_QUICK=1.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const QUICK = process.env.BENCH_QUICK === '1';
export const CFG = QUICK
  ? { reps: 1, windowSec: 3, warmSec: 2, reportSec: 10, reportReps: 1, accuracyFilter: "Debian's libluajit2" }
  : { reps: 5, windowSec: 8, warmSec: 5, reportSec: 30, reportReps: 3, accuracyFilter: '' };
export const CLI = join(root, 'bin', 'apisix-profile.js');

/** The tools measured against the target, in the order each repetition starts from. */
export const MODES = [
  { name: 'apisix-profile 49 Hz', kind: 'profiler', hz: 49 },
  { name: 'apisix-profile 99 Hz', kind: 'profiler', hz: 99, goal: 1.005 },
  { name: 'apisix-profile 999 Hz', kind: 'profiler', hz: 999, goal: 1.02 },
  // Without kernel stacks, as bpftrace's ustack records none: what the
  // kernel's own stack walk adds for samples taken in kernel mode.
  { name: 'apisix-profile 999 Hz --no-kernel', kind: 'profiler', hz: 999, extra: ['--no-kernel'] },
  { name: 'perf record -g -F 99', kind: 'perf', hz: 99 },
  { name: 'perf record -g -F 999', kind: 'perf', hz: 999 },
  { name: 'bpftrace profile:hz:99 ustack', kind: 'bpftrace', hz: 99 },
  { name: 'bpftrace profile:hz:999 ustack', kind: 'bpftrace', hz: 999 },
  // Counts samples and nothing else: what the sampling interrupt itself
  // costs the worker on this machine, the floor under every tool above.
  { name: 'bpftrace profile:hz:999 count only', kind: 'bpftrace', hz: 999, countOnly: true },
];
