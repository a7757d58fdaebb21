// Everything the bench starts: the fixture nginx (the launcher the tests
// use too), wrk, and the tools it measures (apisix-profile, perf,
// bpftrace). A tool's start() resolves once it samples; stop() ends it and
// returns what it reported.
import { readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startFixture } from '../fixtures/nginx/launch.mjs';
import { onCleanup, spawnTracked } from './cleanup.mjs';
import { CLI } from './config.mjs';
import { lineReader, python3, sleep, tryRun } from './util.mjs';

// ---------------------------------------------------------------------------
// The fixture app and load.

/** The fixture nginx, stopped when the phase ends; `workers` is the list of worker pids. */
export async function startNginx(jit, workers) {
  const fixture = await startFixture({ jit, workers, tempPrefix: 'apisix-profile-bench-nginx-' });
  onCleanup(() => fixture.stop());
  return { master: fixture.master, port: fixture.port, prefix: fixture.prefix, workers: fixture.workers() };
}

export async function get(port, path) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return text;
}

/** wrk run to its end; its figures. cpu pins it to that CPU. */
export async function wrk(port, path, seconds, { threads = 1, connections = 4, cpu = null } = {}) {
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

/** wrk in the background, for load under something else that is measured. */
export function startWrk(port, path, seconds, { threads = 1, connections = 4 } = {}) {
  return spawnTracked('wrk', [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}${path}`], { stdio: 'ignore' });
}

// ---------------------------------------------------------------------------
// The tools.

let cliHelp = '';
export function cliHas(flag) {
  if (!cliHelp) cliHelp = tryRun(process.execPath, [CLI, 'profile', '--help']) || tryRun(process.execPath, [CLI, '--help']);
  return cliHelp.includes(flag);
}

/** The last JSON log line of the CLI (its summary), parsed. */
export function lastJson(reader, re) {
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

/** The tool of a mode (config.mjs MODES) sampling the target, or null for the baseline. */
export function startTool(target, mode, dir) {
  if (mode.kind === 'profiler') return startProfiler(target, mode.hz, dir, mode.extra);
  if (mode.kind === 'perf') return startPerf(target, mode.hz, dir);
  if (mode.kind === 'bpftrace') return startBpftrace(target, mode.hz, mode.countOnly);
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

function startBpftrace(target, hz, countOnly = false) {
  return startBpftraceScript(`profile:hz:${hz} /pid == ${target.workers[0]}/ { ${countOnly ? '@' : '@[ustack]'} = count(); }`);
}

/** bpftrace running a script, once its probes are attached; stop() returns the counts it printed. */
export async function startBpftraceScript(prog) {
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

/** The CLI with these arguments under the rusage wrapper; the CLI's own pid is the wrapper's child. */
export function spawnCliWithRusage(cliArgs) {
  const args = [python3(), '-c', RUSAGE_WRAPPER, CLI, ...cliArgs];
  return spawnTracked(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The wrapper's report ({ maxrss_kb, utime, stime }) from the stderr lines it shared with the CLI. */
export function rusageOf(err) {
  return JSON.parse((err.lines.find((l) => l.line.startsWith('BENCH_RUSAGE '))?.line ?? 'BENCH_RUSAGE {}').slice(13));
}
