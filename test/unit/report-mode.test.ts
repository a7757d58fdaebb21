// `report --mode cpu|off-cpu|wall`: a folded file does not say what its
// counts are, so the mode names their unit in every output. The command
// runs in-process on files in a temp directory (no root, no BPF).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reportCommand, runReportCommand, type ReportOptions } from '../../src/commands/report.js';
import { ExitCode } from '../../src/errors.js';
import { decodePprof } from '../../src/report/pprof.js';

const OFF_CPU = [
  '[idle];main;ngx_process_events_and_timers;ngx_epoll_process_events;epoll_wait;schedule_hrtimeout_range_[k] 98000',
  'main;ngx_http_lua_content_handler;slow (/app/a.lua:3);usleep;do_nanosleep_[k] 1500',
  'main;ngx_http_log_handler;write 500',
].join('\n');
const WALL = [
  'main;ngx_http_lua_content_handler;slow (/app/a.lua:3);usleep;do_nanosleep_[k];[off-CPU] 1500',
  'main;ngx_http_lua_content_handler;hot (/app/a.lua:9) 20202',
  'main;ngx_http_log_handler;write;[off-CPU] 500',
].join('\n');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'apisix-profile-report-mode-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Outcome {
  code: number;
  /** The JSON log records. */
  log: { level: number; msg: string }[];
  read(ext: string): string;
  pprofTypes(): string[];
}

/** Run `report <file> --mode ... <args>` as the CLI would, writing every output. */
async function report(name: string, text: string, args: string[]): Promise<Outcome> {
  const input = join(dir, `${name}.folded`);
  writeFileSync(input, `${text}\n`);
  const out = (ext: string) => join(dir, `${name}.${ext}`);
  const cmd = reportCommand().exitOverride();
  cmd.parse([input, '-o', out('svg'), '--pprof', out('pb.gz'), '--speedscope', out('ss.json'), '--json', out('json'), '--summary', out('md'), ...args], {
    from: 'user',
  });
  let stderr = '';
  const ctx = { env: {}, stderr: { write: (t: string) => (stderr += t) }, interrupts: () => new AbortController().signal };
  const code = await runReportCommand(input, { ...cmd.opts<ReportOptions>(), logFormat: 'json' }, ctx);
  return {
    code,
    log: stderr
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { level: number; msg: string }),
    read: (ext) => readFileSync(out(ext), 'utf8'),
    pprofTypes: () => {
      const p = Profile.decode(gunzipSync(readFileSync(out('pb.gz'))));
      const s = p.stringTable.strings;
      return p.sampleType.map((t) => `${s[Number(t.type)]}/${s[Number(t.unit)]}`);
    },
  };
}

describe('report --mode', () => {
  it('cpu (the default): samples, as ever', async () => {
    const r = await report('cpu', WALL.replace(/;\[off-CPU\]/g, ''), ['-F', '499']);
    expect(r.code).toBe(0);
    expect(r.read('svg')).toContain('>cpu.folded: 22202 samples</text>');
    expect(r.read('svg')).not.toContain('data-unit=');
    expect(r.pprofTypes()).toEqual(['samples/count', 'cpu/nanoseconds']);
    expect(JSON.parse(r.read('ss.json')).profiles[0]).toMatchObject({ unit: 'milliseconds' });
    const json = JSON.parse(r.read('json'));
    expect(json).toMatchObject({ totalSamples: 22202, frequencyHz: 499 });
    expect(json.time).toBeUndefined();
    expect(r.read('md')).toContain('**22202 samples** at 499 Hz');
    expect(r.log.map((l) => l.msg)).toEqual(['22202 samples in 3 stacks from cpu.folded']);
  });

  it('off-cpu: every output in µs of blocked time, totals from the stacks', async () => {
    const r = await report('off', OFF_CPU, ['--mode', 'off-cpu']);
    expect(r.code).toBe(0);
    const svg = r.read('svg');
    expect(svg).toContain('>off.folded: off-CPU time in µs: 0.00 s blocked, 0.10 s idle</text>');
    expect(svg).toContain('data-unit="µs"');
    expect(svg).toContain('usleep (1500 µs, 1.50%)');
    expect(r.pprofTypes()).toEqual(['off_cpu/nanoseconds']);
    expect(decodePprof(Buffer.from(readFileSync(join(dir, 'off.pb.gz')))).map((s) => s.count).sort((a, b) => a - b)).toEqual([500_000, 1_500_000, 98_000_000]);
    const ss = JSON.parse(r.read('ss.json')).profiles[0];
    expect(ss.unit).toBe('seconds');
    expect(ss.endValue).toBeCloseTo(0.1, 9);
    const json = JSON.parse(r.read('json'));
    expect(json.totalSamples).toBe(100_000);
    expect(json.frequencyHz).toBeUndefined();
    expect(json.time).toEqual({
      kind: 'off_cpu',
      blockedUs: 2000,
      blockedInLuaUs: 1500,
      idleUs: 98_000,
      idleIncluded: true,
      onCpuUs: 0,
      idleShare: 0.98,
      blockedInLuaShare: 0.015,
      blockedOutsideLuaShare: 0.005,
      onCpuShare: 0,
    });
    const md = r.read('md');
    expect(md).toContain('**98.0% idle, 1.5% blocked in Lua, 0.5% blocked outside Lua** (0.098 s idle, 0.002 s blocked; idle included in the tables)');
    expect(md).toContain('**100000 µs**\n');
    expect(md).toContain('**Blocked time by nginx phase**');
    expect(r.log.map((l) => l.msg)).toEqual(['100000 µs in 3 stacks from off.folded: 98.0% idle, 1.5% blocked in Lua, 0.5% blocked outside Lua']);
  });

  it('wall: [off-CPU] leaves blocked, the rest on the CPU; -F has nothing to change', async () => {
    const r = await report('wall', WALL, ['--mode', 'wall', '-F', '499']);
    expect(r.code).toBe(0);
    expect(r.read('svg')).toContain('>wall.folded: wall time in µs: 0.02 s on CPU, 0.00 s blocked</text>');
    expect(r.pprofTypes()).toEqual(['wall/nanoseconds']);
    expect(JSON.parse(r.read('ss.json')).profiles[0].endValue).toBeCloseTo(0.022202, 9);
    const json = JSON.parse(r.read('json'));
    expect(json.frequencyHz).toBeUndefined();
    expect(json.time).toMatchObject({ kind: 'wall', onCpuUs: 20202, blockedUs: 2000, blockedInLuaUs: 1500, idleIncluded: false });
    expect(json.time.idleUs).toBeUndefined();
    const md = r.read('md');
    expect(md).toContain('(0.002 s blocked, 0.02 s on CPU; no idle stacks: idle time not known)');
    expect(md).toContain('**22202 µs**\n');
    expect(r.log).toEqual([
      expect.objectContaining({ level: 40, msg: '-F is not used with --mode wall: the counts are µs already' }),
      expect.objectContaining({ level: 30, msg: '22202 µs in 3 stacks from wall.folded: 6.8% blocked in Lua, 2.3% blocked outside Lua, 91.0% on CPU' }),
    ]);
  });

  it('says when a file read as samples looks like a wall profile', async () => {
    const r = await report('wall-as-cpu', WALL, []);
    expect(r.code).toBe(0);
    expect(r.log[0]).toMatchObject({ level: 40, msg: "2 stacks of wall-as-cpu.folded end in [off-CPU], as a wall profile's do: its counts are µs, read them with --mode wall" });
  });

  it('0 µs in the input is still exit 6, the outputs written', async () => {
    const r = await report('empty', 'main;read 0', ['--mode', 'off-cpu']);
    expect(r.code).toBe(ExitCode.NoSamples);
    expect(r.log.at(-1)).toMatchObject({ level: 40, msg: 'no time in empty.folded (0 µs): the outputs are empty' });
    expect(JSON.parse(r.read('json')).totalSamples).toBe(0);
  });

  it('takes cpu, off-cpu or wall, nothing else', () => {
    const parse = (...args: string[]) => {
      const cmd = reportCommand().exitOverride().configureOutput({ writeErr: () => {} });
      try {
        cmd.parse(['x.folded', ...args], { from: 'user' });
        return cmd.opts<ReportOptions>().mode;
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(parse()).toBe('cpu');
    expect(parse('--mode', 'off-cpu')).toBe('off-cpu');
    expect(parse('--mode', 'offcpu')).toBe("error: option '--mode <mode>' argument 'offcpu' is invalid. Allowed choices are cpu, off-cpu, wall.");
  });
});
