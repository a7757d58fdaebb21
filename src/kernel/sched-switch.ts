// doctor's check of what `--mode off-cpu` and `wall` need beyond a CPU
// profile: the scheduler's switch as a BTF tracepoint (tp_btf/sched_switch),
// attached once through the addon and detached again.
import type { Check } from './features.js';

/** What attaching the switch program gave, when it was tried. */
export type SwitchTry = { attached: true } | { error: string; code?: string } | null;

/** A warning at worst: CPU profiles do not need it. */
export function checkSchedSwitch(tried: SwitchTry): Check {
  if (tried && 'attached' in tried) {
    return { id: 'sched-switch', level: 'pass', summary: 'off-CPU: the scheduler switch tracepoint (tp_btf/sched_switch) attached', details: { tried } };
  }
  if (tried && 'error' in tried) {
    return {
      id: 'sched-switch',
      level: 'warn',
      summary: `off-CPU: attaching tp_btf/sched_switch failed: ${tried.error} (--mode off-cpu and wall cannot run; CPU profiles can)`,
      fix: 'a kernel with BTF and BPF trampolines (CONFIG_DEBUG_INFO_BTF, x86-64) is needed for --mode off-cpu',
      details: { tried },
    };
  }
  return { id: 'sched-switch', level: 'pass', summary: 'off-CPU: the scheduler switch tracepoint was not tried (the BPF programs did not load)', details: { tried } };
}
