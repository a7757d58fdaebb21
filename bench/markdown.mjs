// The Markdown report (docs/BENCHMARKS.md) from the bench's results.
import { CFG, QUICK } from './config.mjs';
import { median, summarizeOverhead } from './measure.mjs';

const fmt = (x, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

function goalCell(value, goal) {
  if (!Number.isFinite(value) || goal === undefined) return '';
  return value <= goal ? `≤ ${goal}: met` : `≤ ${goal}: **not met**`;
}

/** The report's text; the overhead figures are summarised here from the raw runs, which BENCH_RAW keeps as measured. */
export function renderMarkdown(result) {
  const m = result.machine;
  const { rows, noise } = summarizeOverhead(result.overheadRuns);
  const byName = Object.fromEntries(rows.map((r) => [r.mode.name, r]));
  // The sampling interrupt's own cost: the floor under every 999 Hz tool.
  const floor = rows.find((r) => r.mode.countOnly);
  const L = [];
  L.push('# Benchmarks');
  L.push('');
  L.push(`Written by \`npm run bench\` (bench/run.mjs)${QUICK ? ' in its quick mode (BENCH_QUICK=1: 1 repetition, short windows; smoke test only)' : ''}. Do not edit by hand: run it again.`);
  L.push('');
  L.push('## Machine and run');
  L.push('');
  L.push('| | |');
  L.push('|---|---|');
  L.push(`| date | ${m.date} |`);
  L.push(`| CPU | ${m.cpuModel}, ${m.nproc} CPUs (nproc); shared VM, no hardware counters |`);
  L.push(`| memory | ${m.memGb} GB |`);
  L.push(`| kernel | ${m.kernel} |`);
  L.push(`| software | node ${m.node}, ${m.nginx}, ${m.perf}, ${m.bpftrace}, ${m.wrk} |`);
  L.push(`| apisix-profile | commit ${m.commit} |`);
  L.push(`| load average | ${m.loadStart} at the start, ${result.loadEnd} at the end (1, 5, 15 min) |`);
  L.push(`| bench duration | ${Math.round(result.seconds)} s |`);
  L.push(`| CPU time stolen by the hypervisor | ${fmt(result.stealPct, 1)}% during the bench (/proc/stat steal: other guests on the host; the more, the noisier every ratio below) |`);
  L.push('');
  L.push('## Target overhead');
  L.push('');
  L.push(
    `The fixture app (nginx + ngx_lua, 1 worker, JIT on, \`/work\`: three Lua functions) saturated by \`wrk -t1 -c4\` on loopback for ${CFG.windowSec} s per run, ` +
      `${CFG.reps} repetition(s) of every tool. Runs alternate with baseline runs (none, A, none, B, ..., none) and each repetition starts at another tool; ` +
      'each tool run is compared with the mean of the two baseline runs around it, and the table shows the median of those ratios (min-max in brackets). ' +
      'Each tool is started and sampling (the profiler has learned global_State from 5 warm-up requests) before the measured window begins, and stopped after it. ' +
      (result.overheadTarget?.pinned
        ? 'The worker runs on CPU 1 and wrk on CPU 0 (`taskset`), so neither migrates; the tools are not pinned and run wherever the scheduler puts them.'
        : 'Nothing is pinned (one CPU).'),
  );
  L.push('');
  L.push('- **CPU/request**: the worker\'s utime+stime (`/proc/<worker>/stat`) over the window ÷ the requests wrk completed.');
  L.push('- **CPU/request (schedstat)**: the same from `/proc/<worker>/schedstat` (ns-exact run time instead of 10 ms ticks).');
  L.push('- **requests/s**: wrk\'s figure.');
  L.push('- **BPF ÷ worker CPU**: the run time of the tool\'s BPF programs in the window (every CPU, every process they ran for) ÷ the worker\'s run time in the window: exact, so it bounds what the programs themselves add even where the ratios are lost in noise. The timer interrupt that fires them costs every sampling tool alike and shows only in the ratios.');
  L.push('');
  L.push('| tool | CPU/request vs none | goal | CPU/request (schedstat) | requests/s vs none | BPF ÷ worker CPU | CPU/request | requests/s |');
  L.push('|---|---|---|---|---|---|---|---|');
  L.push(`| none (baseline, ${noise.n} runs) | 1 | | 1 | 1 | | ${fmt(noise.cpuPerReqUs, 1)} µs | ${fmt(noise.rps, 0)} |`);
  for (const r of rows) {
    const share = r.mode.kind === 'perf' ? 'n/a (no BPF)' : `${fmt(r.bpfShareOfWorker * 100, 3)}%`;
    L.push(
      `| ${r.mode.name} | ${fmt(r.cpu, 4)} (${fmt(r.cpuMin, 3)}-${fmt(r.cpuMax, 3)}) | ${goalCell(r.cpu, r.mode.goal)} | ${fmt(r.sched, 4)} | ${fmt(r.rps, 4)} (${fmt(r.rpsMin, 3)}-${fmt(r.rpsMax, 3)}) | ${share} | ${fmt(r.cpuPerReqUs, 1)} µs | ${fmt(r.reqPerSec, 0)} |`,
    );
  }
  L.push('');
  L.push(
    `Noise floor: the baseline runs' CPU/request spans ${fmt(noise.cpuSpread * 100, 1)}% of its median and their requests/s ${fmt(noise.rpsSpread * 100, 1)}%; ` +
      `an inner baseline run judged against its two neighbours, exactly like a tool run, gives a median ratio of ${fmt(noise.selfRatio, 4)} ` +
      `(each: ${noise.selfRatios.map((x) => fmt(x, 3)).join(', ') || 'n/a'}). Differences smaller than that are not resolved on this machine.`,
  );
  if (floor && Number.isFinite(floor.cpu)) {
    const at999 = rows.filter((r) => r.mode.hz === 999 && !r.mode.countOnly);
    L.push('');
    L.push(
      `The sampling interrupt alone (bpftrace counting samples at 999 Hz, no stack) costs the worker ${fmt(floor.cpu, 4)}× here: ` +
        'a timer interrupt per sample, which in a VM also exits to the hypervisor. Above that floor, at 999 Hz: ' +
        `${at999.map((r) => `${r.mode.name} ${r.cpu - floor.cpu >= 0 ? '+' : ''}${fmt((r.cpu - floor.cpu) * 100, 2)}%`).join(', ')}.`,
    );
  }
  const errs = rows.reduce((s, r) => s + r.errors, 0);
  L.push('');
  L.push(`Non-2xx responses during tool runs: ${errs}.`);
  L.push('');
  L.push('## Profiler cost while sampling');
  L.push('');
  L.push(
    'From the same runs. **Process CPU** is the tool\'s own on-CPU time per second of the window, summed over its threads (`/proc/<tool>/task/*/schedstat`, ns-exact; 10 ms ticks would be too coarse for an 8 s window). **BPF CPU** is the run time of the tool\'s BPF programs ' +
      `(run-time statistics on through ${result.statsVia === 'BPF_ENABLE_STATS' ? 'a BPF_ENABLE_STATS fd held for the whole phase, baselines too, the same switch as `kernel.bpf_stats_enabled=1` but immune to other tools resetting the sysctl' : '`kernel.bpf_stats_enabled=1`'}; ` +
      'programs found through `/proc/<tool>/fdinfo`, counters from `bpftool prog show -j`) per second of the window. ' +
      'Both are in % of one CPU. The perf-event program runs on every CPU for every process (it drops other processes first); **ns per run** is over all its runs, ' +
      '**BPF ns per sample** is the programs\' total run time from load to the end of the window ÷ the samples of the target the tool reported for its whole run (the window plus a few seconds around it).',
  );
  L.push('');
  L.push('| tool | process CPU | BPF CPU | total | goal (99 Hz) | BPF runs/s | BPF ns per run | BPF ns per sample | ÷ bpftrace\'s at that rate | samples of the target per run |');
  L.push('|---|---|---|---|---|---|---|---|---|---|');
  // BPF cost per sample against bpftrace's in the same run: a machine
  // twice as slow doubles both, so this ratio compares across machines.
  const bpftraceNs = new Map(rows.filter((x) => x.mode.kind === 'bpftrace' && !x.mode.countOnly).map((x) => [x.mode.hz, x.bpfNsPerSample]));
  for (const r of rows) {
    const vsBpftrace = r.mode.kind === 'profiler' && bpftraceNs.has(r.mode.hz) ? `${fmt(r.bpfNsPerSample / bpftraceNs.get(r.mode.hz), 2)}×` : '';
    const bpf = r.mode.kind === 'perf' ? NaN : r.bpfPct;
    const total = r.toolCpuPct + (Number.isFinite(bpf) ? bpf : 0);
    const goal = r.mode.kind === 'profiler' && r.mode.hz === 99 ? (total <= 0.5 ? '≤ 0.5%: met' : '≤ 0.5%: **not met**') : '';
    L.push(
      `| ${r.mode.name} | ${fmt(r.toolCpuPct, 2)}% | ${r.mode.kind === 'perf' ? 'n/a (no BPF)' : `${fmt(bpf, 3)}%`} | ${fmt(total, 2)}% | ${goal} | ${r.mode.kind === 'perf' ? '' : fmt(r.bpfRunsPerSec, 0)} | ${r.mode.kind === 'perf' ? '' : fmt(r.bpfNsPerRun, 0)} | ${r.mode.kind === 'perf' ? '' : fmt(r.bpfNsPerSample, 0)} | ${vsBpftrace} | ${fmt(r.samplesPerRun, 0)} |`,
    );
  }
  L.push('');
  L.push(
    'apisix-profile and `perf record -g` record the kernel stack of a sample taken in kernel mode (the kernel\'s own unwinder walks it); bpftrace\'s `ustack` and `--no-kernel` do not. ' +
      'perf\'s cost in the kernel (its NMI/timer handler and call-chain walk) has no counter here; it shows only in the target\'s CPU/request above. ' +
      'The kernel charges BPF run time in the timer interrupt to whatever task it interrupts, so part of it is already inside the target\'s CPU/request.',
  );
  L.push('');
  L.push('**Uprobe hits per request after warm-up** (goal 0): the `learn_global_state` uprobe program\'s run count during the window ÷ requests in the window.');
  L.push('');
  L.push('| tool | uprobe hits per request | hits in each window |');
  L.push('|---|---|---|');
  for (const r of rows.filter((x) => x.mode.kind === 'profiler')) {
    L.push(`| ${r.mode.name} | ${fmt(r.uprobePerReq, 5)} ${r.uprobePerReq === 0 ? '(goal 0: met)' : '(goal 0: **not met**)'} | ${r.uprobeHits.join(', ')} |`);
  }
  L.push('');
  L.push("The profiler's own count (`counters.uprobeHits` in its `--json` summary) covers the whole run, the warm-up requests included; the figures above count the window alone.");
  L.push('');
  L.push('## Report speed and memory');
  L.push('');
  const rep = result.report;
  const med = (f) => median(rep.runs.map(f));
  L.push(
    `A ${CFG.reportSec} s profile of both workers of a 2-worker fixture (\`wrk -t2 -c8\` keeps them busy throughout) at 999 Hz, writing the SVG and folded stacks` +
      `${rep.pprof ? ' and pprof' : ' (the CLI has no pprof output option yet)'}; ${rep.runs.length} run(s), medians. ` +
      '**Report time** is from the "sampling stopped" log line to the summary line, which is logged after the outputs are written (pino time stamps); ' +
      '**to exit** is from that line\'s arrival to the process exit. **Peak RSS** is the profiler\'s ru_maxrss from wait4 (VmHWM polled as a cross-check).',
  );
  L.push('');
  L.push('| figure | value | goal |');
  L.push('|---|---|---|');
  const rms = med((r) => r.reportMs);
  const rss = med((r) => r.maxRssMb);
  L.push(`| report time | ${fmt(rms, 0)} ms (runs: ${rep.runs.map((r) => r.reportMs).join(', ')}) | ≤ 1000 ms: ${rms <= 1000 ? 'met' : '**not met**'} |`);
  L.push(`| to exit | ${fmt(med((r) => r.exitMs), 0)} ms | |`);
  L.push(`| peak RSS | ${fmt(rss, 0)} MB (VmHWM ${fmt(med((r) => r.vmHwmMb), 0)} MB) | ≤ 150 MB: ${rss <= 150 ? 'met' : '**not met**'} |`);
  L.push(`| sampling time | ${fmt(med((r) => r.samplingSec), 1)} s ("sampling" to "sampling stopped" log lines; ended by SIGINT ${CFG.reportSec} s after the first) | |`);
  L.push(`| set-up time | ${fmt(med((r) => r.setupMs), 0)} ms (start of the process to the "sampling" line: targets, ELF files, unwind rows, BPF load and attach) | |`);
  L.push(`| profiler CPU, whole run | ${fmt(med((r) => r.cpuSec), 2)} s (set-up, sampling and report) | |`);
  L.push(`| samples | ${fmt(med((r) => r.samples), 0)} (runs: ${rep.runs.map((r) => r.samples).join(', ')}) | |`);
  L.push(`| unique stacks | ${fmt(med((r) => r.uniqueStacks), 0)} | |`);
  L.push(`| output sizes | ${Object.entries(rep.runs.at(-1).sizes).map(([k, v]) => `${k} ${(v / 1024).toFixed(0)} KB`).join(', ')} | |`);
  L.push('');
  const lastRun = rep.runs.at(-1);
  const ownSec = Number(/ in ([\d.]+) s/.exec(lastRun.summary)?.[1]);
  const countsSetup = Number.isFinite(ownSec) && ownSec - lastRun.samplingSec > 0.5;
  L.push(`The profiler's own summary of the last run: "${lastRun.summary}"${countsSetup ? ' (its "in N s" counts the set-up time as well)' : ''}.`);
  L.push('');
  const b = rep.breakdown;
  L.push(
    `In-process breakdown (dist/ modules, the last profile's ${b.stacks} stacks, median of 5): fold ${fmt(b.foldMs, 1)} ms, SVG ${fmt(b.svgMs, 1)} ms` +
      `${b.pprofMs !== undefined ? `, pprof ${fmt(b.pprofMs, 1)} ms` : ''}.`,
  );
  L.push('');
  L.push('## Accuracy');
  L.push('');
  L.push(
    "Share of samples whose stack holds each of the fixture's three Lua functions (fixtures/app/cost.lua), against the app's own CPU split " +
      "(`os.clock()` deltas, `/truth`), for every LuaJIT configuration the integration tests cover: the run of `test/integration/accuracy.test.ts` " +
      '(6 s at 999 Hz under load, one run per case; the test allows 3 percentage points). Error = profile − truth.',
  );
  L.push('');
  const acc = result.accuracy;
  L.push('| configuration | function | truth | profile | error |');
  L.push('|---|---|---|---|---|');
  for (const a of acc.rows) L.push(`| ${a.config} | ${a.fn} | ${fmt(a.truth, 1)}% | ${fmt(a.profile, 1)}% | ${a.errPp >= 0 ? '+' : ''}${fmt(a.errPp, 2)} pp |`);
  L.push('');
  const worst = Math.max(...acc.rows.map((a) => Math.abs(a.errPp)));
  L.push(`Largest error: ${fmt(worst, 2)} pp over ${acc.rows.length / 3} cases; the test run exited with ${acc.testExit}${acc.failed.length ? ` (failed: ${acc.failed.join('; ')})` : ''}.`);
  L.push('');
  L.push(...extraSections(result));
  L.push('## Goals');
  L.push('');
  const p99 = byName['apisix-profile 99 Hz'];
  const p999 = byName['apisix-profile 999 Hz'];
  const p99Cost = p99.toolCpuPct + p99.bpfPct;
  const goals = [
    ['worker CPU/request at 99 Hz', `${fmt(p99.cpu, 4)}×`, '≤ 1.005×', p99.cpu <= 1.005],
    [
      'worker CPU/request at 999 Hz',
      `${fmt(p999.cpu, 4)}×${floor ? ` (the sampling interrupt alone: ${fmt(floor.cpu, 4)}×)` : ''}`,
      '≤ 1.02×',
      p999.cpu <= 1.02,
    ],
    ['profiler CPU + BPF at 99 Hz', `${fmt(p99Cost, 2)}% of one CPU`, '≤ 0.5%', p99Cost <= 0.5],
    ['uprobe hits per request after warm-up', fmt(p99.uprobePerReq, 5), '0', p99.uprobePerReq === 0],
    [`report time (${CFG.reportSec} s, 2 workers, 999 Hz)`, `${fmt(rms, 0)} ms`, '≤ 1 s', rms <= 1000],
    ['peak RSS', `${fmt(rss, 0)} MB`, '≤ 150 MB', rss <= 150],
  ];
  L.push('| goal | measured | target | |');
  L.push('|---|---|---|---|');
  for (const [g, v, t, ok] of goals) L.push(`| ${g} | ${v} | ${t} | ${ok ? 'met' : '**not met**'} |`);
  L.push('');
  return L.join('\n');
}

/** The phases added after the first three: each renders when it ran (a BENCH_ONLY run has one). */
export function extraSections(result) {
  const L = [];
  const off = result.offCpuCost;
  if (off) {
    L.push('## Off-CPU mode');
    L.push('');
    L.push(
      'The fixture (1 worker, JIT on) under `wrk -t1 -c1` on `/truth`: one epoll wait, so one switch out and in, per request. ' +
        'Worker CPU per request (schedstat) with each off-CPU tool: every window with a tool sits between two without one and is divided by their mean; ' +
        'the median of those paired ratios is the figure. The BPF time per switch event is the run time of the tool\'s programs ÷ their runs, ' +
        'which count every switch on the machine. The kernel charges part of that time to the thread switched to (the idle task, wrk), ' +
        'not to the worker: the BPF time per request over the worker\'s CPU per request is the cost wherever it is charged. ' +
        'The empty sched_switch program is the floor: the hook alone, before any tool does any work. ' +
        'BPF run-time statistics are off in those windows (with them on, every program run reads the clock twice more, partly on the worker\'s account); ' +
        'the BPF times come from windows of their own with statistics on.',
    );
    L.push('');
    L.push('| tool | worker CPU/request vs none | goal | paired ratios | BPF per switch event | BPF per request | BPF ÷ worker CPU | requests/s |');
    L.push('|---|---|---|---|---|---|---|---|');
    for (const [k, c] of Object.entries(off)) {
      if (!c || typeof c !== 'object' || Array.isArray(c)) continue;
      const goal = k.startsWith('apisix-profile') ? goalCell(c.ratio, 1.02) : '';
      const paired = (c.pairedRatios ?? []).map((x) => fmt(x, 3)).join(', ');
      L.push(
        `| ${k} | ${fmt(c.ratio, 4)}× | ${goal} | ${paired} | ${fmt(c.bpfNsPerEvent, 0)} ns | ${fmt(c.bpfNsPerReq / 1000, 2)} µs | ${fmt(100 * c.bpfShareOfWorkerCpu, 1)}% | ${fmt(c.rps, 0)} |`,
      );
    }
    L.push('');
    L.push(`Baseline: ${fmt(off.baselineCpuPerReqUs, 2)} µs of worker CPU per request.`);
    L.push('');
  }
  const uri = result.uriLabelCost;
  if (uri) {
    const [without, withLabels] = [uri['without labels'], uri['--label uri']];
    L.push('## `--label uri`');
    L.push('');
    L.push('The fixture under wrk on `/work` at 999 Hz, profiles with and without `--label uri` alternated; the sampler\'s BPF time per sample (median of the runs).');
    L.push('');
    L.push('| | BPF per sample | ratio |');
    L.push('|---|---|---|');
    L.push(`| without labels | ${fmt(without?.bpfNsPerSample, 0)} ns | 1 |`);
    L.push(`| \`--label uri\` | ${fmt(withLabels?.bpfNsPerSample, 0)} ns | ${fmt(withLabels?.bpfNsPerSample / without?.bpfNsPerSample, 3)}× |`);
    const shares = (uri.runs ?? []).filter((r) => r.kind === '--label uri').map((r) => r.labelledShare * 100);
    if (shares.length) L.push('', `Samples labelled with a URI: ${shares.map((s) => `${fmt(s, 1)}%`).join(', ')}.`);
    L.push('');
  }
  const w = result.watchIdle;
  if (w) {
    L.push('## `watch` while idle');
    L.push('');
    L.push(`\`apisix-profile watch\` on an idle fixture for ${fmt(w.wallSec, 0)} s (threshold not reached): ${fmt(w.cpuSec * 1000, 0)} ms of CPU, ${fmt(w.cpuPercent, 3)}% of one core, ${fmt(w.rssMb, 0)} MB resident, ${w.bpfPrograms} BPF programs held, ${w.profiles} profiles written.`);
    L.push('');
  }
  return L;
}
