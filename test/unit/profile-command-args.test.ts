// `profile [options] -- <command...>` on the command line, with stub commands.
import { describe, expect, it } from 'vitest';
import { buildProgram, type Dispatch } from '../../src/cli.js';
import type { ProfileOptions } from '../../src/commands/profile.js';

async function parse(...argv: string[]): Promise<{ opts?: ProfileOptions; err: string }> {
  const result: { opts?: ProfileOptions; err: string } = { err: '' };
  const stub = async () => 0;
  const dispatch = {
    profile: async (opts: ProfileOptions) => {
      result.opts = opts;
      return 0;
    },
    report: stub,
    diff: stub,
    doctor: stub,
    watch: stub,
  } as unknown as Dispatch;
  const { program } = buildProgram(dispatch, { writeOut: () => {}, writeErr: (s) => (result.err += s) });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch {
    /* the one-line error is in err */
  }
  return result;
}

describe('profile -- <command...>', () => {
  it('takes every word after -- as the command, its options included', async () => {
    const { opts } = await parse('--pid', '42', '-F', '999', '--', 'wrk', '-t2', '-c8', '-d10s', '--latency', 'http://127.0.0.1:9080/');
    expect(opts?.command).toEqual(['wrk', '-t2', '-c8', '-d10s', '--latency', 'http://127.0.0.1:9080/']);
    expect(opts?.frequency).toBe(999);
    expect(opts?.durationGiven).toBe(false);
  });

  it('knows whether --duration was given: with a command it is then an upper bound', async () => {
    expect((await parse('profile', '-p', '42', '-d', '30', '--', 'wrk', 'http://x/')).opts?.durationGiven).toBe(true);
    expect((await parse('profile', '-p', '42', '--', 'wrk', 'http://x/')).opts?.duration).toBe(30);
  });

  it('has no command without one', async () => {
    const { opts } = await parse('--pid', '42');
    expect(opts?.command).toBeUndefined();
    expect(opts?.durationGiven).toBeUndefined();
  });

  it("says a command's option before -- is unknown", async () => {
    expect((await parse('--pid', '42', 'wrk', '-t2', 'http://x/')).err).toBe("apisix-profile: unknown option '-t2'\n");
  });
});
