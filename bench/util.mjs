// Small helpers every part of the bench uses: logging, running a command,
// reading a child's output line by line.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

export function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, ...opts });
}
export function tryRun(cmd, args) {
  try {
    return run(cmd, args).trim();
  } catch {
    return '';
  }
}

/** The python the bench's small helpers (rusage wrapper, BPF statistics holder) run in. */
export function python3() {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/** Collects a child's output lines and resolves waiters when a line matches. */
export function lineReader(stream) {
  const lines = [];
  const waiters = [];
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop() ?? '';
    for (const line of parts) {
      const at = Date.now();
      lines.push({ line, at });
      for (const w of [...waiters]) {
        if (w.re.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.res({ line, at });
        }
      }
    }
  });
  return {
    lines,
    text: () => lines.map((l) => l.line).join('\n') + (pending ? `\n${pending}` : ''),
    waitFor(re, timeoutMs) {
      const hit = lines.find((l) => re.test(l.line));
      if (hit) return Promise.resolve(hit);
      return new Promise((res, rej) => {
        const w = { re, res };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) {
            waiters.splice(i, 1);
            rej(new Error(`timed out waiting for ${re}`));
          }
        }, timeoutMs);
      });
    },
  };
}
