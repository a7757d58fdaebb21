// Command line: the program (its commands come from src/commands/), the
// dispatch to them, and the exit. The only module that exits the process.
import { Command, CommanderError } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { diffCommand, runDiffCommand, type DiffOptions } from './commands/diff.js';
import { doctorCommand, runDoctorCommand, type DoctorOptions } from './commands/doctor.js';
import type { RunContext } from './commands/context.js';
import { profileCommand, runProfileCommand, type ProfileOptions } from './commands/profile.js';
import { reportCommand, runReportCommand, type ReportOptions } from './commands/report.js';
import { runWatchCommand, watchCommand, type WatchOptions } from './commands/watch.js';
import { CliError, ExitCode } from './errors.js';
import { packageRoot } from './package-root.js';

/** What each command does once its arguments are parsed; tests pass stubs. */
export interface Dispatch {
  profile(opts: ProfileOptions): Promise<number>;
  report(input: string, opts: ReportOptions): Promise<number>;
  diff(before: string, after: string, opts: DiffOptions): Promise<number>;
  doctor(opts: DoctorOptions): Promise<number>;
  watch(opts: WatchOptions): Promise<number>;
}

export interface ProgramIo {
  writeOut(text: string): void;
  writeErr(text: string): void;
}

const STDIO_IO: ProgramIo = {
  writeOut: (s) => process.stdout.write(s),
  writeErr: (s) => process.stderr.write(s),
};

const NAME = 'apisix-profile';

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Commander's errors as our one-line form: `apisix-profile: <what>`. */
function configure(cmd: Command, io: ProgramIo): Command {
  return cmd
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: io.writeOut,
      writeErr: io.writeErr,
      outputError: (text, write) => write(`${NAME}: ${text.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim()}\n`),
    });
}

/**
 * The whole command line: `profile` (also the default when no command is
 * named), `report`, `diff`, `doctor` and `watch`. Returns the program and a getter for the
 * exit code the dispatched command returned.
 */
export function buildProgram(dispatch: Dispatch, io: ProgramIo = STDIO_IO): { program: Command; exitCode: () => number } {
  let code: number = ExitCode.Ok;
  const program = configure(new Command(NAME), io)
    .usage('[command] [options]')
    .description('Lua-aware eBPF CPU profiler for OpenResty and Apache APISIX workers')
    .version(version(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help (`apisix-profile <command> --help` for a command\'s options)')
    .addHelpText(
      'after',
      `
Without a command name, \`profile\` runs: \`apisix-profile --pid N\` is \`apisix-profile profile --pid N\`.

Examples:
  sudo apisix-profile --pid $(cat /usr/local/apisix/logs/nginx.pid) --duration 30 -o apisix.svg --folded apisix.folded
  apisix-profile report apisix.folded -o apisix.svg --pprof apisix.pb.gz --summary apisix.md
  apisix-profile diff before.folded after.folded -o diff.svg --summary diff.md
  sudo apisix-profile doctor --pid $(cat /usr/local/apisix/logs/nginx.pid)
  sudo apisix-profile watch --pid $(cat /usr/local/apisix/logs/nginx.pid) --cpu-above 150 --out-dir /var/lib/apisix-profile

Exit codes: 0 ok, 1 internal error, 2 bad arguments, 3 target not found,
4 permission denied, 5 kernel unsupported, 6 no samples, 7 target already being profiled,
8 a BPF program rejected by the verifier, 9 a diff gate threshold crossed,
10 a LuaJIT no offset table describes, 11 the command after -- failed,
130 interrupted twice.`,
    );

  const profile = configure(profileCommand(), io).action(async (_command: string[], opts: ProfileOptions) => {
    code = await dispatch.profile(opts);
  });
  const report = configure(reportCommand(), io).action(async (input: string, opts: ReportOptions) => {
    code = await dispatch.report(input, opts);
  });
  const diff = configure(diffCommand(), io).action(async (before: string, after: string, opts: DiffOptions) => {
    code = await dispatch.diff(before, after, opts);
  });
  const doctor = configure(doctorCommand(), io).action(async (opts: DoctorOptions) => {
    code = await dispatch.doctor(opts);
  });
  program.addCommand(profile, { isDefault: true });
  program.addCommand(report);
  program.addCommand(diff);
  const watch = configure(watchCommand(), io).action(async (opts: WatchOptions) => {
    code = await dispatch.watch(opts);
  });
  program.addCommand(doctor);
  program.addCommand(watch);
  return { program, exitCode: () => code };
}

/**
 * A word in the command position that names no command would otherwise be
 * taken as a stray argument of the default command; say what it is.
 */
function checkCommandName(program: Command, args: string[]): void {
  const first = args[0];
  if (first === undefined || first.startsWith('-')) return;
  const names = program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
  if (first === 'help' || names.includes(first)) return;
  const hint = existsSync(first) ? `to render that file: ${NAME} report ${first}` : `see ${NAME} --help`;
  throw new CliError(`unknown command '${first}' (commands: ${names.join(', ')}; ${hint})`, ExitCode.BadArguments);
}

function interruptsOnce(): () => AbortSignal {
  let controller: AbortController | null = null;
  return () => {
    if (controller) return controller.signal;
    const c = new AbortController();
    controller = c;
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals += 1;
      // A second signal: leave now. The kernel drops every probe and event
      // with our file descriptors; outputs are only ever renamed into place.
      if (signals > 1) process.exit(ExitCode.Interrupted);
      c.abort(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    return c.signal;
  };
}

function describeError(err: unknown): { message: string; code: number } {
  if (err instanceof CliError) return { message: err.message, code: err.exitCode };
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'EPERM' || e?.code === 'EACCES') {
    return { message: `permission denied: ${e.message}`, code: ExitCode.Permission };
  }
  return { message: e?.message ?? String(err), code: ExitCode.Internal };
}

/** Parse, dispatch, and exit with the command's code (see ExitCode). */
export async function main(argv: string[] = process.argv): Promise<never> {
  const ctx: RunContext = { interrupts: interruptsOnce(), env: process.env, stderr: process.stderr };
  const { program, exitCode } = buildProgram({
    profile: (opts) => runProfileCommand(opts, ctx),
    report: (input, opts) => runReportCommand(input, opts, ctx),
    diff: (before, after, opts) => runDiffCommand(before, after, opts, ctx),
    doctor: (opts) => runDoctorCommand(opts, ctx),
    watch: (opts) => runWatchCommand(opts, ctx),
  });
  let code: number;
  try {
    checkCommandName(program, argv.slice(2));
    await program.parseAsync(argv);
    code = exitCode();
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its one line (or the help) already.
      code = err.exitCode === 0 ? ExitCode.Ok : ExitCode.BadArguments;
    } else {
      const { message, code: c } = describeError(err);
      process.stderr.write(`${NAME}: ${message.split('\n')[0]}\n`);
      if (process.env.APISIX_PROFILE_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
      code = c;
    }
  }
  process.exit(code);
}
