// `profile --mode cpu|off-cpu|wall` and `--include-idle`: the options, and
// what a mode changes in the outputs (the unit of the counts, the flame
// graph's subtitle, the summaries' time totals, the last log line).
import { type Command, Option } from 'commander';
import type { RunStats } from '../profile/stats.js';
import { type ProfileMode } from '../profile/weights.js';
import type { TimeTotals } from '../report/summary.js';
import { countUnit, type TimeWeight, usAsSeconds as seconds } from '../report/weight.js';

export const PROFILE_MODES: readonly ProfileMode[] = ['cpu', 'off-cpu', 'wall'];

export interface ModeOptions {
  mode: ProfileMode;
  includeIdle?: boolean;
}

export function addModeOptions(cmd: Command): Command {
  cmd.addOption(
    new Option(
      '--mode <mode>',
      'cpu: CPU samples; off-cpu: where threads block, weighted by the time they stay off the CPU; wall: both, as time, in one graph',
    )
      .choices(PROFILE_MODES as string[])
      .default('cpu'),
  );
  return cmd.option('--include-idle', "off-cpu/wall: keep the event loop's idle wait ([idle]) in the graph and the shares");
}

/**
 * `--mode` of the commands that read folded files (`report`, `diff`): a
 * folded file does not record whether its counts are samples or µs.
 */
export function foldedModeOption(files: 'the file does not say' | 'the files do not say', effect = ''): Option {
  return new Option('--mode <mode>', `what the counts are (${files}): cpu: samples; off-cpu or wall: µs, as \`profile --mode off-cpu|wall\` writes them${effect}`)
    .choices(PROFILE_MODES as string[])
    .default('cpu');
}

/** The kind of time an off-CPU or wall profile counts; undefined for CPU samples. */
export function timeWeight(mode: ProfileMode): TimeWeight | undefined {
  return mode === 'off-cpu' ? 'off_cpu' : mode === 'wall' ? 'wall' : undefined;
}

/** The summaries' time totals of a run (off-CPU and wall modes). */
export function timeTotals(stats: RunStats, o: ModeOptions): TimeTotals | undefined {
  const kind = timeWeight(o.mode);
  if (!kind || !stats.offCpu) return undefined;
  const t = stats.offCpu;
  return {
    kind,
    blockedUs: t.blockedUs,
    blockedInLuaUs: t.blockedInLuaUs,
    idleUs: t.idleUs,
    idleIncluded: o.includeIdle === true,
    onCpuUs: t.onCpuUs,
    preemptedUs: t.preemptedUs,
    switchesBlocked: t.switchesBlocked,
    switchesPreempted: t.switchesPreempted,
    lostSwitches: t.lost,
  };
}

/** The flame graph's second heading. */
export function modeSubtitle(label: string, stats: RunStats, o: ModeOptions & { frequency: number }): string {
  if (o.mode === 'cpu') return `${label}, ${stats.samples} samples at ${o.frequency} Hz`;
  const t = stats.offCpu;
  const blocked = t ? `${seconds(t.blockedUs)} blocked, ${seconds(t.idleUs)} idle${o.includeIdle ? '' : ' (not shown)'}` : '';
  if (o.mode === 'off-cpu') return `${label}, off-CPU time in ${countUnit('off_cpu')}: ${blocked}`;
  return `${label}, wall time in ${countUnit('wall')} (CPU samples at ${o.frequency} Hz as time, [off-CPU] leaves blocked): ${blocked}`;
}

/** The last log line's part for time modes; '' in CPU mode. */
export function modeLine(stats: RunStats): string {
  const t = stats.offCpu;
  if (!t) return '';
  const whole = t.idleUs + t.blockedUs + t.onCpuUs;
  const pct = (n: number) => (whole ? ((100 * n) / whole).toFixed(1) : '0.0');
  const onCpu = stats.mode === 'wall' ? `, ${pct(t.onCpuUs)}% on CPU` : '';
  return (
    `${pct(t.idleUs)}% idle, ${pct(t.blockedInLuaUs)}% blocked in Lua, ${pct(t.blockedUs - t.blockedInLuaUs)}% blocked outside Lua${onCpu}; ` +
    `${t.switchesBlocked} blocking switches (${t.idleReused} idle waits reused their stack), ${t.switchesPreempted} preemptions (${seconds(t.preemptedUs)} runnable, not counted), ${t.lost} lost`
  );
}

/**
 * A time profile with nothing to show: no target thread blocked or was
 * already blocked while we watched (threads blocked since before the start
 * count: src/profile/blocked-at-start.ts).
 */
export function nothingMeasured(stats: RunStats): boolean {
  if (stats.mode === undefined || stats.mode === 'cpu' || !stats.offCpu) return stats.samples === 0;
  const t = stats.offCpu;
  return t.switchesBlocked === 0 && stats.samples === 0 && t.idleUs + t.blockedUs === 0;
}

/**
 * A time profile whose targets only waited in their event loop, the
 * graph then empty unless --include-idle: said in one line, not an error
 * (an idle gateway is an answer).
 */
export function onlyIdleText(stats: RunStats, includeIdle: boolean): string | null {
  const t = stats.offCpu;
  if (!t || t.idleUs === 0 || t.blockedUs > 0 || t.onCpuUs > 0) return null;
  return `the targets were idle the whole time (waiting in their event loop, ${seconds(t.idleUs)}): nothing blocked${includeIdle ? '' : '; --include-idle draws the idle wait'}`;
}
