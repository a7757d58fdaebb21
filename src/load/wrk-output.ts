// The work a load generator did, read from what it printed: wrk's and
// wrk2's closing lines ("  N requests in 10.00s, 1.2MB read", then socket
// errors and non-2xx responses when there were any). Pure: text in,
// counts out. `profile -- wrk ...` divides its samples by the requests.

/** What wrk or wrk2 reported at its end. */
export interface WrkReport {
  /** Responses wrk completed (every status, the errors counted below included). */
  requests: number;
  /** wrk's own measure of its run, in seconds (printed to 10 ms, or coarser past a minute). */
  seconds: number;
  /** "Non-2xx or 3xx responses" (wrk2: status above 399); 0 when wrk printed no such line. */
  non2xx: number;
  /** connect + read + write + timeout from "Socket errors"; 0 when wrk printed no such line. */
  socketErrors: number;
}

// wrk formats times with the units us, ms, s, m, h (format_time_us).
const TIME_UNITS: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

const REQUESTS = /^\s*(\d+) requests in (\d+(?:\.\d+)?)(us|ms|s|m|h), \S+ read\s*$/;
const SOCKET_ERRORS = /^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$/;
const NON_2XX = /^\s*Non-2xx or 3xx responses: (\d+)\s*$/;

/**
 * The last report in `text` (a wrk script's `done()` may print more after
 * it, and a wrapper script may have run wrk twice: the last run is the one
 * that ended with the profile), or null when there is none: the command
 * was not wrk, or wrk stopped before it could report (killed, unable to
 * connect).
 */
export function parseWrkOutput(text: string): WrkReport | null {
  const lines = text.split(/\r?\n/);
  let at = -1;
  for (let i = lines.length - 1; i >= 0 && at < 0; i--) if (REQUESTS.test(lines[i])) at = i;
  if (at < 0) return null;
  const m = REQUESTS.exec(lines[at])!;
  const report: WrkReport = { requests: Number(m[1]), seconds: Number(m[2]) * TIME_UNITS[m[3]], non2xx: 0, socketErrors: 0 };
  // The error lines follow the requests line directly, before "Requests/sec".
  for (let i = at + 1; i < lines.length && i <= at + 2; i++) {
    const errors = SOCKET_ERRORS.exec(lines[i]);
    if (errors) report.socketErrors = errors.slice(1, 5).reduce((sum, n) => sum + Number(n), 0);
    const status = NON_2XX.exec(lines[i]);
    if (status) report.non2xx = Number(status[1]);
  }
  return report;
}
