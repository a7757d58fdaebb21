// Keeps the profiler's own JavaScript runtime quiet while it samples, so
// the CPU it takes from the target is the little the drains need.
// - Setting up a run (ELF files, unwind rows, symbol tables, BPF load)
//   leaves tens of megabytes of garbage. Left alone, V8 collects it a second
//   or two into sampling; one full collection before sampling moves that
//   work out of the window. (bin/apisix-profile.js also turns off V8's
//   memory reducer, whose extra collections would follow a few seconds later.)
// - The first drains name every new stack, and V8 would spend more time
//   optimizing that code (TurboFan, on a background thread) than running
//   it. Optimization is off while sampling and back on for the report,
//   where it pays.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null | undefined;

function fullCollection(): void {
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

/** Right before sampling starts. */
export function quietForSampling(): void {
  fullCollection();
  setFlagsFromString('--no-turbofan');
}

/** Once sampling has stopped (also on errors: harmless when not quiet). */
export function endQuiet(): void {
  setFlagsFromString('--turbofan');
}
