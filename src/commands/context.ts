// What a command gets from the CLI around it: a logger and a status line on
// stderr, and (for long runs) an AbortSignal for Ctrl-C/SIGTERM. The CLI
// owns signals and exiting; commands only return an exit code.
import type { Logger } from 'pino';
import { createLogger } from '../log.js';
import { StatusLine, type TerminalLike } from '../status-line.js';
import type { LogOptions } from './options.js';

export interface RunContext {
  /**
   * Start treating Ctrl-C/SIGTERM as "stop early": the first one aborts the
   * returned signal (its reason is the signal name), a second one exits at
   * once. Until this is called the signals keep their default effect.
   */
  interrupts(): AbortSignal;
  /** The process environment (GITHUB_STEP_SUMMARY, NO_COLOR). */
  env: NodeJS.ProcessEnv;
  stderr: TerminalLike & { isTTY?: boolean };
}

export interface Terminal {
  log: Logger;
  status: StatusLine;
}

/**
 * Logger and status line for one command: on a terminal, pretty logs (in
 * colour unless NO_COLOR is set) and a live status line; elsewhere JSON
 * logs and no status line, so the output holds no control characters.
 */
export function openTerminal(opts: LogOptions, ctx: Pick<RunContext, 'env' | 'stderr'>): Terminal {
  const tty = ctx.stderr.isTTY === true;
  const status = new StatusLine(ctx.stderr, tty);
  const format = opts.logFormat ?? (tty ? 'pretty' : 'json');
  const color = tty && format === 'pretty' && !ctx.env.NO_COLOR;
  const log = createLogger({ level: opts.logLevel, format, sink: status, color });
  return { log, status };
}
