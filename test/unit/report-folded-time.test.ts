// An off-CPU or wall profile's time totals, read back from its folded
// stacks: the same totals profile counted, where the file can tell them,
// and nothing made up where it cannot.
import { describe, expect, it } from 'vitest';
import { SampleFlags } from '../../src/native/abi.js';
import { emptyOffCpuTotals, IDLE_FRAME, OFF_CPU_FRAME, placeStack } from '../../src/profile/weights.js';
import { endsOffCpu, foldedTimeTotals, IDLE_ROOT, OFF_CPU_LEAF } from '../../src/report/folded-time.js';
import { mergeIdentical, type Stack } from '../../src/report/stack.js';
import { renderSummaryJson, renderSummaryMarkdown, summarize, timeHeadline, timeSummary, type TimeTotals } from '../../src/report/summary.js';

const IDLE: Stack = { frames: [IDLE_ROOT, 'main', 'ngx_epoll_process_events', 'epoll_wait', 'schedule_hrtimeout_range_[k]'], count: 9000 };
const IN_LUA: Stack = { frames: ['main', 'ngx_http_lua_content_handler', 'slow (/app/a.lua:3)', 'usleep', 'do_nanosleep_[k]'], count: 700 };
const OUTSIDE_LUA: Stack = { frames: ['main', 'ngx_http_log_handler', 'write', 'ext4_file_write_iter_[k]'], count: 200 };
const STAPXX_LUA: Stack = { frames: ['main', '@/app/b.lua:12', 'poll'], count: 100 };
const ON_CPU: Stack = { frames: ['main', 'ngx_http_lua_content_handler', 'hot (/app/a.lua:9)'], count: 3030 };
const wallBlocked = (s: Stack): Stack => ({ frames: [...s.frames, OFF_CPU_LEAF], count: s.count });

describe('foldedTimeTotals', () => {
  it('spells the frames as profile writes them', () => {
    expect(IDLE_ROOT).toBe(IDLE_FRAME);
    expect(OFF_CPU_LEAF).toBe(OFF_CPU_FRAME);
  });

  it('off-CPU: [idle] roots are idle, every other stack blocked, in Lua when a Lua frame is on it', () => {
    expect(foldedTimeTotals([IDLE, IN_LUA, OUTSIDE_LUA, STAPXX_LUA], 'off_cpu')).toEqual({
      kind: 'off_cpu',
      blockedUs: 1000,
      blockedInLuaUs: 800,
      idleUs: 9000,
      idleIncluded: true,
      onCpuUs: 0,
    });
  });

  it('wall: [off-CPU] leaves are blocked, the rest on the CPU', () => {
    const t = foldedTimeTotals([IDLE, wallBlocked(IN_LUA), wallBlocked(OUTSIDE_LUA), ON_CPU], 'wall');
    expect(t).toEqual({ kind: 'wall', blockedUs: 900, blockedInLuaUs: 700, idleUs: 9000, idleIncluded: true, onCpuUs: 3030 });
    // --group-by phase puts [idle] first on a blocked stack in the event loop: still blocked.
    const grouped = { frames: [IDLE_ROOT, ...wallBlocked(OUTSIDE_LUA).frames], count: 200 };
    expect(foldedTimeTotals([grouped], 'wall')).toEqual({ kind: 'wall', blockedUs: 200, blockedInLuaUs: 0, idleIncluded: false, onCpuUs: 0 });
    expect(endsOffCpu(wallBlocked(IN_LUA).frames)).toBe(true);
    expect(endsOffCpu(ON_CPU.frames)).toBe(false);
    expect(endsOffCpu([])).toBe(false);
  });

  it('leaves idle time out, not zero, when the file holds no [idle] stack', () => {
    const t = foldedTimeTotals([IN_LUA, OUTSIDE_LUA], 'off_cpu');
    expect(t).toEqual({ kind: 'off_cpu', blockedUs: 900, blockedInLuaUs: 700, idleIncluded: false, onCpuUs: 0 });
    expect('idleUs' in t).toBe(false);
    // An [idle] frame below the root is not the event loop's wait.
    expect(foldedTimeTotals([{ frames: ['main', IDLE_ROOT], count: 5 }], 'off_cpu')).toMatchObject({ blockedUs: 5, idleIncluded: false });
  });

  it("agrees with profile's own totals for the stacks profile writes", () => {
    const OFF = SampleFlags.OffCpu;
    const LUA = SampleFlags.InLua;
    const SWITCH = ['schedule_[k]', '__schedule_[k]', '__traceiter_sched_switch_[k]'];
    const counted: [string[], number, number][] = [
      [['main', 'ngx_process_events_and_timers', 'epoll_wait', 'do_epoll_wait_[k]', ...SWITCH], OFF, 9_000_000],
      [['main', 'ngx_http_lua_run_thread', 'slow (/app/a.lua:3)', 'usleep', 'do_nanosleep_[k]', ...SWITCH], OFF | LUA, 700_000],
      [['main', 'ngx_http_log_handler', 'write', ...SWITCH], OFF, 200_000],
      [['main', 'ngx_http_lua_run_thread', 'hot (/app/a.lua:9)'], LUA, 3],
    ];
    for (const mode of ['off-cpu', 'wall'] as const) {
      const ctx = { mode, frequencyHz: 99, includeIdle: true };
      const totals = emptyOffCpuTotals();
      const placed: Stack[] = [];
      for (const [frames, flags, count] of counted) {
        // Off-CPU mode draws no CPU samples: profile does not load the sampler.
        if (mode === 'off-cpu' && !(flags & OFF)) continue;
        const weight = flags & OFF ? Math.round(count / 1000) : Math.round((count * 1e6) / 99);
        const out = placeStack([...frames], flags, weight, ctx, totals);
        if (out) placed.push({ frames: out, count: weight });
      }
      const read = foldedTimeTotals(mergeIdentical(placed), mode === 'wall' ? 'wall' : 'off_cpu');
      expect(read, mode).toMatchObject({ blockedUs: totals.blockedUs, blockedInLuaUs: totals.blockedInLuaUs, idleUs: totals.idleUs, onCpuUs: totals.onCpuUs, idleIncluded: true });
      expect(totals.blockedUs, mode).toBe(900);
    }
  });
});

describe('summaries of time totals a folded file cannot complete', () => {
  const stacks = mergeIdentical([IN_LUA, OUTSIDE_LUA]);
  const kernel: TimeTotals = {
    kind: 'off_cpu',
    blockedUs: 900,
    blockedInLuaUs: 700,
    idleUs: 99_100,
    idleIncluded: false,
    onCpuUs: 0,
    preemptedUs: 12_000,
    switchesBlocked: 40,
    switchesPreempted: 3,
    lostSwitches: 1,
  };

  it("profile's totals keep every clause", () => {
    const md = renderSummaryMarkdown(summarize(stacks, { time: kernel }));
    expect(md).toContain(
      '**99.1% idle, 0.7% blocked in Lua, 0.2% blocked outside Lua** (0.099 s idle, 0.001 s blocked; idle left out of the tables; 40 blocking switches, 1 lost; preempted: 3 times, 0.012 s, not counted)',
    );
  });

  it('a folded file: no switch counts in the JSON, no switch clause in the Markdown, no idle share', () => {
    const time = foldedTimeTotals(stacks, 'off_cpu');
    const summary = summarize(stacks, { time });
    const json = JSON.parse(renderSummaryJson(summary)) as { time: Record<string, unknown> };
    expect(Object.keys(json.time)).toEqual(['kind', 'blockedUs', 'blockedInLuaUs', 'idleIncluded', 'onCpuUs', 'blockedInLuaShare', 'blockedOutsideLuaShare', 'onCpuShare']);
    expect(json.time.blockedInLuaShare).toBeCloseTo(700 / 900, 9);
    const md = renderSummaryMarkdown(summary);
    expect(md).toContain('**77.8% blocked in Lua, 22.2% blocked outside Lua** (0.001 s blocked; no idle stacks: idle time not known)\n');
    expect(md).not.toMatch(/switches|preempted|idle,/);
    expect(md).toContain('**900 µs**');
  });

  it('a wall file with idle: on CPU and idle in the headline', () => {
    const wall = mergeIdentical([IDLE, wallBlocked(IN_LUA), ON_CPU]);
    const time = foldedTimeTotals(wall, 'wall');
    expect(timeHeadline(timeSummary(time))).toBe('70.7% idle, 5.5% blocked in Lua, 0.0% blocked outside Lua, 23.8% on CPU');
    expect(renderSummaryMarkdown(summarize(wall, { time }))).toContain('(0.009 s idle, 0.001 s blocked, 0.003 s on CPU; idle included in the tables)');
  });
});
