// `profile -- <command...>`: runs the load a profile measures. The command
// starts once sampling has, and sampling ends when the command does. Its
// stdout and stderr pass through line by line (stdout to stderr when the
// profile itself writes an output to stdout), and the tail of its stdout is
// kept to read wrk's request count from.
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { CliError, ExitCode } from '../errors.js';
import type { CommandRun } from '../load/command-run.js';
import { parseWrkOutput } from '../load/wrk-output.js';

/** wrk reports at its end; a command may print a lot before: keep this much of the end. */
const KEEP_STDOUT_BYTES = 256 * 1024;
/**
 * After SIGINT, how long the command has to end on its own before SIGTERM,
 * and again before SIGKILL. wrk notices SIGINT at its next timeout check
 * (every 2 s) and then prints its report.
 */
const GRACE_MS = 5000;

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The file the command's first word names: a path, or a name looked up in
 * PATH. Throws the one-line error (exit 2) when there is none, before any
 * BPF is loaded.
 */
export function findCommand(name: string, pathVar: string | undefined): string {
  if (name.includes('/')) {
    if (isExecutableFile(name)) return name;
    throw new CliError(`cannot run ${name}: no such executable file`, ExitCode.BadArguments);
  }
  for (const dir of (pathVar ?? '').split(delimiter)) {
    const candidate = join(dir || '.', name);
    if (isExecutableFile(candidate)) return candidate;
  }
  throw new CliError(`cannot run ${name}: command not found in PATH (install it, or give its path)`, ExitCode.BadArguments);
}

export interface CommandSinks {
  /** Where the command's stdout goes, whole lines at a time. */
  stdout(text: string): void;
  /** Where its stderr goes, whole lines at a time. */
  stderr(text: string): void;
}

/** Cuts a stream into whole lines for a sink; `flush` hands over the rest. */
function lineWriter(sink: (text: string) => void): { push(chunk: string): void; flush(): void } {
  let pending = '';
  return {
    push(chunk) {
      pending += chunk;
      const end = pending.lastIndexOf('\n');
      if (end < 0) return;
      sink(pending.slice(0, end + 1));
      pending = pending.slice(end + 1);
    },
    flush() {
      if (pending !== '') sink(`${pending}\n`);
      pending = '';
    },
  };
}

/** A started command. */
export interface RunningCommand {
  pid: number | undefined;
  /** Resolves once it has exited and its output has been passed on: with how it ended and what it reported. */
  done: Promise<CommandRun>;
  /** Ask it to end (SIGINT; SIGTERM and SIGKILL follow if it does not). Once; later calls do nothing. */
  stop(reason: 'duration' | 'interrupt'): void;
  /** SIGKILL now, synchronously: for the process's own exit (a second Ctrl-C). */
  kill(): void;
}

/**
 * Start `argv` (argv[0] checked by findCommand) with its output going to
 * `sinks`. It runs in a process group of its own, and every signal goes to
 * the whole group: a wrapper script's wrk ends with it. Its stdin is not
 * connected (a group without the terminal must not read it); a terminal's
 * Ctrl-C reaches it through the profile, which stops it.
 */
export function startCommand(argv: readonly string[], sinks: CommandSinks): RunningCommand {
  const started = process.hrtime.bigint();
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stoppedBy: CommandRun['stoppedBy'];
  let exited = false;
  const timers: NodeJS.Timeout[] = [];
  const toGroup = (sig: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, sig);
    } catch {
      /* the group is gone */
    }
  };
  const signal = (sig: NodeJS.Signals) => {
    if (!exited) toGroup(sig);
  };

  let kept = '';
  const out = lineWriter(sinks.stdout);
  const err = lineWriter(sinks.stderr);
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    out.push(chunk);
    kept = (kept + chunk).slice(-KEEP_STDOUT_BYTES);
  });
  child.stderr.on('data', (chunk: string) => err.push(chunk));

  const done = new Promise<CommandRun>((resolve, reject) => {
    child.once('error', (e) => {
      exited = true;
      timers.forEach(clearTimeout);
      reject(new CliError(`cannot run ${argv[0]}: ${e.message}`, ExitCode.BadArguments));
    });
    // 'close' comes after 'exit' once its stdout and stderr are drained.
    child.once('close', (code, sig) => {
      exited = true;
      timers.forEach(clearTimeout);
      out.flush();
      err.flush();
      const run: CommandRun = {
        argv: [...argv],
        exitStatus: code,
        signal: sig,
        durationSeconds: Number((Number(process.hrtime.bigint() - started) / 1e9).toFixed(3)),
        ...(stoppedBy ? { stoppedBy } : {}),
      };
      const report = parseWrkOutput(kept);
      if (report) Object.assign(run, { requests: report.requests, non2xxResponses: report.non2xx, socketErrors: report.socketErrors });
      resolve(run);
    });
  });
  // What the command left running in its group ends with it. A child
  // holding its stdout open would keep 'close' from coming: end the streams
  // a moment after it has exited.
  child.once('exit', () => {
    exited = true;
    toGroup('SIGTERM');
    const t = setTimeout(() => {
      child.stdout.destroy();
      child.stderr.destroy();
    }, 1000);
    t.unref();
  });

  return {
    pid: child.pid,
    done,
    stop(reason) {
      if (stoppedBy !== undefined || exited) return;
      stoppedBy = reason;
      signal('SIGINT');
      timers.push(setTimeout(() => signal('SIGTERM'), GRACE_MS), setTimeout(() => signal('SIGKILL'), 2 * GRACE_MS));
    },
    kill() {
      toGroup('SIGKILL');
    },
  };
}

/**
 * The command of one profile, tied to its sampling: `start` at the
 * sampling phase; `signal` (for runProfile) aborts once the command has
 * ended, so sampling covers it from its start to its end; a Ctrl-C or
 * SIGTERM of the profile, or the --duration bound, asks the command to end
 * (sampling goes on until it has, so wrk's report and the samples cover
 * the same requests). Nothing outlives the profile: a second Ctrl-C's exit
 * kills the command.
 */
export class CommandLoad {
  private readonly ended = new AbortController();
  private running: RunningCommand | null = null;
  private bound: NodeJS.Timeout | null = null;
  /** The run's own limit: unbounded, or the bound plus the time the command has to end when asked. */
  readonly durationSec: number;

  constructor(
    private readonly argv: readonly string[],
    private readonly boundSec: number | undefined,
    interrupt: AbortSignal,
    private readonly sinks: CommandSinks,
    env: NodeJS.ProcessEnv,
  ) {
    findCommand(argv[0], env.PATH);
    this.durationSec = boundSec === undefined ? Number.POSITIVE_INFINITY : boundSec + (3 * GRACE_MS) / 1000;
    interrupt.addEventListener(
      'abort',
      () => {
        if (this.running) this.running.stop('interrupt');
        else this.ended.abort('interrupted before the command started');
      },
      { once: true },
    );
  }

  /** Aborts when the command has ended (or could not start). */
  get signal(): AbortSignal {
    return this.ended.signal;
  }

  /** Start the command: call when sampling starts. */
  start(): void {
    if (this.running || this.ended.signal.aborted) return;
    const running = startCommand(this.argv, this.sinks);
    this.running = running;
    process.once('exit', () => running.kill());
    if (this.boundSec !== undefined) this.bound = setTimeout(() => running.stop('duration'), this.boundSec * 1000);
    running.done.then(
      () => this.ended.abort('command ended'),
      () => this.ended.abort('command failed to start'),
    );
  }

  /**
   * After the run (also when it failed): ask the command to end if it is
   * still running, wait for it, and say how it ended. Null when it never
   * started (the run stopped before sampling).
   */
  async finish(): Promise<CommandRun | null> {
    if (this.bound) clearTimeout(this.bound);
    if (!this.running) return null;
    this.running.stop('interrupt');
    return this.running.done;
  }

  /** The live line while the command runs. */
  progressText(elapsedSec: number, samples: number): string {
    const name = this.argv[0].split('/').pop();
    const limit = this.boundSec === undefined ? '' : ` (at most ${this.boundSec} s)`;
    return `sampling while ${name} runs: ${elapsedSec.toFixed(0)} s${limit}, ${samples} samples · Ctrl-C stops both`;
  }
}
