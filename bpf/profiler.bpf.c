// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * apisix-profile: samples target processes on every CPU, walks their Lua
 * frames (LuaJIT 2.1) and native frames, and counts unique stacks in the
 * kernel. Settings, then maps, then programs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "profiler.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct profiler_config cfg = {};

/* --- maps ---------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCS);
	__type(key, __u32);
	__type(value, struct proc_state);
} procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_LJ_TABLES);
	__type(key, __u32);
	__type(value, struct lj_offsets);
} lj_tables SEC(".maps");

/*
 * Two count maps: the programs add to the active one while user space drains
 * the other, so draining never races with counting and loses nothing.
 */
struct counts_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sample_key);
	__type(value, __u64);
};
struct counts_map counts0 SEC(".maps");
struct counts_map counts1 SEC(".maps");

/* control[0]: which counts map is active (0 or 1). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} control SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* Compact .eh_frame rows of every file the targets map, back to back. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_UNWIND_ROWS);
	__type(key, __u32);
	__type(value, struct unwind_row);
} unwind_rows SEC(".maps");

/* Per target process (tgid): its executable mappings and their rows. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCS);
	__type(key, __u32);
	__type(value, struct proc_mappings);
} proc_maps SEC(".maps");

/* A sample_key is too large for the 512-byte BPF stack: build it here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sample_key);
} scratch SEC(".maps");

/* Never written: the all-zero key that clear_key() copies. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sample_key);
} zero_key SEC(".maps");

/* --- helpers ------------------------------------------------------------- */

static __always_inline void stat_add(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &index);

	if (value)
		*value += 1;
}

/* Reads a GCRef/MRef: 64 bits in GC64 builds, 32 bits otherwise. */
static __always_inline int read_ref(const struct lj_offsets *off, __u64 addr, __u64 *out)
{
	if (off->gc64) {
		return bpf_probe_read_user(out, sizeof(*out), (void *)addr);
	} else {
		__u32 v = 0;
		int err = bpf_probe_read_user(&v, sizeof(v), (void *)addr);

		*out = v;
		return err;
	}
}

static __always_inline int read_u64(__u64 addr, __u64 *out)
{
	return bpf_probe_read_user(out, sizeof(*out), (void *)addr);
}

#include "lua_walk.bpf.h"
#include "unwind.bpf.h"

/* --- programs ------------------------------------------------------------ */

/*
 * LuaJIT API functions take the lua_State as their first argument. The
 * first one seen per process is enough: user space reads its glref with
 * each candidate layout, keeps the one that validates, sets g, and detaches
 * these probes so requests stop paying for the trap.
 */
SEC("uprobe")
int BPF_KPROBE(learn_global_state, void *L)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct proc_state *st = bpf_map_lookup_elem(&procs, &tgid);

	if (!st)
		return 0;
	stat_add(STAT_UPROBE_HITS);
	__sync_fetch_and_add(&st->uprobe_hits, 1);
	if (!st->L && L)
		st->L = (__u64)L;
	return 0;
}

/*
 * Equal stacks must give equal keys, so every unused slot is zeroed. BPF
 * has no memset for 1.5 KB; copying from an entry nobody writes is one call.
 */
static __always_inline int clear_key(struct sample_key *key)
{
	__u32 zero = 0;
	struct sample_key *blank = bpf_map_lookup_elem(&zero_key, &zero);

	if (!blank)
		return -1;
	return bpf_probe_read_kernel(key, sizeof(*key), blank);
}

static __always_inline void count_sample(struct sample_key *key)
{
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&control, &zero);
	void *map = (active && *active) ? (void *)&counts1 : (void *)&counts0;
	__u64 one = 1, *count;

	count = bpf_map_lookup_elem(map, key);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return;
	}
	if (bpf_map_update_elem(map, key, &one, BPF_NOEXIST) == 0)
		return;
	/* Lost the race to insert the same key on another CPU: add to it. */
	count = bpf_map_lookup_elem(map, key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		stat_add(STAT_LOST_MAP_FULL);
}

SEC("perf_event")
int sample_stack(struct bpf_perf_event_data *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct proc_state *st = bpf_map_lookup_elem(&procs, &tgid);
	struct sample_key *key;
	struct pt_regs *uregs;
	__u32 zero = 0;
	long n;

	if (!st)
		return 0;
	key = bpf_map_lookup_elem(&scratch, &zero);
	if (!key)
		return 0;
	if (clear_key(key))
		return 0;
	key->pid = tgid;
	key->vmstate = VMSTATE_NONE;
	stat_add(STAT_SAMPLES);

	if (cfg.kernel_stacks) {
		n = bpf_get_stack(ctx, key->kernel, sizeof(key->kernel), 0);
		if (n > 0)
			key->n_kernel = n / sizeof(__u64);
	}
	uregs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (st->g) {
		walk_lua(st, uregs, key);
	} else if (st->table != PROC_NO_LUAJIT) {
		/*
		 * A process that never calls the LuaJIT API while we watch (a
		 * script in one long lua_pcall) still runs the VM, which keeps
		 * GG_State's dispatch table in r14: offer it to user space.
		 */
		st->dispatch = BPF_CORE_READ(uregs, r14);
		bpf_probe_read_user(st->stack_words, sizeof(st->stack_words),
				    (void *)BPF_CORE_READ(uregs, sp));
		key->flags |= SAMPLE_NO_G;
	} else {
		key->flags |= SAMPLE_NO_G;
	}

	if (cfg.unwind_cfi && bpf_map_lookup_elem(&proc_maps, &tgid)) {
		unwind_user(st, uregs, key);
	} else {
		/*
		 * The interrupted instruction, then what frame pointers give;
		 * user space decides how much of it to trust.
		 */
		n = bpf_get_stack(ctx, key->user, sizeof(key->user), BPF_F_USER_STACK);
		if (n > 0)
			key->n_user = n / sizeof(__u64);
		else
			stat_add(STAT_USER_STACK_FAIL);
	}

	count_sample(key);
	return 0;
}
