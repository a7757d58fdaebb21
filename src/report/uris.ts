// --label uri in the outputs: a labelled stack carries its request's URI
// path as its first frame, `[uri:/api/users]`, from the profile to every
// output, and `report` reads it back from folded files. The summary's URI
// table comes from those frames; without `--group-by uri` they are taken
// out of the flame graph and the exports after the table is made.
import { safeFrameName } from './frame.js';
import { mergeIdentical, type Stack, type UniqueStacks } from './stack.js';

const PREFIX = '[uri:';
/** The label of the URIs beyond --max-labels (and of a label whose bytes the kernel could not keep). */
export const OTHER_URIS = '[other]';
export const DEFAULT_MAX_LABELS = 20;

/** The frame of a URI path: `[uri:/api/users]`, made safe for every output. */
export function uriFrame(path: string): string {
  return safeFrameName(`${PREFIX}${path}]`);
}

/** The URI a `[uri:...]` frame names, or null for any other frame. */
export function uriOfFrame(frame: string): string | null {
  return frame.startsWith(PREFIX) && frame.endsWith(']') ? frame.slice(PREFIX.length, -1) : null;
}

/**
 * The URI of a stack: its `[uri:...]` frame, the first frame or the one
 * right after a `--group-by phase` frame (a folded file grouped again). Null
 * for a sample taken outside a request, or a stack without labels.
 */
export function stackUri(frames: readonly string[]): string | null {
  if (frames.length === 0) return null;
  const first = uriOfFrame(frames[0]);
  if (first !== null || frames.length < 2 || !frames[0].startsWith('[')) return first;
  return uriOfFrame(frames[1]);
}

/**
 * --max-labels: the max most sampled label ids keep their paths, the rest
 * (and ids whose path is unknown) become [other]. Ties by path, so the
 * choice is the same run to run.
 */
export function labelNames(samplesById: ReadonlyMap<number, number>, paths: ReadonlyMap<number, string>, max: number): Map<number, string> {
  const byPath = new Map<string, number>();
  for (const [id, n] of samplesById) {
    const path = paths.get(id);
    if (path !== undefined) byPath.set(path, (byPath.get(path) ?? 0) + n);
  }
  const kept = new Set(
    [...byPath]
      .sort(([ap, an], [bp, bn]) => bn - an || (ap < bp ? -1 : ap > bp ? 1 : 0))
      .slice(0, max)
      .map(([path]) => path),
  );
  const names = new Map<number, string>();
  for (const id of samplesById.keys()) {
    const path = paths.get(id);
    names.set(id, path !== undefined && kept.has(path) ? path : OTHER_URIS);
  }
  return names;
}

/** The stacks without their `[uri:...]` frames (merged again): the outputs without --group-by uri. */
export function withoutUriFrames(stacks: UniqueStacks): UniqueStacks {
  if (!stacks.some((s) => stackUri(s.frames) !== null)) return stacks;
  return mergeIdentical(stacks.map((s): Stack => ({ frames: s.frames.filter((f) => uriOfFrame(f) === null), count: s.count })));
}

/** Samples per URI: each labelled sample counts for its URI once (self and total alike). */
export function uriCounts(stacks: readonly Stack[]): Map<string, { self: number; total: number }> {
  const counts = new Map<string, { self: number; total: number }>();
  for (const { frames, count } of stacks) {
    const uri = stackUri(frames);
    if (uri === null || count === 0) continue;
    const c = counts.get(uri) ?? { self: 0, total: 0 };
    c.self += count;
    c.total += count;
    counts.set(uri, c);
  }
  return counts;
}
