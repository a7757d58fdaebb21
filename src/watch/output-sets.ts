// What `watch` writes into --out-dir: one set per trigger (flame graph,
// folded stacks, JSON summary) under a name that sorts by time,
// `2026-12-05T06-01-02Z-pid1234.svg`, and the newest --keep sets of its
// own target kept. The names are pure functions; the few file operations
// at the bottom only rename and delete what these names match, so a file
// someone else put in the directory is never touched.
import { mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** The files of one set, in the order they are put in place: the JSON summary last, so a set with its JSON is whole. */
export const SET_FILES = ['svg', 'folded', 'json'] as const;
export type SetFile = (typeof SET_FILES)[number];

const STAMP = String.raw`\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z`;
const INCOMING = '.incoming-';

/** Names the target in file names: `pid1234`, `container-apisix`. */
export function targetTag(target: { pid: number } | { container: string }): string {
  if ('pid' in target) return `pid${target.pid}`;
  // Docker names are [a-zA-Z0-9][a-zA-Z0-9_.-]* (an API path may lead with '/').
  return `container-${target.container.replace(/^\//, '').replace(/[^a-zA-Z0-9_.-]/g, '_')}`;
}

/** `2026-12-05T06-01-02Z-pid1234`: UTC to the second, ':' left out (not allowed in some file systems, awkward in URLs). */
export function setStem(when: Date, tag: string): string {
  return `${when.toISOString().slice(0, 19).replace(/:/g, '-')}Z-${tag}`;
}

export function setFileName(stem: string, file: SetFile): string {
  return `${stem}.${file}`;
}

/** The hidden directory a set is written into before its files are put in place. */
export function incomingDirName(stem: string): string {
  return `${INCOMING}${stem}`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The stem of a file of one of this target's sets, or null for any other name. */
export function setStemOf(fileName: string, tag: string): string | null {
  const m = new RegExp(`^(${STAMP}-${escapeRegExp(tag)})\\.(?:${SET_FILES.join('|')})$`).exec(fileName);
  return m ? m[1] : null;
}

/** Whether a name is one of this target's incoming directories (left by a run that was killed). */
export function isIncomingDir(fileName: string, tag: string): boolean {
  return new RegExp(`^${escapeRegExp(INCOMING)}${STAMP}-${escapeRegExp(tag)}$`).test(fileName);
}

/**
 * Files to delete so that only the newest `keep` sets of this target stay:
 * every file of every older set, names of other patterns never.
 */
export function filesBeyondKeep(fileNames: readonly string[], tag: string, keep: number): string[] {
  const byStem = new Map<string, string[]>();
  for (const name of fileNames) {
    const stem = setStemOf(name, tag);
    if (stem === null) continue;
    byStem.set(stem, [...(byStem.get(stem) ?? []), name]);
  }
  // The stamp leads and is fixed-width UTC: name order is time order.
  const stems = [...byStem.keys()].sort().reverse();
  return stems.slice(keep).flatMap((stem) => byStem.get(stem)!.sort());
}

// ---------------------------------------------------------------------------
// File operations.

/**
 * A fresh incoming directory for this stem (an old one of the same name is
 * emptied first); --out-dir is made again if it was removed meanwhile.
 */
export function makeIncomingDir(outDir: string, stem: string): string {
  mkdirSync(outDir, { recursive: true });
  const dir = join(outDir, incomingDirName(stem));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  return dir;
}

/** Moves a set's files from its incoming directory into place (renames in one file system), then removes the directory. */
export function publishSet(outDir: string, incoming: string, stem: string): string[] {
  const present = new Set(readdirSync(incoming));
  const placed: string[] = [];
  for (const file of SET_FILES) {
    const name = setFileName(stem, file);
    if (!present.has(name)) continue;
    renameSync(join(incoming, name), join(outDir, name));
    placed.push(join(outDir, name));
  }
  rmSync(incoming, { recursive: true, force: true });
  return placed;
}

/** Deletes this target's sets beyond the newest `keep`; returns the names deleted. */
export function pruneSets(outDir: string, tag: string, keep: number): string[] {
  const doomed = filesBeyondKeep(readdirSync(outDir), tag, keep);
  for (const name of doomed) rmSync(join(outDir, name), { force: true });
  return doomed;
}

/** Removes incoming directories of this target that a killed run left; returns their names. */
export function removeStaleIncoming(outDir: string, tag: string): string[] {
  const stale = readdirSync(outDir).filter((name) => isIncomingDir(name, tag));
  for (const name of stale) rmSync(join(outDir, name), { recursive: true, force: true });
  return stale;
}
