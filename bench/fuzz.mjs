#!/usr/bin/env node
// Mutation fuzzing of the parsers (ELF + symbols, .eh_frame, .eh_frame_hdr,
// /proc maps, folded stacks), against the compiled dist/ (npm run build:ts).
//
//   npm run fuzz                                   100,000 inputs per parser
//   node bench/fuzz.mjs --inputs 2000 --seed ci    the short run CI does
//   node bench/fuzz.mjs --repro elf:ci:655 [--out input.bin]
//                                                  rebuild one input, run it here, show the stack
//
// Options: --inputs N, --seed S, --targets elf,ehFrame,..., --jobs J,
// --json (summary as JSON on stdout). Exit code 0 when no parser failed,
// 1 when one did, 2 on bad usage.
//
// Inputs run in worker threads, one chunk at a time; a watchdog terminates a
// worker whose input has not finished after HANG_MS (an endless loop),
// records that input as a failure and goes on with the next one. An input
// slower than 1 s (confirmed by a second run) is a failure too.
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { buildTargets, fuzzTarget, inputKey, loadSeeds, makeRng, TARGET_NAMES, TIME_LIMIT_MS, undocumentedReason } from './fuzz-lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');
const HANG_MS = 10_000;
const CHUNK = 5_000;

/** The compiled parser modules (dist/ from `npm run build:ts`). */
const MODULES = [
  'symbolize/elf-file',
  'symbolize/elf-symbols',
  'unwind/eh-frame',
  'unwind/rows',
  'target/proc-maps',
  'report/fold',
];

export async function loadApi(root = repoRoot) {
  const api = {};
  for (const m of MODULES) {
    const file = join(root, 'dist', `${m}.js`);
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build:ts\` first`);
    Object.assign(api, await import(pathToFileURL(file).href));
  }
  return api;
}

/** Source files newer than their compiled output (a stale dist/ would fuzz old code). */
export function staleModules(root = repoRoot) {
  return MODULES.filter((m) => {
    const src = join(root, 'src', `${m}.ts`);
    const out = join(root, 'dist', `${m}.js`);
    return existsSync(src) && existsSync(out) && statSync(src).mtimeMs > statSync(out).mtimeMs;
  });
}

// ---------------------------------------------------------------------------
// Worker: runs one chunk of one target.

if (!isMainThread) {
  const { target, seed, from, to, progress } = workerData;
  const api = await loadApi();
  const targets = buildTargets(api, loadSeeds(api, { repoRoot }));
  const slot = new Int32Array(progress);
  const res = fuzzTarget(targets[target], target, {
    seed,
    from,
    to,
    onProgress: (i) => Atomics.store(slot, 0, i),
  });
  parentPort.postMessage(res);
}

// ---------------------------------------------------------------------------
// Main thread.

function parseArgs(argv) {
  const opts = { inputs: 100_000, seed: 'apisix-profile', targets: TARGET_NAMES, jobs: Math.max(1, availableParallelism()), json: false, repro: null, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--inputs') opts.inputs = Number(val());
    else if (a === '--seed') opts.seed = val();
    else if (a === '--targets') opts.targets = val().split(',');
    else if (a === '--jobs') opts.jobs = Number(val());
    else if (a === '--json') opts.json = true;
    else if (a === '--repro') opts.repro = val();
    else if (a === '--out') opts.out = val();
    else usage(`unknown option ${a}`);
  }
  if (!Number.isSafeInteger(opts.inputs) || opts.inputs < 1) usage('--inputs must be a positive integer');
  if (!Number.isSafeInteger(opts.jobs) || opts.jobs < 1) usage('--jobs must be a positive integer');
  for (const t of opts.targets) if (!TARGET_NAMES.includes(t)) usage(`unknown target ${t} (targets: ${TARGET_NAMES.join(', ')})`);
  return opts;
}

function usage(msg) {
  process.stderr.write(`fuzz: ${msg}\nusage: node bench/fuzz.mjs [--inputs N] [--seed S] [--targets ${TARGET_NAMES.join(',')}] [--jobs J] [--json] | --repro target:seed:index [--out file]\n`);
  process.exit(2);
}

/** Runs [from, to) of a target in a worker; a hung input is recorded and skipped. */
async function runChunk(target, seed, from, to) {
  const merged = { counts: { inputs: 0, accepted: 0, rejected: 0, failed: 0, slow: 0, hung: 0, bytes: 0 }, failures: [], slowest: { ms: 0, key: '' } };
  let start = from;
  while (start < to) {
    const progress = new SharedArrayBuffer(4);
    const slot = new Int32Array(progress);
    Atomics.store(slot, 0, start);
    const worker = new Worker(fileURLToPath(import.meta.url), {
      workerData: { target, seed, from: start, to, progress },
      resourceLimits: { maxOldGenerationSizeMb: 2048 },
    });
    const outcome = await new Promise((res) => {
      let last = -1;
      let since = Date.now();
      const timer = setInterval(() => {
        const cur = Atomics.load(slot, 0);
        if (cur !== last) {
          last = cur;
          since = Date.now();
        } else if (Date.now() - since > HANG_MS) {
          clearInterval(timer);
          res({ hung: cur });
          void worker.terminate();
        }
      }, 250);
      worker.once('message', (m) => {
        clearInterval(timer);
        res({ result: m });
      });
      worker.once('error', (err) => {
        clearInterval(timer);
        res({ died: Atomics.load(slot, 0), err });
      });
      worker.once('exit', (code) => {
        clearInterval(timer);
        res({ died: Atomics.load(slot, 0), err: new Error(`worker exited with code ${code}`) });
      });
    });
    if (outcome.result) {
      mergeInto(merged, outcome.result);
      break;
    }
    await worker.terminate();
    // The input at `index` hung or killed the worker: record it, go on after it.
    const index = outcome.hung ?? outcome.died;
    const key = inputKey(seed, target, index);
    const what = outcome.hung !== undefined ? `hang: no result after ${HANG_MS / 1000} s (worker terminated)` : `worker died: ${outcome.err?.code ?? ''} ${outcome.err?.message ?? ''}`.trim();
    merged.counts.inputs += index - start + 1;
    merged.counts.failed++;
    if (outcome.hung !== undefined) merged.counts.hung++;
    // Inputs before `index` in this attempt completed, but their outcomes
    // died with the worker: run them again so the counts stay exact.
    if (index > start) {
      const before = await runChunk(target, seed, start, index);
      merged.counts.inputs -= index - start;
      mergeInto(merged, before);
    }
    merged.failures.push({ signature: `${target}: ${what}`, count: 1, examples: [key], key, reason: what });
    start = index + 1;
  }
  return merged;
}

function mergeInto(into, r) {
  for (const [k, v] of Object.entries(r.counts)) into.counts[k] = (into.counts[k] ?? 0) + v;
  for (const f of r.failures) {
    const g = into.failures.find((x) => x.signature === f.signature);
    if (g) {
      g.count += f.count;
      for (const e of f.examples) if (g.examples.length < 3) g.examples.push(e);
    } else into.failures.push({ ...f, examples: [...f.examples] });
  }
  if (r.slowest.ms > into.slowest.ms) into.slowest = r.slowest;
}

async function fuzzAll(opts) {
  const chunks = [];
  for (const t of opts.targets) for (let from = 0; from < opts.inputs; from += CHUNK) chunks.push({ target: t, from, to: Math.min(opts.inputs, from + CHUNK) });
  const results = Object.fromEntries(opts.targets.map((t) => [t, { counts: { inputs: 0, accepted: 0, rejected: 0, failed: 0, slow: 0, hung: 0, bytes: 0 }, failures: [], slowest: { ms: 0, key: '' }, seconds: 0 }]));
  let next = 0;
  let done = 0;
  const t0 = Date.now();
  async function lane() {
    while (next < chunks.length) {
      const c = chunks[next++];
      const started = Date.now();
      const r = await runChunk(c.target, opts.seed, c.from, c.to);
      mergeInto(results[c.target], r);
      results[c.target].seconds += (Date.now() - started) / 1000;
      done++;
      if (!opts.json) process.stderr.write(`\rfuzz: ${done}/${chunks.length} chunks, ${Math.round((Date.now() - t0) / 1000)} s `);
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.jobs, chunks.length) }, lane));
  if (!opts.json) process.stderr.write('\n');
  return { results, seconds: (Date.now() - t0) / 1000 };
}

function printReport({ results, seconds }, opts, seeds, targets) {
  const lines = [];
  lines.push(`fuzz: seed "${opts.seed}", ${opts.inputs} inputs per target, time limit ${TIME_LIMIT_MS} ms per input, ${seconds.toFixed(0)} s`);
  lines.push('');
  lines.push('| target | parsers | inputs | accepted | rejected (documented error) | failed | slowest input | CPU s |');
  lines.push('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const [name, r] of Object.entries(results)) {
    const c = r.counts;
    lines.push(`| ${name} | ${targets[name].describe} | ${c.inputs} | ${c.accepted} | ${c.rejected} | ${c.failed} | ${r.slowest.ms.toFixed(1)} ms | ${r.seconds.toFixed(0)} |`);
  }
  lines.push('');
  lines.push(`seeds: ${Object.entries(seeds).map(([k, v]) => `${k}: ${v.map((s) => s.name).join(', ')}`).join('; ')}`);
  for (const [name, r] of Object.entries(results)) {
    for (const f of r.failures.sort((a, b) => b.count - a.count)) {
      lines.push('');
      lines.push(`FAILURE ${name}: ${f.count} input(s): ${f.signature}`);
      lines.push(`  reproduce: node bench/fuzz.mjs --repro ${f.examples[0]}   (other inputs: ${f.examples.slice(1).join(' ') || '-'})`);
      if (f.seedFile) lines.push(`  mutated from: ${f.seedFile}`);
      if (f.message) lines.push(`  message: ${f.message}`);
      if (f.stack) lines.push(f.stack.split('\n').map((l) => `  ${l}`).join('\n'));
    }
  }
  return lines.join('\n');
}

async function repro(spec, outFile) {
  const m = /^([A-Za-z]+):(.*):(\d+)$/.exec(spec);
  if (!m || !TARGET_NAMES.includes(m[1])) usage('--repro wants target:seed:index, e.g. elf:apisix-profile:1234');
  const [, target, seed, index] = m;
  const api = await loadApi();
  const seeds = loadSeeds(api, { repoRoot });
  const t = buildTargets(api, seeds)[target];
  const key = inputKey(seed, target, Number(index));
  const input = t.make(makeRng(key));
  const bytes = input.bytes ?? Buffer.from(input.text, 'utf8');
  process.stdout.write(`input ${key}: ${bytes.length} bytes, mutated from ${input.seed}\n`);
  if (outFile) {
    writeFileSync(outFile, input.bytes ?? input.text);
    process.stdout.write(`written to ${outFile}${input.vaddr !== undefined ? ` (section vaddr 0x${input.vaddr.toString(16)})` : ''}\n`);
  }
  process.stdout.write('running it (no answer within a few seconds means it hangs: Ctrl-C)...\n');
  const t0 = performance.now();
  const res = t.run(input);
  const ms = performance.now() - t0;
  if (res.failure) {
    process.stdout.write(`FAILED in ${res.failure.where} after ${ms.toFixed(1)} ms: ${res.failure.reason}\n${res.failure.err?.stack ?? res.failure.err}\n`);
    return 1;
  }
  process.stdout.write(`${res.rejected ? 'rejected with a documented error' : 'accepted'} in ${ms.toFixed(1)} ms${ms > TIME_LIMIT_MS ? ' (over the time limit: a failure)' : ''}\n`);
  return ms > TIME_LIMIT_MS ? 1 : 0;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const stale = staleModules();
  if (stale.length > 0) {
    process.stderr.write(`fuzz: dist/ is older than src/ for ${stale.join(', ')}: run \`npm run build:ts\` first\n`);
    return 2;
  }
  if (opts.repro) return repro(opts.repro, opts.out);
  const api = await loadApi();
  const seeds = loadSeeds(api, { repoRoot, log: (m) => process.stderr.write(`${m}\n`) });
  const targets = buildTargets(api, seeds);
  const run = await fuzzAll(opts);
  const failed = Object.values(run.results).some((r) => r.counts.failed > 0 || r.counts.slow > 0);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ seed: opts.seed, inputs: opts.inputs, seconds: run.seconds, results: run.results, ok: !failed }, null, 1)}\n`);
  } else {
    process.stdout.write(`${printReport(run, opts, seeds, targets)}\n`);
    process.stdout.write(failed ? '\nfuzz: FAILED (see above)\n' : '\nfuzz: ok, no parser failed\n');
  }
  return failed ? 1 : 0;
}

if (isMainThread && process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`fuzz: ${err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
}

// Re-exported for the CI test.
export { undocumentedReason };
