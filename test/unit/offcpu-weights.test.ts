// How a counted stack becomes part of an off-CPU or wall profile: its weight
// in µs, the switch frames cut, the event loop's wait set apart as [idle].
import { describe, expect, it } from 'vitest';
import { SampleFlags } from '../../src/native/abi.js';
import { emptyOffCpuTotals, IDLE_FRAME, isIdleWait, OFF_CPU_FRAME, placeStack, stackWeight, trimSwitchFrames } from '../../src/profile/weights.js';

const OFF = SampleFlags.OffCpu;
const LUA = SampleFlags.InLua;
const SWITCH = ['schedule_[k]', '__schedule_[k]', '__traceiter_sched_switch_[k]', 'bpf_trace_run4_[k]'];
const IDLE = ['main', 'ngx_process_events_and_timers', 'epoll_wait', 'do_epoll_wait_[k]', ...SWITCH];
const BLOCKED = ['main', 'ngx_http_lua_run_thread', 'slow (/app/a.lua:3)', 'usleep', 'do_nanosleep_[k]', ...SWITCH];

describe('stackWeight', () => {
  it('keeps samples in CPU mode', () => {
    expect(stackWeight(0, 7, { mode: 'cpu', frequencyHz: 99 })).toBe(7);
  });
  it('turns kernel nanoseconds into whole µs, and samples into their period in wall mode', () => {
    expect(stackWeight(OFF, 1_234_567, { mode: 'off-cpu', frequencyHz: 99 })).toBe(1235);
    expect(stackWeight(OFF, 1_234_567, { mode: 'wall', frequencyHz: 99 })).toBe(1235);
    expect(stackWeight(0, 3, { mode: 'wall', frequencyHz: 1000 })).toBe(3000);
    expect(stackWeight(0, 1, { mode: 'wall', frequencyHz: 99 })).toBe(10101);
  });
});

describe('trimSwitchFrames', () => {
  it('cuts the switch itself, so the function that slept is the leaf', () => {
    expect(trimSwitchFrames(BLOCKED)).toEqual(['main', 'ngx_http_lua_run_thread', 'slow (/app/a.lua:3)', 'usleep', 'do_nanosleep_[k]', 'schedule_[k]']);
    expect(trimSwitchFrames(['main', 'read'])).toEqual(['main', 'read']);
  });
});

describe('isIdleWait', () => {
  it('is the event loop wait with no Lua running', () => {
    expect(isIdleWait(IDLE, false)).toBe(true);
    expect(isIdleWait(IDLE, true)).toBe(false);
    expect(isIdleWait(BLOCKED, false)).toBe(false);
  });
});

describe('placeStack', () => {
  const ctx = (mode: 'cpu' | 'off-cpu' | 'wall', includeIdle = false) => ({ mode, frequencyHz: 99, includeIdle });

  it('leaves CPU profiles alone', () => {
    const totals = emptyOffCpuTotals();
    expect(placeStack(IDLE, 0, 5, ctx('cpu'), totals)).toBe(IDLE);
    expect(totals).toEqual(emptyOffCpuTotals());
  });

  it('totals idle apart and leaves it out unless asked for', () => {
    const totals = emptyOffCpuTotals();
    expect(placeStack(IDLE, OFF, 900, ctx('off-cpu'), totals)).toBeNull();
    expect(placeStack(IDLE, OFF, 100, ctx('off-cpu', true), totals)).toEqual([IDLE_FRAME, ...IDLE.slice(0, 4), 'schedule_[k]']);
    expect(totals.idleUs).toBe(1000);
    expect(totals.blockedUs).toBe(0);
  });

  it('counts blocked time, in Lua or not, and marks it [off-CPU] in wall mode', () => {
    const totals = emptyOffCpuTotals();
    expect(placeStack(BLOCKED, OFF | LUA, 40, ctx('off-cpu'), totals)?.at(-1)).toBe('schedule_[k]');
    expect(placeStack(['main', 'write', ...SWITCH], OFF, 10, ctx('wall'), totals)).toEqual(['main', 'write', 'schedule_[k]', OFF_CPU_FRAME]);
    expect(placeStack(['main', 'hot (/app/a.lua:9)'], LUA, 7, ctx('wall'), totals)).toEqual(['main', 'hot (/app/a.lua:9)']);
    expect(totals).toMatchObject({ blockedUs: 50, blockedInLuaUs: 40, onCpuUs: 7, idleUs: 0 });
  });
});
