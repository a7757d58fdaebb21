// A live status line at the bottom of a terminal (stderr): redrawn in place
// with a carriage return, cleared before each log line and drawn again
// after it, so logs scroll above it. Disabled (and silent) when stderr is
// not a terminal: then nothing but whole log lines is ever written.
import type { TextSink } from './log.js';

export interface TerminalLike {
  write(text: string): unknown;
  /** Terminal width; lines are cut to fit so they never wrap. */
  columns?: number;
}

const CLEAR = '\r\x1b[K';

export class StatusLine implements TextSink {
  private text = '';
  private shown = false;

  constructor(
    private readonly out: TerminalLike,
    readonly enabled: boolean,
  ) {}

  /** Show `text` as the status (ignored when disabled). */
  set(text: string): void {
    if (!this.enabled) return;
    this.text = text;
    this.draw();
  }

  /** Remove the status line; later log lines are written as they are. */
  clear(): void {
    if (this.shown) this.out.write(CLEAR);
    this.shown = false;
    this.text = '';
  }

  /** Write whole lines (a log record) above the status line. */
  write(lines: string): void {
    if (this.shown) this.out.write(CLEAR);
    this.out.write(lines);
    if (this.shown) this.draw();
  }

  private draw(): void {
    // A pseudo-terminal may report 0 columns: assume 80 then.
    const columns = this.out.columns !== undefined && this.out.columns > 0 ? this.out.columns : 80;
    const room = Math.max(10, columns - 1);
    const chars = Array.from(this.text);
    const line = chars.length > room ? `${chars.slice(0, room - 1).join('')}…` : this.text;
    this.out.write(`${CLEAR}${line}`);
    this.shown = true;
  }
}

function secondsText(sec: number): string {
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 1 : 0)} s`;
  const m = Math.floor(sec / 60);
  const s = Math.floor(sec - 60 * m);
  return s === 0 ? `${m} min` : `${m} min ${String(s).padStart(2, '0')} s`;
}

/**
 * The text of the live line while sampling, e.g.
 * `sampling [=======>            ] 12 s of 30 s, 18 s left · Ctrl-C stops early`.
 * `samples` is added when known.
 */
export function progressText(elapsedSec: number, durationSec: number, samples?: number): string {
  const elapsed = Math.max(0, Math.min(elapsedSec, durationSec));
  const width = 20;
  const done = durationSec > 0 ? Math.floor((elapsed / durationSec) * width) : width;
  const bar = done >= width ? '='.repeat(width) : `${'='.repeat(done)}>${' '.repeat(width - done - 1)}`;
  const counted = samples !== undefined ? `, ${samples} samples` : '';
  return (
    `sampling [${bar}] ${secondsText(elapsed)} of ${secondsText(durationSec)}, ` +
    `${secondsText(durationSec - elapsed)} left${counted} · Ctrl-C stops early`
  );
}
