// The bench report's later sections: each renders from its phase's result
// (as a BENCH_ONLY run or the full run leaves it), and is absent otherwise.
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs module without types
import { extraSections } from '../../bench/markdown.mjs';

describe('bench report: off-CPU, --label uri and watch sections', () => {
  it('renders nothing when those phases did not run', () => {
    expect(extraSections({})).toEqual([]);
  });

  it('renders each phase with its figures and the off-CPU goal', () => {
    const text = (extraSections({
      offCpuCost: {
        'apisix-profile --mode off-cpu': { cpuPerReqUs: 60.6, ratio: 1.031, pairedRatios: [1.031, 1.02], bpfNsPerEvent: 919, bpfNsPerReq: 2100, bpfShareOfWorkerCpu: 0.0357, rps: 9000 },
        'bpftrace offcputime': { cpuPerReqUs: 62, ratio: 1.05, pairedRatios: [1.05], bpfNsPerEvent: 3199, bpfNsPerReq: 7000, bpfShareOfWorkerCpu: 0.119, rps: 8800 },
        baselineCpuPerReqUs: 58.8,
        runs: [],
      },
      uriLabelCost: {
        'without labels': { bpfNsPerSample: 1262 },
        '--label uri': { bpfNsPerSample: 1552 },
        runs: [{ kind: '--label uri', labelledShare: 0.94 }],
      },
      watchIdle: { wallSec: 60, cpuSec: 0.112, cpuPercent: 0.187, rssMb: 60, bpfPrograms: 0, profiles: 0 },
    }) as string[]).join('\n');
    expect(text).toContain('| apisix-profile --mode off-cpu | 1.0310× | ≤ 1.02: **not met** | 1.031, 1.020 | 919 ns | 2.10 µs | 3.6% | 9000 |');
    expect(text).toContain('| bpftrace offcputime | 1.0500× |  | 1.050 | 3199 ns | 7.00 µs | 11.9% |');
    expect(text).toContain('| `--label uri` | 1552 ns | 1.230× |');
    expect(text).toContain('Samples labelled with a URI: 94.0%.');
    expect(text).toContain('112 ms of CPU, 0.187% of one core, 60 MB resident, 0 BPF programs held');
  });
});
