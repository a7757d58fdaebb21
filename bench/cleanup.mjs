// Cleanup: every resource registers its undo; they run last-in first-out on
// every exit path, so whatever the bench started (nginx, wrk, profilers) and
// every temp file is gone however the run ends.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childPids } from '../fixtures/nginx/launch.mjs';
import { log } from './util.mjs';

const cleanups = [];
export function onCleanup(fn) {
  cleanups.push(fn);
  return () => {
    const i = cleanups.indexOf(fn);
    if (i >= 0) cleanups.splice(i, 1);
  };
}
/**
 * Undoes everything. A signal and the main flow's own exit can both call
 * it: they share one pass, so neither exits while the other's undo (a
 * master still stopping, its temp dir not yet removed) is half done.
 */
let cleaningUp = null;
export function cleanupAll() {
  cleaningUp ??= (async () => {
    while (cleanups.length > 0) {
      const fn = cleanups.pop();
      try {
        await fn();
      } catch (e) {
        process.stderr.write(`bench: cleanup: ${e?.message ?? e}\n`);
      }
    }
  })();
  return cleaningUp;
}

/** Ctrl-C, kill or a closed terminal: undo everything, then exit 130. */
export function cleanupOnSignals() {
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      process.stderr.write(`\nbench: ${sig}: cleaning up\n`);
      cleanupAll().finally(() => process.exit(130));
    });
  }
}

// What is registered before keepUntilExit() stays for the whole bench;
// cleanupPhase() undoes the rest.
let keepCleanups = 0;
export function keepUntilExit() {
  keepCleanups = cleanups.length;
}

/** Undoes what the finished phase set up (everything registered after keepUntilExit()). */
export async function cleanupPhase() {
  while (cleanups.length > keepCleanups) {
    const fn = cleanups.pop();
    try {
      await fn();
    } catch (e) {
      log(`cleanup: ${e?.message ?? e}`);
    }
  }
}

export function tempDir(tag) {
  const dir = mkdtempSync(join(tmpdir(), `apisix-profile-bench-${tag}-`));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Spawns a child that is killed (by its pid) if the bench ends first. */
export function spawnTracked(cmd, args, opts = {}) {
  const child = spawn(cmd, args, opts);
  const exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
  child.on('error', () => {});
  const remove = onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // A wrapper's children first (the profiler under the rusage wrapper).
      try {
        for (const p of childPids(child.pid)) process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
      child.kill('SIGKILL');
      await exited;
    }
  });
  exited.then(remove);
  return { child, exited };
}
