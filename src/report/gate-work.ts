// The gate's third threshold, `diff --fail-on-samples RATIO`: did the head
// run take more CPU per request than the base run? Shares cannot see a
// change that slows everything alike; samples per unit of work can. The
// work counts come from the runs' JSON summaries (`profile -- wrk ...`
// records wrk's requests). Pure.

import { byCodeUnits } from './stack.js';
import type { FunctionChanges } from './diff.js';

/** One run's work, from its JSON summary. */
export interface RunWork {
  samples: number;
  frequencyHz: number;
  requests: number;
}

/** A run's work and the cost of one request. */
export interface RunCost extends RunWork {
  samplesPerRequest: number;
  /** Samples stand for 1/frequency s of CPU each: comparable between frequencies. */
  cpuMsPerRequest: number;
}

/** A function's own CPU (self samples) per request in both runs. */
export interface FunctionCost {
  name: string;
  beforeSelf: number;
  afterSelf: number;
  beforeMsPerRequest: number;
  afterMsPerRequest: number;
  grewMs: number;
}

export interface SamplesJudgement {
  thresholdRatio: number;
  before: RunCost;
  after: RunCost;
  /** after.cpuMsPerRequest / before.cpuMsPerRequest. */
  ratio: number;
  crossed: boolean;
  /**
   * Where the extra CPU went: the functions whose own CPU per request grew
   * most, largest first (at most GREW_MOST; only those with enough samples
   * to judge). Informative: the verdict is the ratio's.
   */
  grewMost: FunctionCost[];
}

const GREW_MOST = 10;

function runCost(w: RunWork): RunCost {
  const samplesPerRequest = w.samples / w.requests;
  return { ...w, samplesPerRequest, cpuMsPerRequest: (samplesPerRequest * 1000) / w.frequencyHz };
}

/** Checks a run's work counts: whole samples, a frequency and at least one request. */
export function checkWork(w: RunWork, what: string): void {
  if (!Number.isSafeInteger(w.samples) || w.samples < 0) throw new RangeError(`${what} samples must be a whole number, got ${String(w.samples)}`);
  if (!(w.frequencyHz > 0)) throw new RangeError(`${what} frequency must be above 0, got ${String(w.frequencyHz)}`);
  if (!Number.isSafeInteger(w.requests) || w.requests < 1) throw new RangeError(`${what} requests must be a whole number above 0, got ${String(w.requests)}`);
}

/**
 * Judge the cost per request: the gate fails when the head run's CPU per
 * request (its samples over its requests, in ms at its frequency) is more
 * than `ratio` times the base run's. Exactly the ratio passes.
 */
export function judgeSamples(
  diff: FunctionChanges,
  work: { before: RunWork; after: RunWork },
  ratio: number,
  minSamples: number,
): SamplesJudgement {
  if (!Number.isFinite(ratio) || !(ratio > 1)) throw new RangeError(`gate samplesRatio must be a number above 1, got ${String(ratio)}`);
  checkWork(work.before, 'base');
  checkWork(work.after, 'head');
  const before = runCost(work.before);
  const after = runCost(work.after);
  const msPerRequest = (self: number, w: RunWork) => (self * 1000) / w.frequencyHz / w.requests;
  const grewMost = diff.changes
    .filter((c) => Math.max(c.before.self, c.after.self) >= minSamples)
    .map((c): FunctionCost => {
      const beforeMsPerRequest = msPerRequest(c.before.self, work.before);
      const afterMsPerRequest = msPerRequest(c.after.self, work.after);
      return { name: c.name, beforeSelf: c.before.self, afterSelf: c.after.self, beforeMsPerRequest, afterMsPerRequest, grewMs: afterMsPerRequest - beforeMsPerRequest };
    })
    .filter((f) => f.grewMs > 0)
    .sort((x, y) => y.grewMs - x.grewMs || byCodeUnits(x.name, y.name))
    .slice(0, GREW_MOST);
  const r = after.cpuMsPerRequest / before.cpuMsPerRequest;
  return { thresholdRatio: ratio, before, after, ratio: r, crossed: r > ratio, grewMost };
}
