// The load a profile measured: the command `profile -- <command...>` ran,
// how it ended, and the work it reported (wrk's request count). Pure: the
// JSON shape the summaries carry, and the arithmetic and wording on it.

/** What the summaries record about the command a profile ran (`profile -- <command...>`). */
export interface CommandRun {
  argv: string[];
  /** Its exit status; null when a signal ended it. */
  exitStatus: number | null;
  /** The signal that ended it (e.g. "SIGKILL"); null when it exited. */
  signal: string | null;
  /** From its start to its exit. */
  durationSeconds: number;
  /**
   * Set when apisix-profile stopped it before its own end: the --duration
   * bound was reached, or the profile was interrupted (Ctrl-C, SIGTERM).
   */
  stoppedBy?: 'duration' | 'interrupt';
  /** Requests it reported (wrk's and wrk2's "N requests in ..."), when its output had a report. */
  requests?: number;
  /** Of those, responses with a status of 400 or more (wrk: "Non-2xx or 3xx responses"). */
  non2xxResponses?: number;
  /** wrk's socket errors (connect + read + write + timeout). */
  socketErrors?: number;
}

/**
 * A command failed when it exited with a status other than 0, or a signal
 * ended it. One that apisix-profile asked to end (the --duration bound, an
 * interrupt) has not failed, however it ended: many tools exit non-zero on
 * SIGINT.
 */
export function commandFailed(run: CommandRun): boolean {
  if (run.stoppedBy !== undefined) return false;
  return run.exitStatus !== 0;
}

/** The command line as a shell would take it back: words quoted only where needed. */
export function commandText(argv: readonly string[]): string {
  return argv.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** How a command ended, e.g. "exited with status 0 after 10.02 s" or "was ended by SIGKILL after 3.1 s". */
export function endText(run: CommandRun): string {
  const how = run.exitStatus !== null ? `exited with status ${run.exitStatus}` : `was ended by ${run.signal ?? 'a signal'}`;
  const why = run.stoppedBy === 'duration' ? ' (stopped at the --duration bound)' : run.stoppedBy === 'interrupt' ? ' (stopped by an interrupt)' : '';
  return `${how} after ${Number(run.durationSeconds.toFixed(2))} s${why}`;
}

/** The cost of one request, in samples and in CPU milliseconds. */
export interface RequestCost {
  samplesPerRequest: number;
  /**
   * samplesPerRequest / frequencyHz, in ms: each sample stands for 1/frequency
   * of a second on a CPU, so runs at different frequencies compare too.
   */
  cpuMsPerRequest: number;
}

/** The cost of one request, or null without a request count (or without a frequency to convert samples). */
export function requestCost(totalSamples: number, frequencyHz: number | undefined, requests: number | undefined): RequestCost | null {
  if (requests === undefined || !(requests > 0) || frequencyHz === undefined || !(frequencyHz > 0)) return null;
  const samplesPerRequest = totalSamples / requests;
  return { samplesPerRequest, cpuMsPerRequest: (samplesPerRequest * 1000) / frequencyHz };
}
