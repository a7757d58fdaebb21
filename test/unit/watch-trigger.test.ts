// The watch trigger over synthetic CPU series: one reading a second, the
// decisions the state machine takes.
import { describe, expect, it } from 'vitest';
import { ARMED, step, type Firing, type TriggerSettings, type TriggerState } from '../../src/watch/trigger.js';

const SETTINGS: TriggerSettings = { cpuAbove: 50, forSec: 3, cooldownSec: 10 };

/**
 * Feeds a series of one-second readings (percent per second from t=0). The
 * profile the trigger asks for "takes" profileSec, during which the
 * watcher reads nothing; afterwards readings go on from where the series is.
 * Returns the seconds at which it fired, and the firings.
 */
function run(series: number[], settings = SETTINGS, profileSec = 2): { at: number[]; firings: Firing[]; state: TriggerState } {
  let state: TriggerState = ARMED;
  const at: number[] = [];
  const firings: Firing[] = [];
  let busyUntil = -1;
  let lastEnd: number | null = null;
  for (let t = 0; t < series.length; t++) {
    const from = t;
    const to = t + 1;
    if (from < busyUntil) continue; // profiling: the watcher waits for its child
    // After a profile the watcher starts from a fresh reading: the first second after it is a baseline.
    if (lastEnd !== null && from === lastEnd) continue;
    // (Readings during the cooldown are fed in: the machine must ignore them.)
    const d = step(settings, state, { kind: 'cpu', from, to, percent: series[t] });
    state = d.state;
    if (d.fire) {
      at.push(to);
      firings.push(d.fire);
      busyUntil = to + profileSec;
      state = step(settings, state, { kind: 'profile-ended', at: busyUntil }).state;
      lastEnd = busyUntil;
    }
  }
  return { at, firings, state };
}

const repeat = (value: number, n: number) => Array.from({ length: n }, () => value);

describe('watch trigger', () => {
  it('never fires below the threshold, nor exactly at it', () => {
    expect(run(repeat(49, 100)).at).toEqual([]);
    expect(run(repeat(50, 100)).at).toEqual([]);
    expect(run(repeat(0, 100)).at).toEqual([]);
  });

  it('fires once the CPU has stayed above for --for seconds, and says what tripped it', () => {
    const { at, firings } = run([10, 10, 80, 90, 100, ...repeat(0, 10)]);
    expect(at).toEqual([5]);
    expect(firings[0].overSec).toBe(3);
    expect(firings[0].meanPercent).toBeCloseTo(90, 6);
    expect(firings[0].peakPercent).toBe(100);
  });

  it('resets when the CPU dips, even for one reading', () => {
    // Above for 2 s, a dip, above for 2 s, a dip ...: never 3 s in a row.
    const series = Array.from({ length: 60 }, (_, i) => (i % 3 === 2 ? 40 : 95));
    expect(run(series).at).toEqual([]);
    // The same with a dip to exactly the threshold.
    expect(run(Array.from({ length: 60 }, (_, i) => (i % 3 === 2 ? 50 : 95))).at).toEqual([]);
  });

  it('fires exactly once per cooldown window while the CPU stays high', () => {
    // Fires at 3; profile 3..5; readings during the cooldown (to 15) are
    // ignored; 15..18 fire at 18; profile to 20, cooldown to 30; fires at 33.
    const { at } = run(repeat(100, 40));
    expect(at).toEqual([3, 18, 33]);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(SETTINGS.forSec + SETTINGS.cooldownSec);
  });

  it('ignores the CPU during the cooldown: the window after it starts afresh', () => {
    // High until the profile, low during the cooldown, then one high second: no second firing.
    const series = [...repeat(100, 3), ...repeat(100, 12), 100, 100, ...repeat(0, 10)];
    expect(run(series).at).toEqual([3]);
  });

  it('a load step shorter than --for never fires; one as long fires once', () => {
    expect(run([...repeat(0, 5), ...repeat(100, 2), ...repeat(0, 20)]).at).toEqual([]);
    expect(run([...repeat(0, 5), ...repeat(100, 3), ...repeat(0, 20)]).at).toEqual([8]);
  });

  it('with no cooldown fires again after --for more seconds', () => {
    const { at } = run(repeat(100, 20), { ...SETTINGS, cooldownSec: 0 }, 2);
    expect(at).toEqual([3, 9, 15]);
  });

  it('counts uneven intervals by their length', () => {
    let state: TriggerState = ARMED;
    state = step(SETTINGS, state, { kind: 'cpu', from: 0, to: 1.5, percent: 60 }).state;
    expect(state).toMatchObject({ phase: 'armed', overSince: 0 });
    const d = step(SETTINGS, state, { kind: 'cpu', from: 1.5, to: 3.2, percent: 80 });
    expect(d.fire?.overSec).toBeCloseTo(3.2, 9);
    expect(d.fire?.meanPercent).toBeCloseTo((1.5 * 60 + 1.7 * 80) / 3.2, 9);
  });

  it('ignores readings while profiling and a profile end it did not start', () => {
    const profiling: TriggerState = { phase: 'profiling', since: 5 };
    expect(step(SETTINGS, profiling, { kind: 'cpu', from: 5, to: 6, percent: 100 })).toEqual({ state: profiling });
    expect(step(SETTINGS, ARMED, { kind: 'profile-ended', at: 3 })).toEqual({ state: ARMED });
    expect(step(SETTINGS, profiling, { kind: 'profile-ended', at: 9 }).state).toEqual({ phase: 'cooling', until: 19 });
  });
});
