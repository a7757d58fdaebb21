// CPU% of the watched workers from two readings, and what the profile
// child's log says.
import { describe, expect, it } from 'vitest';
import { cpuAbove, maxCpuPercent } from '../../src/commands/watch.js';
import { cpuPercent, type CpuReading } from '../../src/watch/cpu-meter.js';
import { profileArgs, readChildLog } from '../../src/watch/profile-child.js';

const reading = (at: number, entries: [number, number][]): CpuReading => ({ at, cpuMs: new Map(entries) });

describe('watch CPU%', () => {
  it('is the workers\' CPU time summed, per wall time, in percent of one core', () => {
    // Two workers, each 900 ms of CPU in one second: 180%.
    expect(cpuPercent(reading(10, [[1, 1000], [2, 5000]]), reading(11, [[1, 1900], [2, 5900]]))).toBeCloseTo(180, 9);
    // Half a second: 100 ms is 20%.
    expect(cpuPercent(reading(1, [[1, 0]]), reading(1.5, [[1, 100]]))).toBeCloseTo(20, 9);
  });

  it('follows workers that come and go: only those in both readings count', () => {
    const before = reading(0, [[1, 1000], [2, 2000]]);
    // 2 exited (a reload), 3 is new: only 1's 500 ms count.
    const after = reading(1, [[1, 1500], [3, 40]]);
    expect(cpuPercent(before, after)).toBeCloseTo(50, 9);
    // A pid whose time went down is another process under a reused pid.
    expect(cpuPercent(reading(0, [[1, 5000]]), reading(1, [[1, 10]]))).toBe(0);
  });

  it('is 0 with no workers or no time between readings', () => {
    expect(cpuPercent(reading(0, []), reading(1, []))).toBe(0);
    expect(cpuPercent(reading(1, [[1, 0]]), reading(1, [[1, 10]]))).toBe(0);
  });
});

describe('--cpu-above', () => {
  it('takes a percentage of one core above 0 and below every CPU\'s worth', () => {
    expect(maxCpuPercent(4)).toBe(400);
    const parse = cpuAbove(200);
    expect(parse('150')).toBe(150);
    expect(parse('150%')).toBe(150);
    expect(parse('0.5')).toBe(0.5);
    expect(parse(' 199.9 ')).toBe(199.9);
    for (const bad of ['0', '200', '250', '-5', 'abc', '', '1e2', '50%%']) {
      expect(() => parse(bad), bad).toThrow('cpu-above must be a percentage of one core above 0 and below 200 (2 CPUs here');
    }
  });
});

describe('the profile child', () => {
  it('is the profile command with the set\'s three outputs and JSON logs', () => {
    expect(profileArgs({ targetArgs: ['--pid', '42'], durationSec: 30, frequency: 99, dir: '/o/.incoming-x', stem: 'x', title: 'why' })).toEqual([
      'profile', '--pid', '42', '--duration', '30', '--frequency', '99',
      '--output', '/o/.incoming-x/x.svg', '--folded', '/o/.incoming-x/x.folded', '--json', '/o/.incoming-x/x.json',
      '--title', 'why', '--log-format', 'json',
    ]);
  });

  it('reads its summary line and its last problem from its stderr', () => {
    const lines = [
      '{"level":30,"msg":"sampling"}',
      '{"level":40,"msg":"pid 7: LuaJIT was not seen running"}',
      '{"level":30,"msg":"297 samples in 3.0 s (7:297); 90.1% in Lua; 0 lost"}',
      '{"level":30,"ms',
    ];
    expect(readChildLog(lines)).toEqual({ summary: '297 samples in 3.0 s (7:297); 90.1% in Lua; 0 lost', problem: 'pid 7: LuaJIT was not seen running' });
    expect(readChildLog(['apisix-profile: pid 9 is already being profiled by apisix-profile (pid 3): wait for it or stop it'])).toEqual({
      summary: null,
      problem: 'pid 9 is already being profiled by apisix-profile (pid 3): wait for it or stop it',
    });
  });
});
