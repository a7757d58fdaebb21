// The command of `profile -- <command...>` as a real child process (sh),
// without a profile around it: lookup, output passing through by lines,
// the request count from its stdout, how it ended, and being asked to end.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandLoad, findCommand, startCommand } from '../../src/commands/run-command.js';
import { CliError, ExitCode } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-run-command-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const wrkOutput = join(import.meta.dirname, '../../fixtures/wrk/wrk-basic.txt');

function sinks() {
  const seen = { stdout: [] as string[], stderr: [] as string[] };
  return { seen, sinks: { stdout: (t: string) => seen.stdout.push(t), stderr: (t: string) => seen.stderr.push(t) } };
}

describe('findCommand', () => {
  it('finds a name in PATH, or a path to an executable file', () => {
    expect(findCommand('sh', '/nonexistent:/bin:/usr/bin')).toMatch(/\/sh$/);
    const script = join(dir, 'load.sh');
    writeFileSync(script, '#!/bin/sh\n');
    chmodSync(script, 0o755);
    expect(findCommand(script, '')).toBe(script);
  });

  it('throws the one-line error, exit 2, for a missing command or a file that cannot run', () => {
    const fail = (name: string, path: string) => {
      try {
        findCommand(name, path);
      } catch (e) {
        expect(e).toBeInstanceOf(CliError);
        expect((e as CliError).exitCode).toBe(ExitCode.BadArguments);
        return (e as CliError).message;
      }
      throw new Error('found');
    };
    expect(fail('wrk-not-installed', '/bin:/usr/bin')).toBe('cannot run wrk-not-installed: command not found in PATH (install it, or give its path)');
    const plain = join(dir, 'not-executable');
    writeFileSync(plain, '');
    expect(fail(plain, '')).toBe(`cannot run ${plain}: no such executable file`);
    expect(fail(dir, '')).toBe(`cannot run ${dir}: no such executable file`);
  });
});

describe('startCommand', () => {
  it('passes stdout and stderr on in whole lines, and reads wrk\'s report from stdout', async () => {
    const { seen, sinks: s } = sinks();
    const run = await startCommand(['sh', '-c', `printf 'par'; sleep 0.1; printf 'tial\\nx'; echo oops >&2; cat ${wrkOutput}`], s).done;
    expect(seen.stdout.join('')).toBe(`partial\nx${readWrk()}`);
    expect(seen.stdout.every((t) => t.endsWith('\n'))).toBe(true);
    expect(seen.stderr).toEqual(['oops\n']);
    expect(run).toMatchObject({ argv: ['sh', '-c', expect.any(String)], exitStatus: 0, signal: null, requests: 1460, non2xxResponses: 0, socketErrors: 0 });
    expect(run.stoppedBy).toBeUndefined();
    expect(run.durationSeconds).toBeGreaterThanOrEqual(0.1);
  });

  it('records an exit status, a signal, and no requests without a report', async () => {
    expect(await startCommand(['sh', '-c', 'exit 3'], sinks().sinks).done).toMatchObject({ exitStatus: 3, signal: null });
    const killed = await startCommand(['sh', '-c', 'kill -KILL $$'], sinks().sinks).done;
    expect(killed).toMatchObject({ exitStatus: null, signal: 'SIGKILL' });
    expect(killed.requests).toBeUndefined();
  });

  it('asks a command to end with SIGINT, and says it was asked', async () => {
    const { seen, sinks: s } = sinks();
    // Like wrk: on SIGINT it reports and exits 0.
    const running = startCommand(['sh', '-c', `trap 'cat ${wrkOutput}; exit 0' INT; while :; do sleep 0.05; done`], s);
    await new Promise((r) => setTimeout(r, 200));
    running.stop('duration');
    running.stop('interrupt');
    const run = await running.done;
    expect(run).toMatchObject({ exitStatus: 0, stoppedBy: 'duration', requests: 1460 });
    expect(seen.stdout.join('')).toContain('1460 requests in 2.00s');
  });
});

describe('the command\'s process group', () => {
  it('ends what the command left running when it exits', async () => {
    const { seen, sinks: s } = sinks();
    // A wrapper that starts its load in the background and returns at once.
    await startCommand(['sh', '-c', 'sleep 30 & echo $!'], s).done;
    const left = Number(seen.stdout.join('').trim());
    let state = '';
    for (let i = 0; i < 40; i++) {
      try {
        const stat = readFileSync(`/proc/${left}/stat`, 'utf8');
        state = stat.slice(stat.lastIndexOf(')') + 2)[0];
      } catch {
        state = 'gone';
      }
      if (state === 'gone' || state === 'Z') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(['gone', 'Z']).toContain(state);
  });
});

describe('CommandLoad', () => {
  it('aborts its signal when the command ends, and finishes with the record', async () => {
    const interrupt = new AbortController();
    const load = new CommandLoad(['sh', '-c', 'sleep 0.1'], undefined, interrupt.signal, sinks().sinks, process.env);
    expect(load.durationSec).toBe(Number.POSITIVE_INFINITY);
    load.start();
    await new Promise((r) => load.signal.addEventListener('abort', r, { once: true }));
    expect(await load.finish()).toMatchObject({ exitStatus: 0 });
  });

  it('ends the command at the bound, and on an interrupt', async () => {
    const bounded = new CommandLoad(['sh', '-c', 'sleep 30; echo not reached'], 0.2, new AbortController().signal, sinks().sinks, process.env);
    expect(bounded.durationSec).toBeGreaterThan(0.2);
    bounded.start();
    await new Promise((r) => bounded.signal.addEventListener('abort', r, { once: true }));
    expect(await bounded.finish()).toMatchObject({ stoppedBy: 'duration', signal: 'SIGINT' });

    const interrupt = new AbortController();
    const load = new CommandLoad(['sh', '-c', 'sleep 30; echo not reached'], undefined, interrupt.signal, sinks().sinks, process.env);
    load.start();
    interrupt.abort('SIGTERM');
    expect(await load.finish()).toMatchObject({ stoppedBy: 'interrupt', signal: 'SIGINT' });
  });

  it('never starts a command interrupted before sampling, and refuses a missing one at once', async () => {
    const interrupt = new AbortController();
    const load = new CommandLoad(['sh', '-c', 'exit 0'], undefined, interrupt.signal, sinks().sinks, process.env);
    interrupt.abort('SIGINT');
    expect(load.signal.aborted).toBe(true);
    load.start();
    expect(await load.finish()).toBeNull();
    expect(() => new CommandLoad(['wrk-not-installed'], undefined, interrupt.signal, sinks().sinks, { PATH: '/bin' })).toThrow(CliError);
  });
});

function readWrk(): string {
  return readFileSync(wrkOutput, 'utf8');
}
