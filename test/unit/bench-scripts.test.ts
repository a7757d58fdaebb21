// The bench scripts run only by hand (`npm run bench`, minutes long, as
// root), so nothing else would notice one that no longer parses: check
// each with `node --check`, which parses without running it. The bench is
// split into modules, and a name one of them uses but does not define or
// import fails only when that line runs, maybe 15 minutes in: TypeScript
// over the JavaScript finds those without running anything.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const repoRoot = join(import.meta.dirname, '../..');
const benchDir = join(repoRoot, 'bench');
const scripts = readdirSync(benchDir).filter((f) => f.endsWith('.mjs'));
// The fixture launcher the bench shares with the tests: plain JavaScript too.
const files = [...scripts.map((f) => join(benchDir, f)), join(repoRoot, 'fixtures/nginx/launch.mjs')];

// Cannot find name / module; a module has no such export; and tsc's own
// option and file errors, so a check that did not run cannot pass. Type
// errors proper are left alone: the scripts are untyped JavaScript.
const NAME_ERRORS = /error TS(2304|2552|2305|2307|2614|2724|5\d{3}|6053):/;

describe('bench scripts', () => {
  it('are there to check', () => {
    expect(scripts).toContain('run.mjs');
    expect(scripts).toEqual(expect.arrayContaining(['config.mjs', 'launchers.mjs', 'measure.mjs', 'markdown.mjs', 'phases.mjs']));
  });

  it.each(files.map((f) => relative(repoRoot, f)))('%s parses', (file) => {
    const r = spawnSync(process.execPath, ['--check', join(repoRoot, file)], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('define or import every name they use, and import only what exists', () => {
    const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
    const args = ['--noEmit', '--allowJs', '--checkJs', '--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--skipLibCheck', '--types', 'node', ...files];
    const r = spawnSync(process.execPath, [tsc, ...args], { cwd: repoRoot, encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    const missing = r.stdout.split('\n').filter((l) => NAME_ERRORS.test(l));
    expect(missing).toEqual([]);
  });
});
