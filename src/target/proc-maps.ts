/**
 * Parsing of /proc/<pid>/maps.
 *
 * Pure functions over the file's text; the only IO is `readProcMaps`.
 * Addresses and offsets are bigint: user addresses reach 2^47 and
 * `[vsyscall]` sits at 0xffffffffff600000, beyond Number's exact range.
 */
import { readFileSync } from 'node:fs';
import { lastAtOrBelow } from '../search.js';

export interface Mapping {
  start: bigint;
  /** Exclusive end. */
  end: bigint;
  /** Four characters, e.g. `r-xp`. */
  perms: string;
  /** File offset of `start`. */
  offset: bigint;
  /** `major:minor`, hex, as printed (e.g. `fe:00`). */
  dev: string;
  inode: number;
  /**
   * '' for anonymous mappings; pseudo paths such as `[heap]`, `[stack]`,
   * `[vdso]` are kept as is. A trailing ` (deleted)` is removed and recorded
   * in `deleted`.
   */
  path: string;
  deleted: boolean;
}

const DELETED_SUFFIX = ' (deleted)';

// start-end perms offset dev inode, then the path after padding. The path
// is taken by slicing, not by the pattern: a pattern for "spaces, then the
// rest" backtracks quadratically on long runs of whitespace.
const LINE_RE =
  /^([0-9a-fA-F]+)-([0-9a-fA-F]+)\s+([r-][w-][x-][psS-])\s+([0-9a-fA-F]+)\s+([0-9a-fA-F]+:[0-9a-fA-F]+)\s+(\d+)/;

/**
 * Parses the text of /proc/<pid>/maps. Blank lines are ignored; a line that
 * does not look like a maps entry throws (it means the input is not a maps
 * file). The result is sorted by start address.
 */
export function parseProcMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line.trim() === '') continue;
    const m = LINE_RE.exec(line);
    const rest = m ? line.slice(m[0].length) : '';
    if (!m || (rest !== '' && !/^\s/.test(rest))) throw new Error(`proc maps: cannot parse line ${i + 1}: ${JSON.stringify(line)}`);
    let path = rest.trimStart();
    let deleted = false;
    if (path.endsWith(DELETED_SUFFIX)) {
      deleted = true;
      path = path.slice(0, -DELETED_SUFFIX.length);
    }
    out.push({
      start: BigInt('0x' + m[1]),
      end: BigInt('0x' + m[2]),
      perms: m[3],
      offset: BigInt('0x' + m[4]),
      dev: m[5].toLowerCase(),
      inode: Number(m[6]),
      path,
      deleted,
    });
  }
  // The kernel prints mappings in address order; keep that guarantee for
  // hand-written input too, since findMapping relies on it.
  for (let i = 1; i < out.length; i++) {
    if (out[i - 1].start > out[i].start) {
      out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
      break;
    }
  }
  return out;
}

/** Binary search in maps sorted by start (as parseProcMaps returns them). */
export function findMapping(maps: readonly Mapping[], addr: bigint): Mapping | undefined {
  const m = maps[lastAtOrBelow(maps.length, (i) => maps[i].start, addr)];
  return m && addr < m.end ? m : undefined;
}

export function isExecutable(m: Mapping): boolean {
  return m.perms[2] === 'x';
}

/** True for mappings of a real file (not anonymous, not `[heap]`/`[vdso]`...). */
export function isFileBacked(m: Mapping): boolean {
  return m.path.startsWith('/') && m.inode !== 0;
}

/** Thin IO wrapper: reads and parses /proc/<pid>/maps. */
export function readProcMaps(pid: number): Mapping[] {
  return parseProcMaps(readFileSync(`/proc/${pid}/maps`, 'utf8'));
}
