// The host checks judged from injected readings, the hide seam, and the
// minimum kernel: no root, no kernel access.
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import {
  Cap,
  canLoadBpf,
  checkBpfSyscall,
  checkBtf,
  checkError,
  checkKernel,
  checkPerfEvents,
  checkPerfParanoid,
  checkRoot,
  checkTracefs,
  checkUprobes,
  essentialFailure,
  hasCap,
  hiddenFeatures,
  hideFeatures,
  hostChecks,
  type HostReadings,
  parseCapEff,
  tracefsMount,
} from '../../src/kernel/features.js';
import { atLeast, MIN_KERNEL, missingOn, parseRelease } from '../../src/kernel/min-kernel.js';

const bit = (n: number): bigint => 1n << BigInt(n);
const ALL_CAPS = 0x1ffffffffffn;

/** This machine as doctor read it: root, 6.18, everything there but tracefs. */
function host(over: Partial<HostReadings> = {}): HostReadings {
  return {
    uid: 0,
    capEff: ALL_CAPS,
    release: '6.18.44+deb13-amd64',
    btf: { path: '/sys/kernel/btf/vmlinux', isDefault: true, present: true, bytes: 5_481_434 },
    bpfSyscall: true,
    perfEventParanoid: 2,
    softwarePmu: true,
    hardwarePmu: false,
    uprobePmuType: 8,
    tracefs: null,
    hidden: new Set(),
    ...over,
  };
}

describe('reading /proc', () => {
  it('reads CapEff from a status file', () => {
    const status = 'Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n';
    expect(parseCapEff(status)).toBe(ALL_CAPS);
    expect(parseCapEff('Name:\tx\n')).toBeNull();
    expect(hasCap(ALL_CAPS, Cap.BPF)).toBe(true);
    expect(hasCap(bit(Cap.PERFMON), Cap.BPF)).toBe(false);
    expect(hasCap(null, Cap.SYS_ADMIN)).toBe(false);
  });

  it('finds a tracefs mount (and only tracefs)', () => {
    const mounts = [
      'sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0',
      'debugfs /sys/kernel/debug debugfs rw,relatime 0 0',
      'nodev /sys/kernel/tracing tracefs rw,relatime 0 0',
    ].join('\n');
    expect(tracefsMount(mounts)).toBe('/sys/kernel/tracing');
    expect(tracefsMount(mounts.split('\n').slice(0, 2).join('\n'))).toBeNull();
  });
});

describe('minimum kernel', () => {
  it('is 6.1', () => {
    expect(MIN_KERNEL).toEqual({ major: 6, minor: 1 });
  });

  it('parses releases and compares them', () => {
    expect(parseRelease('6.18.44+deb13-amd64')).toEqual({ major: 6, minor: 18 });
    expect(parseRelease('6.1.0-57-amd64')).toEqual({ major: 6, minor: 1 });
    expect(parseRelease('5.15.0-91-generic')).toEqual({ major: 5, minor: 15 });
    expect(parseRelease('weird')).toBeNull();
    expect(atLeast({ major: 6, minor: 1 })).toBe(true);
    expect(atLeast({ major: 6, minor: 0 })).toBe(false);
    expect(atLeast({ major: 5, minor: 19 })).toBe(false);
    expect(atLeast({ major: 7, minor: 0 })).toBe(true);
  });

  it('says what an older kernel lacks', () => {
    expect(missingOn({ major: 5, minor: 15 })).toEqual(['BPF_F_NO_PREALLOC hash maps in perf_event programs (6.1)']);
    expect(missingOn({ major: 5, minor: 10 })).toEqual([
      'bpf_get_current_task_btf (5.11)',
      'global BPF functions with pointer arguments (5.12)',
      'bpf_task_pt_regs (5.15)',
      'BPF_F_NO_PREALLOC hash maps in perf_event programs (6.1)',
    ]);
    expect(missingOn({ major: 6, minor: 1 })).toEqual([]);
  });
});

describe('checks from readings', () => {
  it('passes every check on this kind of host but tracefs, which only warns', () => {
    const checks = hostChecks(host(), { cpus: 2 });
    expect(checks.map((c) => [c.id, c.level])).toEqual([
      ['root', 'pass'],
      ['kernel', 'pass'],
      ['btf', 'pass'],
      ['perf-paranoid', 'pass'],
      ['perf-events', 'pass'],
      ['uprobes', 'pass'],
      ['tracefs', 'warn'],
    ]);
    expect(checks[4].summary).toBe('perf events: cpu-clock sampling opened on 2 CPUs; no hardware events (a VM?), which sampling does not need');
    expect(checks[6].fix).toBe('mount -t tracefs nodev /sys/kernel/tracing');
    expect(essentialFailure(host())).toBeNull();
  });

  it('accepts CAP_SYS_ADMIN without root, warning when the lock files or the workers\' memory may be out of reach', () => {
    const full = bit(Cap.SYS_ADMIN) | bit(Cap.SYS_PTRACE) | bit(Cap.DAC_OVERRIDE);
    expect(checkRoot(host({ uid: 1000, capEff: full })).level).toBe('pass');
    const bare = checkRoot(host({ uid: 1000, capEff: bit(Cap.SYS_ADMIN) }));
    expect(bare.level).toBe('warn');
    expect(bare.summary).toContain('without CAP_SYS_PTRACE, CAP_DAC_OVERRIDE');
    expect(bare.fix).toBe('run it with sudo, or add CAP_SYS_PTRACE, CAP_DAC_OVERRIDE');
    expect(canLoadBpf({ capEff: bit(Cap.SYS_ADMIN) })).toBe(true);
  });

  it('warns about CAP_BPF with CAP_PERFMON: they load the programs, but uprobes may need CAP_SYS_ADMIN', () => {
    const r = host({ uid: 1000, capEff: bit(Cap.BPF) | bit(Cap.PERFMON) | bit(Cap.SYS_PTRACE) | bit(Cap.DAC_OVERRIDE) });
    expect(canLoadBpf(r)).toBe(true);
    const c = checkRoot(r);
    expect(c.level).toBe('warn');
    expect(c.summary).toBe(
      'running as uid 1000 with CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_OVERRIDE, without CAP_SYS_ADMIN: uprobes need CAP_SYS_ADMIN on Linux 6.16+ and recent stable kernels',
    );
    expect(c.fix).toBe('run it with sudo, or add CAP_SYS_ADMIN');
  });

  it('says which uprobe it created, or why it could not (CAP_SYS_ADMIN for EACCES)', () => {
    expect(checkUprobes(host(), { attached: 'libc.so.6:getpid in this process' }).summary).toBe(
      'uprobes: created one on libc.so.6:getpid in this process (uprobe PMU type 8)',
    );
    const denied = checkUprobes(host(), { error: 'libc.so.6:getpid in this process: attach uprobe ...: Permission denied', code: 'EACCES' });
    expect(denied).toMatchObject({ level: 'fail', exitCode: ExitCode.Permission });
    expect(denied.fix).toContain('CAP_SYS_ADMIN');
    expect(checkUprobes(host(), { error: 'Invalid argument', code: 'EINVAL' }).exitCode).toBe(ExitCode.KernelUnsupported);
    expect(checkUprobes(host()).summary).toBe('uprobes: the uprobe PMU is there (type 8; none created)');
  });

  it('fails without privileges: exit code 4, the profile command\'s old line', () => {
    const c = checkRoot(host({ uid: 65534, capEff: bit(2) /* CAP_DAC_READ_SEARCH */ }));
    expect(c.level).toBe('fail');
    expect(c.exitCode).toBe(ExitCode.Permission);
    expect(checkError(c).message).toBe('apisix-profile needs root (BPF, perf events, uprobes): run it with sudo');
    expect(checkError(c).exitCode).toBe(ExitCode.Permission);
    expect(checkRoot(host({ uid: 1000, capEff: bit(Cap.BPF) })).level).toBe('fail');
    expect(canLoadBpf({ capEff: bit(Cap.BPF) })).toBe(false);
  });

  it('fails for uid 0 without capabilities (an unprivileged container)', () => {
    const c = checkRoot(host({ uid: 0, capEff: 0n }));
    expect(c.level).toBe('fail');
    expect(c.summary).toBe('root (uid 0) but without CAP_SYS_ADMIN, or CAP_BPF and CAP_PERFMON (a container without privileges?)');
    expect(c.fix).toContain('--privileged');
  });

  it('fails kernels older than 6.1 with exit code 5 and says what they lack', () => {
    const c = checkKernel(host({ release: '5.15.0-91-generic' }));
    expect(c.level).toBe('fail');
    expect(c.exitCode).toBe(ExitCode.KernelUnsupported);
    expect(c.summary).toBe(
      'kernel 5.15.0-91-generic is older than 6.1, the oldest the BPF programs load on (it lacks BPF_F_NO_PREALLOC hash maps in perf_event programs (6.1))',
    );
    expect(checkError(c).message).toMatch(/^kernel 5\.15\.0-91-generic is too old: apisix-profile needs Linux 6\.1 or newer/);
    expect(checkKernel(host({ release: '6.1.0-57-amd64' })).level).toBe('pass');
    // A release that names no version: a warning, not a refusal.
    expect(checkKernel(host({ release: 'custom' })).level).toBe('warn');
  });

  it('words the BTF failure as the profile command did', () => {
    const none = checkBtf(host({ btf: { path: '/sys/kernel/btf/vmlinux', isDefault: true, present: false, bytes: null } }));
    expect(checkError(none).message).toBe('this kernel has no BTF (/sys/kernel/btf/vmlinux): a kernel built with CONFIG_DEBUG_INFO_BTF is needed');
    expect(checkError(none).exitCode).toBe(ExitCode.KernelUnsupported);
    const given = checkBtf(host({ btf: { path: '/nonexistent/vmlinux', isDefault: false, present: false, bytes: null } }));
    expect(checkError(given).message).toBe("no kernel BTF at /nonexistent/vmlinux: give --btf a vmlinux BTF file, or leave it out to use the running kernel's");
  });

  it('fails without the bpf() syscall, perf events or uprobes (exit code 5)', () => {
    for (const c of [
      checkBpfSyscall(host({ bpfSyscall: false })),
      checkPerfEvents(host({ softwarePmu: false }), null),
      checkUprobes(host({ uprobePmuType: null })),
    ]) {
      expect(c.level).toBe('fail');
      expect(c.exitCode).toBe(ExitCode.KernelUnsupported);
    }
  });

  it('reports a perf_event_open that failed, with the errno deciding the exit code', () => {
    const perm = checkPerfEvents(host(), { error: 'perf_event_open cpu-clock 1 Hz on cpu 0: Permission denied', code: 'EACCES' });
    expect(perm.level).toBe('fail');
    expect(perm.exitCode).toBe(ExitCode.Permission);
    expect(checkPerfEvents(host(), { error: 'No such device', code: 'ENODEV' }).exitCode).toBe(ExitCode.KernelUnsupported);
    // Not tried: the sysfs directory is the evidence, and the line says so.
    expect(checkPerfEvents(host({ hardwarePmu: true }), null).summary).toBe(
      'perf events: the software PMU is there (/sys/bus/event_source/devices/software, not opened); hardware events too',
    );
  });

  it('only warns about perf_event_paranoid, and only when it limits us', () => {
    expect(checkPerfParanoid(host({ perfEventParanoid: 3 })).level).toBe('pass');
    const user = checkPerfParanoid(host({ uid: 1000, capEff: 0n, perfEventParanoid: 2 }));
    expect(user.level).toBe('warn');
    expect(user.summary).toContain('perf_event_paranoid is 2');
    expect(checkPerfParanoid(host({ uid: 1000, capEff: 0n, perfEventParanoid: 1 })).level).toBe('pass');
    expect(checkPerfParanoid(host({ perfEventParanoid: null })).level).toBe('warn');
  });

  it('reports a mounted tracefs', () => {
    expect(checkTracefs(host({ tracefs: '/sys/kernel/tracing' }))).toMatchObject({ level: 'pass', summary: 'tracefs mounted at /sys/kernel/tracing' });
  });

  it('gives the profile command the first essential failure, privileges first', () => {
    const r = host({ uid: 1000, capEff: 0n, release: '5.10.0', uprobePmuType: null });
    expect(essentialFailure(r)?.id).toBe('root');
    expect(essentialFailure({ ...r, uid: 0, capEff: ALL_CAPS })?.id).toBe('kernel');
    expect(essentialFailure(host({ uprobePmuType: null, softwarePmu: false }))?.id).toBe('perf-events');
    // tracefs is not essential.
    expect(essentialFailure(host({ tracefs: null }))).toBeNull();
  });
});

describe('APISIX_PROFILE_HIDE_FEATURES (the test seam)', () => {
  it('parses a comma list, ignoring spaces, case and empty items', () => {
    expect([...hiddenFeatures({ APISIX_PROFILE_HIDE_FEATURES: ' BTF, uprobes,,perf-events ' })]).toEqual(['btf', 'uprobes', 'perf-events']);
    expect(hiddenFeatures({}).size).toBe(0);
  });

  it('refuses an unknown name with exit code 2 (a typo would hide nothing)', () => {
    expect(() => hiddenFeatures({ APISIX_PROFILE_HIDE_FEATURES: 'btf,uprobe' })).toThrow(/unknown feature uprobe \(known: root, kernel, btf/);
    let code: number | undefined;
    try {
      hiddenFeatures({ APISIX_PROFILE_HIDE_FEATURES: 'nope' });
    } catch (err) {
      code = (err as { exitCode: number }).exitCode;
    }
    expect(code).toBe(ExitCode.BadArguments);
  });

  it('makes each hidden feature read as absent, and the checks say it was hidden', () => {
    const all = hideFeatures(host({ tracefs: '/sys/kernel/tracing' }), new Set(['root', 'kernel', 'btf', 'bpf', 'perf-events', 'uprobes', 'tracefs'] as const));
    expect(all.capEff).toBe(0n);
    expect(all.release).toBeNull();
    expect(all.btf.present).toBe(false);
    expect(all.bpfSyscall).toBe(false);
    expect(all.softwarePmu).toBe(false);
    expect(all.uprobePmuType).toBeNull();
    expect(all.tracefs).toBeNull();
    for (const c of [checkRoot(all), checkKernel(all), checkBtf(all), checkBpfSyscall(all), checkPerfEvents(all, null), checkUprobes(all), checkTracefs(all)]) {
      expect(c.summary).toContain('hidden by APISIX_PROFILE_HIDE_FEATURES');
    }
  });

  it('hiding BTF fails the profile start-up check with exit code 5 and a line naming BTF', () => {
    const failed = essentialFailure(hideFeatures(host(), new Set(['btf'] as const)));
    expect(failed?.id).toBe('btf');
    const err = checkError(failed!);
    expect(err.exitCode).toBe(ExitCode.KernelUnsupported);
    expect(err.message).toMatch(/BTF/);
    expect(err.message).not.toContain('\n');
  });

  it('leaves what is not hidden alone', () => {
    const r = hideFeatures(host(), new Set(['tracefs'] as const));
    expect(essentialFailure(r)).toBeNull();
    expect(r.btf.present).toBe(true);
  });
});
