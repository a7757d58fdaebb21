// Measurement: CPU time of the worker and of the tools (stat ticks and
// schedstat), BPF program run-time statistics, the ratios and medians the
// report is made of, and what the machine is.
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { onCleanup, spawnTracked } from './cleanup.mjs';
import { MODES, root } from './config.mjs';
import { lineReader, log, python3, run, tryRun } from './util.mjs';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

/** utime + stime of a process (all its threads), in seconds. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after "pid (comm) ": state is f[0]; utime is field 14 -> f[11], stime f[12]
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Exact on-CPU time of a single-threaded process (ns), from schedstat. */
export function schedNs(pid) {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
}

/** On-CPU seconds of every thread of a process, ns-exact (schedstat). */
export function threadsCpuSeconds(pid) {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return ns / 1e9;
}

/**
 * Each tool window's CPU per request over the mean of the windows without
 * a tool on either side of it (the schedule alternates: none, tool, none, ...).
 */
export function pairedRatios(runs, kind) {
  const ratios = [];
  runs.forEach((r, i) => {
    if (r.kind !== kind) return;
    const around = [runs[i - 1], runs[i + 1]].filter((n) => n?.kind === 'none');
    if (around.length) ratios.push(r.cpuPerReqUs / (around.reduce((sum, n) => sum + n.cpuPerReqUs, 0) / around.length));
  });
  return ratios;
}

export function vmHwmKb(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------
// BPF program statistics (kernel.bpf_stats_enabled=1): the program ids a
// process holds (from /proc/<pid>/fdinfo), their counters from bpftool.

export function bpfProgIds(pid) {
  const ids = [];
  let fds = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return ids;
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
      const m = /prog_id:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m && !ids.includes(Number(m[1]))) ids.push(Number(m[1]));
    } catch {
      /* fd closed meanwhile */
    }
  }
  return ids;
}

/** { name -> { runTimeNs, runCnt } } summed over the programs `ids`, plus `_total`. */
export function bpfProgStats(ids) {
  const out = { _total: { runTimeNs: 0, runCnt: 0 } };
  if (ids.length === 0) return out;
  const all = JSON.parse(run('bpftool', ['prog', 'show', '-j']));
  for (const p of all) {
    if (!ids.includes(p.id)) continue;
    const name = p.name ?? `id${p.id}`;
    const s = (out[name] ??= { runTimeNs: 0, runCnt: 0 });
    s.runTimeNs += p.run_time_ns ?? 0;
    s.runCnt += p.run_cnt ?? 0;
    out._total.runTimeNs += p.run_time_ns ?? 0;
    out._total.runCnt += p.run_cnt ?? 0;
  }
  return out;
}

export function statDelta(a, b) {
  const out = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    out[k] = { runTimeNs: (b[k]?.runTimeNs ?? 0) - (a[k]?.runTimeNs ?? 0), runCnt: (b[k]?.runCnt ?? 0) - (a[k]?.runCnt ?? 0) };
  }
  return out;
}

// ---------------------------------------------------------------------------
// BPF run-time statistics, held only while a phase reads BPF run times:
// with them on, every program run also reads the clock twice and updates
// per-CPU counters, a cost users do not pay, charged to whatever thread
// the program runs in (the target itself for a switch into it or a
// sample of it). Preferred: BPF_ENABLE_STATS, an fd (held by a small python
// helper) that keeps them on until it is closed, whatever other tools
// write to the sysctl meanwhile (a concurrent bench that restores
// kernel.bpf_stats_enabled=0 would otherwise stop the counters mid-run).
// Fallback: kernel.bpf_stats_enabled=1, restored on release.
const STATS_HOLDER = `
import ctypes, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
attr = ctypes.create_string_buffer(struct.pack('I', 0), 16)  # BPF_STATS_RUN_TIME
fd = libc.syscall(321, 32, attr, 4)                            # bpf(BPF_ENABLE_STATS) on x86-64
if fd < 0:
    sys.stdout.write('ERR %d\\n' % ctypes.get_errno()); sys.stdout.flush(); sys.exit(1)
sys.stdout.write('OK\\n'); sys.stdout.flush()
sys.stdin.read()
`;

/** Turns BPF run-time statistics on until release() (also called at cleanup). Returns how, and release. */
export async function holdBpfStats() {
  const { child, exited } = spawnTracked(python3(), ['-c', STATS_HOLDER], { stdio: ['pipe', 'pipe', 'ignore'] });
  const out = lineReader(child.stdout);
  const first = await Promise.race([out.waitFor(/^(OK|ERR)/, 10_000).catch(() => ({ line: 'ERR timeout' })), exited.then(() => ({ line: 'ERR exited' }))]);
  let released = false;
  if (first.line.startsWith('OK')) {
    const release = async () => {
      if (released) return;
      released = true;
      child.stdin.end();
      await exited;
    };
    onCleanup(release);
    log('BPF run-time statistics on (BPF_ENABLE_STATS fd)');
    return { via: 'BPF_ENABLE_STATS', release };
  }
  const prev = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  const release = async () => {
    if (released) return;
    released = true;
    writeFileSync('/proc/sys/kernel/bpf_stats_enabled', prev);
  };
  onCleanup(release);
  log(`BPF_ENABLE_STATS failed (${first.line}): kernel.bpf_stats_enabled=1 (was ${prev}; restored on release)`);
  return { via: 'kernel.bpf_stats_enabled=1', release };
}

/** The machine's CPU time so far, in ticks: all of it, and what the hypervisor stole (/proc/stat). */
export function cpuTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user)
  return { total: f.slice(0, 8).reduce((a, b) => a + b, 0), steal: f[7] ?? 0 };
}

// ---------------------------------------------------------------------------
// Target overhead: each tool run against the baseline runs around it.

export function summarizeOverhead(runs) {
  const rows = [];
  for (const m of MODES) {
    const ratios = { cpu: [], sched: [], rps: [] };
    const raw = [];
    runs.forEach((r, i) => {
      if (r.mode !== m.name) return;
      const nb = [runs[i - 1], runs[i + 1]].filter((x) => x && x.mode === 'none');
      const base = (f) => nb.reduce((s, x) => s + f(x), 0) / nb.length;
      ratios.cpu.push(r.cpuPerReqUs / base((x) => x.cpuPerReqUs));
      ratios.sched.push(r.schedPerReqUs / base((x) => x.schedPerReqUs));
      ratios.rps.push(r.rps / base((x) => x.rps));
      raw.push(r);
    });
    const bpfTotal = raw.map((r) => r.bpf._total.runTimeNs);
    const bpfCnt = raw.map((r) => r.bpf._total.runCnt);
    const sampleProg = raw.map((r) => r.bpf.sample_stack ?? null);
    const learn = raw.map((r) => r.bpf.learn_global_state ?? r.bpf.learn_global_st ?? null);
    rows.push({
      mode: m,
      n: raw.length,
      cpu: median(ratios.cpu),
      cpuMin: Math.min(...ratios.cpu),
      cpuMax: Math.max(...ratios.cpu),
      sched: median(ratios.sched),
      rps: median(ratios.rps),
      rpsMin: Math.min(...ratios.rps),
      rpsMax: Math.max(...ratios.rps),
      cpuPerReqUs: median(raw.map((r) => r.cpuPerReqUs)),
      reqPerSec: median(raw.map((r) => r.rps)),
      toolCpuPct: median(raw.map((r) => r.toolCpuPerSec * 100)),
      bpfPct: median(raw.map((r, i) => (100 * bpfTotal[i]) / r.bpfWindowNs)),
      // BPF run time over the worker's own run time in the window: the part
      // of the overhead that is measured exactly, not through wrk's noise.
      bpfShareOfWorker: median(raw.map((r, i) => bpfTotal[i] / (r.schedPerReqUs * 1e3 * r.requests))),
      bpfNsPerRun: median(raw.map((_, i) => (bpfCnt[i] ? bpfTotal[i] / bpfCnt[i] : NaN))),
      bpfRunsPerSec: median(raw.map((r, i) => bpfCnt[i] / (r.bpfWindowNs / 1e9))),
      sampleNsPerRun: median(sampleProg.map((s) => (s && s.runCnt ? s.runTimeNs / s.runCnt : NaN))),
      bpfNsPerSample: median(raw.map((r) => {
        const end = r.bpfAtEnd._total.runTimeNs;
        return r.samples > 0 ? end / r.samples : NaN;
      })),
      samplesPerRun: median(raw.map((r) => r.samples)),
      uprobePerReq: m.kind === 'profiler' ? median(learn.map((s, i) => (s ? s.runCnt : 0) / raw[i].requests)) : NaN,
      uprobeHits: m.kind === 'profiler' ? learn.map((s) => (s ? s.runCnt : 0)) : [],
      errors: raw.reduce((s, r) => s + r.non2xx, 0),
    });
  }
  const none = runs.filter((r) => r.mode === 'none');
  const noneCpu = none.map((r) => r.cpuPerReqUs);
  const noneRps = none.map((r) => r.rps);
  const noise = {
    n: none.length,
    cpuPerReqUs: median(noneCpu),
    cpuSpread: (Math.max(...noneCpu) - Math.min(...noneCpu)) / median(noneCpu),
    rps: median(noneRps),
    rpsSpread: (Math.max(...noneRps) - Math.min(...noneRps)) / median(noneRps),
    // Baseline runs judged like a tool run: each inner one against its neighbours.
    selfRatio: median(none.slice(1, -1).map((r, i) => {
      const idx = runs.indexOf(r);
      const prev = runs.slice(0, idx).reverse().find((x) => x.mode === 'none');
      const next = runs.slice(idx + 1).find((x) => x.mode === 'none');
      return r.cpuPerReqUs / ((prev.cpuPerReqUs + next.cpuPerReqUs) / 2);
    })),
    selfRatios: none.slice(1, -1).map((r) => {
      const idx = runs.indexOf(r);
      const prev = runs.slice(0, idx).reverse().find((x) => x.mode === 'none');
      const next = runs.slice(idx + 1).find((x) => x.mode === 'none');
      return r.cpuPerReqUs / ((prev.cpuPerReqUs + next.cpuPerReqUs) / 2);
    }),
  };
  return { rows, noise };
}

// ---------------------------------------------------------------------------
// The machine the figures come from.

/** A tool's version from stdout or stderr, whatever its exit code. */
function versionOf(cmd, args, re) {
  const p = spawnSync(cmd, args, { encoding: 'utf8' });
  const m = re.exec(`${p.stdout ?? ''}\n${p.stderr ?? ''}`);
  return m ? m[0] : cmd;
}

export function machine() {
  const cpuModel = (readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [, cpus()[0]?.model ?? '?'])[1];
  const gitHead = tryRun('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  const dirty = tryRun('git', ['-C', root, 'status', '--porcelain', '--', 'src', 'bpf', 'addon', 'bin']);
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    nproc: Number(tryRun('nproc', [])) || cpus().length,
    kernel: tryRun('uname', ['-r']),
    cpuModel,
    memGb: (totalmem() / 2 ** 30).toFixed(1),
    freeGb: (freemem() / 2 ** 30).toFixed(1),
    node: process.version,
    nginx: versionOf('nginx', ['-v'], /nginx\/\S+/),
    perf: tryRun('perf', ['--version']),
    bpftrace: tryRun('bpftrace', ['--version']),
    wrk: versionOf('wrk', ['--version'], /wrk \S+/),
    commit: gitHead ? `${gitHead}${dirty ? ' + uncommitted changes in src/bpf/addon/bin' : ''}` : 'unknown (not a git checkout)',
    loadStart: loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}
