// A Lua chunk named by its source text (loadstring) may hold `;`, the folded
// format's frame separator. Its function must come out as one frame with one
// name in every output: folded, SVG, speedscope, pprof and the summaries.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseFolded } from '../../src/report/fold.js';
import { appDir, luajitBuild, requireRoot, runCli, sleep } from '../support/fixture.js';

// How our frames name it: `;` made `:` where the name was made.
const NAME = 'from_string ([string "return function(n) local s = 0: for i..."]:1)';
const out = mkdtempSync(join(tmpdir(), 'apisix-profile-names-'));
let child: ReturnType<typeof spawn> | null = null;

beforeAll(async () => {
  requireRoot();
  child = spawn(luajitBuild('luajit2', 'gc64').luajit, [join(appDir, 'shapes.lua'), 'chunk', 'jit-on'], { stdio: 'ignore' });
  await sleep(300);
  const run = await runCli([
    '--pid', String(child.pid), '--duration', '2', '--frequency', '499',
    '-o', join(out, 'f.svg'), '--folded', join(out, 'f.folded'), '--speedscope', join(out, 'f.speedscope.json'),
    '--pprof', join(out, 'f.pb.gz'), '--json', join(out, 'f.json'), '--summary', join(out, 'f.md'),
  ]);
  expect(run.code, run.stderr).toBe(0);
});

afterAll(() => {
  child?.kill('SIGKILL');
  rmSync(out, { recursive: true, force: true });
});

it('folded: the function is one frame, and most samples are in it', () => {
  const stacks = parseFolded(readFileSync(join(out, 'f.folded'), 'utf8'));
  const total = stacks.reduce((n, s) => n + s.count, 0);
  const inIt = stacks.filter((s) => s.frames.includes(NAME)).reduce((n, s) => n + s.count, 0);
  expect(inIt / total).toBeGreaterThan(0.5);
  // No frame is a piece of it.
  expect(stacks.flatMap((s) => s.frames).filter((f) => f.includes('[string') && f !== NAME)).toEqual([]);
});

it('speedscope and pprof: one function of that name, no pieces', () => {
  const speedscope = JSON.parse(readFileSync(join(out, 'f.speedscope.json'), 'utf8')) as { shared: { frames: { name: string }[] } };
  expect(speedscope.shared.frames.filter((f) => f.name.includes('[string')).map((f) => f.name)).toEqual([NAME]);
  const profile = Profile.decode(gunzipSync(readFileSync(join(out, 'f.pb.gz'))));
  const names = profile.function.map((f) => profile.stringTable.strings[Number(f.name)]);
  expect(names.filter((n) => n.includes('[string'))).toEqual([NAME]);
});

it('SVG and summaries name it whole', () => {
  const svg = readFileSync(join(out, 'f.svg'), 'utf8');
  expect(svg).toContain('[string &quot;return function(n) local s = 0: for i...&quot;]:1)');
  const json = JSON.parse(readFileSync(join(out, 'f.json'), 'utf8')) as { topSelf: { name: string }[] };
  expect(json.topSelf[0].name).toBe(NAME);
  expect(readFileSync(join(out, 'f.md'), 'utf8')).toContain('local s = 0: for i...');
});
