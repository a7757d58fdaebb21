// What a stack's count is. CPU profiles count samples (each stands for
// 1/frequency of CPU time). Off-CPU and wall-clock profiles count whole
// microseconds: the folded stacks, the flame graph and the summaries show
// them as they are; pprof writes nanoseconds, speedscope seconds.

/** Absent: samples. 'off_cpu': time blocked off the CPU. 'wall': CPU samples and blocked time together. */
export type TimeWeight = 'off_cpu' | 'wall';

/** The unit word outputs show next to a count. */
export function countUnit(time: TimeWeight | undefined): string {
  return time ? 'µs' : 'samples';
}

/** A time count (µs) as headings show it, e.g. `9.80 s`. */
export function usAsSeconds(us: number): string {
  return `${(us / 1e6).toFixed(2)} s`;
}
