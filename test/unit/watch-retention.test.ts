// What watch names its outputs and which of them it deletes: pure names,
// then the file operations on a temp directory.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  filesBeyondKeep,
  incomingDirName,
  isIncomingDir,
  makeIncomingDir,
  publishSet,
  pruneSets,
  removeStaleIncoming,
  setStem,
  setStemOf,
  targetTag,
} from '../../src/watch/output-sets.js';

const set = (stem: string) => [`${stem}.svg`, `${stem}.folded`, `${stem}.json`];

describe('watch output names', () => {
  it('stamps UTC to the second, sortable, with the target', () => {
    expect(setStem(new Date('2026-12-05T06:01:02.987Z'), 'pid1234')).toBe('2026-12-05T06-01-02Z-pid1234');
    expect(targetTag({ pid: 7 })).toBe('pid7');
    expect(targetTag({ container: '/apisix' })).toBe('container-apisix');
    expect(targetTag({ container: 'my.gw_1-a' })).toBe('container-my.gw_1-a');
  });

  it('recognises its own files for its own target only', () => {
    expect(setStemOf('2026-12-05T06-01-02Z-pid12.svg', 'pid12')).toBe('2026-12-05T06-01-02Z-pid12');
    expect(setStemOf('2026-12-05T06-01-02Z-pid12.json', 'pid12')).toBe('2026-12-05T06-01-02Z-pid12');
    for (const other of [
      '2026-12-05T06-01-02Z-pid123.svg', // another pid
      '2026-12-05T06-01-02Z-pid12.svg.bak',
      '2026-12-05T06-01-02Z-pid12.pb.gz',
      'flame.svg',
      'x2026-12-05T06-01-02Z-pid12.svg',
      '2026-12-05T06:01:02Z-pid12.svg',
    ]) {
      expect(setStemOf(other, 'pid12'), other).toBeNull();
    }
    // A tag's '.' is literal, not "any character".
    expect(setStemOf('2026-12-05T06-01-02Z-container-aXb.svg', 'container-a.b')).toBeNull();
    expect(isIncomingDir(incomingDirName('2026-12-05T06-01-02Z-pid12'), 'pid12')).toBe(true);
    expect(isIncomingDir('.incoming-2026-12-05T06-01-02Z-pid13', 'pid12')).toBe(false);
    expect(isIncomingDir('.incoming-something', 'pid12')).toBe(false);
  });

  it('keeps the newest sets of the target and nothing else is deleted', () => {
    const names = [
      ...set('2026-12-05T06-01-02Z-pid12'),
      ...set('2026-12-04T23-59-59Z-pid12'),
      ...set('2026-12-05T10-00-00Z-pid12'),
      '2026-12-05T09-00-00Z-pid12.svg', // a set whose other files someone removed
      ...set('2026-12-01T00-00-00Z-pid99'), // another target's
      'notes.txt',
      'flame.svg',
    ];
    expect(filesBeyondKeep(names, 'pid12', 2)).toEqual([
      ...set('2026-12-05T06-01-02Z-pid12').sort(),
      ...set('2026-12-04T23-59-59Z-pid12').sort(),
    ]);
    expect(filesBeyondKeep(names, 'pid12', 1)).toHaveLength(7);
    expect(filesBeyondKeep(names, 'pid12', 4)).toEqual([]);
    expect(filesBeyondKeep(names, 'pid12', 100)).toEqual([]);
  });
});

describe('watch output files', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'apisix-profile-watch-unit-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('puts a set in place from its incoming directory, JSON last, and leaves no directory behind', () => {
    const stem = '2026-12-05T06-01-02Z-pid12';
    const incoming = makeIncomingDir(dir, stem);
    for (const f of set(stem)) writeFileSync(join(incoming, f), f);
    const placed = publishSet(dir, incoming, stem);
    expect(placed.map((p) => p.slice(dir.length + 1))).toEqual([`${stem}.svg`, `${stem}.folded`, `${stem}.json`]);
    expect(readdirSync(dir).sort()).toEqual(set(stem).sort());
  });

  it('prunes to --keep and removes incoming directories a killed run left, of its own target only', () => {
    const stems = ['2026-12-05T06-00-00Z', '2026-12-05T07-00-00Z', '2026-12-05T08-00-00Z'];
    for (const s of stems) for (const f of set(`${s}-pid12`)) writeFileSync(join(dir, f), '');
    for (const f of set('2026-12-01T00-00-00Z-pid99')) writeFileSync(join(dir, f), '');
    writeFileSync(join(dir, 'mine.svg'), '');
    mkdirSync(join(dir, '.incoming-2026-12-05T09-00-00Z-pid12'));
    writeFileSync(join(dir, '.incoming-2026-12-05T09-00-00Z-pid12', 'half.svg'), '');
    mkdirSync(join(dir, '.incoming-2026-12-05T09-00-00Z-pid99'));

    expect(pruneSets(dir, 'pid12', 1)).toHaveLength(6);
    expect(removeStaleIncoming(dir, 'pid12')).toEqual(['.incoming-2026-12-05T09-00-00Z-pid12']);
    expect(readdirSync(dir).sort()).toEqual(
      [...set('2026-12-05T08-00-00Z-pid12'), ...set('2026-12-01T00-00-00Z-pid99'), 'mine.svg', '.incoming-2026-12-05T09-00-00Z-pid99'].sort(),
    );
  });
});
