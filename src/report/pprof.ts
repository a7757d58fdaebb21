// pprof export: stacks -> a gzipped profile.proto that `go tool pprof`,
// Pyroscope, Grafana and other pprof readers open.
//
// Each unique frame name becomes one Function and one Location (same id).
// The Function's name is the whole frame text, as in the folded stacks and
// the flame graph, so two Lua functions with the same name in different
// files stay apart and anonymous functions still have a name; for Lua frames
// the chunk and line are also filled in as filename and start line.

import { gunzipSync, gzipSync } from 'node:zlib';
import { Function as PprofFunction, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { parseLuaFrame } from './frame.js';
import type { Stack, UniqueStacks } from './stack.js';
import type { TimeWeight } from './weight.js';

export interface PprofMeta {
  /** Sampling frequency in Hz: each sample stands for 1e9 / frequencyHz ns of CPU. */
  frequencyHz: number;
  /** Length of the profiling run. */
  durationNs: bigint;
  /** Wall-clock start of the run, ns since the Unix epoch. Omitted: 0 (unknown). */
  startNs?: bigint;
  /** Counts are µs of this kind of time (off-CPU, wall): one sample type `<kind>/nanoseconds`. */
  time?: TimeWeight;
}

const NS_PER_SEC = 1e9;

function checkMeta(meta: PprofMeta): void {
  if (!(meta.frequencyHz > 0) || !Number.isFinite(meta.frequencyHz)) {
    throw new RangeError(`frequencyHz must be a positive number, got ${String(meta.frequencyHz)}`);
  }
  if (typeof meta.durationNs !== 'bigint' || meta.durationNs < 0n) {
    throw new RangeError(`durationNs must be a non-negative bigint, got ${String(meta.durationNs)}`);
  }
  if (meta.startNs !== undefined && (typeof meta.startNs !== 'bigint' || meta.startNs < 0n)) {
    throw new RangeError(`startNs must be a non-negative bigint, got ${String(meta.startNs)}`);
  }
}

/**
 * Encode stacks (root first) as a gzipped pprof profile with the sample
 * types `samples/count` and `cpu/nanoseconds` (count x 1e9 / frequencyHz,
 * rounded to whole ns), period type `cpu/nanoseconds`, and `cpu` as the
 * default sample type. With meta.time the counts are µs and the one sample
 * type is `off_cpu/nanoseconds` or `wall/nanoseconds`. Identical stacks become one sample; samples are
 * sorted by stack and list their location ids leaf first, as pprof expects.
 * Stacks with no frames or a zero count are left out. Output depends only on
 * the input: the gzip header carries no time stamp.
 */
export function encodePprof(stacks: UniqueStacks, meta: PprofMeta): Buffer {
  checkMeta(meta);
  const strings = new StringTable();
  const functions: PprofFunction[] = [];
  const locations: Location[] = [];
  const ids = new Map<string, number>();

  const idOf = (frame: string): number => {
    let id = ids.get(frame);
    if (id !== undefined) return id;
    id = functions.length + 1;
    ids.set(frame, id);
    const lua = parseLuaFrame(frame);
    const name = strings.dedup(frame);
    functions.push(
      new PprofFunction({
        id,
        name,
        systemName: name,
        filename: strings.dedup(lua ? lua.chunk : ''),
        startLine: lua ? lua.line : 0,
      }),
    );
    locations.push(new Location({ id, line: [{ functionId: id, line: lua ? lua.line : 0 }] }));
    return id;
  };

  const nsPerSample = NS_PER_SEC / meta.frequencyHz;
  const samples: Sample[] = [];
  for (const stack of stacks) {
    // Ids are handed out root first, so the tables read top-down.
    const rootFirst = stack.frames.map(idOf);
    samples.push(
      new Sample({
        locationId: rootFirst.reverse(),
        value: meta.time ? [stack.count * 1000] : [stack.count, Math.round(stack.count * nsPerSample)],
      }),
    );
  }

  // Time profiles have one value (ns); CPU profiles samples and their CPU time.
  const nanoseconds = strings.dedup('nanoseconds');
  const kind = strings.dedup(meta.time ?? 'cpu');
  const sampleType = meta.time
    ? [new ValueType({ type: kind, unit: nanoseconds })]
    : [new ValueType({ type: strings.dedup('samples'), unit: strings.dedup('count') }), new ValueType({ type: kind, unit: nanoseconds })];
  const profile = new Profile({
    sampleType,
    sample: samples,
    location: locations,
    function: functions,
    stringTable: strings,
    timeNanos: meta.startNs ?? 0n,
    durationNanos: meta.durationNs,
    periodType: new ValueType({ type: kind, unit: nanoseconds }),
    period: meta.time ? 1000 : Math.round(nsPerSample),
    defaultSampleType: kind,
  });
  return gzipSync(profile.encode());
}

function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/**
 * Read a pprof profile (gzipped or not) back into stacks, root first, with
 * the first sample value as the count. Inlined lines of one location expand
 * to one frame each. Samples are returned in file order, not merged. Meant
 * for tests and for reading our own output; throws on references to missing
 * locations or functions.
 */
export function decodePprof(buf: Uint8Array): Stack[] {
  const profile = Profile.decode(isGzip(buf) ? gunzipSync(buf) : buf);
  const text = profile.stringTable.strings;
  const names = new Map<number, string>();
  for (const fn of profile.function) names.set(Number(fn.id), text[Number(fn.name)] ?? '');
  const frames = new Map<number, string[]>();
  for (const loc of profile.location) {
    // pprof lists a location's inlined lines callee first, like the samples.
    frames.set(
      Number(loc.id),
      loc.line.map((line) => {
        const name = names.get(Number(line.functionId));
        if (name === undefined) throw new Error(`pprof: location ${loc.id} names missing function ${line.functionId}`);
        return name;
      }),
    );
  }
  return profile.sample.map((sample) => {
    const leafFirst = sample.locationId.flatMap((id) => {
      const f = frames.get(Number(id));
      if (!f) throw new Error(`pprof: sample names missing location ${id}`);
      return f;
    });
    return { frames: leafFirst.reverse(), count: Number(sample.value[0] ?? 0) };
  });
}
