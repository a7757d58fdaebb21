// Files a target process has mapped, opened from the host: through
// /proc/<pid>/root (the process's own view of the file system, so a path in
// a container names the container's file), or, when that path no longer
// holds the mapped file (deleted, or replaced by an upgrade: maps says
// "(deleted)"), through /proc/<pid>/map_files/<start>-<end>, which the
// kernel keeps pointing at the mapped file itself (root only).
import { statSync } from 'node:fs';
import type { Mapping } from './proc-maps.js';

/** /proc/<pid>/map_files/<start>-<end>: the kernel's name for one mapping (lower-case hex, no padding). */
export function mapFilesPath(pid: number, m: Pick<Mapping, 'start' | 'end'>, procRoot = '/proc'): string {
  return `${procRoot}/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`;
}

/** /proc/<pid>/root<path>: the path as the process sees it. */
function rootPath(pid: number, path: string, procRoot = '/proc'): string {
  return `${procRoot}/${pid}/root${path}`;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * A path the profiler can open for the file behind mapping `m` of `pid`:
 * /proc/<pid>/root<path> while that still is the mapped file, else the
 * mapping's /proc/<pid>/map_files entry when it can be opened; else the
 * root path again (the caller finds it unreadable and says so).
 */
export function targetFilePath(pid: number, m: Pick<Mapping, 'path' | 'start' | 'end' | 'deleted'>, procRoot = '/proc'): string {
  const viaRoot = rootPath(pid, m.path, procRoot);
  if (!m.deleted && isFile(viaRoot)) return viaRoot;
  const viaMapFiles = mapFilesPath(pid, m, procRoot);
  return isFile(viaMapFiles) ? viaMapFiles : viaRoot;
}
