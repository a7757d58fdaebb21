// Input and output files of the commands: checked before any work starts
// (so a bad path fails in a second, not after a 30 s profile), written
// atomically, `-` meaning stdin/stdout.
import { accessSync, appendFileSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import { CliError, ExitCode } from '../errors.js';
import { writeFileAtomic } from '../output.js';

/** An output file and the flag that named it, e.g. { flag: '--pprof', path: 'cpu.pb.gz' }. */
export interface OutputSpec {
  flag: string;
  path: string;
}

export const STDIO = '-';

function checkWritable(path: string): void {
  const dir = dirname(resolve(path));
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new CliError(`cannot write ${path}: directory ${dir} is missing or not writable`, ExitCode.BadArguments);
  }
  if (existsSync(path) && statSync(path).isDirectory()) {
    throw new CliError(`cannot write ${path}: it is a directory`, ExitCode.BadArguments);
  }
}

/**
 * Check every output before doing any work: its directory is writable, it
 * is not a directory, no two outputs name the same file, at most one is
 * stdout (`-`), and no output would overwrite an input.
 */
export function checkOutputs(outputs: readonly OutputSpec[], inputs: readonly string[] = []): void {
  const seen = new Map<string, string>();
  for (const input of inputs) if (input !== STDIO) seen.set(resolve(input), 'input');
  for (const { flag, path } of outputs) {
    const key = path === STDIO ? STDIO : resolve(path);
    const other = seen.get(key);
    if (other === 'input') {
      throw new CliError(`${flag} ${path} would overwrite an input file: choose another name`, ExitCode.BadArguments);
    }
    if (other !== undefined) {
      throw new CliError(
        path === STDIO
          ? `${other} and ${flag} both write to stdout (-): give one of them a file`
          : `${other} and ${flag} both name ${path}: give each output its own file`,
        ExitCode.BadArguments,
      );
    }
    seen.set(key, flag);
    if (path !== STDIO) checkWritable(path);
  }
}

/** Write one output: atomically to a file, or to stdout for `-`. */
export function writeOutput(path: string, data: string | Buffer): void {
  if (path === STDIO) process.stdout.write(data);
  else writeFileAtomic(path, data);
}

/** Read an input file (`-`: stdin) as UTF-8, with one-line errors. */
export function readInput(path: string): string {
  try {
    return readFileSync(path === STDIO ? 0 : path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new CliError(`cannot read ${path}: no such file`, ExitCode.BadArguments);
    if (code === 'EISDIR') throw new CliError(`cannot read ${path}: it is a directory`, ExitCode.BadArguments);
    if (code === 'EACCES' || code === 'EPERM') throw new CliError(`cannot read ${path}: permission denied`, ExitCode.Permission);
    throw err;
  }
}

/**
 * Append a Markdown summary to the GitHub Actions job summary when
 * $GITHUB_STEP_SUMMARY names a file. A failure here is logged, never fatal:
 * the profile itself was written.
 */
export function appendStepSummary(markdown: string, log: Logger, env: NodeJS.ProcessEnv = process.env): void {
  const target = env.GITHUB_STEP_SUMMARY;
  if (!target) return;
  try {
    appendFileSync(target, `${markdown}\n`);
    log.debug({ file: target }, 'summary appended to $GITHUB_STEP_SUMMARY');
  } catch (err) {
    log.warn({ file: target }, `cannot append to $GITHUB_STEP_SUMMARY: ${(err as Error).message}`);
  }
}
