// Logging: pino, one record per line on stderr. JSON for machines (the
// default when stderr is not a terminal), or a compact human format for
// terminals: `12:03:07 INFO  sampling pids=[7909] cpus=2`. The pretty
// formatter is ours: a pure function over one JSON record.
import pino, { type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Where log text goes: stderr, or a status line that keeps itself below it. */
export interface TextSink {
  write(text: string): void;
}

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  sink: TextSink;
  /** ANSI colours in the pretty format. */
  color: boolean;
}

export function createLogger(opts: LoggerOptions): Logger {
  const stream = {
    write(line: string): void {
      opts.sink.write(opts.format === 'json' ? line : formatPretty(line, { color: opts.color, selfPid: process.pid }));
    },
  };
  return pino({ name: 'apisix-profile', level: opts.level }, stream);
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const LEVEL_COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '31;1' };
/** Fields every record has, or that the pretty format shows elsewhere. */
const HIDDEN = new Set(['level', 'time', 'hostname', 'name', 'msg', 'v']);

function two(n: number): string {
  return String(n).padStart(2, '0');
}

/** Control characters (other than tab) shown as `\xNN`, so a frame name cannot move the cursor. */
function visible(text: string): string {
  return text.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === 'object' && typeof (v as { message?: unknown }).message === 'string') {
    return JSON.stringify((v as { message: string }).message);
  }
  return JSON.stringify(v) ?? String(v);
}

/**
 * One pino JSON record as a line for people: local time, level, message,
 * then the other fields as `key=value` (strings bare when they have no
 * spaces, everything else as JSON). Lines that are not JSON pass through.
 * `pid` is left out when it is `selfPid` (pino's own field); a record about
 * a target process keeps it.
 */
export function formatPretty(line: string, opts: { color: boolean; selfPid?: number }): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const paint = (code: string, text: string): string => (opts.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const level = typeof rec.level === 'number' ? rec.level : 30;
  const time = new Date(typeof rec.time === 'number' ? rec.time : Date.now());
  const clock = `${two(time.getHours())}:${two(time.getMinutes())}:${two(time.getSeconds())}`;
  const name = (LEVEL_NAMES[level] ?? `L${level}`).padEnd(5);
  const parts = [paint('2', clock), paint(LEVEL_COLORS[level] ?? '0', name), visible(String(rec.msg ?? ''))];
  const fields = Object.keys(rec)
    .filter((k) => !HIDDEN.has(k) && !(k === 'pid' && rec.pid === opts.selfPid))
    .map((k) => `${paint('2', `${k}=`)}${visible(value(rec[k]))}`);
  if (fields.length > 0) parts.push(fields.join(' '));
  return `${parts.join(' ')}\n`;
}
