// Reads another process's memory through /proc/<pid>/mem. Used only for
// data the kernel side cannot carry in a sample key (Lua chunk names, the
// VM's dispatch table); failures mean the memory is gone, never an error.
import { closeSync, openSync, readSync } from 'node:fs';

export interface MemoryReader {
  read(addr: bigint, length: number): Buffer | null;
  close(): void;
}

export function openProcessMemory(pid: number): MemoryReader {
  let fd: number | null = openSync(`/proc/${pid}/mem`, 'r');
  return {
    read(addr, length) {
      if (fd === null || addr <= 0n) return null;
      const buf = Buffer.alloc(length);
      try {
        const n = readSync(fd, buf, 0, length, addr);
        return n === length ? buf : null;
      } catch {
        return null;
      }
    },
    close() {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}
