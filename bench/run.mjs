#!/usr/bin/env node
// `npm run bench`: measures apisix-profile side by side with perf and
// bpftrace on the fixture app and writes docs/BENCHMARKS.md.
//
//   sudo npm run bench                 full run (about 20 minutes: 5 repetitions, the noise here needs them), writes docs/BENCHMARKS.md
//   sudo BENCH_QUICK=1 npm run bench   smoke run (about 2 minutes), prints the report only
//   BENCH_OUT=file                     write the report there instead
//
// Needs root, a build (`npm run build`), wrk, perf (linux-perf), bpftrace and
// bpftool (scripts/setup.sh installs them). Everything it starts (nginx,
// wrk, profilers) and every temp file is removed again, and
// kernel.bpf_stats_enabled gets its old value back, however the run ends.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const QUICK = process.env.BENCH_QUICK === '1';
const CFG = QUICK
  ? { reps: 1, windowSec: 3, warmSec: 2, reportSec: 10, reportReps: 1, accuracyFilter: "Debian's libluajit2" }
  : { reps: 5, windowSec: 8, warmSec: 5, reportSec: 30, reportReps: 3, accuracyFilter: '' };
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const CLI = join(root, 'bin', 'apisix-profile.js');
const START_SH = join(root, 'fixtures', 'nginx', 'start.sh');

/** The tools measured against the target, in the order each repetition starts from. */
const MODES = [
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

// ---------------------------------------------------------------------------
// Cleanup: every resource registers its undo; they run last-in first-out on
// every exit path.

const cleanups = [];
function onCleanup(fn) {
  cleanups.push(fn);
  return () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
  };
}
async function cleanupAll() {
  while (cleanups.length > 0) {
    const fn = cleanups.pop();
    try {
      await fn();
    } catch (e) {
      process.stderr.write(`bench: cleanup: ${e?.message ?? e}\n`);
    }
  }
}
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\nbench: ${sig}: cleaning up\n`);
    cleanupAll().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------
// Small helpers.

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => process.stderr.write(`bench: ${msg}\n`);
const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const fmt = (x, digits = 3) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts });
}
function tryRun(cmd, args) {
  try {
    return run(cmd, args).trim();
  } catch {
    return '';
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no free port'))));
    });
  });
}

function tempDir(tag) {
  const dir = mkdtempSync(join(tmpdir(), `apisix-profile-bench-${tag}-`));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** utime + stime of a process (all its threads), in seconds. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after "pid (comm) ": state is f[0]; utime is field 14 -> f[11], stime f[12]
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** Exact on-CPU time of a single-threaded process (ns), from schedstat. */
function schedNs(pid) {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
}

/** On-CPU seconds of every thread of a process, ns-exact (schedstat). */
function threadsCpuSeconds(pid) {
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

function childPids(pid) {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text ? text.split(/\s+/).map(Number) : [];
}

function vmHwmKb(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Spawns a child that is killed (by its pid) if the bench ends first. */
function spawnTracked(cmd, args, opts = {}) {
  const child = spawn(cmd, args, opts);
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  child.on('error', () => {});
  const remove = onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // A wrapper's children first (the profiler under the rusage wrapper).
      try {
        for (const p of childPids(child.pid)) process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
      child.kill('SIGKILL');
      await exited;
    }
  });
  exited.then(remove);
  return { child, exited };
}

/** Collects a child's output lines and resolves waiters when a line matches. */
function lineReader(stream) {
  const lines = [];
  const waiters = [];
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) {
      const at = Date.now();
      lines.push({ line, at });
      for (const w of [...waiters]) {
        if (w.re.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.res({ line, at });
        }
      }
    }
  });
  return {
    lines,
    text: () => lines.map((l) => l.line).join('\n') + (pending ? `\n${pending}` : ''),
    waitFor(re, timeoutMs) {
      const hit = lines.find((l) => re.test(l.line));
      if (hit) return Promise.resolve(hit);
      return new Promise((res, rej) => {
        const w = { re, res };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) {
            waiters.splice(i, 1);
            rej(new Error(`timed out waiting for ${re}`));
          }
        }, timeoutMs);
      });
    },
  };
}

// ---------------------------------------------------------------------------
// The fixture app and load.

async function startNginx(jit, workers) {
  const prefix = tempDir('nginx');
  const port = await freePort();
  const master = Number(run('bash', [START_SH, prefix, String(port), jit, String(workers)]).trim());
  onCleanup(async () => {
    if (!alive(master)) return;
    process.kill(master, 'SIGTERM');
    for (let i = 0; i < 50 && alive(master); i++) await sleep(100);
    if (alive(master)) process.kill(master, 'SIGKILL');
  });
  let ws = [];
  for (let i = 0; i < 50 && ws.length < workers; i++) {
    ws = childPids(master);
    if (ws.length < workers) await sleep(100);
  }
  return { master, port, prefix, workers: ws };
}

async function get(port, path) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return text;
}

async function wrk(port, path, seconds, { threads = 1, connections = 4, cpu = null } = {}) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', `http://127.0.0.1:${port}${path}`];
  const { child, exited } = cpu === null ? spawnTracked('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] }) : spawnTracked('taskset', ['-c', String(cpu), 'wrk', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const { code } = await exited;
  const req = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (code !== 0 || !req || !rps) throw new Error(`wrk failed (exit ${code}): ${out}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const sockErr = /Socket errors: (.*)/.exec(out);
  return { requests: Number(req[1]), rps: Number(rps[1]), non2xx: non2xx ? Number(non2xx[1]) : 0, socketErrors: sockErr ? sockErr[1] : '' };
}

function startWrk(port, path, seconds, { threads = 1, connections = 4 } = {}) {
  return spawnTracked('wrk', [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}${path}`], { stdio: 'ignore' });
}

// ---------------------------------------------------------------------------
// BPF program statistics (kernel.bpf_stats_enabled=1): the program ids a
// process holds (from /proc/<pid>/fdinfo), their counters from bpftool.

function bpfProgIds(pid) {
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
function bpfProgStats(ids) {
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

function statDelta(a, b) {
  const out = {};
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    out[k] = { runTimeNs: (b[k]?.runTimeNs ?? 0) - (a[k]?.runTimeNs ?? 0), runCnt: (b[k]?.runCnt ?? 0) - (a[k]?.runCnt ?? 0) };
  }
  return out;
}

// ---------------------------------------------------------------------------
// Tools. start() resolves once the tool samples; stop() ends it and returns
// what it reported.

let cliHelp = '';
function cliHas(flag) {
  if (!cliHelp) cliHelp = tryRun(process.execPath, [CLI, 'profile', '--help']) || tryRun(process.execPath, [CLI, '--help']);
  return cliHelp.includes(flag);
}

/** The last JSON log line of the CLI (its summary), parsed. */
function lastJson(reader, re) {
  for (let i = reader.lines.length - 1; i >= 0; i--) {
    const l = reader.lines[i].line;
    if (!l.startsWith('{')) continue;
    try {
      const j = JSON.parse(l);
      if (!re || re.test(j.msg ?? '')) return j;
    } catch {
      /* not JSON */
    }
  }
  return null;
}

async function startProfiler(target, hz, dir, extra = []) {
  // Run as users run it: the executable, with the V8 flags of its #! line.
  const args = ['--pid', String(target.master), '--duration', '3600', '--frequency', String(hz), '-o', join(dir, 'out.svg'), '--folded', join(dir, 'out.folded'), ...extra];
  const { child, exited } = spawnTracked(CLI, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const err = lineReader(child.stderr);
  await Promise.race([err.waitFor(/"msg":"sampling"/, 30_000), exited.then((e) => Promise.reject(new Error(`apisix-profile exited (${e.code}): ${err.text()}`)))]);
  return {
    pid: child.pid,
    async stop() {
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const { code } = await exited;
      clearTimeout(t);
      if (code !== 0) throw new Error(`apisix-profile exited with ${code}: ${err.text()}`);
      const summary = lastJson(err, /samples in/);
      const m = summary ? /^(\d+) samples/.exec(summary.msg) : null;
      return { samples: m ? Number(m[1]) : NaN, summary: summary?.msg ?? '' };
    },
  };
}

async function startPerf(target, hz, dir) {
  const data = join(dir, 'perf.data');
  const { child, exited } = spawnTracked('perf', ['record', '-g', '-F', String(hz), '-p', String(target.workers[0]), '-o', data], { stdio: ['ignore', 'ignore', 'pipe'] });
  const err = lineReader(child.stderr);
  // Ready once it holds its perf event file descriptors.
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`perf exited: ${err.text()}`);
    let fds = [];
    try {
      fds = readdirSync(`/proc/${child.pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${child.pid}/fd/${fd}`);
        } catch {
          return '';
        }
      });
    } catch {
      /* not yet */
    }
    if (fds.some((l) => l.includes('perf_event'))) break;
    await sleep(50);
  }
  await sleep(200);
  return {
    pid: child.pid,
    async stop() {
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
      await exited;
      clearTimeout(t);
      const m = /\((\d+) samples\)/.exec(err.text());
      rmSync(data, { force: true });
      return { samples: m ? Number(m[1]) : NaN, summary: (err.text().match(/\[ perf record: Captured.*\]/) ?? [''])[0] };
    },
  };
}

async function startBpftrace(target, hz, countOnly = false) {
  const prog = `profile:hz:${hz} /pid == ${target.workers[0]}/ { ${countOnly ? '@' : '@[ustack]'} = count(); }`;
  const { child, exited } = spawnTracked('bpftrace', ['-e', prog], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = lineReader(child.stdout);
  const err = lineReader(child.stderr);
  await Promise.race([out.waitFor(/^Attaching \d+ probe/, 60_000), exited.then(() => Promise.reject(new Error(`bpftrace exited: ${err.text()}`)))]);
  await sleep(200);
  return {
    pid: child.pid,
    async stop() {
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 120_000);
      await exited;
      clearTimeout(t);
      // Each map entry ends with "]: <count>"; a map without keys prints "@: <count>".
      let samples = 0;
      for (const { line } of out.lines) {
        const m = /(?:\]|^@): (\d+)$/.exec(line);
        if (m) samples += Number(m[1]);
      }
      return { samples, summary: '' };
    },
  };
}

// ---------------------------------------------------------------------------
// 1+2. Target overhead and profiler cost, one run per mode.

async function measureRun(target, mode, dir) {
  let tool = null;
  if (mode.kind === 'profiler') tool = await startProfiler(target, mode.hz, dir, mode.extra);
  else if (mode.kind === 'perf') tool = await startPerf(target, mode.hz, dir);
  else if (mode.kind === 'bpftrace') tool = await startBpftrace(target, mode.hz, mode.countOnly);
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

async function overhead(result) {
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
  result.overheadRuns = runs;
}

function summarizeOverhead(runs) {
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
// 3. Report speed and peak RSS: 30 s, 2 workers, 999 Hz.

// Runs the CLI under a python wait4() wrapper for the exact peak RSS.
const RUSAGE_WRAPPER = `
import os, sys, json
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
sys.stderr.write('\\nBENCH_RUSAGE ' + json.dumps({"maxrss_kb": ru.ru_maxrss, "utime": ru.ru_utime, "stime": ru.ru_stime}) + '\\n')
sys.exit(os.waitstatus_to_exitcode(status))
`;

async function reportSpeed(result) {
  log(`report speed: 2 workers under load, ${CFG.reportSec} s at 999 Hz, ${CFG.reportReps} repetition(s)`);
  const target = await startNginx('jit-on', 2);
  await wrk(target.port, '/work', 2, { threads: 2, connections: 8 });
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
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
    const args = [python, '-c', RUSAGE_WRAPPER, CLI, '--pid', String(target.master), '--duration', '3600', '--frequency', '999', '-o', outputs.svg, '--folded', outputs.folded, ...extra];
    const spawnedAt = Date.now();
    const { child, exited } = spawnTracked(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
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
    const ru = JSON.parse((err.lines.find((l) => l.line.startsWith('BENCH_RUSAGE '))?.line ?? 'BENCH_RUSAGE {}').slice(13));
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

async function accuracy(result) {
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
// Machine, report.

/** A tool's version from stdout or stderr, whatever its exit code. */
function versionOf(cmd, args, re) {
  const p = spawnSync(cmd, args, { encoding: 'utf8' });
  const m = re.exec(`${p.stdout ?? ''}\n${p.stderr ?? ''}`);
  return m ? m[0] : cmd;
}

function machine() {
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

function goalCell(value, goal) {
  if (!Number.isFinite(value) || goal === undefined) return '';
  return value <= goal ? `≤ ${goal}: met` : `≤ ${goal}: **not met**`;
}

function renderMarkdown(result) {
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
      `(run-time statistics on through ${result.statsVia === 'BPF_ENABLE_STATS' ? 'a BPF_ENABLE_STATS fd held for the whole bench, the same switch as `kernel.bpf_stats_enabled=1` but immune to other tools resetting the sysctl' : '`kernel.bpf_stats_enabled=1`'}; ` +
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

// ---------------------------------------------------------------------------

// BPF run-time statistics for the whole bench. Preferred: BPF_ENABLE_STATS,
// an fd (held by a small python helper) that keeps them on until it is
// closed, whatever other tools write to the sysctl meanwhile (a concurrent
// bench that restores kernel.bpf_stats_enabled=0 would otherwise stop the
// counters mid-run). Fallback: kernel.bpf_stats_enabled=1, restored at the end.
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

async function enableBpfStats() {
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const { child, exited } = spawnTracked(python, ['-c', STATS_HOLDER], { stdio: ['pipe', 'pipe', 'ignore'] });
  const out = lineReader(child.stdout);
  const first = await Promise.race([out.waitFor(/^(OK|ERR)/, 10_000).catch(() => ({ line: 'ERR timeout' })), exited.then(() => ({ line: 'ERR exited' }))]);
  if (first.line.startsWith('OK')) {
    onCleanup(async () => {
      child.stdin.end();
      await exited;
    });
    log('BPF run-time statistics on (BPF_ENABLE_STATS fd, held until the end)');
    return 'BPF_ENABLE_STATS';
  }
  const prev = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim();
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', '1');
  onCleanup(() => writeFileSync('/proc/sys/kernel/bpf_stats_enabled', prev));
  log(`BPF_ENABLE_STATS failed (${first.line}): kernel.bpf_stats_enabled=1 (was ${prev}; restored at the end)`);
  return 'kernel.bpf_stats_enabled=1';
}

async function preflight() {
  if (process.getuid?.() !== 0) throw new Error('run as root: the bench loads BPF programs and runs perf (sudo npm run bench)');
  for (const tool of ['wrk', 'perf', 'bpftrace', 'bpftool', 'nginx', 'getconf']) {
    if (!tryRun('sh', ['-c', `command -v ${tool}`])) throw new Error(`${tool} is missing: run \`bash scripts/setup.sh --tests\``);
  }
  for (const f of ['dist/cli.js', 'build/bpf/profiler.bpf.o']) {
    if (!existsSync(join(root, f))) throw new Error(`${f} is missing: run \`npm run build\``);
  }
}

/** The machine's CPU time so far, in ticks: all of it, and what the hypervisor stole (/proc/stat). */
function cpuTicks() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user)
  return { total: f.slice(0, 8).reduce((a, b) => a + b, 0), steal: f[7] ?? 0 };
}

async function main() {
  const t0 = Date.now();
  const ticks0 = cpuTicks();
  await preflight();
  const result = { machine: machine() };
  result.statsVia = await enableBpfStats();
  keepCleanups = cleanups.length;
  try {
    await overhead(result);
    await cleanupPhase();
    await reportSpeed(result);
    await cleanupPhase();
    await accuracy(result);
  } finally {
    result.loadEnd = loadavg().map((x) => x.toFixed(2)).join(' ');
    result.seconds = (Date.now() - t0) / 1000;
    const ticks1 = cpuTicks();
    result.stealPct = ticks1.total > ticks0.total ? (100 * (ticks1.steal - ticks0.steal)) / (ticks1.total - ticks0.total) : NaN;
  }
  const md = renderMarkdown(result);
  const out = process.env.BENCH_OUT ?? (QUICK ? '' : join(root, 'docs', 'BENCHMARKS.md'));
  if (out) {
    writeFileSync(out, `${md}\n`);
    log(`wrote ${out}`);
  }
  process.stdout.write(`${md}\n`);
  if (process.env.BENCH_RAW) writeFileSync(process.env.BENCH_RAW, JSON.stringify(result, (_, v) => (typeof v === 'bigint' ? String(v) : v), 1));
}

/** Undoes what the finished phase set up (everything registered after the BPF statistics switch). */
let keepCleanups = 0;
async function cleanupPhase() {
  while (cleanups.length > keepCleanups) {
    const fn = cleanups.pop();
    try {
      await fn();
    } catch (e) {
      log(`cleanup: ${e?.message ?? e}`);
    }
  }
}

main()
  .then(
    () => 0,
    (err) => {
      process.stderr.write(`bench: ${err?.stack ?? err}\n`);
      return 1;
    },
  )
  .then(async (code) => {
    await cleanupAll();
    process.exit(code);
  });
