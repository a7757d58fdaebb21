// Option parsers and option groups shared by the commands. Each parser
// throws commander's InvalidArgumentError with an exact message; the CLI
// prints it on one line and exits with code 2.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { COLOR_SCHEMES, type ColorScheme } from '../report/flamegraph/color.js';
import { GROUP_BY, groupStacks, type GroupBy } from '../report/gateway.js';
import { DEFAULT_MAX_LABELS } from '../report/uris.js';
import { mergeIdentical, type UniqueStacks } from '../report/stack.js';
import type { FlameGraphOptions } from '../report/flamegraph/svg.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../log.js';

export function integerIn(name: string, min: number, max: number): (value: string) => number {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

/** `--container`: a Docker container name (Docker's rule, an optional leading '/') or an id or id prefix. */
export function containerRef(value: string): string {
  const ref = value.trim();
  if (!/^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]{0,252}$/.test(ref)) {
    throw new InvalidArgumentError('container must be a container name or id (prefix), e.g. apisix or 4dfb33317e45');
  }
  return ref;
}

export function durationSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0) || n > 86_400) {
    throw new InvalidArgumentError('duration must be a number of seconds above 0 and at most 86400');
  }
  return n;
}

/** `--minwidth`: pixels (`0.1`) or a share of the graph's total, samples or µs (`0.5%`). */
export type MinWidth = { px: number } | { percent: number };

export function minWidth(value: string): MinWidth {
  const m = /^(\d+(?:\.\d+)?|\.\d+)(%?)$/.exec(value.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!m || !Number.isFinite(n) || (m[2] === '%' ? n > 100 : n > 100_000)) {
    throw new InvalidArgumentError("minwidth must be pixels (e.g. 0.1) or a percentage of the graph's total (e.g. 0.5%), from 0 to 100%");
  }
  return m[2] === '%' ? { percent: n } : { px: n };
}

export function colorScheme(value: string): ColorScheme {
  if (!(COLOR_SCHEMES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`colors must be one of ${COLOR_SCHEMES.join(', ')}`);
  }
  return value as ColorScheme;
}

export function title(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('title must not be empty');
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(value)) throw new InvalidArgumentError('title must not contain control characters');
  return value;
}

export function logLevel(value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`log level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return value as LogLevel;
}

export function logFormat(value: string): LogFormat {
  if (!(LOG_FORMATS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`log format must be ${LOG_FORMATS.join(' or ')}`);
  }
  return value as LogFormat;
}

export function saturatePp(value: string): number {
  const n = Number(value);
  if (!/^(\d+(\.\d+)?|\.\d+)$/.test(value.trim()) || !(n > 0) || n > 100) {
    throw new InvalidArgumentError('saturate must be a number of percentage points above 0 and at most 100');
  }
  return n;
}

/** A path option: anything but the empty string. */
export function path(name: string): (value: string) => string {
  return (value: string): string => {
    if (value === '') throw new InvalidArgumentError(`${name} must be a file path`);
    return value;
  };
}

export interface LogOptions {
  logLevel: LogLevel;
  /** Unset: pretty on a terminal, JSON otherwise. */
  logFormat?: LogFormat;
}

export function addLogOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--log-level <level>', `${LOG_LEVELS.join(', ')}`).argParser(logLevel).default('info'))
    .addOption(
      new Option('--log-format <format>', 'pretty or json (default: pretty on a terminal, json otherwise)').argParser(logFormat),
    );
}

export interface FlameGraphCliOptions {
  title?: string;
  width: number;
  minwidth: MinWidth;
  inverted?: boolean;
  /** Missing where the command draws its own colours (diff). */
  colors?: ColorScheme;
}

/** --title, --width, --minwidth, --inverted and, unless `withColors` is false, --colors. */
export function addFlameGraphOptions(cmd: Command, withColors = true): Command {
  cmd
    .option('--title <text>', 'heading of the flame graph', title)
    .option('--width <px>', 'image width in pixels', integerIn('width', 200, 100_000), 1200)
    .addOption(
      new Option('--minwidth <px|pct%>', "leave out frames narrower than this many pixels, or this share of the graph's total (samples, or µs in off-cpu/wall graphs)")
        .argParser(minWidth)
        .default({ px: 0.1 }, '0.1'),
    )
    .option('--inverted', 'icicle graph: root at the top, callees below');
  if (withColors) {
    cmd.option(
      '--colors <scheme>',
      'kind (Lua green, C red-yellow, kernel blue, VM states violet), hot (all red-yellow) or mono (blue-grey)',
      colorScheme,
      'kind',
    );
  }
  return cmd;
}

/** Renderer options from the parsed flame graph flags. */
export function flameGraphOptions(o: FlameGraphCliOptions, defaults: { title: string; subtitle?: string }): FlameGraphOptions {
  return {
    title: o.title ?? defaults.title,
    ...(defaults.subtitle !== undefined ? { subtitle: defaults.subtitle } : {}),
    width: o.width,
    ...('percent' in o.minwidth ? { minWidthPercent: o.minwidth.percent } : { minWidthPx: o.minwidth.px }),
    inverted: o.inverted === true,
    ...(o.colors ? { colors: o.colors } : {}),
  };
}

export interface GroupByOptions {
  groupBy?: GroupBy;
}

/** --group-by phase|uri: the nginx phase, or the request URI, as each stack's first frame, in the flame graph and every export. */
export function addGroupByOption(cmd: Command): Command {
  return cmd.addOption(
    new Option(
      '--group-by <what>',
      'phase: split every output by nginx phase ([phase:access], [nginx: upstream], ...) under the root; uri: by request URI ([uri:/api/users], with --label uri)',
    )
      .choices(GROUP_BY as readonly string[] as string[]),
  );
}

/** The stacks as --group-by asks for them (unchanged without it). */
export function groupedStacks(stacks: UniqueStacks, o: GroupByOptions): UniqueStacks {
  return o.groupBy === undefined ? stacks : mergeIdentical(groupStacks(stacks, o.groupBy));
}

export interface LabelOptions {
  label?: 'uri';
  maxLabels: number;
}

/** --label uri and --max-labels (profile): samples labelled with their request's URI path. */
export function addLabelOptions(cmd: Command): Command {
  cmd.addOption(
    new Option('--label <what>', "uri: label each sample taken while Lua served a request with the request's URI path (OpenResty's LuaJIT; the URI table in the summaries, --group-by uri)").choices(['uri']),
  );
  return cmd.option('--max-labels <n>', 'distinct URIs kept (the most sampled); the rest are counted as [other]', integerIn('max-labels', 1, 1000), DEFAULT_MAX_LABELS);
}
