// The pretty log format, the logger's two formats, and the live status line.
import { describe, expect, it } from 'vitest';
import { openTerminal } from '../../src/commands/context.js';
import { createLogger, formatPretty } from '../../src/log.js';
import { StatusLine, progressText } from '../../src/status-line.js';

const at = (h: number, m: number, s: number) => new Date(2026, 0, 2, h, m, s).getTime();

describe('formatPretty', () => {
  const rec = (fields: Record<string, unknown>) =>
    JSON.stringify({ level: 30, time: at(9, 5, 7), pid: 1, hostname: 'h', name: 'apisix-profile', ...fields });

  it('shows time, level, message and the other fields', () => {
    expect(formatPretty(rec({ msg: 'sampling', pids: [7909], cpus: 2, durationSec: 5 }), { color: false, selfPid: 1 })).toBe(
      '09:05:07 INFO  sampling pids=[7909] cpus=2 durationSec=5\n',
    );
    // A record about another process keeps its pid (pino's own is hidden).
    expect(formatPretty(rec({ msg: 'no LuaJIT', pid: 4242 }), { color: false, selfPid: 1 })).toBe('09:05:07 INFO  no LuaJIT pid=4242\n');
    expect(formatPretty(rec({ level: 40, msg: 'odd', file: 'a b', ok: true, none: null }), { color: false, selfPid: 1 })).toBe(
      '09:05:07 WARN  odd file="a b" ok=true none=null\n',
    );
    expect(formatPretty(rec({ level: 50, msg: 'x', err: { type: 'Error', message: 'boom', stack: '...' } }), { color: false, selfPid: 1 })).toBe(
      '09:05:07 ERROR x err="boom"\n',
    );
  });

  it('colours level, time and keys only when asked', () => {
    const out = formatPretty(rec({ msg: 'hello', a: 1 }), { color: true, selfPid: 1 });
    expect(out).toBe('\x1b[2m09:05:07\x1b[0m \x1b[32mINFO \x1b[0m hello \x1b[2ma=\x1b[0m1\n');
  });

  it('never passes control characters from messages or fields through', () => {
    const out = formatPretty(rec({ msg: 'a\x1b[2Jb\r', frame: 'x\ny' }), { color: false, selfPid: 1 });
    expect(out).toBe('09:05:07 INFO  a\\x1b[2Jb\\x0d frame="x\\ny"\n');
    expect(out.slice(0, -1)).not.toMatch(/[\x00-\x1f]/);
  });

  it('passes lines that are not JSON through', () => {
    expect(formatPretty('plain', { color: false })).toBe('plain\n');
  });
});

describe('createLogger', () => {
  it('writes JSON records or pretty lines to the sink, at the chosen level', () => {
    const lines: string[] = [];
    const json = createLogger({ level: 'info', format: 'json', sink: { write: (s) => lines.push(s) }, color: false });
    json.debug('hidden');
    json.info({ a: 1 }, 'shown');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({ level: 30, msg: 'shown', a: 1, name: 'apisix-profile' });

    const pretty = createLogger({ level: 'debug', format: 'pretty', sink: { write: (s) => lines.push(s) }, color: false });
    pretty.debug('now shown');
    expect(lines[1]).toMatch(/^\d\d:\d\d:\d\d DEBUG now shown\n$/);
  });
});

/** A terminal that records what was written. */
class Tty {
  text = '';
  columns = 40;
  isTTY = true;
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

describe('StatusLine', () => {
  it('redraws in place and keeps log lines above it', () => {
    const tty = new Tty();
    const status = new StatusLine(tty, true);
    status.set('one');
    status.set('two');
    status.write('log line\n');
    status.clear();
    status.write('after\n');
    expect(tty.text).toBe('\r\x1b[Kone\r\x1b[Ktwo\r\x1b[Klog line\n\r\x1b[Ktwo\r\x1b[Kafter\n');
  });

  it('cuts lines to the terminal width so they never wrap', () => {
    const tty = new Tty();
    tty.columns = 12;
    new StatusLine(tty, true).set('0123456789abcdef');
    expect(tty.text).toBe('\r\x1b[K0123456789…');
  });

  it('writes nothing but the log lines when disabled', () => {
    const tty = new Tty();
    const status = new StatusLine(tty, false);
    status.set('progress');
    status.write('log\n');
    status.clear();
    expect(tty.text).toBe('log\n');
  });
});

describe('progressText', () => {
  it('shows a bar, elapsed and remaining time', () => {
    expect(progressText(0, 30)).toBe('sampling [>                   ] 0.0 s of 30 s, 30 s left · Ctrl-C stops early');
    expect(progressText(15, 30)).toBe('sampling [==========>         ] 15 s of 30 s, 15 s left · Ctrl-C stops early');
    expect(progressText(31, 30)).toBe('sampling [====================] 30 s of 30 s, 0.0 s left · Ctrl-C stops early');
    expect(progressText(65, 600, 1234)).toBe(
      'sampling [==>                 ] 1 min 05 s of 10 min, 8 min 55 s left, 1234 samples · Ctrl-C stops early',
    );
  });
});

describe('openTerminal', () => {
  it('is pretty with a status line on a terminal, JSON without one elsewhere', () => {
    const tty = new Tty();
    const t = openTerminal({ logLevel: 'info' }, { env: {}, stderr: tty });
    expect(t.status.enabled).toBe(true);
    t.log.info('hi');
    expect(tty.text).toMatch(/^\x1b\[2m\d\d:\d\d:\d\d\x1b\[0m \x1b\[32mINFO \x1b\[0m hi\n$/);

    const plain = new Tty();
    openTerminal({ logLevel: 'info' }, { env: { NO_COLOR: '1' }, stderr: plain }).log.info('hi');
    expect(plain.text).toMatch(/^\d\d:\d\d:\d\d INFO  hi\n$/);

    const pipe = { text: '', write(s: string) { this.text += s; return true; } };
    const p = openTerminal({ logLevel: 'info' }, { env: {}, stderr: pipe });
    expect(p.status.enabled).toBe(false);
    p.status.set('progress');
    p.log.info('hi');
    expect(JSON.parse(pipe.text)).toMatchObject({ msg: 'hi' });
    expect(pipe.text.slice(0, -1)).not.toMatch(/[\x00-\x1f]/);

    const forced = new Tty();
    openTerminal({ logLevel: 'info', logFormat: 'json' }, { env: {}, stderr: forced }).log.info('hi');
    expect(JSON.parse(forced.text)).toMatchObject({ msg: 'hi' });
  });
});
