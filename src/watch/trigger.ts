// When `watch` profiles: a pure state machine over CPU readings. Readings
// in, a decision out: armed (counting how long the CPU has stayed above the
// threshold), profiling, cooling down. No clock and no IO here: times are
// seconds on whatever monotonic clock the caller reads, so tests feed it
// synthetic series.

export interface TriggerSettings {
  /** Fire when CPU% stays strictly above this (percent of one core, summed over the workers). */
  cpuAbove: number;
  /** ... for at least this many seconds without a reading at or below it. */
  forSec: number;
  /** After a profile ends, readings are ignored for this long. */
  cooldownSec: number;
}

export type TriggerState =
  /** overSince: start of the first of the readings above the threshold in a row (null: the last one was not); busy: their CPU-seconds. */
  | { phase: 'armed'; overSince: number | null; busySec: number; peak: number }
  | { phase: 'profiling'; since: number }
  | { phase: 'cooling'; until: number };

export type TriggerEvent =
  /** CPU% over the interval [from, to] (seconds). */
  | { kind: 'cpu'; from: number; to: number; percent: number }
  | { kind: 'profile-ended'; at: number };

/** What tripped it: the CPU over the window that crossed --for. */
export interface Firing {
  /** The window's length in seconds (>= forSec). */
  overSec: number;
  /** Mean CPU% over the window. */
  meanPercent: number;
  /** Highest single reading in it. */
  peakPercent: number;
}

export interface Decision {
  state: TriggerState;
  /** Set on the one event that starts a profile. */
  fire?: Firing;
}

const ARMED_STATE = { phase: 'armed', overSince: null, busySec: 0, peak: 0 } as const;
/** The start: no reading above the threshold yet. */
export const ARMED: TriggerState = ARMED_STATE;

export function step(settings: TriggerSettings, state: TriggerState, event: TriggerEvent): Decision {
  if (event.kind === 'profile-ended') {
    // Only a running profile can end; anything else is a caller's slip, and
    // ignoring it keeps the machine in a state it can explain.
    if (state.phase !== 'profiling') return { state };
    return { state: { phase: 'cooling', until: event.at + settings.cooldownSec } };
  }
  if (state.phase === 'profiling') return { state };
  // A reading that began before the cooldown ended says nothing about the
  // time after it: the window starts with the next one.
  if (state.phase === 'cooling' && event.from < state.until) return { state };
  const armed = state.phase === 'armed' ? state : ARMED_STATE;
  if (!(event.percent > settings.cpuAbove)) return { state: ARMED };
  const overSince = armed.overSince ?? event.from;
  const busySec = armed.busySec + ((event.to - event.from) * event.percent) / 100;
  const peak = Math.max(armed.peak, event.percent);
  const overSec = event.to - overSince;
  if (overSec >= settings.forSec) {
    return {
      state: { phase: 'profiling', since: event.to },
      fire: { overSec, meanPercent: overSec > 0 ? (100 * busySec) / overSec : event.percent, peakPercent: peak },
    };
  }
  return { state: { phase: 'armed', overSince, busySec, peak } };
}
