// A trigger's profile is `apisix-profile profile` run as a child process:
// the same checks, lock, options and outputs as a profile a person starts,
// and whatever it loads (BPF object, probes, perf events, ELF and unwind
// caches, a native crash) ends with it, so a watch that runs for weeks
// holds nothing between triggers but its timer.
//
// The child gets a process group of its own: a Ctrl-C on the terminal
// reaches only the watch, which passes one SIGTERM on (stop early, write
// what was sampled). A second one makes the child exit at once (its CLI
// exits 130 on a second signal, releasing its lock; the kernel drops its
// probes and events with its file descriptors).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';

export interface ProfileChildOptions {
  /** The target as `profile` takes it (--pid N or --container NAME). */
  targetArgs: readonly string[];
  durationSec: number;
  frequency: number;
  /** Where the child writes `<stem>.svg`, `.folded`, `.json`. */
  dir: string;
  stem: string;
  /** Heading of the flame graph and title of the summary: why this profile was taken. */
  title: string;
}

export interface ProfileChildResult {
  /** Its exit code; null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Its last line, `<n> samples in <s> s (...)`, when it got that far. */
  summary: string | null;
  /** Its last error or warning, when it had one. */
  problem: string | null;
}

export interface ProfileChild {
  pid: number | undefined;
  done: Promise<ProfileChildResult>;
  /** Sends SIGTERM: the first stops sampling early (outputs still written), a second ends it at once. */
  interrupt(): void;
}

/** The arguments of the child's command line (after the script). */
export function profileArgs(o: ProfileChildOptions): string[] {
  const out = (ext: string) => join(o.dir, `${o.stem}.${ext}`);
  return [
    'profile',
    ...o.targetArgs,
    '--duration', String(o.durationSec),
    '--frequency', String(o.frequency),
    '--output', out('svg'),
    '--folded', out('folded'),
    '--json', out('json'),
    '--title', o.title,
    '--log-format', 'json',
  ];
}

/** What the child's stderr said: its summary line and its last problem (pure, over the lines). */
export function readChildLog(lines: readonly string[]): { summary: string | null; problem: string | null } {
  let summary: string | null = null;
  let problem: string | null = null;
  for (const line of lines) {
    if (line.startsWith('{')) {
      try {
        const rec = JSON.parse(line) as { level?: number; msg?: string };
        if (typeof rec.msg !== 'string') continue;
        if (/^\d+ samples in /.test(rec.msg)) summary = rec.msg;
        else if ((rec.level ?? 0) >= 40) problem = rec.msg;
      } catch {
        /* a line cut short: nothing to learn */
      }
    } else if (line.startsWith('apisix-profile: ')) {
      problem = line.slice('apisix-profile: '.length);
    }
  }
  return { summary, problem };
}

// The child's log is a handful of lines; a bound keeps a chatty one (trace level) from growing the watch.
const KEEP_LINES = 200;

export function startProfileChild(o: ProfileChildOptions): ProfileChild {
  // The watch was started with the V8 flags of bin/'s #! line: the child
  // gets the same (but not a debugger's port, which the watch holds).
  const script = join(packageRoot(), 'bin', 'apisix-profile.js');
  const flags = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  const child = spawn(process.execPath, [...flags, script, ...profileArgs(o)], {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: string[] = [];
  let pending = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    const parts = (pending + chunk).split('\n');
    pending = parts.pop() ?? '';
    lines.push(...parts);
    if (lines.length > KEEP_LINES) lines.splice(0, lines.length - KEEP_LINES);
  });
  const done = new Promise<ProfileChildResult>((resolve) => {
    let settled = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (settled) return;
      settled = true;
      if (pending) lines.push(pending);
      const log = readChildLog(lines);
      resolve({ code, signal, summary: log.summary, problem: spawnError ? spawnError.message : log.problem });
    };
    child.on('error', (err) => finish(null, null, err));
    child.on('close', (code, signal) => finish(code, signal));
  });
  return {
    pid: child.pid,
    done,
    interrupt: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}
