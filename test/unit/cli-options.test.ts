// The command line without running anything: which command runs, with
// which options, and the exact one-line errors for bad ones.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildProgram, type Dispatch } from '../../src/cli.js';
import { checkOutputs } from '../../src/commands/outputs.js';
import { CliError } from '../../src/errors.js';

interface Parsed {
  command?: string;
  args?: string[];
  opts?: Record<string, unknown>;
  code?: number;
  out: string;
  err: string;
  error?: string;
}

async function parse(...argv: string[]): Promise<Parsed> {
  const result: Parsed = { out: '', err: '' };
  const record =
    (command: string) =>
    async (...a: unknown[]): Promise<number> => {
      result.command = command;
      result.opts = a.pop() as Record<string, unknown>;
      result.args = a as string[];
      return 0;
    };
  const dispatch: Dispatch = { profile: record('profile'), report: record('report'), diff: record('diff'), doctor: record('doctor') };
  const { program, exitCode } = buildProgram(dispatch, {
    writeOut: (s) => (result.out += s),
    writeErr: (s) => (result.err += s),
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    result.code = exitCode();
  } catch (err) {
    result.error = (err as { code?: string }).code;
  }
  return result;
}

describe('profile (the default command)', () => {
  it('runs without a command name, with the documented defaults', async () => {
    const p = await parse('--pid', '42');
    expect(p.command).toBe('profile');
    expect(p.opts).toEqual({
      pid: 42,
      duration: 30,
      frequency: 99,
      output: 'flame.svg',
      top: 15,
      kernel: true,
      lines: 'definition',
      unwind: 'cfi',
      btf: '/sys/kernel/btf/vmlinux',
      maxStacks: 16384,
      maxLabels: 20,
      mode: 'cpu',
      width: 1200,
      minwidth: { px: 0.1 },
      colors: 'kind',
      logLevel: 'info',
    });
  });

  it('is the same by name, and takes every flag', async () => {
    const p = await parse(
      'profile', '-p', '7', '-d', '2.5', '-F', '499', '-o', 'a.svg', '--folded', 'a.folded', '--pprof', 'a.pb.gz',
      '--speedscope', 'a.json', '--json', 's.json', '--summary', 's.md', '--top', '5', '--no-kernel', '--title', 'T',
      '--width', '800', '--minwidth', '0.5%', '--inverted', '--colors', 'mono', '--log-level', 'debug', '--log-format', 'json',
      '--lines', 'current', '--unwind', 'fp', '--max-stacks', '64', '--mode', 'wall', '--include-idle',
      '--label', 'uri', '--max-labels', '5', '--group-by', 'uri',
    );
    expect(p.command).toBe('profile');
    expect(p.opts).toEqual({
      pid: 7,
      duration: 2.5,
      frequency: 499,
      output: 'a.svg',
      folded: 'a.folded',
      pprof: 'a.pb.gz',
      speedscope: 'a.json',
      json: 's.json',
      summary: 's.md',
      top: 5,
      kernel: false,
      lines: 'current',
      unwind: 'fp',
      btf: '/sys/kernel/btf/vmlinux',
      maxStacks: 64,
      label: 'uri',
      maxLabels: 5,
      groupBy: 'uri',
      mode: 'wall',
      includeIdle: true,
      title: 'T',
      width: 800,
      minwidth: { percent: 0.5 },
      inverted: true,
      colors: 'mono',
      logLevel: 'debug',
      logFormat: 'json',
    });
  });

  it.each([
    [['--pid', '0'], "option '-p, --pid <pid>' argument '0' is invalid. pid must be a whole number from 1 to 4194304"],
    [['--pid', '1', '--lines', 'nearby'], "option '--lines <mode>' argument 'nearby' is invalid. Allowed choices are definition, current."],
    [['--pid', '1', '--mode', 'offcpu'], "option '--mode <mode>' argument 'offcpu' is invalid. Allowed choices are cpu, off-cpu, wall."],
    [['--pid', '1', '--frequency', 'fast'], "option '-F, --frequency <hz>' argument 'fast' is invalid. frequency must be a whole number from 1 to 10000"],
    [['--pid', '1', '--duration', '-3'], "option '-d, --duration <seconds>' argument '-3' is invalid. duration must be a number of seconds above 0 and at most 86400"],
    [['--pid', '1', '--max-stacks', '0'], "option '--max-stacks <n>' argument '0' is invalid. max-stacks must be a whole number from 1 to 1048576"],
    [['--pid', '1', '--width', '150'], "option '--width <px>' argument '150' is invalid. width must be a whole number from 200 to 100000"],
    [['--pid', '1', '--minwidth', '101%'], "option '--minwidth <px|pct%>' argument '101%' is invalid. minwidth must be pixels (e.g. 0.1) or a percentage of the graph's total (e.g. 0.5%), from 0 to 100%"],
    [['--pid', '1', '--minwidth', '-1'], "option '--minwidth <px|pct%>' argument '-1' is invalid. minwidth must be pixels (e.g. 0.1) or a percentage of the graph's total (e.g. 0.5%), from 0 to 100%"],
    [['--pid', '1', '--colors', 'neon'], "option '--colors <scheme>' argument 'neon' is invalid. colors must be one of kind, hot, mono"],
    [['--pid', '1', '--title', ' '], "option '--title <text>' argument ' ' is invalid. title must not be empty"],
    [['--pid', '1', '--log-level', 'loud'], "option '--log-level <level>' argument 'loud' is invalid. log level must be one of fatal, error, warn, info, debug, trace, silent"],
    [['--pid', '1', '--log-format', 'xml'], "option '--log-format <format>' argument 'xml' is invalid. log format must be pretty or json"],
    [['--pid', '1', '--top', '0'], "option '--top <n>' argument '0' is invalid. top must be a whole number from 1 to 1000"],
    [['--pid', '1', '--pprof', ''], "option '--pprof <file>' argument '' is invalid. pprof must be a file path"],
    [[], "required option '-p, --pid <pid>' not specified"],
    [['--duration', '5'], "required option '-p, --pid <pid>' not specified"],
    [['--container', 'a/b'], "option '--container <name|id>' argument 'a/b' is invalid. container must be a container name or id (prefix), e.g. apisix or 4dfb33317e45"],
    [['--container', '-x'], "option '--container <name|id>' argument '-x' is invalid. container must be a container name or id (prefix), e.g. apisix or 4dfb33317e45"],
    [['--pid', '1', '--frequncy', '9'], "unknown option '--frequncy' (Did you mean --frequency?)"],
  ])('rejects %j with one line', async (argv, message) => {
    const p = await parse(...argv);
    expect(p.command).toBeUndefined();
    expect(p.err).toBe(`apisix-profile: ${message}\n`);
  });

  it('takes --container instead of --pid, or with a pid inside the container', async () => {
    const byName = await parse('--container', 'apisix', '-d', '5');
    expect(byName.command).toBe('profile');
    expect(byName.opts).toMatchObject({ container: 'apisix', duration: 5 });
    expect(byName.opts?.pid).toBeUndefined();
    const withPid = await parse('profile', '--container', '/4dfb33317e45', '--pid', '7');
    expect(withPid.opts).toMatchObject({ container: '/4dfb33317e45', pid: 7 });
  });

  it('takes minwidth in pixels or percent', async () => {
    expect((await parse('--pid', '1', '--minwidth', '2')).opts?.minwidth).toEqual({ px: 2 });
    expect((await parse('--pid', '1', '--minwidth', '.5')).opts?.minwidth).toEqual({ px: 0.5 });
    expect((await parse('--pid', '1', '--minwidth', '0%')).opts?.minwidth).toEqual({ percent: 0 });
    expect((await parse('--pid', '1', '--minwidth', '100%')).opts?.minwidth).toEqual({ percent: 100 });
  });
});

describe('report', () => {
  it('takes the input and its own options', async () => {
    const p = await parse('report', 'in.folded', '-o', '-', '-F', '997', '--pprof', 'x.pb.gz', '--colors', 'hot');
    expect(p.command).toBe('report');
    expect(p.args).toEqual(['in.folded']);
    expect(p.opts).toEqual({
      output: '-',
      frequency: 997,
      pprof: 'x.pb.gz',
      top: 15,
      width: 1200,
      minwidth: { px: 0.1 },
      colors: 'hot',
      logLevel: 'info',
      mode: 'cpu',
    });
    expect((await parse('report', 'in.folded', '--mode', 'wall')).opts).toMatchObject({ mode: 'wall' });
  });

  it('needs an input and takes no --pid', async () => {
    expect((await parse('report')).err).toBe("apisix-profile: missing required argument 'in.folded'\n");
    expect((await parse('report', 'a', '--pid', '3')).err).toBe("apisix-profile: unknown option '--pid'\n");
    expect((await parse('report', 'a', 'b')).err).toMatch(/^apisix-profile: too many arguments for 'report'/);
  });
});

describe('diff', () => {
  it('takes before and after and its own options', async () => {
    const p = await parse('diff', 'a.folded', 'b.folded', '--saturate', '2.5', '--inverted', '--summary', 'd.md');
    expect(p.command).toBe('diff');
    expect(p.args).toEqual(['a.folded', 'b.folded']);
    expect(p.opts).toEqual({
      output: 'diff.svg',
      top: 15,
      saturate: 2.5,
      summary: 'd.md',
      width: 1200,
      minwidth: { px: 0.1 },
      inverted: true,
      logLevel: 'info',
      mode: 'cpu',
    });
  });

  it('rejects a bad saturation, colours, and a missing input', async () => {
    expect((await parse('diff', 'a', 'b', '--saturate', '0')).err).toBe(
      "apisix-profile: option '--saturate <pp>' argument '0' is invalid. saturate must be a number of percentage points above 0 and at most 100\n",
    );
    expect((await parse('diff', 'a', 'b', '--colors', 'hot')).err).toBe("apisix-profile: unknown option '--colors'\n");
    expect((await parse('diff', 'a')).err).toBe("apisix-profile: missing required argument 'after.folded'\n");
  });
});

describe('help', () => {
  it.each([[[]], [['profile']], [['report']], [['diff']]])('%j --help has examples and exit codes', async (cmd) => {
    const p = await parse(...cmd, '--help');
    expect(p.error).toBe('commander.helpDisplayed');
    expect(p.out).toContain('Examples:');
    expect(p.out).toContain('Exit codes: 0 ok');
    expect(p.out).toMatch(/^Usage: apisix-profile /);
  });

  it('lists every command at the top level', async () => {
    const p = await parse('--help');
    for (const c of ['profile [options]', 'report [options] <in.folded>', 'diff [options] <before.folded> <after.folded>']) {
      expect(p.out).toContain(c);
    }
  });

  it('prints the version', async () => {
    const p = await parse('--version');
    expect(p.out).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('checkOutputs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-outputs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fail = (f: () => void): string => {
    try {
      f();
    } catch (err) {
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).exitCode).toBe(2);
      return (err as Error).message;
    }
    throw new Error('did not throw');
  };

  it('accepts distinct writable files and one stdout', () => {
    checkOutputs([
      { flag: '--output', path: join(dir, 'a.svg') },
      { flag: '--folded', path: join(dir, 'a.folded') },
      { flag: '--summary', path: '-' },
    ]);
  });

  it('names the flags that clash', () => {
    expect(fail(() => checkOutputs([{ flag: '--output', path: join(dir, 'x') }, { flag: '--pprof', path: join(dir, '.', 'x') }]))).toBe(
      `--output and --pprof both name ${join(dir, '.', 'x')}: give each output its own file`,
    );
    expect(fail(() => checkOutputs([{ flag: '--output', path: '-' }, { flag: '--json', path: '-' }]))).toBe(
      '--output and --json both write to stdout (-): give one of them a file',
    );
  });

  it('refuses to overwrite an input, a directory, or write into a missing directory', () => {
    const input = join(dir, 'in.folded');
    writeFileSync(input, 'a 1\n');
    expect(fail(() => checkOutputs([{ flag: '--output', path: input }], [input]))).toBe(
      `--output ${input} would overwrite an input file: choose another name`,
    );
    expect(fail(() => checkOutputs([{ flag: '--output', path: dir }]))).toBe(`cannot write ${dir}: it is a directory`);
    expect(fail(() => checkOutputs([{ flag: '--output', path: '/nonexistent-dir/flame.svg' }]))).toBe(
      'cannot write /nonexistent-dir/flame.svg: directory /nonexistent-dir is missing or not writable',
    );
  });
});
