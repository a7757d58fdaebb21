// The watch loop: once a second, the target's CPU time (a few /proc reads,
// nothing loaded into the kernel); the trigger decides; a firing runs one
// profile into a hidden directory, puts its files in place, keeps the
// newest --keep sets and cools down. Returns when the signal aborts it
// (a clean stop) or the target is gone.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { cpuPercent, type CpuReading } from './cpu-meter.js';
import { makeIncomingDir, publishSet, pruneSets, removeStaleIncoming, setStem } from './output-sets.js';
import type { ProfileChild, ProfileChildOptions, ProfileChildResult } from './profile-child.js';
import { ARMED, step, type Firing, type TriggerSettings, type TriggerState } from './trigger.js';
import type { WatchTarget } from './watch-target.js';

export interface WatchSettings extends TriggerSettings {
  durationSec: number;
  frequency: number;
  outDir: string;
  keep: number;
}

export interface WatchDeps {
  log: Logger;
  signal: AbortSignal;
  startProfile: (o: ProfileChildOptions) => ProfileChild;
  /** Seconds on a monotonic clock. */
  now?: () => number;
}

export type WatchEnd = 'stopped' | 'target-gone';

const READ_EVERY_MS = 1000;
const GONE_CHECK_EVERY_MS = 5000;

export async function runWatch(target: WatchTarget, settings: WatchSettings, deps: WatchDeps): Promise<WatchEnd> {
  const { log, signal } = deps;
  const now = deps.now ?? (() => performance.now() / 1000);
  for (const name of removeStaleIncoming(settings.outDir, target.tag)) log.info(`removed ${join(settings.outDir, name)}, left by a run that was killed`);

  let state: TriggerState = ARMED;
  let last: CpuReading | null = null;
  while (!signal.aborted) {
    if (state.phase === 'cooling') {
      const wait = (state.until - now()) * 1000;
      if (wait > 0) {
        // No CPU readings while cooling down, but a look every few seconds
        // that the target is still there: a restarted gateway should not
        // wait out a long cooldown before the watch moves to its new pid.
        await sleep(Math.min(wait, GONE_CHECK_EVERY_MS), signal);
        if (!signal.aborted && target.current() === null) return 'target-gone';
        continue;
      }
    }
    const pids = target.current();
    if (pids === null) return 'target-gone';
    const reading = target.readCpu(pids, now());
    if (last) {
      const percent = cpuPercent(last, reading);
      const decision = step(settings, state, { kind: 'cpu', from: last.at, to: reading.at, percent });
      state = decision.state;
      // Guarded: the record would be built every second for nothing.
      if (log.isLevelEnabled('trace')) log.trace({ cpuPercent: round1(percent), pids, phase: state.phase }, 'cpu');
      if (decision.fire) {
        await profileOnce(target, settings, decision.fire, deps);
        state = step(settings, state, { kind: 'profile-ended', at: now() }).state;
        // The next window starts from a fresh reading after the cooldown.
        last = null;
        continue;
      }
    }
    last = reading;
    await sleep(READ_EVERY_MS, signal);
  }
  return 'stopped';
}

/** One trigger: profile, put the set in place, keep the newest, log one line. */
async function profileOnce(target: WatchTarget, settings: WatchSettings, fire: Firing, deps: WatchDeps): Promise<void> {
  const { log, signal } = deps;
  const started = new Date();
  const stem = setStem(started, target.tag);
  const tripped = `CPU ${fire.meanPercent.toFixed(0)}% for ${fire.overSec.toFixed(1)} s (peak ${fire.peakPercent.toFixed(0)}%, above ${settings.cpuAbove}%)`;
  const fields = { cpuMeanPercent: round1(fire.meanPercent), cpuPeakPercent: round1(fire.peakPercent), overSec: round1(fire.overSec) };
  let incoming: string;
  try {
    incoming = makeIncomingDir(settings.outDir, stem);
  } catch (err) {
    // The directory went away or filled up since the start: say so, cool down, try again next time.
    log.error(fields, `${tripped}: no profile taken: cannot write to ${settings.outDir}: ${(err as Error).message}`);
    return;
  }
  // The files say why they exist: the flame graph's heading and the summary's title.
  const title = `${target.label}: ${tripped}, ${started.toISOString().slice(0, 19)}Z`;
  const child = deps.startProfile({ targetArgs: target.profileArgs, durationSec: settings.durationSec, frequency: settings.frequency, dir: incoming, stem, title });
  // First signal: the child stops early and still writes. A second one
  // exits this process at once (the CLI's rule): the child is told a
  // second time too, and the half-written set goes.
  const onAbort = () => child.interrupt();
  const onExit = () => {
    child.interrupt();
    try {
      rmSync(incoming, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      /* the child wrote into it meanwhile; exiting anyway: the next watch removes it */
    }
  };
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) child.interrupt();
  process.on('exit', onExit);
  let result: ProfileChildResult;
  try {
    result = await child.done;
  } finally {
    signal.removeEventListener('abort', onAbort);
    process.off('exit', onExit);
  }

  const early = signal.aborted ? ` (stopped early by ${String(signal.reason)})` : '';
  if (result.code !== 0) {
    rmSync(incoming, { recursive: true, force: true });
    const why = result.code === null ? `ended by ${result.signal}` : `exit ${result.code}`;
    log.warn({ ...fields, profileExit: result.code }, `${tripped}: profile failed (${why}${result.problem ? `: ${result.problem}` : ''}); nothing written${early}`);
    return;
  }
  let files: string[];
  let deleted: string[];
  try {
    files = publishSet(settings.outDir, incoming, stem);
    deleted = pruneSets(settings.outDir, target.tag, settings.keep);
  } catch (err) {
    rmSync(incoming, { recursive: true, force: true });
    log.error({ ...fields, profileExit: result.code }, `${tripped}: profiled, but the set could not be put in ${settings.outDir}: ${(err as Error).message}`);
    return;
  }
  const exts = files.map((f) => f.slice(f.lastIndexOf('.') + 1)).join(',');
  const pruned = deleted.length > 0 ? `; ${deleted.length} file(s) of older sets deleted (--keep ${settings.keep})` : '';
  // A profile that worked may still have warned (C frames only, samples lost): the line says so.
  const warned = result.problem ? `; the profile warned: ${result.problem}` : '';
  log.info(
    { ...fields, profileExit: result.code, files, deleted },
    `${tripped}: profiled ${result.summary ?? ''}${early}; wrote ${join(settings.outDir, stem)}.{${exts}}${pruned}${warned}`,
  );
}

function round1(x: number): number {
  return Number(x.toFixed(1));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
