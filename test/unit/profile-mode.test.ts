// What --mode changes in profile's own lines: the subtitle, the last log
// line, the summaries' totals, and when a run measured nothing.
import { describe, expect, it } from 'vitest';
import { modeLine, modeSubtitle, nothingMeasured, onlyIdleText, timeTotals, timeWeight } from '../../src/commands/profile-mode.js';
import { emptyStats } from '../../src/profile/stats.js';
import { emptyOffCpuTotals } from '../../src/profile/weights.js';

function offCpuStats(mode: 'off-cpu' | 'wall') {
  const stats = emptyStats();
  stats.mode = mode;
  stats.offCpu = { ...emptyOffCpuTotals(), idleUs: 9_800_000, blockedUs: 200_000, blockedInLuaUs: 150_000, switchesBlocked: 700, switchesPreempted: 4, preemptedUs: 1500 };
  return stats;
}

describe('profile --mode', () => {
  it('names the kind of time', () => {
    expect(timeWeight('cpu')).toBeUndefined();
    expect(timeWeight('off-cpu')).toBe('off_cpu');
    expect(timeWeight('wall')).toBe('wall');
  });

  it('leads the last line with idle and blocked shares', () => {
    expect(modeLine(offCpuStats('off-cpu'))).toBe(
      '98.0% idle, 1.5% blocked in Lua, 0.5% blocked outside Lua; 700 blocking switches (0 idle waits reused their stack), 4 preemptions (0.00 s runnable, not counted), 0 lost',
    );
    expect(modeLine(emptyStats())).toBe('');
  });

  it('says what the flame graph counts', () => {
    const stats = offCpuStats('off-cpu');
    expect(modeSubtitle('pid 7', stats, { mode: 'off-cpu', frequency: 99 })).toBe('pid 7, off-CPU time in µs: 0.20 s blocked, 9.80 s idle (not shown)');
    expect(modeSubtitle('pid 7', stats, { mode: 'off-cpu', includeIdle: true, frequency: 99 })).toBe('pid 7, off-CPU time in µs: 0.20 s blocked, 9.80 s idle');
    const cpu = emptyStats();
    cpu.samples = 12;
    expect(modeSubtitle('pid 7', cpu, { mode: 'cpu', frequency: 99 })).toBe('pid 7, 12 samples at 99 Hz');
  });

  it('hands the summaries their totals only in time modes', () => {
    expect(timeTotals(offCpuStats('wall'), { mode: 'wall' })).toMatchObject({ kind: 'wall', idleUs: 9_800_000, idleIncluded: false, lostSwitches: 0 });
    expect(timeTotals(emptyStats(), { mode: 'cpu' })).toBeUndefined();
  });

  it('measured nothing: no sample in CPU mode, no blocking switch in off-CPU mode', () => {
    expect(nothingMeasured(emptyStats())).toBe(true);
    expect(nothingMeasured(offCpuStats('off-cpu'))).toBe(false);
    const none = offCpuStats('off-cpu');
    none.offCpu!.switchesBlocked = 0;
    // Threads blocked since before the start still count their time.
    expect(nothingMeasured(none)).toBe(false);
    none.offCpu = { ...emptyOffCpuTotals() };
    expect(nothingMeasured(none)).toBe(true);
  });

  it('says so when the targets only waited for events', () => {
    const idle = offCpuStats('off-cpu');
    expect(onlyIdleText(idle, false)).toBeNull();
    idle.offCpu = { ...emptyOffCpuTotals(), idleUs: 3_000_000 };
    expect(onlyIdleText(idle, false)).toBe('the targets were idle the whole time (waiting in their event loop, 3.00 s): nothing blocked; --include-idle draws the idle wait');
    expect(onlyIdleText(idle, true)).toBe('the targets were idle the whole time (waiting in their event loop, 3.00 s): nothing blocked');
    expect(onlyIdleText(emptyStats(), false)).toBeNull();
  });
});
