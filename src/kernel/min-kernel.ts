// The oldest kernel the BPF programs load on, and why. Pure.

export interface KernelVersion {
  major: number;
  minor: number;
}

/**
 * Linux 6.1: what the programs use and the release that brought it. The
 * last one decides: before 6.1 the verifier refused any hash map created
 * with BPF_F_NO_PREALLOC in a perf_event program ("perf_event programs can
 * only use preallocated hash map"); 6.1 converted hash maps to the BPF
 * memory allocator and lifted that (commit 96da3f7d489d, "bpf: Remove
 * tracing program restriction on map types"). `stacks` and `known` are
 * such maps, used by sample_stack.
 */
export const MIN_KERNEL: KernelVersion = { major: 6, minor: 1 };

export const KERNEL_REQUIREMENTS: readonly { feature: string; since: string }[] = [
  { feature: 'BTF and CO-RE relocations', since: '5.4' },
  { feature: 'bpf_get_current_task_btf', since: '5.11' },
  { feature: 'global BPF functions with pointer arguments', since: '5.12' },
  { feature: 'bpf_task_pt_regs', since: '5.15' },
  { feature: 'BPF_F_NO_PREALLOC hash maps in perf_event programs', since: '6.1' },
];

export function formatVersion(v: KernelVersion): string {
  return `${v.major}.${v.minor}`;
}

/** `6.18.44+deb13-amd64` -> 6.18; null when the release does not start with major.minor. */
export function parseRelease(release: string): KernelVersion | null {
  const m = /^(\d+)\.(\d+)/.exec(release.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : null;
}

export function atLeast(v: KernelVersion, min: KernelVersion = MIN_KERNEL): boolean {
  return v.major > min.major || (v.major === min.major && v.minor >= min.minor);
}

/** What an older kernel lacks: the requirements newer than it. */
export function missingOn(v: KernelVersion): string[] {
  return KERNEL_REQUIREMENTS.filter((r) => {
    const since = parseRelease(r.since)!;
    return !atLeast(v, since);
  }).map((r) => `${r.feature} (${r.since})`);
}
