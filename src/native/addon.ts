// Loads the native addon (addon/build/Release/apisix_profile.node). This is
// the only module that imports it; everything else goes through NativeSession.
// The addon checks little: callers validate options before calling in.
import { existsSync } from 'node:fs';
import { packageRoot } from '../package-root.js';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** A libbpf BPF object and everything attached from it. */
export interface NativeSession {
  /** Replaces the initial value of the object's .rodata map; sizes must match exactly (RangeError). Before load(). */
  setRodata(buf: Buffer): void;
  /** Before load(). */
  setMaxEntries(mapName: string, n: number): void;
  /** Before load(): false leaves the program out of the load (never verified, never attachable). */
  setAutoload(progName: string, autoload: boolean): void;
  /**
   * Loads every program; the verifier's closing statistics are kept per
   * program (fullLog: its whole log, which needs a large buffer).
   */
  load(fullLog?: boolean): void;
  /** Per program, after load() (also a failed one): what the verifier said. */
  programs(): NativeProgramInfo[];
  /** Values of per-CPU maps hold one slot per possible CPU, each rounded up to 8 bytes. */
  mapUpdate(mapName: string, key: Buffer, value: Buffer): void;
  /** Array maps: writes values (back to back in one buffer) at indexes first, first+1, ... */
  mapFillArray(mapName: string, first: number, values: Buffer): void;
  /** null when the key is absent. */
  mapLookup(mapName: string, key: Buffer): Buffer | null;
  /** false when the key was absent. */
  mapDelete(mapName: string, key: Buffer): boolean;
  /** A snapshot; entries deleted concurrently are left out. */
  mapEntries(mapName: string): Array<[Buffer, Buffer]>;
  /**
   * Hash maps: every entry, read and deleted in batches. Only for a map
   * nothing writes meanwhile. Entry i's key is keys[i*keySize, (i+1)*keySize),
   * its value likewise in values.
   */
  mapDrain(mapName: string): { keys: Buffer; values: Buffer };
  /** Deletes every key; array maps are zeroed instead. */
  mapClear(mapName: string): void;
  /** Attaches an entry uprobe at a file offset, for one pid (-1: all). Returns a link id for detach(). */
  attachUprobe(progName: string, pid: number, binaryPath: string, fileOffset: number): number;
  detach(linkId: number): void;
  /** One CPU-clock sampling event per online CPU; returns those CPUs. Removed by close(). */
  attachPerfEvent(progName: string, frequencyHz: number): number[];
  /** Attaches a program whose section names its hook (tp_btf/...). Returns a link id for detach(). */
  attachTracing(progName: string): number;
  /** Destroys all links and perf events and closes the object. Idempotent. */
  close(): void;
}

export interface NativeProgramInfo {
  name: string;
  /** false for the program the kernel rejected and those after it. */
  loaded: boolean;
  /** bpf_prog_info.verified_insns; 0 on kernels before 5.16. */
  verifiedInsns: number;
  /**
   * The loaded program's functions from its BTF func_info: the program,
   * then each subprogram the verifier kept, in the order of the log's
   * "stack depth" figures. Empty when not loaded.
   */
  functions: string[];
  /** The verifier's log (its statistics lines unless load(true)). */
  log: string;
}

/** Errors thrown by the addon for failed system or libbpf calls. */
export interface NativeError extends Error {
  /** errno name, e.g. 'EPERM', 'ENOENT', 'EINVAL'. */
  code: string;
}

interface AddonModule {
  Session: new (objectPath: string, verbose: boolean, btfPath?: string) => NativeSession;
}

const ADDON_RELATIVE_PATH = join('addon', 'build', 'Release', 'apisix_profile.node');

let cached: AddonModule | undefined;


function loadAddon(): AddonModule {
  if (cached) return cached;
  const path = join(packageRoot(), ADDON_RELATIVE_PATH);
  if (!existsSync(path)) {
    throw new Error(`native addon not built: run \`npm run build:addon\` (missing ${path})`);
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as AddonModule;
  return cached;
}

/** Opens a BPF object file (not yet loaded). verbose shows libbpf's own log on stderr. */
export function openNativeSession(objectPath: string, verbose = false, btfPath?: string): NativeSession {
  const { Session } = loadAddon();
  return btfPath ? new Session(objectPath, verbose, btfPath) : new Session(objectPath, verbose);
}
