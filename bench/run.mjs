#!/usr/bin/env node
// `npm run bench`: measures apisix-profile side by side with perf and
// bpftrace on the fixture app and writes docs/BENCHMARKS.md.
//
//   sudo npm run bench                 full run (about 20 minutes: 5 repetitions, the noise here needs them), writes docs/BENCHMARKS.md
//   sudo BENCH_QUICK=1 npm run bench   smoke run (about 2 minutes), prints the report only
//   BENCH_OUT=file                     write the report there instead
//   BENCH_RAW=file                     also write the raw measurements (JSON)
//   sudo BENCH_ONLY=watchIdle node bench/run.mjs
//                                      one phase of phases.mjs alone: its figures as JSON on stdout, no report
//
// Needs root, a build (`npm run build`), wrk, perf (linux-perf), bpftrace and
// bpftool (scripts/setup.sh installs them). Everything it starts (nginx,
// wrk, profilers) and every temp file is removed again, and
// kernel.bpf_stats_enabled gets its old value back, however the run ends.
//
// The parts: config.mjs (what is measured, for how long), launchers.mjs
// (the fixture nginx, wrk and the tools), measure.mjs (CPU time, BPF
// statistics, ratios, medians), phases.mjs (the measurements: overhead,
// report speed, accuracy, off-CPU cost, --label uri cost, watch's idle cost),
// markdown.mjs (the report), cleanup.mjs and util.mjs.
import { existsSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { cleanupAll, cleanupOnSignals, cleanupPhase, keepUntilExit } from './cleanup.mjs';
import { QUICK, root } from './config.mjs';
import { renderMarkdown } from './markdown.mjs';
import { cpuTicks, machine } from './measure.mjs';
import * as phases from './phases.mjs';
import { accuracy, offCpuCost, overhead, reportSpeed, uriLabelCost, watchIdle } from './phases.mjs';
import { log, tryRun } from './util.mjs';

cleanupOnSignals();

async function preflight() {
  if (process.getuid?.() !== 0) throw new Error('run as root: the bench loads BPF programs and runs perf (sudo npm run bench)');
  for (const tool of ['wrk', 'perf', 'bpftrace', 'bpftool', 'nginx', 'getconf']) {
    if (!tryRun('sh', ['-c', `command -v ${tool}`])) throw new Error(`${tool} is missing: run \`bash scripts/setup.sh --tests\``);
  }
  for (const f of ['dist/cli.js', 'build/bpf/profiler.bpf.o']) {
    if (!existsSync(join(root, f))) throw new Error(`${f} is missing: run \`npm run build\``);
  }
}

async function main() {
  const t0 = Date.now();
  const ticks0 = cpuTicks();
  await preflight();
  const result = { machine: machine() };
  if (process.env.BENCH_ONLY) {
    const phase = phases[process.env.BENCH_ONLY];
    if (typeof phase !== 'function') throw new Error(`BENCH_ONLY: no phase ${process.env.BENCH_ONLY} (phases: ${Object.keys(phases).join(', ')})`);
    await phase(result);
    process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
    return;
  }
  // Each phase's nginx, tools, temp files and BPF statistics switch go
  // when the phase ends.
  keepUntilExit();
  try {
    await overhead(result);
    await cleanupPhase();
    await reportSpeed(result);
    await cleanupPhase();
    await accuracy(result);
    await cleanupPhase();
    await offCpuCost(result);
    await cleanupPhase();
    await uriLabelCost(result);
    await cleanupPhase();
    await watchIdle(result);
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
