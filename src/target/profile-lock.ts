// One profiler per target process: two at once would both attach uprobes
// and double the target's sampling cost, and their outputs could race. A
// lock file per target pid under /run holds the owner's pid; a lock whose
// owner is gone (killed with SIGKILL) is taken over.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const LOCK_DIR = '/run/apisix-profile';

export interface ProfileLock {
  release(): void;
}

function ownerAlive(owner: number): boolean {
  if (!Number.isInteger(owner) || owner <= 0 || owner === process.pid) return false;
  try {
    const cmdline = readFileSync(`/proc/${owner}/cmdline`, 'utf8');
    return cmdline.includes('apisix-profile');
  } catch {
    return false;
  }
}

/**
 * Locks every pid, or reports the first one another profiler holds
 * (returning its pid); nothing stays locked on failure.
 */
export function lockTargets(pids: readonly number[], dir = LOCK_DIR): ProfileLock | { busy: number; owner: number } {
  mkdirSync(dir, { recursive: true });
  const held: string[] = [];
  const release = () => {
    for (const path of held.splice(0)) rmSync(path, { force: true });
  };
  for (const pid of pids) {
    const path = join(dir, `${pid}.lock`);
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = openSync(path, 'wx');
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        held.push(path);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
        let owner = 0;
        try {
          owner = Number(readFileSync(path, 'utf8').trim());
        } catch {
          /* vanished meanwhile: retry */
        }
        if (ownerAlive(owner)) {
          release();
          return { busy: pid, owner };
        }
        rmSync(path, { force: true });
      }
    }
  }
  return { release };
}
