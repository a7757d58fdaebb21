// Loads the BPF object of a session and says what the verifier thought of
// each program; a refusal becomes the one line of load-error.ts.
import { release } from 'node:os';
import type { Logger } from 'pino';
import type { NativeError, NativeProgramInfo } from '../native/addon.js';
import { describeLoadFailure } from './load-error.js';
import { programFigures, type ProgramFigure } from './verifier.js';

/**
 * session.load(), keeping the verifier's full log when the logger is at
 * trace level (and writing it to stderr when a program is rejected).
 */
export function loadBpfObject(session: { load(fullLog: boolean): void; programs(): NativeProgramInfo[] }, log: Logger): ProgramFigure[] {
  const fullLog = log.isLevelEnabled('trace');
  try {
    session.load(fullLog);
  } catch (err) {
    const programs = session.programs();
    if (fullLog) {
      for (const p of programs) if (p.log) process.stderr.write(`--- verifier log of ${p.name} ---\n${p.log}\n`);
    }
    const { message, code } = err as NativeError;
    throw describeLoadFailure({ error: { message, code }, programs, release: release() });
  }
  const figures = programFigures(session.programs());
  for (const f of figures) log.debug({ program: f.name, verifiedInsns: f.instructions }, `BPF program ${f.name} verified in ${f.instructions ?? '?'} instructions`);
  return figures;
}
