// speedscope export: stacks -> one "sampled" profile in speedscope's own
// file format (https://www.speedscope.app/file-format-schema.json), for
// https://www.speedscope.app or `speedscope file.json`.

import { parseLuaFrame } from './frame.js';
import type { UniqueStacks } from './stack.js';
import type { TimeWeight } from './weight.js';

export const SPEEDSCOPE_SCHEMA = 'https://www.speedscope.app/file-format-schema.json';

export interface SpeedscopeMeta {
  /** Shown as the profile's and the file's name, e.g. "nginx worker 4242". */
  name: string;
  /** Sampling frequency in Hz: each sample weighs 1000 / frequencyHz ms. */
  frequencyHz: number;
  /** Counts are µs of this kind of time: weights in seconds. */
  time?: TimeWeight;
}

export interface SpeedscopeFrame {
  /** The whole frame text, as in the folded stacks. */
  name: string;
  /** Lua frames: the chunk name. */
  file?: string;
  /** Lua frames: the line from the frame name. */
  line?: number;
}

export interface SpeedscopeSampledProfile {
  type: 'sampled';
  name: string;
  unit: 'milliseconds' | 'seconds';
  startValue: number;
  endValue: number;
  /** One entry per unique stack: indices into shared.frames, root first. */
  samples: number[][];
  /** CPU time of each entry of `samples`, in `unit`. */
  weights: number[];
}

export interface SpeedscopeFile {
  $schema: typeof SPEEDSCOPE_SCHEMA;
  shared: { frames: SpeedscopeFrame[] };
  profiles: SpeedscopeSampledProfile[];
  name: string;
  activeProfileIndex: number;
  exporter: string;
}

/**
 * Build a speedscope file (serialize it with JSON.stringify). Identical
 * stacks are merged into one weighted sample, sorted by stack; frames are
 * numbered in order of first appearance. Stacks with no frames or a zero
 * count are left out. endValue is the sum of the weights.
 */
export function toSpeedscope(stacks: UniqueStacks, meta: SpeedscopeMeta): SpeedscopeFile {
  if (!(meta.frequencyHz > 0) || !Number.isFinite(meta.frequencyHz)) {
    throw new RangeError(`frequencyHz must be a positive number, got ${String(meta.frequencyHz)}`);
  }
  // A count is a sample (ms of CPU) or, in time profiles, a µs (seconds).
  const perCount = meta.time ? 1e-6 : 1000 / meta.frequencyHz;
  const frames: SpeedscopeFrame[] = [];
  const index = new Map<string, number>();
  const indexOf = (name: string): number => {
    let i = index.get(name);
    if (i === undefined) {
      i = frames.length;
      index.set(name, i);
      const lua = parseLuaFrame(name);
      frames.push(lua ? { name, file: lua.chunk, line: lua.line } : { name });
    }
    return i;
  };

  const samples: number[][] = [];
  const weights: number[] = [];
  let endValue = 0;
  for (const stack of stacks) {
    samples.push(stack.frames.map(indexOf));
    const weight = stack.count * perCount;
    weights.push(weight);
    endValue += weight;
  }

  return {
    $schema: SPEEDSCOPE_SCHEMA,
    shared: { frames },
    profiles: [
      { type: 'sampled', name: meta.name, unit: meta.time ? 'seconds' : 'milliseconds', startValue: 0, endValue, samples, weights },
    ],
    name: meta.name,
    activeProfileIndex: 0,
    exporter: 'apisix-profile',
  };
}
