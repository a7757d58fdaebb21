// --label uri while a run samples: each target whose LuaJIT keeps per-thread
// data (lua_State.exdata, OpenResty's branch) gets an entry in the kernel;
// the requests its samples offer are read from the process and scanned for
// the URI's offset (src/gateway/request-layout.ts) until enough agree, and
// then the kernel labels samples with it. Processes of the same nginx binary
// (device and inode: two containers' nginx at one path may differ) share
// what one of them learned. Where nothing can be learned within the
// window, one warning line: the profile goes on without labels.
import { readlinkSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { REQUEST_SCAN_BYTES, UriOffsetVotes, uriOffsetCandidates } from '../gateway/request-layout.js';
import type { ProfilerObject } from '../native/profiler-object.js';
import type { MemoryReader } from '../target/process-memory.js';

/** How long after a process joins its requests may take to teach us the offset. */
export const URI_LEARN_WINDOW_MS = 10_000;

interface Learner {
  /** The nginx binary: device and inode, what votes and offsets are kept by. */
  exe: string;
  /** Its path, for the log. */
  path: string;
  exdataOffset: number;
  mem: MemoryReader;
  since: number;
}

export class RequestUriLabels {
  private readonly learning = new Map<number, Learner>();
  /** By nginx binary: votes so far, then the offset. */
  private readonly votes = new Map<string, UriOffsetVotes>();
  private readonly learned = new Map<string, number>();
  private readonly warned = new Set<string>();

  constructor(
    private readonly bpf: ProfilerObject,
    private readonly log: Logger,
  ) {}

  /** A target whose LuaJIT layout is known: exdataOffset is its table's L_exdata (-1: none). */
  add(pid: number, exdataOffset: number, mem: MemoryReader | null, luajitPath: string): void {
    if (this.learning.has(pid)) return;
    if (exdataOffset < 0 || !mem) {
      this.warnOnce(`exdata:${luajitPath}`, { target: pid, luajit: luajitPath }, `--label uri: ${luajitPath} is not OpenResty's LuaJIT (no lua_setexdata): no URI labels for its requests`);
      return;
    }
    let exe: string;
    let path: string;
    try {
      const st = statSync(`/proc/${pid}/exe`);
      exe = `${st.dev}:${st.ino}`;
      path = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      return;
    }
    const offset = this.learned.get(exe);
    this.bpf.setRequestUriState(pid, { request: 0n, exdataOffset, uriOffset: offset ?? 0 });
    if (offset === undefined) this.learning.set(pid, { exe, path, exdataOffset, mem, since: Date.now() });
  }

  /** Whether some process is still learning (the run polls fast meanwhile). */
  get pending(): boolean {
    return this.learning.size > 0;
  }

  /** Reads the requests the kernel offered since the last poll. */
  poll(now = Date.now()): void {
    for (const [pid, l] of this.learning) {
      const known = this.learned.get(l.exe);
      if (known !== undefined) {
        this.settle(pid, l, known);
        continue;
      }
      const state = this.bpf.requestUriState(pid);
      if (!state) {
        this.learning.delete(pid);
        continue;
      }
      if (state.request !== 0n) {
        // Taken: the next offer is a later sample's request (nginx reuses
        // a connection's memory, so it may well be at the same address).
        this.bpf.setRequestUriState(pid, { request: 0n, exdataOffset: l.exdataOffset, uriOffset: 0 });
        const image = l.mem.read(state.request, REQUEST_SCAN_BYTES) ?? l.mem.read(state.request, REQUEST_SCAN_BYTES / 2);
        if (image) {
          let votes = this.votes.get(l.exe);
          if (!votes) this.votes.set(l.exe, (votes = new UriOffsetVotes()));
          votes.add(uriOffsetCandidates(image, (addr, len) => l.mem.read(addr, len)));
          const offset = votes.learned();
          if (offset !== null) {
            this.learned.set(l.exe, offset);
            this.log.info({ target: pid, exe: l.path, uriOffset: offset, requests: votes.requests }, `--label uri: requests keep their URI at offset ${offset}`);
            this.settle(pid, l, offset);
            continue;
          }
        }
        // Else the next poll reads the next request the kernel offers (it keeps offering until the offset is set).
      }
      if (now - l.since > URI_LEARN_WINDOW_MS) {
        this.learning.delete(pid);
        this.bpf.setRequestUriState(pid, { request: 0n, exdataOffset: -1, uriOffset: 0 });
        this.warnOnce(
          `window:${l.exe}`,
          { target: pid, exe: l.path, requests: this.votes.get(l.exe)?.requests ?? 0 },
          `--label uri: could not learn where ${l.path} keeps a request's URI within ${URI_LEARN_WINDOW_MS / 1000} s (no Lua ran for a request, or none confirmed it): no URI labels`,
        );
      }
    }
  }

  /** The run ends: a binary nothing was learned for gets its one warning now. */
  finish(): void {
    for (const [pid, l] of this.learning) {
      this.warnOnce(
        `window:${l.exe}`,
        { target: pid, exe: l.path, requests: this.votes.get(l.exe)?.requests ?? 0 },
        `--label uri: could not learn where ${l.path} keeps a request's URI while the profile ran (no Lua ran for a request, or none confirmed it): no URI labels`,
      );
    }
    this.learning.clear();
  }

  /** Every label the kernel saw, by id. */
  labels(): Map<number, string> {
    return this.bpf.uriLabels();
  }

  private settle(pid: number, l: Learner, offset: number): void {
    this.learning.delete(pid);
    this.bpf.setRequestUriState(pid, { request: 0n, exdataOffset: l.exdataOffset, uriOffset: offset });
  }

  private warnOnce(key: string, fields: object, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.log.warn(fields, message);
  }
}
