// Errors the CLI reports as one line with a documented exit code.

export const ExitCode = {
  Ok: 0,
  Internal: 1,
  BadArguments: 2,
  TargetNotFound: 3,
  Permission: 4,
  KernelUnsupported: 5,
  NoSamples: 6,
  Busy: 7,
  BpfRejected: 8,
  /** `diff` with a gate: a threshold was crossed. */
  GateFailed: 9,
  /** The target runs a LuaJIT no offset table describes. */
  LuajitUnsupported: 10,
  /** `profile -- <command>`: the load command failed (outputs written). */
  CommandFailed: 11,
  Interrupted: 130,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'CliError';
  }
}
