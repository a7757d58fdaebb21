// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * The bench's floor for off-CPU tools (bench/phases.mjs offCpuCost): a
 * sched_switch program that does nothing. What it costs is the hook
 * itself, which every off-CPU tool pays before doing any work.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/sched_switch")
int BPF_PROG(bare_switch)
{
	return 0;
}
