// doctor's line for the off-CPU modes' tracepoint.
import { describe, expect, it } from 'vitest';
import { checkSchedSwitch } from '../../src/kernel/sched-switch.js';

describe('checkSchedSwitch', () => {
  it('passes when the tracepoint attached', () => {
    expect(checkSchedSwitch({ attached: true })).toMatchObject({ id: 'sched-switch', level: 'pass' });
  });
  it('only warns when it did not: CPU profiles do not need it', () => {
    const c = checkSchedSwitch({ error: 'attach offcpu_switch: Operation not supported', code: 'ENOTSUP' });
    expect(c.level).toBe('warn');
    expect(c.summary).toContain('--mode off-cpu and wall cannot run');
    expect(c.fix).toContain('BTF');
    expect(c.exitCode).toBeUndefined();
  });
  it('says so when it was not tried', () => {
    expect(checkSchedSwitch(null).summary).toContain('not tried');
  });
});
