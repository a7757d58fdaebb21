import { describe, expect, it } from 'vitest';
import { commandFailed, commandText, endText, requestCost, type CommandRun } from '../../src/load/command-run.js';
import { renderSummaryJson, renderSummaryMarkdown, summarize } from '../../src/report/summary.js';

const wrk: CommandRun = {
  argv: ['wrk', '-t2', '-c8', '-d10s', 'http://127.0.0.1:9080/hello'],
  exitStatus: 0,
  signal: null,
  durationSeconds: 10.0123,
  requests: 4000,
  non2xxResponses: 0,
  socketErrors: 0,
};

describe('a command run', () => {
  it("failed when it exited non-zero or a signal ended it, unless it was asked to end", () => {
    expect(commandFailed(wrk)).toBe(false);
    expect(commandFailed({ ...wrk, exitStatus: 1 })).toBe(true);
    expect(commandFailed({ ...wrk, exitStatus: null, signal: 'SIGSEGV' })).toBe(true);
    // Asked to end (the --duration bound, an interrupt): not a failure of the load, however it ended.
    expect(commandFailed({ ...wrk, exitStatus: null, signal: 'SIGKILL', stoppedBy: 'duration' })).toBe(false);
    expect(commandFailed({ ...wrk, exitStatus: 130, stoppedBy: 'interrupt' })).toBe(false);
  });

  it('is shown as a shell would take it back, with how it ended', () => {
    expect(commandText(['wrk', '-s', 'post body.lua', "it's", 'http://x/a?b=1&c'])).toBe(
      "wrk -s 'post body.lua' 'it'\\''s' 'http://x/a?b=1&c'",
    );
    expect(endText(wrk)).toBe('exited with status 0 after 10.01 s');
    expect(endText({ ...wrk, exitStatus: null, signal: 'SIGKILL', stoppedBy: 'duration' })).toBe(
      'was ended by SIGKILL after 10.01 s (stopped at the --duration bound)',
    );
  });

  it('gives the cost of a request in samples and CPU ms, when there is a request count', () => {
    expect(requestCost(5000, 999, 4000)).toEqual({ samplesPerRequest: 1.25, cpuMsPerRequest: 1250 / 999 });
    expect(requestCost(5000, 999, undefined)).toBeNull();
    expect(requestCost(5000, 999, 0)).toBeNull();
    expect(requestCost(5000, undefined, 10)).toBeNull();
  });
});

describe('the summaries of a profile that ran a command', () => {
  const stacks = [{ frames: ['main', 'f'], count: 5000 }];

  it('carry the command and the cost of a request in the JSON, after the duration', () => {
    const s = summarize(stacks, { frequencyHz: 999, durationSec: 10.1, command: wrk });
    expect(Object.keys(s).slice(0, 7)).toEqual(['title', 'totalSamples', 'frequencyHz', 'durationSec', 'command', 'samplesPerRequest', 'cpuMsPerRequest']);
    expect(s.samplesPerRequest).toBe(1.25);
    expect(JSON.parse(renderSummaryJson(s)).command).toEqual(wrk);
  });

  it('leave the cost out without a request count', () => {
    const s = summarize(stacks, { frequencyHz: 999, command: { ...wrk, requests: undefined } });
    expect(s.samplesPerRequest).toBeUndefined();
    expect(s.cpuMsPerRequest).toBeUndefined();
  });

  it('say in the Markdown what the load was, below the headline', () => {
    const md = renderSummaryMarkdown(summarize(stacks, { frequencyHz: 999, command: { ...wrk, non2xxResponses: 3 } })).split('\n');
    expect(md[4]).toBe(
      '**Load:** `wrk -t2 -c8 -d10s http://127.0.0.1:9080/hello` exited with status 0 after 10.01 s · 4000 requests (3 non-2xx, 0 socket errors) · ' +
        '**1.250 samples per request** (1.251 ms of CPU)',
    );
  });
});
