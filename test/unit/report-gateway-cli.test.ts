// --group-by: the option (choices, one-line error) and what it does to stacks.
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { addGroupByOption, groupedStacks } from '../../src/commands/options.js';
import { mergeIdentical } from '../../src/report/stack.js';

function parse(...args: string[]): { groupBy?: string } | { error: string } {
  const cmd = addGroupByOption(new Command('t').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} }));
  try {
    cmd.parse(args, { from: 'user' });
    return cmd.opts();
  } catch (err) {
    return { error: (err as Error).message };
  }
}

describe('--group-by', () => {
  it('takes phase or uri, nothing else', () => {
    expect(parse()).toEqual({});
    expect(parse('--group-by', 'phase')).toEqual({ groupBy: 'phase' });
    expect(parse('--group-by', 'uri')).toEqual({ groupBy: 'uri' });
    expect(parse('--group-by', 'plugin')).toEqual({
      error: "error: option '--group-by <what>' argument 'plugin' is invalid. Allowed choices are phase, uri.",
    });
  });

  it('groups and merges stacks, or leaves them as they are', () => {
    const stacks = mergeIdentical([
      { frames: ['main', 'ngx_process_events_and_timers', 'epoll_wait'], count: 2 },
      { frames: ['main', 'ngx_process_events_and_timers', 'ngx_http_core_content_phase', 'ngx_http_lua_content_by_chunk', 'f (/a.lua:1)'], count: 3 },
    ]);
    expect(groupedStacks(stacks, {})).toBe(stacks);
    const grouped = groupedStacks(stacks, { groupBy: 'phase' });
    expect(grouped.map((s) => [s.frames[0], s.count])).toEqual([
      ['[idle]', 2],
      ['[phase:content]', 3],
    ]);
  });
});
