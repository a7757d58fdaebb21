// The bench's phases, each filling its part of the result: the target's
// overhead and the tools' own cost, the report's speed and memory, the
// accuracy against the app's own measurement, and `watch`'s cost while idle.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { childPids } from '../fixtures/nginx/launch.mjs';
import { onCleanup, spawnTracked, tempDir } from './cleanup.mjs';
import { CFG, CLI, MODES, QUICK, root } from './config.mjs';
import { cliHas, get, lastJson, rusageOf, spawnCliWithRusage, startBpftraceScript, startNginx, startTool, startWrk, wrk } from './launchers.mjs';
import { bpfProgIds, bpfProgStats, cpuSeconds, holdBpfStats, median, pairedRatios, schedNs, statDelta, threadsCpuSeconds, vmHwmKb } from './measure.mjs';
import { lineReader, log, run, sleep } from './util.mjs';

// ---------------------------------------------------------------------------
// 1+2. Target overhead and profiler cost, one run per mode.

async function measureRun(target, mode, dir) {
  let tool = await startTool(target, mode, dir);
  const ready = process.hrtime.bigint();
  try {
    // Warm-up requests: the profiler learns global_State on the first one.
    for (let i = 0; i < 5; i++) await get(target.port, '/work');
    await sleep(300);
    const worker = target.workers[0];
    const ids = tool ? bpfProgIds(tool.pid) : [];
    const bpf0 = bpfProgStats(ids);
    const tb0 = process.hrtime.bigint();
    const tool0 = tool ? threadsCpuSeconds(tool.pid) : 0;
    const cpu0 = cpuSeconds(worker);
    const sched0 = schedNs(worker);
    const load = await wrk(target.port, '/work', CFG.windowSec, { cpu: target.loadCpu });
    const cpu1 = cpuSeconds(worker);
    const sched1 = schedNs(worker);
    const tool1 = tool ? threadsCpuSeconds(tool.pid) : 0;
    const tb1 = process.hrtime.bigint();
    const bpf1 = bpfProgStats(ids);
    const bpfWindowNs = Number(tb1 - tb0);
    const toolLifeNs = Number(process.hrtime.bigint() - ready);
    const res = tool ? await tool.stop() : { samples: NaN, summary: '' };
    tool = null;
    return {
      mode: mode.name,
      requests: load.requests,
      rps: load.rps,
      non2xx: load.non2xx,
      socketErrors: load.socketErrors,
      cpuPerReqUs: ((cpu1 - cpu0) * 1e6) / load.requests,
      schedPerReqUs: (sched1 - sched0) / 1e3 / load.requests,
      toolCpuPerSec: (tool1 - tool0) / (bpfWindowNs / 1e9),
      bpf: statDelta(bpf0, bpf1),
      bpfAtEnd: bpf1,
      bpfWindowNs,
      toolLifeNs,
      samples: res.samples,
      summary: res.summary,
    };
  } finally {
    if (tool) await tool.stop().catch(() => {});
  }
}

export async function overhead(result) {
  log(`target overhead: fixture nginx (1 worker, jit-on), wrk -t1 -c4 on /work, ${CFG.windowSec} s windows, ${CFG.reps} repetition(s)`);
  const target = await startNginx('jit-on', 1);
  // The worker on one CPU and wrk on another: no migrations between them,
  // less noise. The tools are not pinned: they run where the scheduler
  // puts them, next to the worker or to wrk, as on any machine.
  if (cpus().length >= 2) {
    run('taskset', ['-pc', '1', String(target.workers[0])]);
    target.loadCpu = 0;
  } else {
    target.loadCpu = null;
  }
  result.overheadTarget = { workers: target.workers.length, pinned: target.loadCpu !== null };
  // On for every window, baselines too, so both pay the same clock reads.
  const stats = await holdBpfStats();
  result.statsVia = stats.via;
  log(`warming up the JIT (${CFG.warmSec} s of load)`);
  await wrk(target.port, '/work', CFG.warmSec, { cpu: target.loadCpu });
  const dir = tempDir('out');
  // none, A, none, B, none, ... none: every tool run sits between two
  // baseline runs; each repetition starts at a different tool.
  const schedule = [];
  for (let r = 0; r < CFG.reps; r++) {
    const order = MODES.map((_, i) => MODES[(i + r * 3) % MODES.length]);
    for (const m of order) schedule.push({ kind: 'none', name: 'none' }, m);
  }
  schedule.push({ kind: 'none', name: 'none' });
  const runs = [];
  const t0 = Date.now();
  for (let i = 0; i < schedule.length; i++) {
    const m = schedule[i];
    const r = await measureRun(target, m, dir);
    runs.push(r);
    const eta = ((Date.now() - t0) / (i + 1)) * (schedule.length - i - 1);
    log(`  [${i + 1}/${schedule.length}] ${m.name.padEnd(31)} ${r.rps.toFixed(0).padStart(5)} req/s, ${r.cpuPerReqUs.toFixed(1)} us CPU/req${m.kind !== 'none' ? `, tool ${(r.toolCpuPerSec * 100).toFixed(2)}% CPU` : ''} (about ${Math.round(eta / 1000)} s left)`);
  }
  await stats.release();
  result.overheadRuns = runs;
}

// ---------------------------------------------------------------------------
// 3. Report speed and peak RSS: 30 s, 2 workers, 999 Hz.

export async function reportSpeed(result) {
  log(`report speed: 2 workers under load, ${CFG.reportSec} s at 999 Hz, ${CFG.reportReps} repetition(s)`);
  const target = await startNginx('jit-on', 2);
  await wrk(target.port, '/work', 2, { threads: 2, connections: 8 });
  const runs = [];
  for (let rep = 0; rep < CFG.reportReps; rep++) {
    const dir = tempDir('report');
    const load = startWrk(target.port, '/work', CFG.reportSec + 30, { threads: 2, connections: 8 });
    await sleep(1000);
    const outputs = { svg: join(dir, 'out.svg'), folded: join(dir, 'out.folded') };
    const extra = [];
    if (cliHas('--pprof')) {
      outputs.pprof = join(dir, 'out.pb.gz');
      extra.push('--pprof', outputs.pprof);
    }
    // Sampling is ended with SIGINT exactly reportSec after the "sampling"
    // line (the CLI's --duration also counts its set-up time); SIGINT takes
    // the same path to the outputs as the end of --duration.
    const args = ['--pid', String(target.master), '--duration', '3600', '--frequency', '999', '-o', outputs.svg, '--folded', outputs.folded, ...extra];
    const spawnedAt = Date.now();
    const { child, exited } = spawnCliWithRusage(args);
    const err = lineReader(child.stderr);
    const startedAt = (await err.waitFor(/"msg":"sampling"/, 120_000)).at;
    const setupMs = startedAt - spawnedAt;
    const stopTimer = setTimeout(() => {
      for (const p of childPids(child.pid)) process.kill(p, 'SIGINT');
    }, CFG.reportSec * 1000);
    // Peak RSS cross-check: VmHWM of the node process, polled.
    let hwm = 0;
    const poll = setInterval(() => {
      for (const p of childPids(child.pid)) hwm = Math.max(hwm, vmHwmKb(p));
    }, 100);
    let stoppedAt = 0;
    err.waitFor(/"msg":"sampling stopped"/, (CFG.reportSec + 120) * 1000).then((l) => (stoppedAt = l.at), () => {});
    const { code } = await exited;
    const exitAt = Date.now();
    clearTimeout(stopTimer);
    clearInterval(poll);
    load.child.kill('SIGTERM');
    await load.exited;
    if (code !== 0) throw new Error(`apisix-profile exited with ${code}: ${err.text()}`);
    const stopped = lastJson(err, /^sampling stopped$/);
    const summary = lastJson(err, /samples in/);
    const ru = rusageOf(err);
    const folded = readFileSync(outputs.folded, 'utf8');
    runs.push({
      // pino's own time stamps: "sampling stopped" to the summary line, written after the outputs.
      reportMs: summary && stopped ? summary.time - stopped.time : NaN,
      // to process exit, as a user waits for it
      exitMs: stoppedAt ? exitAt - stoppedAt : NaN,
      maxRssMb: ru.maxrss_kb / 1024,
      vmHwmMb: hwm / 1024,
      cpuSec: ru.utime + ru.stime,
      samplingSec: stopped ? (stopped.time - JSON.parse(err.lines.find((l) => /"msg":"sampling"/.test(l.line)).line).time) / 1000 : NaN,
      setupMs,
      samples: summary ? Number(/^(\d+) samples/.exec(summary.msg)?.[1]) : NaN,
      summary: summary?.msg ?? '',
      uniqueStacks: folded.split('\n').filter(Boolean).length,
      sizes: Object.fromEntries(Object.entries(outputs).map(([k, f]) => [k, statSync(f).size])),
      folded,
    });
    log(`  report in ${runs.at(-1).reportMs} ms (exit after ${runs.at(-1).exitMs} ms), peak RSS ${runs.at(-1).maxRssMb.toFixed(0)} MB, ${runs.at(-1).samples} samples, ${runs.at(-1).uniqueStacks} unique stacks`);
  }
  // In-process breakdown of the report steps on the last profile (dist/ modules).
  const last = runs.at(-1);
  const breakdown = await reportBreakdown(last.folded);
  for (const r of runs) delete r.folded;
  result.report = { runs, breakdown, pprof: cliHas('--pprof') };
}

async function reportBreakdown(foldedText) {
  const imp = (p) => import(pathToFileURL(join(root, 'dist', p)).href);
  const { parseFolded, foldStacks } = await imp('report/fold.js');
  const { renderFlameGraph } = await imp('report/flamegraph/index.js');
  let encodePprof = null;
  try {
    ({ encodePprof } = await imp('report/pprof.js'));
  } catch {
    /* no pprof module */
  }
  const stacks = parseFolded(foldedText);
  const time = (fn) => {
    const ts = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      fn();
      ts.push(performance.now() - t0);
    }
    return median(ts);
  };
  const out = {
    stacks: stacks.length,
    foldMs: time(() => foldStacks(stacks)),
    svgMs: time(() => renderFlameGraph(stacks, { title: 'bench', subtitle: 'bench' })),
  };
  if (encodePprof) out.pprofMs = time(() => encodePprof(stacks, { frequencyHz: 999, durationNs: BigInt(CFG.reportSec) * 1_000_000_000n }));
  return out;
}

// ---------------------------------------------------------------------------
// 4. Accuracy against the app's own measurement (/truth): the integration
// test's own procedure for every LuaJIT configuration it covers, run as is
// (test/integration/accuracy.test.ts logs one "share error" line per case).

export async function accuracy(result) {
  log('accuracy: test/integration/accuracy.test.ts (every LuaJIT configuration it covers, jit on and off)');
  const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
  const filter = CFG.accuracyFilter ? ['-t', CFG.accuracyFilter] : [];
  const { child, exited } = spawnTracked(process.execPath, [vitest, 'run', 'test/integration/accuracy.test.ts', ...filter], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' },
  });
  const out = lineReader(child.stdout);
  const err = lineReader(child.stderr);
  const { code } = await exited;
  const rows = [];
  for (const { line } of [...out.lines, ...err.lines]) {
    const m = /share error (.*) (jit-on|jit-off): max ([\d.]+) pp (\{.*\})/.exec(line);
    if (!m) continue;
    const shares = JSON.parse(m[4]);
    for (const [fn, v] of Object.entries(shares)) {
      rows.push({ config: `${m[1]}, ${m[2]}`, fn, truth: v.truth, profile: v.profile, errPp: v.profile - v.truth });
    }
  }
  const failed = [...out.lines, ...err.lines].map((l) => l.line).filter((l) => /^\s*(×|✗|FAIL)\s/.test(l));
  result.accuracy = { rows, testExit: code, failed: failed.slice(0, 20) };
  log(`  ${rows.length / 3} case(s), vitest exit ${code}`);
}

// ---------------------------------------------------------------------------
// 5. `watch` while nothing trips it: its own CPU time and memory, watching
// one idle fixture worker (it reads /proc once a second, holds no BPF).

const WATCH_IDLE_SEC = QUICK ? 10 : 60;

export async function watchIdle(result) {
  log(`watch while idle: one idle fixture worker, ${WATCH_IDLE_SEC} s`);
  const target = await startNginx('jit-on', 1);
  const dir = tempDir('watch');
  // An idle worker never reaches 50% of a core: no profile starts.
  const args = ['watch', '--pid', String(target.master), '--cpu-above', '50', '--out-dir', dir, '--log-format', 'json'];
  const { child, exited } = spawnTracked(CLI, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const err = lineReader(child.stderr);
  await err.waitFor(/"msg":"watching /, 30_000);
  // Start-up (module loading, the first compilations) is not idle time.
  await sleep(5000);
  const cpu0 = threadsCpuSeconds(child.pid);
  const t0 = process.hrtime.bigint();
  await sleep(WATCH_IDLE_SEC * 1000);
  const cpu1 = threadsCpuSeconds(child.pid);
  const wallSec = Number(process.hrtime.bigint() - t0) / 1e9;
  const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1]);
  const bpfPrograms = bpfProgIds(child.pid).length;
  child.kill('SIGTERM');
  const { code } = await exited;
  if (code !== 0) throw new Error(`apisix-profile watch exited with ${code}: ${err.text()}`);
  result.watchIdle = {
    wallSec,
    cpuSec: cpu1 - cpu0,
    cpuPercent: (100 * (cpu1 - cpu0)) / wallSec,
    rssMb: rssKb / 1024,
    bpfPrograms,
    profiles: readdirSync(dir).length,
  };
  log(`  ${(result.watchIdle.cpuSec * 1000).toFixed(0)} ms of CPU in ${wallSec.toFixed(0)} s (${result.watchIdle.cpuPercent.toFixed(3)}% of a core), RSS ${result.watchIdle.rssMb.toFixed(0)} MB, ${bpfPrograms} BPF programs held`);
}

// ---------------------------------------------------------------------------
// 6. Off-CPU mode's cost at a high context-switch rate: one connection to a
// cheap Lua handler, so the worker waits in epoll (leaves the CPU) once per
// request. The worker's CPU per request (schedstat, ns-exact) with and
// without `--mode off-cpu`: each window with a tool sits between two
// without one and is compared with their mean, so the machine's drift over
// the phase cancels; the median of those paired ratios is the figure. Next
// to it the BPF time per scheduler switch event (every switch on the
// machine runs the program; most only look up two hashes) and per request,
// and an offcputime-style bpftrace script (sched_switch tracepoint,
// frame-pointer ustack and kstack per blocked thread, summed by stack), and
// the floor: an empty program on the same hook (bench/bare-switch.bpf.c),
// what any off-CPU tool pays before it does any work.
//
// BPF run-time statistics stay off in the CPU windows: with them on, each
// program run reads the clock twice more, and the run at a switch into the
// worker is charged to the worker, a cost users do not pay (with an empty
// program it was most of the floor). The BPF times come from windows of
// their own afterwards, with statistics on.
//
// The kernel runs the switch program after it has stopped the clock of the
// thread going out, so part of the BPF time is charged to the thread coming
// in (the idle task, wrk): the BPF time per request, over the worker's CPU
// per request, is the cost wherever it is charged.
//
//   sudo BENCH_ONLY=offCpuCost node bench/run.mjs

const OFFCPU_REPS = QUICK ? 1 : 7;
const OFFCPU_BPF_REPS = QUICK ? 1 : 2;
const OFFCPU_WINDOW_SEC = QUICK ? 3 : 4;

function bpftraceOffCpu(worker) {
  return `tracepoint:sched:sched_switch {
  if (args->prev_pid == ${worker} && args->prev_state != 0) { @start[args->prev_pid] = nsecs; @u[args->prev_pid] = ustack; @k[args->prev_pid] = kstack; }
  $s = @start[args->next_pid];
  if ($s != 0) { @t[@k[args->next_pid], @u[args->next_pid]] = sum(nsecs - $s); delete(@start[args->next_pid]); }
}`;
}

/** bpftrace's tracepoints need tracefs: mounted for the phase when it is not. */
function ensureTracefs() {
  const mounted = readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[2] === 'tracefs');
  if (mounted) return;
  run('mount', ['-t', 'tracefs', 'nodev', '/sys/kernel/tracing']);
  onCleanup(() => run('umount', ['/sys/kernel/tracing']));
}

const BARE_HOOK = 'empty sched_switch program';

/** bench/bare-switch.bpf.c compiled into dir (the build's headers), for the floor. */
function buildBareHook(dir) {
  const obj = join(dir, 'bare-switch.bpf.o');
  run('clang', ['-O2', '-g', '-target', 'bpf', '-D__TARGET_ARCH_x86', '-I', join(root, 'build/bpf'), '-I', join(root, 'build/libbpf/include'), '-c', join(root, 'bench/bare-switch.bpf.c'), '-o', obj]);
  return obj;
}

async function startBareHook(obj) {
  const { child, exited } = spawnTracked(process.execPath, [join(root, 'bench/bare-hook.mjs'), obj], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out = lineReader(child.stdout);
  const err = lineReader(child.stderr);
  await Promise.race([out.waitFor(/^attached/, 30_000), exited.then(() => Promise.reject(new Error(`bare-hook exited: ${err.text()}`)))]);
  return {
    pid: child.pid,
    async stop() {
      child.stdin.end();
      await exited;
      return { samples: NaN, summary: '' };
    },
  };
}

function startOffCpuTool(target, kind, dir) {
  if (kind === 'apisix-profile --mode off-cpu') return startTool(target, { kind: 'profiler', hz: 99, extra: ['--mode', 'off-cpu'] }, dir);
  if (kind === 'bpftrace offcputime') return startBpftraceScript(bpftraceOffCpu(target.workers[0]));
  if (kind === BARE_HOOK) return startBareHook(join(dir, 'bare-switch.bpf.o'));
  return null;
}

/** One window of wrk with kind running (or none): the worker's CPU per request, and the tool's BPF time when statistics are on. */
async function offCpuWindow(target, kind, dir, loadCpu) {
  const tool = await startOffCpuTool(target, kind, dir);
  try {
    for (let i = 0; i < 5; i++) await get(target.port, '/truth');
    // Past the profiler's first drain (1 s in), which names the stacks
    // seen so far once: a 30 s profile spreads that over its run, a 4 s
    // window would take it whole. Every kind, none too, waits the same.
    await sleep(1500);
    const ids = tool ? bpfProgIds(tool.pid) : [];
    const worker = target.workers[0];
    const bpf0 = bpfProgStats(ids);
    const cpu0 = threadsCpuSeconds(worker);
    const load = await wrk(target.port, '/truth', OFFCPU_WINDOW_SEC, { connections: 1, cpu: loadCpu });
    const cpu1 = threadsCpuSeconds(worker);
    const bpf = statDelta(bpf0, bpfProgStats(ids))._total;
    return {
      kind,
      requests: load.requests,
      rps: load.rps,
      cpuPerReqUs: ((cpu1 - cpu0) * 1e6) / load.requests,
      bpfNsPerEvent: bpf.runCnt ? bpf.runTimeNs / bpf.runCnt : NaN,
      bpfEventsPerReq: bpf.runCnt / load.requests,
      bpfNsPerReq: bpf.runTimeNs / load.requests,
    };
  } finally {
    if (tool) await tool.stop();
  }
}

export async function offCpuCost(result) {
  log(`off-CPU cost: fixture nginx (1 worker, jit-on), wrk -t1 -c1 on /truth (one epoll wait per request), ${OFFCPU_WINDOW_SEC} s windows, ${OFFCPU_REPS} repetition(s), then ${OFFCPU_BPF_REPS} with BPF statistics on`);
  ensureTracefs();
  const target = await startNginx('jit-on', 1);
  const loadCpu = cpus().length >= 2 ? 0 : null;
  if (loadCpu !== null) run('taskset', ['-pc', '1', String(target.workers[0])]);
  await wrk(target.port, '/truth', 2, { connections: 1, cpu: loadCpu });
  const dir = tempDir('offcpu');
  buildBareHook(dir);
  const kinds = ['apisix-profile --mode off-cpu', 'bpftrace offcputime', BARE_HOOK];
  const statsSysctl = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  if (statsSysctl !== '0') log(`  warning: kernel.bpf_stats_enabled=${statsSysctl}: the CPU windows pay for BPF statistics too`);
  const schedule = [];
  for (let r = 0; r < OFFCPU_REPS; r++) for (const k of kinds) schedule.push('none', k);
  schedule.push('none');
  const runs = [];
  for (const kind of schedule) {
    const r = await offCpuWindow(target, kind, dir, loadCpu);
    runs.push(r);
    log(`  ${kind.padEnd(30)} ${r.rps.toFixed(0).padStart(6)} req/s, ${r.cpuPerReqUs.toFixed(2)} us CPU/req`);
  }
  const stats = await holdBpfStats();
  result.statsVia ??= stats.via;
  const bpfRuns = [];
  for (let r = 0; r < OFFCPU_BPF_REPS; r++) {
    for (const kind of kinds) {
      const w = await offCpuWindow(target, kind, dir, loadCpu);
      bpfRuns.push(w);
      log(`  ${kind.padEnd(30)} BPF statistics on: ${w.cpuPerReqUs.toFixed(2)} us CPU/req, BPF ${w.bpfNsPerEvent.toFixed(0)} ns/switch event, ${(w.bpfNsPerReq / 1000).toFixed(2)} us/request`);
    }
  }
  await stats.release();
  const base = median(runs.filter((r) => r.kind === 'none').map((r) => r.cpuPerReqUs));
  result.offCpuCost = Object.fromEntries(
    kinds.map((k) => {
      const mine = runs.filter((r) => r.kind === k);
      const withStats = bpfRuns.filter((r) => r.kind === k);
      const ratios = pairedRatios(runs, k);
      const bpfNsPerReq = median(withStats.map((r) => r.bpfNsPerReq));
      return [
        k,
        {
          cpuPerReqUs: median(mine.map((r) => r.cpuPerReqUs)),
          ratio: median(ratios),
          pairedRatios: ratios,
          bpfNsPerEvent: median(withStats.map((r) => r.bpfNsPerEvent)),
          bpfNsPerReq,
          bpfShareOfWorkerCpu: bpfNsPerReq / (base * 1000),
          rps: median(mine.map((r) => r.rps)),
        },
      ];
    }),
  );
  result.offCpuCost.baselineCpuPerReqUs = base;
  result.offCpuCost.runs = runs;
  result.offCpuCost.bpfRuns = bpfRuns;
  for (const k of kinds) {
    const c = result.offCpuCost[k];
    log(`  ${k}: ${c.ratio.toFixed(3)}x CPU per request (paired: ${c.pairedRatios.map((x) => x.toFixed(3)).join(', ')}), BPF ${c.bpfNsPerEvent.toFixed(0)} ns per switch event, ${(c.bpfNsPerReq / 1000).toFixed(2)} us per request (${(100 * c.bpfShareOfWorkerCpu).toFixed(1)}% of the worker's ${base.toFixed(2)} us)`);
  }
}

// ---------------------------------------------------------------------------
// 7. --label uri's cost: the BPF time per CPU sample of the sampler with and
// without the request URI read (exdata, the URI's ngx_str_t and its bytes,
// a hash, one lookup), alternated runs at 999 Hz on the fixture under wrk
// (/work: every request runs Lua in content), medians side by side; and the
// share of the samples the labels covered, from the summary.
//
//   sudo BENCH_ONLY=uriLabelCost node bench/run.mjs

const URI_REPS = QUICK ? 1 : 3;
const URI_WINDOW_SEC = QUICK ? 3 : 5;

export async function uriLabelCost(result) {
  log(`--label uri cost: fixture nginx (1 worker, jit-on), wrk on /work, 999 Hz, ${URI_WINDOW_SEC} s windows, ${URI_REPS} repetition(s) each`);
  const stats = await holdBpfStats();
  result.statsVia ??= stats.via;
  const target = await startNginx('jit-on', 1);
  // As in the overhead phase: the worker on one CPU, wrk on another.
  target.loadCpu = cpus().length >= 2 ? 0 : null;
  if (target.loadCpu !== null) run('taskset', ['-pc', '1', String(target.workers[0])]);
  await wrk(target.port, '/work', 2, { cpu: target.loadCpu });
  const dir = tempDir('uri-labels');
  const kinds = ['without labels', '--label uri'];
  const runs = [];
  for (let r = 0; r < URI_REPS; r++) {
    for (const kind of kinds) {
      const json = join(dir, `summary-${runs.length}.json`);
      const extra = ['--json', json, ...(kind === '--label uri' ? ['--label', 'uri'] : [])];
      const tool = await startTool(target, { kind: 'profiler', hz: 999, extra }, dir);
      try {
        for (let i = 0; i < 5; i++) await get(target.port, '/work');
        await sleep(500);
        const ids = bpfProgIds(tool.pid);
        const bpf0 = bpfProgStats(ids);
        const load = await wrk(target.port, '/work', URI_WINDOW_SEC, { cpu: target.loadCpu });
        const s = statDelta(bpf0, bpfProgStats(ids)).sample_stack ?? { runTimeNs: 0, runCnt: 0 };
        runs.push({ kind, requests: load.requests, samples: s.runCnt, bpfNsPerSample: s.runCnt ? s.runTimeNs / s.runCnt : NaN });
      } finally {
        await tool.stop();
      }
      const summary = JSON.parse(readFileSync(json, 'utf8'));
      const run = runs[runs.length - 1];
      run.labelledShare = summary.uris.reduce((sum, u) => sum + u.totalShare, 0);
      run.uris = summary.uris.map((u) => u.name);
      log(`  ${kind.padEnd(16)} BPF ${run.bpfNsPerSample.toFixed(0)} ns/sample over ${run.samples} samples; labelled ${(100 * run.labelledShare).toFixed(1)}% ${JSON.stringify(run.uris)}`);
    }
  }
  result.uriLabelCost = Object.fromEntries(kinds.map((k) => [k, { bpfNsPerSample: median(runs.filter((r) => r.kind === k).map((r) => r.bpfNsPerSample)) }]));
  result.uriLabelCost.runs = runs;
  const [off, on] = kinds.map((k) => result.uriLabelCost[k].bpfNsPerSample);
  await stats.release();
  log(`  BPF per sample: ${off.toFixed(0)} ns without, ${on.toFixed(0)} ns with --label uri (+${(on - off).toFixed(0)} ns, ${(on / off).toFixed(3)}x)`);
}
