#!/usr/bin/env node
// The README's cost figures, generated from docs/BENCHMARKS.md (which
// `npm run bench` writes), so they cannot go stale by hand:
//   node scripts/readme-figures.mjs           rewrite the block in README.md
//   node scripts/readme-figures.mjs --check   exit 1 if the block is not what it would write
// The block sits between `<!-- figures:begin ... -->` and `<!-- figures:end -->`.
// Options: --readme <file> and --benchmarks <file> (defaults: the repository's).
// Exit codes: 0 done or up to date, 1 stale (--check), 2 bad arguments,
// missing markers, or a table or row the generator needs is not in BENCHMARKS.md.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BEGIN = '<!-- figures:begin: written by `node scripts/readme-figures.mjs` from docs/BENCHMARKS.md; do not edit by hand -->';
const END = '<!-- figures:end -->';
const BLOCK_RE = /<!-- figures:begin[^\n]*?-->[\s\S]*?<!-- figures:end -->/;

class FiguresError extends Error {}

/** `## Heading` → the lines under it, up to the next `## `. */
function sections(md) {
  const out = new Map();
  let name = null;
  for (const line of md.split(/\r?\n/)) {
    const h = /^## (.+?)\s*$/.exec(line);
    if (h) {
      name = h[1];
      out.set(name, []);
    } else if (name !== null) out.get(name).push(line);
  }
  return out;
}

function cells(line) {
  return line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
}

/** The Markdown tables of a section, each as { header, rows: [{ first cell, cells by header }] }. */
function tables(lines) {
  const out = [];
  let cur = null;
  for (const line of lines) {
    if (!line.trim().startsWith('|')) {
      cur = null;
      continue;
    }
    if (!cur) {
      cur = { header: cells(line), rows: [] };
      out.push(cur);
    } else if (!/^\|?\s*:?-{3,}/.test(line.trim())) {
      const c = cells(line);
      cur.rows.push({ key: c[0], byHeader: Object.fromEntries(cur.header.map((h, i) => [h, c[i] ?? ''])) });
    }
  }
  return out;
}

function reader(md) {
  const secs = sections(md);
  const section = (name) => {
    const s = secs.get(name);
    if (!s) throw new FiguresError(`no section "## ${name}"`);
    return s;
  };
  const table = (sectionName, firstHeader) => {
    const t = tables(section(sectionName)).find((x) => x.header[0] === firstHeader);
    if (!t) throw new FiguresError(`no table starting with column "${firstHeader}" under "## ${sectionName}"`);
    return t;
  };
  const cell = (t, rowKey, column, { prefix = false } = {}) => {
    const row = t.rows.find((r) => (prefix ? r.key.startsWith(rowKey) : r.key === rowKey));
    if (!row) throw new FiguresError(`no row "${rowKey}" in the table "${t.header[0]}"`);
    const v = row.byHeader[column];
    if (v === undefined || v === '') throw new FiguresError(`row "${rowKey}" has no "${column}" value`);
    return v;
  };
  return { section, table, cell };
}

function num(text, what) {
  const m = /-?\d+(?:\.\d+)?/.exec(text);
  if (!m) throw new FiguresError(`${what}: no number in "${text}"`);
  return Number(m[0]);
}

const x3 = (v) => `${v.toFixed(3)}×`;

/** The figures block (markers included) for a BENCHMARKS.md text. */
export function renderFigures(benchmarksMd) {
  const r = reader(benchmarksMd);

  const machine = r.table('Machine and run', '');
  const date = cell0(machine, 'date');
  const day = /^\d{4}-\d{2}-\d{2}/.exec(date)?.[0];
  if (!day) throw new FiguresError(`date "${date}" is not an ISO date`);
  const cpus = /(\d+) CPUs/.exec(cell0(machine, 'CPU'))?.[1];
  const commit = /commit (\S+)/.exec(cell0(machine, 'apisix-profile'))?.[1];
  if (!cpus || !commit) throw new FiguresError('the "CPU" or "apisix-profile" row of "Machine and run" lost its format');
  const quick = /quick mode/.test(benchmarksMd.split('## ')[0]);

  const overhead = r.table('Target overhead', 'tool');
  const ratio = (tool) => num(r.cell(overhead, tool, 'CPU/request vs none'), tool);
  const p99 = ratio('apisix-profile 99 Hz');
  const p999 = ratio('apisix-profile 999 Hz');
  const bt999 = ratio('bpftrace profile:hz:999 ustack');
  const perf999 = ratio('perf record -g -F 999');
  const floor = ratio('bpftrace profile:hz:999 count only');
  const noise = /judged against its two neighbours[^(]*?median ratio of ([\d.]+) \(each: ([^)]*)\)/.exec(r.section('Target overhead').join('\n'));
  if (!noise) throw new FiguresError('no noise-floor sentence ("... judged against its two neighbours ... (each: ...)") under "## Target overhead"');
  const selfRatios = noise[2].split(',').map((s) => Number(s.trim())).filter(Number.isFinite);
  if (selfRatios.length === 0) throw new FiguresError('the noise-floor sentence lists no ratios');

  const cost = r.table('Profiler cost while sampling', 'tool');
  const total99 = r.cell(cost, 'apisix-profile 99 Hz', 'total');
  const ns = (tool) => num(r.cell(cost, tool, 'BPF ns per sample'), tool);
  const vsBt = (tool) => r.cell(cost, tool, "÷ bpftrace's at that rate");
  const uprobe = tables(r.section('Profiler cost while sampling')).find((t) => t.header[1] === 'uprobe hits per request');
  if (!uprobe) throw new FiguresError('no uprobe hits table under "## Profiler cost while sampling"');
  const hits = num(r.cell(uprobe, 'apisix-profile 99 Hz', 'uprobe hits per request'), 'uprobe hits');

  const rep = r.table('Report speed and memory', 'figure');
  const reportMs = num(r.cell(rep, 'report time', 'value'), 'report time');
  const rssMb = num(r.cell(rep, 'peak RSS', 'value'), 'peak RSS');
  const samples = num(r.cell(rep, 'samples', 'value'), 'samples');
  const stacks = num(r.cell(rep, 'unique stacks', 'value'), 'unique stacks');

  const goals = r.table('Goals', 'goal');
  const goal = (name, opts) => {
    const target = r.cell(goals, name, 'target', opts);
    const row = goals.rows.find((x) => (opts?.prefix ? x.key.startsWith(name) : x.key === name));
    const status = row.byHeader[''] ?? '';
    return `${target}: ${status}`;
  };
  const reportWhat = /^report time \((.*)\)$/.exec(goals.rows.find((x) => x.key.startsWith('report time'))?.key ?? '')?.[1];
  if (!reportWhat) throw new FiguresError('no "report time (...)" row under "## Goals"');

  // Off-CPU mode's cost: only when the bench ran that phase.
  let offCpu = null;
  const offTable = benchmarksMd.includes('\n## Off-CPU mode\n') ? tables(r.section('Off-CPU mode')).find((t) => t.header[0] === 'tool') : undefined;
  if (offTable) {
    const off = (tool, column) => r.cell(offTable, tool, column);
    const offRatio = (tool) => num(off(tool, 'worker CPU/request vs none'), tool);
    const pairs = off('apisix-profile --mode off-cpu', 'paired ratios').split(',').map((x) => Number(x.trim())).filter(Number.isFinite);
    offCpu =
      `| worker CPU/request in \`--mode off-cpu\`, at one epoll wait per request of a 25 µs handler (the worst case) | ` +
      `${x3(offRatio('apisix-profile --mode off-cpu'))} (pairs ${x3(Math.min(...pairs))} to ${x3(Math.max(...pairs))}); ` +
      `an empty switch program ${x3(offRatio('empty sched_switch program'))}, bpftrace offcputime ${x3(offRatio('bpftrace offcputime'))}; ` +
      `BPF ${off('apisix-profile --mode off-cpu', 'BPF per switch event')} per switch event (bpftrace ${off('bpftrace offcputime', 'BPF per switch event')}) | ` +
      `${off('apisix-profile --mode off-cpu', 'goal').replace(/\*\*/g, '')} |`;
  }

  const pts = (v) => `${v >= 0 ? '+' : ''}${(v * 100).toFixed(2)}`;
  const L = [];
  L.push(BEGIN);
  L.push(
    `From the \`npm run bench\` run of **${day}**${quick ? ' (its quick mode: a smoke run, not a measurement)' : ''} ` +
      `(commit ${commit}, ${cpus} CPUs, a shared VM; one nginx worker saturated by wrk). ` +
      'A ratio is the worker\'s CPU per request with the tool sampling it ÷ without any tool.',
  );
  L.push('');
  L.push('| | measured | goal |');
  L.push('|---|---|---|');
  L.push(`| worker CPU/request, profiling at the default 99 Hz | ${x3(p99)} | ${goal('worker CPU/request at 99 Hz')} |`);
  L.push(
    `| worker CPU/request at 999 Hz | ${x3(p999)}; bpftrace \`ustack\` ${x3(bt999)}, \`perf record -g\` ${x3(perf999)}; ` +
      `the sampling interrupt alone (bpftrace counting samples) ${x3(floor)}, so ${pts(p999 - floor)} points above it | ${goal('worker CPU/request at 999 Hz')} |`,
  );
  if (offCpu) L.push(offCpu);
  L.push(`| profiler CPU + its BPF programs at 99 Hz | ${total99} of one CPU | ${goal('profiler CPU + BPF at 99 Hz')} |`);
  L.push(
    `| BPF time per sample | ${ns('apisix-profile 99 Hz')} ns at 99 Hz (${vsBt('apisix-profile 99 Hz')} bpftrace \`ustack\`'s), ` +
      `${ns('apisix-profile 999 Hz')} ns at 999 Hz (${vsBt('apisix-profile 999 Hz')}) | |`,
  );
  L.push(`| uprobe hits per request after warm-up | ${hits} | ${goal('uprobe hits per request after warm-up')} |`);
  L.push(`| report time after sampling (${reportWhat}: ${samples} samples, ${stacks} unique stacks) | ${reportMs} ms | ${goal('report time', { prefix: true })} |`);
  L.push(`| peak RSS of the profiler | ${rssMb} MB | ${goal('peak RSS')} |`);
  L.push('');
  L.push(
    `Noise: a baseline run judged against its two neighbours exactly like a tool run gives ` +
      `${x3(Math.min(...selfRatios))} to ${x3(Math.max(...selfRatios))} (median ${x3(Number(noise[1]))}); ` +
      'differences inside that are not resolved on that machine.',
  );
  L.push(END);
  return L.join('\n');

  function cell0(t, key) {
    const row = t.rows.find((x) => x.key === key);
    if (!row) throw new FiguresError(`no row "${key}" under "## Machine and run"`);
    return row.byHeader[t.header[1]] ?? '';
  }
}

/** README text with its figures block replaced. */
export function replaceFigures(readme, block) {
  if (!BLOCK_RE.test(readme)) throw new FiguresError('no <!-- figures:begin --> ... <!-- figures:end --> block');
  return readme.replace(BLOCK_RE, () => block);
}

function main(argv) {
  let check = false;
  let readmePath = join(ROOT, 'README.md');
  let benchPath = join(ROOT, 'docs', 'BENCHMARKS.md');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--check') check = true;
    else if ((a === '--readme' || a === '--benchmarks') && argv[i + 1]) {
      if (a === '--readme') readmePath = resolve(argv[++i]);
      else benchPath = resolve(argv[++i]);
    } else {
      console.error(`readme-figures: unknown argument ${a}\nusage: node scripts/readme-figures.mjs [--check] [--readme README.md] [--benchmarks docs/BENCHMARKS.md]`);
      return 2;
    }
  }
  const show = (p) => relative(process.cwd(), p) || p;
  let readme, next;
  try {
    readme = readFileSync(readmePath, 'utf8');
    next = replaceFigures(readme, renderFigures(readFileSync(benchPath, 'utf8')));
  } catch (err) {
    if (!(err instanceof FiguresError) && err?.code !== 'ENOENT') throw err;
    console.error(`readme-figures: ${err instanceof FiguresError ? `${show(err.message.startsWith('no <!--') ? readmePath : benchPath)}: ` : ''}${err.message}`);
    return 2;
  }
  if (next === readme) {
    if (check) console.log(`readme-figures: ${show(readmePath)}: figures are up to date with ${show(benchPath)}`);
    return 0;
  }
  if (check) {
    console.error(`readme-figures: ${show(readmePath)}: the figures block differs from ${show(benchPath)}: run node scripts/readme-figures.mjs`);
    return 1;
  }
  writeFileSync(readmePath, next);
  console.log(`readme-figures: ${show(readmePath)}: figures block rewritten from ${show(benchPath)}`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
