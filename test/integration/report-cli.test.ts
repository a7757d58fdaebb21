// `apisix-profile report` and `apisix-profile diff` as users run them: the
// built CLI (dist/) in a child process, on fixture folded files. No root
// needed.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffStacks, foldDiff } from '../../src/report/diff.js';
import { foldStacks, parseFolded } from '../../src/report/fold.js';
import { frameColor } from '../../src/report/flamegraph/color.js';
import { decodePprof } from '../../src/report/pprof.js';
import { SPEEDSCOPE_SCHEMA } from '../../src/report/speedscope.js';
import { repoRoot } from '../support/fixture.js';
import { mergeIdentical } from '../../src/report/stack.js';

const bin = join(repoRoot, 'bin/apisix-profile.js');
const fixture = (name: string) => join(repoRoot, 'fixtures/report', name);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...opts.env };
    delete env.GITHUB_STEP_SUMMARY;
    if (opts.env?.GITHUB_STEP_SUMMARY) env.GITHUB_STEP_SUMMARY = opts.env.GITHUB_STEP_SUMMARY;
    const child = spawn(process.execPath, [bin, ...args], { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}

/** The JSON log records on stderr (stderr is a pipe here, so logs are JSON). */
function records(stderr: string): Record<string, unknown>[] {
  return stderr
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Frame groups of our SVG: title text and fill. */
function frames(svg: string): { title: string; fill: string; y: number }[] {
  const re = /<g class="f" [^>]*><title>([^<]*)<\/title><rect [^>]*y="([\d.]+)"[^>]*fill="(#[0-9a-f]{6})"/g;
  const unescape = (t: string) =>
    t.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  return [...svg.matchAll(re)].map((m) => ({ title: unescape(m[1]), y: Number(m[2]), fill: m[3] }));
}

const nameOf = (title: string) => title.slice(0, title.lastIndexOf(' ('));

let dir: string;
beforeAll(() => {
  if (!existsSync(join(repoRoot, 'dist/cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build:ts` first');
  dir = mkdtempSync(join(tmpdir(), 'apisix-profile-report-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('apisix-profile report', () => {
  it('renders a folded file as a flame graph, logging one JSON line without control characters', async () => {
    const out = join(dir, 'small.svg');
    const run = await cli(['report', fixture('small.folded'), '-o', out]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('');
    expect(run.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f]/);
    const [rec] = records(run.stderr);
    expect(rec).toMatchObject({ level: 30, msg: '47 samples in 7 stacks from small.folded', output: out });
    const svg = readFileSync(out, 'utf8');
    expect(svg).toMatch(/^<\?xml/);
    expect(svg).toMatch(/<\/svg>\n$/);
    expect(svg).toContain('>small.folded: 47 samples</text>');
    expect(frames(svg).map((f) => f.title)).toContain('heavy (/app/work.lua:12) (29 samples, 61.70%)');
    // Written atomically: nothing else is left behind.
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('writes every export, each readable back', async () => {
    const p = (n: string) => join(dir, `all.${n}`);
    const run = await cli([
      'report', fixture('small.folded'), '-o', p('svg'), '--folded', p('folded'), '--pprof', p('pb.gz'),
      '--speedscope', p('speedscope.json'), '--json', p('json'), '--summary', p('md'), '-F', '499', '--top', '3',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const stacks = parseFolded(readFileSync(fixture('small.folded'), 'utf8'));

    expect(readFileSync(p('folded'), 'utf8')).toBe(foldStacks(stacks));

    const pprof = readFileSync(p('pb.gz'));
    expect([pprof[0], pprof[1]]).toEqual([0x1f, 0x8b]);
    expect(foldStacks(decodePprof(pprof))).toBe(foldStacks(stacks));

    const ss = JSON.parse(readFileSync(p('speedscope.json'), 'utf8'));
    expect(ss.$schema).toBe(SPEEDSCOPE_SCHEMA);
    expect(ss.profiles[0].type).toBe('sampled');
    expect(ss.profiles[0].endValue).toBeCloseTo((47 * 1000) / 499, 9);

    const json = JSON.parse(readFileSync(p('json'), 'utf8'));
    expect(json).toMatchObject({ title: 'apisix-profile: small.folded', totalSamples: 47, frequencyHz: 499 });
    expect(json.topSelf).toHaveLength(3);
    expect(json.topSelf[0]).toMatchObject({ name: 'heavy (/app/work.lua:12)', self: 20 });

    const md = readFileSync(p('md'), 'utf8');
    expect(md).toMatch(/^### apisix-profile: small\.folded\n\n\*\*47 samples\*\* at 499 Hz/);
    expect(md).toContain('| 1 | `heavy (/app/work.lua:12)` | 42.55% (20) | 61.70% (29) |');
  });

  it('only writes the outputs asked for, and no frequency it was not told', async () => {
    const sub = mkdtempSync(join(dir, 'only-'));
    const run = await cli(['report', fixture('small.folded'), '--json', 'only.json'], { cwd: sub });
    expect(run.code, run.stderr).toBe(0);
    expect(readdirSync(sub)).toEqual(['only.json']);
    expect(JSON.parse(readFileSync(join(sub, 'only.json'), 'utf8')).frequencyHz).toBeUndefined();
    const plain = await cli(['report', fixture('small.folded')], { cwd: sub });
    expect(plain.code, plain.stderr).toBe(0);
    expect(readdirSync(sub).sort()).toEqual(['flame.svg', 'only.json']);
  });

  it('appends the Markdown summary to $GITHUB_STEP_SUMMARY', async () => {
    const step = join(dir, 'step-summary.md');
    writeFileSync(step, '# Earlier step\n');
    const md = join(dir, 'gh.md');
    const run = await cli(['report', fixture('small.folded'), '--summary', md], { env: { GITHUB_STEP_SUMMARY: step } });
    expect(run.code, run.stderr).toBe(0);
    expect(readFileSync(step, 'utf8')).toBe(`# Earlier step\n${readFileSync(md, 'utf8')}\n`);
  });

  it('reads stdin and writes the SVG to stdout with -', async () => {
    const run = await cli(['report', '-', '-o', '-', '--title', 'piped'], { stdin: readFileSync(fixture('small.folded'), 'utf8') });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^<\?xml[\s\S]*>piped<\/text>[\s\S]*<\/svg>\n$/);
    expect(run.stdout).toContain('>stdin: 47 samples</text>');
  });

  it('accepts CRLF line ends and a byte-order mark', async () => {
    const crlf = join(dir, 'crlf.folded');
    writeFileSync(crlf, `\uFEFF${readFileSync(fixture('small.folded'), 'utf8').replace(/\n/g, '\r\n')}`);
    const run = await cli(['report', crlf, '--folded', '-']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(readFileSync(fixture('small.folded'), 'utf8').split('\n').filter(Boolean).sort().join('\n') + '\n');
  });

  it("renders perf's collapsed stacks (stackcollapse-perf.pl format)", async () => {
    const run = await cli(['report', fixture('perf.folded'), '-o', '-']);
    expect(run.code, run.stderr).toBe(0);
    const drawn = frames(run.stdout);
    const by = new Map(drawn.map((f) => [nameOf(f.title), f]));
    expect(by.get('lj_vm_resume')!.title).toBe('lj_vm_resume (327 samples, 87.90%)');
    expect(by.get('operator new(unsigned long)')!.title).toBe('operator new(unsigned long) (3 samples, 0.81%)');
    expect(by.get('do_epoll_wait_[k]')!.fill).toBe(frameColor('do_epoll_wait_[k]')); // kernel: blue band
    expect(by.get('[libluajit-5.1.so.2.1.0]')!.fill).toBe(frameColor('[libluajit-5.1.so.2.1.0]'));
    expect(records(run.stderr)[0].msg).toBe('372 samples in 8 stacks from perf.folded');
  });

  it("renders stapxx's collapsed Lua backtraces with Lua colours, and names their Lua frames in pprof", async () => {
    const pprof = join(dir, 'stapxx.pb.gz');
    const run = await cli(['report', fixture('stapxx.folded'), '-o', '-', '--pprof', pprof]);
    expect(run.code, run.stderr).toBe(0);
    const by = new Map(frames(run.stdout).map((f) => [nameOf(f.title), f]));
    for (const lua of ['@/app/work.lua:12', 'T:@/app/work.lua:14', '=content_by_lua(nginx.conf:40):3']) {
      const g = parseInt(by.get(lua)!.fill.slice(3, 5), 16);
      const r = parseInt(by.get(lua)!.fill.slice(1, 3), 16);
      expect(g, lua).toBeGreaterThan(r); // green: Lua
    }
    expect(by.get('@/app/work.lua:12')!.title).toBe('@/app/work.lua:12 (176 samples, 85.02%)');
    expect(foldStacks(decodePprof(readFileSync(pprof)))).toBe(foldStacks(parseFolded(readFileSync(fixture('stapxx.folded'), 'utf8'))));
  });

  it('applies --title, --width, --inverted, --colors and --minwidth', async () => {
    const upright = frames((await cli(['report', fixture('small.folded'), '-o', '-'])).stdout);
    const run = await cli([
      'report', fixture('small.folded'), '-o', '-', '--title', 'Small & icicle', '--width', '800', '--inverted', '--colors', 'mono', '--minwidth', '5%',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="800"');
    expect(run.stdout).toContain('>Small &amp; icicle</text>');
    const drawn = frames(run.stdout);
    // 5% of 47 samples: the 1- and 2-sample frames are gone, the 3-sample [GC] stays.
    const names = drawn.map((f) => nameOf(f.title));
    expect(names).not.toContain('[JIT compiler]');
    expect(names).not.toContain('[unknown]');
    expect(names).toContain('[GC]');
    for (const f of drawn) expect(f.fill).toBe(frameColor(nameOf(f.title), 'mono'));
    // Inverted: the root is the top row.
    expect(drawn[0].y).toBe(Math.min(...drawn.map((f) => f.y)));
    expect(upright[0].y).toBe(Math.max(...upright.map((f) => f.y)));
  });

  it('--mode off-cpu: the counts are µs in every output, and -F is said to be unused', async () => {
    const folded = ['main;ngx_http_lua_content_handler;slow (/app/a.lua:3);usleep 1500', 'main;write 500', ''].join('\n');
    const pprof = join(dir, 'off.pb.gz');
    const run = await cli(['report', '-', '--mode', 'off-cpu', '-o', '-', '--pprof', pprof, '-F', '499'], { stdin: folded });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('>stdin: off-CPU time in µs: 0.00 s blocked</text>');
    expect(decodePprof(readFileSync(pprof)).map((s) => s.count).sort((a, b) => a - b)).toEqual([500_000, 1_500_000]);
    expect(records(run.stderr).map((r) => r.msg)).toEqual([
      '-F is not used with --mode off-cpu: the counts are µs already',
      '2000 µs in 2 stacks from stdin: 75.0% blocked in Lua, 25.0% blocked outside Lua',
    ]);
    const empty = await cli(['report', '-', '--mode', 'wall', '--json', join(dir, 'empty-wall.json')], { stdin: 'main;read 0\n' });
    expect(empty.code).toBe(6);
  });

  it('says on one line what is wrong with the input, with exit code 2', async () => {
    const missing = await cli(['report', join(dir, 'nope.folded')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`apisix-profile: cannot read ${join(dir, 'nope.folded')}: no such file\n`);

    const bad = join(dir, 'bad.folded');
    writeFileSync(bad, 'a;b 3\na;c three\n');
    const malformed = await cli(['report', bad, '-o', join(dir, 'bad.svg')]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toBe(`apisix-profile: ${bad}: line 2: expected "frames count", got "a;c three"\n`);
    expect(existsSync(join(dir, 'bad.svg'))).toBe(false);

    const unwritable = await cli(['report', fixture('small.folded'), '-o', '/nonexistent-dir/x.svg']);
    expect(unwritable.code).toBe(2);
    expect(unwritable.stderr).toBe('apisix-profile: cannot write /nonexistent-dir/x.svg: directory /nonexistent-dir is missing or not writable\n');

    const option = await cli(['report', fixture('small.folded'), '--width', 'wide']);
    expect(option.code).toBe(2);
    expect(option.stderr).toBe("apisix-profile: option '--width <px>' argument 'wide' is invalid. width must be a whole number from 200 to 100000\n");

    const command = await cli(['reprot', fixture('small.folded')]);
    expect(command.code).toBe(2);
    expect(command.stderr).toBe("apisix-profile: unknown command 'reprot' (commands: profile, report, diff, doctor, watch; see apisix-profile --help)\n");

    const file = await cli([fixture('small.folded')]);
    expect(file.code).toBe(2);
    expect(file.stderr).toBe(
      `apisix-profile: unknown command '${fixture('small.folded')}' (commands: profile, report, diff, doctor, watch; to render that file: apisix-profile report ${fixture('small.folded')})\n`,
    );
  });

  it('exits 6 for a file without samples, still writing a "no samples" graph', async () => {
    const empty = join(dir, 'empty.folded');
    writeFileSync(empty, '\n');
    const out = join(dir, 'empty.svg');
    const run = await cli(['report', empty, '-o', out]);
    expect(run.code).toBe(6);
    expect(records(run.stderr).map((r) => r.msg)).toEqual(['0 samples in 0 stacks from empty.folded', 'no samples in empty.folded: the outputs are empty']);
    expect(readFileSync(out, 'utf8')).toContain('>no samples</text>');
  });

  it('logs pretty, coloured lines on a terminal', async () => {
    // script(1) gives the CLI a pseudo-terminal as stderr.
    const out = join(dir, 'tty.svg');
    const command = `${process.execPath} ${bin} report ${fixture('small.folded')} -o ${out}`;
    const run = await new Promise<Run>((resolve) => {
      const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.on('exit', (code) => resolve({ code, stdout, stderr: '' }));
    });
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^\x1b\[2m\d\d:\d\d:\d\d\x1b\[0m \x1b\[32mINFO \x1b\[0m 47 samples in 7 stacks from small\.folded /);
    expect(run.stdout).not.toContain('{"level"');
  });
});

describe('apisix-profile diff', () => {
  it('draws the differential flame graph and writes the two-column folded file and summaries', async () => {
    const p = (n: string) => join(dir, `diff.${n}`);
    const step = join(dir, 'diff-step.md');
    const run = await cli(
      ['diff', fixture('small.folded'), fixture('small-after.folded'), '-o', p('svg'), '--folded', p('folded'), '--summary', p('md'), '--json', p('json'), '--top', '2'],
      { env: { GITHUB_STEP_SUMMARY: step } },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(records(run.stderr)[0]).toMatchObject({ msg: 'before 47 samples, after 50 samples', output: p('svg') });

    const svg = readFileSync(p('svg'), 'utf8');
    expect(svg).toContain('>apisix-profile: differential</text>');
    expect(svg).toContain('small.folded → small-after.folded · before 47 samples, after 50');
    const by = new Map(frames(svg).map((f) => [nameOf(f.title), f]));
    expect(by.get('cache_get (/app/routes.lua:40)')!.title).toBe('cache_get (/app/routes.lua:40) (before 0.00%, after 12.00%, change +12.00 pp)');
    expect(by.get('cache_get (/app/routes.lua:40)')!.fill).toBe('#e43a34'); // grew: red
    expect(by.get('string.format')!.fill).toBe('#4e7eec'); // shrank: blue

    const before = parseFolded(readFileSync(fixture('small.folded'), 'utf8'));
    const after = parseFolded(readFileSync(fixture('small-after.folded'), 'utf8'));
    expect(readFileSync(p('folded'), 'utf8')).toBe(foldDiff(diffStacks(mergeIdentical(before), mergeIdentical(after))));

    const md = readFileSync(p('md'), 'utf8');
    expect(md).toContain('| 1 | `heavy (/app/work.lua:12)` | 42.55% | 60.00% | +17.45 pp | +6.30 pp |');
    expect(readFileSync(step, 'utf8')).toBe(`${md}\n`);
    const json = JSON.parse(readFileSync(p('json'), 'utf8'));
    expect(json.grew.map((c: { name: string }) => c.name)).toEqual(['heavy (/app/work.lua:12)', 'cache_get (/app/routes.lua:40)']);
  });

  it('--mode off-cpu names the counts µs in the log, the subtitle and the summaries', async () => {
    const p = (n: string) => join(dir, `diff-time.${n}`);
    const run = await cli(['diff', fixture('small.folded'), fixture('small-after.folded'), '--mode', 'off-cpu', '-o', p('svg'), '--summary', p('md'), '--json', p('json')]);
    expect(run.code, run.stderr).toBe(0);
    expect(records(run.stderr)[0]).toMatchObject({ msg: 'before 47 µs, after 50 µs' });
    expect(readFileSync(p('svg'), 'utf8')).toContain('before 47 µs, after 50;');
    expect(readFileSync(p('md'), 'utf8')).toContain('before: **47 µs** · after: **50 µs**');
    expect(JSON.parse(readFileSync(p('json'), 'utf8')).unit).toBe('µs');
    const bad = await cli(['diff', fixture('small.folded'), fixture('small-after.folded'), '--mode', 'offcpu', '-o', p('svg')]);
    expect(bad.code).toBe(2);
  });

  it('honours --saturate and --inverted', async () => {
    const run = await cli(['diff', fixture('small.folded'), fixture('small-after.folded'), '-o', '-', '--saturate', '20', '--inverted']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('full colour at 20 pp');
    const drawn = frames(run.stdout);
    expect(drawn[0].y).toBe(Math.min(...drawn.map((f) => f.y)));
  });

  it('exits 6 when a side has no samples, and 2 for bad input', async () => {
    const empty = join(dir, 'diff-empty.folded');
    writeFileSync(empty, '');
    const run = await cli(['diff', fixture('small.folded'), empty, '-o', join(dir, 'diff-empty.svg')]);
    expect(run.code).toBe(6);
    expect(records(run.stderr)[1].msg).toBe('no samples in diff-empty.folded: nothing to compare');

    const both = await cli(['diff', '-', '-']);
    expect(both.code).toBe(2);
    expect(both.stderr).toBe('apisix-profile: before and after cannot both be stdin (-)\n');

    const missing = await cli(['diff', fixture('small.folded')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe("apisix-profile: missing required argument 'after.folded'\n");
  });
});
