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
// Inputs run in child processes, one chunk of inputs each. A child writes
// the index of the input it is on into a progress file before each input;
// a watchdog kills a child whose input has not finished after HANG_MS (an
// endless loop) or whose resident memory passes MEM_LIMIT_MB (its address
// space is limited to 8 GB as well), records that input as a failure and
// goes on after it. An input slower than 1 s
// (confirmed by a second run) is a failure too.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildTargets, fuzzTarget, inputKey, loadSeeds, makeRng, TARGET_NAMES, TIME_LIMIT_MS } from './fuzz-lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');
const HANG_MS = 10_000;
const MEM_LIMIT_MB = 3072;
const ADDRESS_LIMIT_KB = 8 * 1024 * 1024;
const CHUNK = 5_000;

/** The compiled parser modules (dist/ from `npm run build:ts`). */
const MODULES = [
  'elf/elf-file',
  'elf/elf-symbols',
  'elf/eh-frame',
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
// Child: `fuzz.mjs --child target seed from to progressFile` runs one chunk
// and prints its result as JSON.

async function child([target, seed, from, to, progressFile]) {
  const api = await loadApi();
  const targets = buildTargets(api, loadSeeds(api, { repoRoot }));
  const fd = openSync(progressFile, 'r+');
  const slot = Buffer.alloc(8);
  const res = fuzzTarget(targets[target], target, {
    seed,
    from: Number(from),
    to: Number(to),
    onProgress: (i) => {
      slot.writeDoubleLE(i, 0);
      writeSync(fd, slot, 0, 8, 0);
    },
  });
  closeSync(fd);
  process.stdout.write(JSON.stringify(res));
  return 0;
}

// ---------------------------------------------------------------------------
// Main thread.

function parseArgs(argv) {
  const opts = { inputs: 100_000, from: 0, seed: 'apisix-profile', targets: TARGET_NAMES, jobs: Math.max(1, availableParallelism()), json: false, repro: null, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--inputs') opts.inputs = Number(val());
    else if (a === '--from') opts.from = Number(val());
    else if (a === '--seed') opts.seed = val();
    else if (a === '--targets') opts.targets = val().split(',');
    else if (a === '--jobs') opts.jobs = Number(val());
    else if (a === '--json') opts.json = true;
    else if (a === '--repro') opts.repro = val();
    else if (a === '--out') opts.out = val();
    else usage(`unknown option ${a}`);
  }
  if (!Number.isSafeInteger(opts.inputs) || opts.inputs < 1) usage('--inputs must be a positive integer');
  if (!Number.isSafeInteger(opts.from) || opts.from < 0) usage('--from must be a non-negative integer');
  if (!Number.isSafeInteger(opts.jobs) || opts.jobs < 1) usage('--jobs must be a positive integer');
  for (const t of opts.targets) if (!TARGET_NAMES.includes(t)) usage(`unknown target ${t} (targets: ${TARGET_NAMES.join(', ')})`);
  return opts;
}

function usage(msg) {
  process.stderr.write(`fuzz: ${msg}\nusage: node bench/fuzz.mjs [--inputs N] [--from I] [--seed S] [--targets ${TARGET_NAMES.join(',')}] [--jobs J] [--json] | --repro target:seed:index [--out file]\n`);
  process.exit(2);
}

function rssMb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs inputs [start, to) of a target in a child process, watched. */
function runChild(target, seed, start, to, dir) {
  const progressFile = join(dir, `progress-${target}-${start}`);
  // -1 until the child starts its first input.
  const init = Buffer.alloc(8);
  init.writeDoubleLE(-1, 0);
  writeFileSync(progressFile, init);
  const readProgress = () => {
    try {
      return readFileSync(progressFile).readDoubleLE(0);
    } catch {
      return -1;
    }
  };
  // The address-space limit makes a runaway allocation fail in the child
  // (and be recorded) before it can take the machine's memory.
  const argv = [process.execPath, '--max-old-space-size=2048', fileURLToPath(import.meta.url), '--child', target, seed, String(start), String(to), progressFile];
  const proc = spawn('/bin/sh', ['-c', `ulimit -v ${ADDRESS_LIMIT_KB} && exec "$@"`, 'fuzz-child', ...argv], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  proc.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  return new Promise((res) => {
    let last = -1;
    let since = Date.now();
    let verdict = null;
    const timer = setInterval(() => {
      const cur = readProgress();
      if (cur !== last) {
        last = cur;
        since = Date.now();
      } else if (Date.now() - since > HANG_MS) {
        verdict = cur < 0 ? { fatal: `the fuzz child did not start within ${HANG_MS / 1000} s` } : { index: cur, what: `hang: no result after ${HANG_MS / 1000} s (killed)`, hung: true };
      }
      const mb = rssMb(proc.pid);
      // The input running when the limit is crossed; earlier inputs of the
      // same child may have built the memory up.
      if (!verdict && mb > MEM_LIMIT_MB) verdict = { index: cur, what: `memory: resident size passed ${MEM_LIMIT_MB} MB during this input (killed)` };
      if (verdict) {
        clearInterval(timer);
        proc.kill('SIGKILL');
      }
    }, 100);
    // 'close', not 'exit': the result on stdout must be read to its end.
    proc.on('close', (code, signal) => {
      clearInterval(timer);
      children.delete(proc);
      const at = readProgress();
      rmSync(progressFile, { force: true });
      if (!verdict && code === 0) {
        try {
          return res({ result: JSON.parse(out) });
        } catch {
          /* fall through */
        }
      }
      const why = `exit ${code}, signal ${signal}: ${err.trim().split('\n').slice(-3).join(' | ')}`;
      if (!verdict && at < 0) return res({ fatal: `the fuzz child failed before its first input (${why})` });
      res(verdict ?? { index: at, what: `child died (${why})` });
    });
  });
}

const children = new Set();

/** Runs [from, to) of a target; an input that hangs or kills its child is recorded and skipped. */
async function runChunk(target, seed, from, to, dir) {
  const merged = { counts: { inputs: 0, accepted: 0, rejected: 0, failed: 0, slow: 0, hung: 0, bytes: 0 }, failures: [], slowest: { ms: 0, key: '' } };
  let start = from;
  while (start < to) {
    const outcome = await runChild(target, seed, start, to, dir);
    if (outcome.fatal) throw new Error(outcome.fatal);
    if (outcome.result) {
      mergeInto(merged, outcome.result);
      break;
    }
    // The input at `index` hung or killed its child: record it. The inputs
    // before it in this child completed but their outcomes died with it:
    // run them again so the counts stay exact. Then go on after it.
    const index = outcome.index;
    if (index > start) mergeInto(merged, await runChunk(target, seed, start, index, dir));
    merged.counts.inputs++;
    merged.counts.failed++;
    if (outcome.hung) merged.counts.hung++;
    const key = inputKey(seed, target, index);
    merged.failures.push({ signature: `${target}: ${outcome.what.replace(/\d+/g, 'N')}`, count: 1, examples: [key], key, reason: outcome.what });
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
  const end = opts.from + opts.inputs;
  for (const t of opts.targets) for (let from = opts.from; from < end; from += CHUNK) chunks.push({ target: t, from, to: Math.min(end, from + CHUNK) });
  const results = Object.fromEntries(opts.targets.map((t) => [t, { counts: { inputs: 0, accepted: 0, rejected: 0, failed: 0, slow: 0, hung: 0, bytes: 0 }, failures: [], slowest: { ms: 0, key: '' }, seconds: 0 }]));
  let next = 0;
  let done = 0;
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-fuzz-run-'));
  const cleanup = () => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = () => {
    cleanup();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  async function lane() {
    while (next < chunks.length) {
      const c = chunks[next++];
      const started = Date.now();
      const r = await runChunk(c.target, opts.seed, c.from, c.to, dir);
      mergeInto(results[c.target], r);
      results[c.target].seconds += (Date.now() - started) / 1000;
      done++;
      if (!opts.json) process.stderr.write(`\rfuzz: ${done}/${chunks.length} chunks, ${Math.round((Date.now() - t0) / 1000)} s `);
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(opts.jobs, chunks.length) }, lane));
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
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

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  (process.argv[2] === '--child' ? child(process.argv.slice(3)) : main()).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`fuzz: ${err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
}
