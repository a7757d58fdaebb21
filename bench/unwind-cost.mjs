// Per-sample kernel cost of native unwinding: the BPF program's run time
// with .eh_frame unwinding (--unwind cfi, the default) next to frame
// pointers only (--unwind fp), measured side by side on the loaded fixture
// app, modes alternated, medians of REPS repetitions. Prints a Markdown
// table (and appends it to docs/BENCHMARKS.md with --write).
//   node bench/unwind-cost.mjs [--write]     (root; after npm run build)
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFixture } from '../fixtures/nginx/launch.mjs';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const CLI = join(root, 'bin', 'apisix-profile.js');
const REPS = Number(process.env.BENCH_REPS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const HZ = Number(process.env.BENCH_HZ ?? 999);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** run_time_ns and run_cnt of the BPF programs a process holds. */
function programStats(pid) {
  const ids = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    try {
      const m = /^prog_id:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) ids.add(Number(m[1]));
    } catch {}
  }
  const all = JSON.parse(execFileSync('bpftool', ['prog', 'show', '--json'], { encoding: 'utf8' }));
  const mine = all.filter((p) => ids.has(p.id) && p.name === 'sample_stack');
  return { ns: mine.reduce((n, p) => n + (p.run_time_ns ?? 0), 0), runs: mine.reduce((n, p) => n + (p.run_cnt ?? 0), 0) };
}

async function measure(master, mode, dir) {
  const child = spawn(CLI, ['--pid', String(master), '--duration', String(SECONDS), '--frequency', String(HZ), '--unwind', mode, '-o', join(dir, `${mode}.svg`), '--log-format', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (c) => (log += c));
  while (!log.includes('"msg":"sampling"')) {
    if (child.exitCode !== null) throw new Error(`profiler exited: ${log}`);
    await sleep(20);
  }
  await sleep((SECONDS - 0.5) * 1000);
  const stats = programStats(child.pid);
  await new Promise((r) => (child.exitCode !== null ? r() : child.on('exit', r)));
  const line = /"msg":"(\d+) samples in [^"]*"/.exec(log);
  const complete = /(\d+\.\d)% of native walks complete/.exec(log);
  return { mode, nsPerRun: stats.ns / stats.runs, nsPerSample: stats.ns / Number(line?.[1] ?? NaN), complete: complete ? Number(complete[1]) : null };
}

const outDir = mkdtempSync(join(tmpdir(), 'apisix-profile-unwind-bench-'));
// Ctrl-C or SIGTERM: end the run; the finally below restores everything.
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { interrupted = true; });
const previous = execFileSync('sysctl', ['-n', 'kernel.bpf_stats_enabled'], { encoding: 'utf8' }).trim();
let fixture = null;
let wrk = null;
try {
  execFileSync('sysctl', ['-q', 'kernel.bpf_stats_enabled=1']);
  fixture = await startFixture({ jit: 'jit-on', workers: 1, tempPrefix: 'apisix-profile-unwind-bench-nginx-' });
  const { master, port } = fixture;
  wrk = spawn('wrk', ['-t1', '-c4', `-d${REPS * 2 * (SECONDS + 6)}s`, `http://127.0.0.1:${port}/work`], { stdio: 'ignore' });
  await sleep(1000);
  const runs = [];
  for (let r = 0; r < REPS && !interrupted; r++) {
    for (const mode of r % 2 ? ['fp', 'cfi'] : ['cfi', 'fp']) if (!interrupted) runs.push(await measure(master, mode, outDir));
  }
  if (interrupted) throw new Error('interrupted');
  const row = (mode) => {
    const rs = runs.filter((x) => x.mode === mode);
    return { perRun: median(rs.map((x) => x.nsPerRun)), perSample: median(rs.map((x) => x.nsPerSample)), complete: rs.map((x) => x.complete) };
  };
  const cfi = row('cfi');
  const fp = row('fp');
  const table = [
    `## Native unwinding: per-sample kernel cost`,
    '',
    `\`bench/unwind-cost.mjs\`, ${new Date().toISOString()}: fixture app (1 worker, JIT on, \`/work\` under \`wrk -t1 -c4\`), ${HZ} Hz, ${SECONDS} s runs, ${REPS} repetitions per mode, modes alternated; medians. BPF run time from \`kernel.bpf_stats_enabled=1\` (\`run_time_ns\` of the profiler's own \`sample_stack\`); "per run" covers every CPU's samples, "per target sample" divides by the target's samples only.`,
    '',
    '| mode | ns per run | ns per target sample | ratio to fp | native walks complete |',
    '|---|---|---|---|---|',
    `| \`--unwind fp\` (frame pointers) | ${fp.perRun.toFixed(0)} | ${fp.perSample.toFixed(0)} | 1 | (not measured: cut at the first frame without a frame pointer) |`,
    `| \`--unwind cfi\` (.eh_frame, default) | ${cfi.perRun.toFixed(0)} | ${cfi.perSample.toFixed(0)} | ${(cfi.perSample / fp.perSample).toFixed(2)} | ${cfi.complete.join('%, ')}% |`,
    '',
  ].join('\n');
  console.log(table);
  if (process.argv.includes('--write')) appendFileSync(join(root, 'docs', 'BENCHMARKS.md'), `\n${table}`);
} finally {
  wrk?.kill();
  await fixture?.stop();
  execFileSync('sysctl', ['-q', `kernel.bpf_stats_enabled=${previous}`]);
  await sleep(500);
  rmSync(outDir, { recursive: true, force: true });
}
