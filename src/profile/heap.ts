// Setting up a run (ELF files, unwind rows, symbol tables, BPF load) leaves
// tens of megabytes of garbage. Left alone, V8 collects it a second or two
// into sampling, on the CPUs the target runs on, while we measure it; one
// full collection just before sampling moves that work out of the window.
// (bin/apisix-profile.js also turns off V8's memory reducer, whose extra
// collections would otherwise follow a few seconds later.)
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null | undefined;

/** A full collection now; a no-op where V8 does not allow it. */
export function collectSetupGarbage(): void {
  if (gc === undefined) {
    try {
      // The documented way to reach gc() without starting node with --expose-gc.
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      gc = null;
    }
  }
  gc?.();
}
