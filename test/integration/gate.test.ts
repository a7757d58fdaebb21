// The CI gate of `diff` on a real profile: the fixture app profiled once
// under load; base is that profile, head the same with every stack through
// one function (cost.lua's beta) taking 1.3 times the samples, i.e. beta
// made 30% slower. The real CLI must fail the gate with exit 9 naming beta
// alone, and pass a profile diffed against itself. (Issue 18 asks for two
// real profiles of a base and a head app; one real profile keeps this test
// to a few seconds.)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { foldStacks, parseFolded } from '../../src/report/fold.js';
import { mergeIdentical } from '../../src/report/stack.js';
import {
  appDir,
  definitionLine,
  type Fixture,
  profileToFolded,
  repoRoot,
  requireRoot,
  sleep,
  startFixture,
  startLoad,
} from '../support/fixture.js';

function diff(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stderr: string } {
  const full = { ...process.env, ...env };
  if (!env.GITHUB_STEP_SUMMARY) delete full.GITHUB_STEP_SUMMARY;
  const r = spawnSync(process.execPath, [join(repoRoot, 'bin/apisix-profile.js'), 'diff', ...args], { env: full, encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr };
}

describe('diff --fail-on-function on a real profile', () => {
  let fixture: Fixture;
  let dir: string;
  let base: string;
  let head: string;
  // The frame of cost.lua's beta, as the profile names it (e.g. `beta (/.../cost.lua:15)`).
  let beta = '';

  beforeAll(async () => {
    requireRoot();
    fixture = await startFixture({ jit: 'jit-on' });
    dir = mkdtempSync(join(tmpdir(), 'apisix-profile-gate-'));
    const load = startLoad(fixture.port, '/work', 6);
    await sleep(300);
    const run = await profileToFolded(['--pid', String(fixture.master), '--duration', '4', '--frequency', '199']);
    await load.done;
    expect(run.code, run.stderr).toBe(0);
    const stacks = parseFolded(run.folded);
    const suffix = `(${appDir}/cost.lua:${definitionLine('beta')})`;
    beta = stacks.flatMap((s) => s.frames).find((f) => f.endsWith(suffix)) ?? '';
    expect(beta, `a frame ending in ${suffix}`).not.toBe('');
    base = join(dir, 'base.folded');
    head = join(dir, 'head.folded');
    writeFileSync(base, run.folded);
    const slower = stacks.map((s) => (s.frames.includes(beta) ? { ...s, count: Math.round(s.count * 1.3) } : s));
    writeFileSync(head, foldStacks(mergeIdentical(slower)));
  }, 60_000);

  afterAll(async () => {
    await fixture?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('fails with exit 9 naming exactly the slower function, first in the summaries', () => {
    const step = join(dir, 'step.md');
    const [md, json] = [join(dir, 'diff.md'), join(dir, 'diff.json')];
    const r = diff([base, head, '-o', join(dir, 'diff.svg'), '--summary', md, '--json', json, '--fail-on-function', '2'], {
      GITHUB_STEP_SUMMARY: step,
    });
    expect(r.code, r.stderr).toBe(ExitCode.GateFailed);
    const summary = JSON.parse(readFileSync(json, 'utf8'));
    expect(summary.verdict).toBe('fail');
    expect(summary.gate.functions.offending.map((f: { name: string }) => f.name)).toEqual([beta]);
    expect([summary.gate.functions.thresholdPp, summary.gate.minSamples]).toEqual([2, 30]);
    const lines = readFileSync(md, 'utf8').split('\n');
    expect(lines[2]).toMatch(/^\*\*✗ Gate failed:\*\* 1 function grew by more than 2 pp/);
    expect(lines[6]).toContain(`| 1 | \`${beta}\` | **`);
    expect(readFileSync(step, 'utf8')).toBe(`${lines.join('\n')}\n`);
    const log = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(log.at(-1)!.msg).toMatch(new RegExp(`^gate failed: 1 function grew by more than 2 pp: ${beta.replace(/[()./]/g, '\\$&')} \\(`));
  });

  it('passes a profile diffed against itself', () => {
    const json = join(dir, 'same.json');
    const r = diff([base, base, '-o', join(dir, 'same.svg'), '--json', json, '--fail-on-function', '0.1']);
    expect(r.code, r.stderr).toBe(ExitCode.Ok);
    expect(JSON.parse(readFileSync(json, 'utf8')).verdict).toBe('pass');
  });
});

describe('diff gate arguments and edge cases', () => {
  const small = join(repoRoot, 'fixtures/report/small.folded');
  const smallAfter = join(repoRoot, 'fixtures/report/small-after.folded');
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'apisix-profile-gate-args-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('rejects --min-samples without --fail-on-function, and a threshold that is not a positive number', () => {
    const lone = diff([small, smallAfter, '-o', join(dir, 'a.svg'), '--min-samples', '5']);
    expect(lone.code).toBe(ExitCode.BadArguments);
    expect(lone.stderr).toBe('apisix-profile: --min-samples sets what the gate judges: add --fail-on-function <pp> or --fail-on-plugin <pp>\n');
    for (const flag of ['fail-on-function', 'fail-on-plugin']) {
      for (const bad of ['0', '-1', 'lots', '101']) {
        const r = diff([small, smallAfter, '-o', join(dir, 'b.svg'), `--${flag}`, bad]);
        expect(r.code, bad).toBe(ExitCode.BadArguments);
        expect(r.stderr).toContain(`${flag} must be a number of percentage points above 0 and at most 100`);
      }
    }
  });

  it('exits 6, not 9, when a side has no samples, and says the gate judged nothing', () => {
    const empty = join(dir, 'empty.folded');
    writeFileSync(empty, '');
    const md = join(dir, 'empty.md');
    const r = diff([small, empty, '-o', join(dir, 'c.svg'), '--summary', md, '--fail-on-function', '1']);
    expect(r.code).toBe(ExitCode.NoSamples);
    expect(readFileSync(md, 'utf8').split('\n')[2]).toBe('**Gate not judged:** no samples in empty.folded.');
  });

  it('honours --min-samples: the same change fails or is left unjudged', () => {
    const json = join(dir, 'd.json');
    const judged = diff([small, smallAfter, '-o', join(dir, 'd.svg'), '--json', json, '--fail-on-function', '5', '--min-samples', '3']);
    expect(judged.code).toBe(ExitCode.GateFailed);
    expect(JSON.parse(readFileSync(json, 'utf8')).gate.functions.offending.map((f: { name: string }) => f.name)).toEqual([
      'heavy (/app/work.lua:12)',
      'cache_get (/app/routes.lua:40)',
    ]);
    // 47 and 50 samples: nothing reaches 100, so nothing is judged.
    const unjudged = diff([small, smallAfter, '-o', join(dir, 'e.svg'), '--json', json, '--fail-on-function', '5', '--min-samples', '100']);
    expect(unjudged.code, unjudged.stderr).toBe(ExitCode.Ok);
    expect(JSON.parse(readFileSync(json, 'utf8')).gate.functions.tooFewSamples.length).toBeGreaterThan(0);
  });

  it('gates plugins with --fail-on-plugin', () => {
    const plugin = (name: string) => `_M.access (/usr/local/apisix/apisix/plugins/${name}.lua:12)`;
    const folded = (auth: number) =>
      `main;ngx_http_lua_access_handler;${plugin('key-auth')};string.find ${auth}\n` +
      `main;ngx_http_lua_access_handler;${plugin('limit-count')} 50\n` +
      `main;epoll_wait ${1000 - 50 - auth}\n`;
    const [b, h, json] = [join(dir, 'p-base.folded'), join(dir, 'p-head.folded'), join(dir, 'p.json')];
    writeFileSync(b, folded(100));
    writeFileSync(h, folded(125));
    const r = diff([b, h, '-o', join(dir, 'p.svg'), '--json', json, '--fail-on-plugin', '2', '--fail-on-function', '5']);
    expect(r.code, r.stderr).toBe(ExitCode.GateFailed);
    const gate = JSON.parse(readFileSync(json, 'utf8')).gate;
    expect(gate.plugins.offending.map((f: { name: string }) => f.name)).toEqual(['key-auth']);
    expect(gate.functions.offending).toEqual([]);
    expect(diff([b, h, '-o', join(dir, 'p.svg'), '--fail-on-plugin', '3']).code).toBe(ExitCode.Ok);
  });
});
