// The README's cost figures are generated from docs/BENCHMARKS.md
// (scripts/readme-figures.mjs): they may not go stale or be edited by hand.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { repoRoot } from '../support/fixture.js';

const script = join(repoRoot, 'scripts', 'readme-figures.mjs');

it('the README holds exactly the figures docs/BENCHMARKS.md gives', () => {
  execFileSync(process.execPath, [script, '--check'], { cwd: repoRoot });
});

it('a figure edited by hand is caught', () => {
  const dir = mkdtempSync(join(tmpdir(), 'readme-figures-'));
  try {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const begin = readme.indexOf('-->', readme.indexOf('<!-- figures:begin')) + 3;
    expect(begin).toBeGreaterThan(3);
    // Change one digit inside the generated block.
    const at = readme.slice(begin).search(/\d/) + begin;
    const edited = `${readme.slice(0, at)}${(Number(readme[at]) + 1) % 10}${readme.slice(at + 1)}`;
    writeFileSync(join(dir, 'README.md'), edited);
    const run = spawnSync(process.execPath, [script, '--check', '--readme', join(dir, 'README.md')], { cwd: repoRoot });
    expect(run.status).toBe(1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('carries the off-CPU cost row when the bench ran that phase, and does without it otherwise', async () => {
  const { renderFigures } = (await import(script)) as { renderFigures: (md: string) => string };
  const bench = readFileSync(join(repoRoot, 'docs', 'BENCHMARKS.md'), 'utf8');
  expect(bench).toContain('\n## Off-CPU mode\n');
  expect(renderFigures(bench)).toMatch(/^\| worker CPU\/request in `--mode off-cpu`.*\| \d+(\.\d+)?× \(pairs .*; BPF \d+ ns per switch event .*\| ≤ 1\.02: (met|not met) \|$/m);
  const without = bench.replace(/\n## Off-CPU mode\n[\s\S]*?(?=\n## )/, '\n');
  expect(without).not.toContain('## Off-CPU mode');
  expect(renderFigures(without)).not.toContain('--mode off-cpu');
});
