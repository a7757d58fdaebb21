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
#include "maps.bpf.h"
#include "helpers.bpf.h"
#include "lua_walk.bpf.h"
#include "unwind.bpf.h"
#include "request_uri.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

#define E_EXIST 17
#define E_2BIG 7
#define TASK_DEAD_STATE 0x80 /* TASK_DEAD: the thread is exiting, it never comes back */
/* x86-64 system call numbers of the event loop's wait. */
#define NR_EPOLL_WAIT 232
#define NR_EPOLL_PWAIT 281
#define NR_EPOLL_PWAIT2 441

/* The counts map the programs add to now (user space flips it to drain the other). */
static __always_inline void *active_counts(void)
{
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&control, &zero);

	return (active && *active) ? (void *)&counts1 : (void *)&counts0;
}

/*
 * Copies the stack into `stacks` unless user space has named its id
 * already. Returns 1 when this call inserted the copy, 0 when none was
 * needed or one was there, < 0 when it could not be stored (counted).
 */
static __always_inline int store_stack(struct sample_key *key, __u64 id)
{
	int err;

	if (bpf_map_lookup_elem(&known, &id))
		return 0;
	/*
	 * An int: kernels before 6.4 call the hash map's update directly
	 * and it returns an int, so the upper half of the 64-bit result
	 * is not a sign extension (on 6.1 EEXIST read as 4294967279, and
	 * every sample of a stack still held from the last drain period
	 * was counted as lost).
	 */
	err = (int)bpf_map_update_elem(&stacks, &id, key, BPF_NOEXIST);
	if (!err)
		return 1;
	if (err == -E_EXIST)
		return 0;
	return err;
}

/* Adds weight to id's count in the active counts map. */
static __always_inline int add_count(void *map, __u64 id, __u64 weight)
{
	__u64 *count = bpf_map_lookup_elem(map, &id);

	if (count) {
		__sync_fetch_and_add(count, weight);
		return 0;
	}
	if (bpf_map_update_elem(map, &id, &weight, BPF_NOEXIST) == 0)
		return 0;
	/* Lost the race to insert the same id on another CPU: add to it. */
	count = bpf_map_lookup_elem(map, &id);
	if (!count)
		return -1;
	__sync_fetch_and_add(count, weight);
	return 0;
}

/*
 * The common case is one lookup by an 8-byte id. The stack itself is copied
 * only for the first sample of an id in a drain period, and not at all once
 * user space has named it.
 */
static __always_inline void count_sample(struct sample_key *key, __u64 id)
{
	void *map = active_counts();
	__u64 one = 1, *count;
	int err;

	count = bpf_map_lookup_elem(map, &id);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return;
	}
	/* The stack goes in before its count, so a drained id always has one. */
	err = store_stack(key, id);
	if (err < 0) {
		/* Full (E2BIG), or no element could be allocated (ENOMEM). */
		stat_add(err == -E_2BIG ? STAT_LOST_MAP_FULL : STAT_LOST_NO_MEMORY);
		return;
	}
	if (bpf_map_update_elem(map, &id, &one, BPF_NOEXIST) == 0)
		return;
	/* Lost the race to insert the same id on another CPU: add to it. */
	count = bpf_map_lookup_elem(map, &id);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		stat_add(STAT_LOST_MAP_FULL);
}

/* The sample interrupted user code: there is no kernel stack to record. */
static __always_inline bool in_user_mode(struct bpf_perf_event_data *ctx)
{
	/* Context fields are read 8 bytes at a time: cs shares its word. */
	__u64 cs = *(volatile __u64 *)((void *)&ctx->regs + __builtin_offsetof(struct pt_regs, cs));

	return (cs & 3) == 3;
}

/*
 * The current thread's whole stack into key: kernel frames (when asked),
 * Lua frames, native frames. Returns its stack id. Shared by the CPU
 * sample and the off-CPU switch: in both, the thread walked is current.
 */
static __always_inline __u64 walk_stack(void *ctx, struct proc_state *st, struct sample_key *key,
					__u64 pid_tgid, bool kernel, __u32 extra_flags)
{
	__u32 tgid = pid_tgid >> 32;
	struct task_struct *task;
	__u64 stack_top = 0;
	struct proc_mappings *pm;
	struct pt_regs *uregs;
	__u64 id;
	long n;

	key->pid = tgid;
	key->flags = extra_flags;
	key->vmstate = VMSTATE_NONE;
	key->n_kernel = 0;
	key->n_user = 0;
	key->n_lua = 0;
	key->pad0 = 0;
	key->label = 0;
	id = stack_id_mix(0, tgid);

	if (kernel) {
		n = bpf_get_stack(ctx, key->kernel, sizeof(key->kernel), 0);
		if (n > 0)
			key->n_kernel = n / sizeof(__u64);
		for (int i = 0; i < MAX_KERNEL_FRAMES && i < key->n_kernel; i++)
			id = stack_id_mix(id, key->kernel[i]);
	}
	task = bpf_get_current_task_btf();
	uregs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (st->g) {
		id = walk_lua(st, uregs, key, id);
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

	pm = cfg.unwind_cfi ? bpf_map_lookup_elem(&proc_maps, &tgid) : NULL;
	if (pm) {
		/*
		 * The main thread's stack ends above where the kernel put argc
		 * at exec (mm->start_stack); other threads' stacks are elsewhere.
		 */
		if ((__u32)pid_tgid == tgid && task->mm)
			stack_top = task->mm->start_stack;
		id = unwind_user(st, pm, uregs, key, stack_top, id);
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
		for (int i = 0; i < MAX_USER_FRAMES && i < key->n_user; i++)
			id = stack_id_mix(id, key->user[i]);
	}

	/* --label uri: the same frames in another request's URI are another stack. */
	if (cfg.uri_labels && (key->flags & SAMPLE_IN_LUA)) {
		key->label = request_uri_label(tgid);
		if (key->label)
			id = stack_id_mix(id, key->label);
	}
	/* The frame counts end the id, so frames cannot move between kinds. */
	id = stack_id_mix(id, ((__u64)key->flags << 32) | (__u32)key->vmstate);
	return stack_id_mix(id, ((__u64)key->n_kernel << 32) | ((__u64)key->n_user << 16) | key->n_lua);
}

SEC("perf_event")
int sample_stack(struct bpf_perf_event_data *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct proc_state *st = bpf_map_lookup_elem(&procs, &tgid);
	struct sample_key *key;
	__u32 zero = 0;
	__u64 id;

	if (!st)
		return 0;
	key = bpf_map_lookup_elem(&scratch, &zero);
	if (!key)
		return 0;
	stat_add(STAT_SAMPLES);
	id = walk_stack(ctx, st, key, pid_tgid, cfg.kernel_stacks && !in_user_mode(ctx), 0);
	count_sample(key, id);
	return 0;
}

/* --- off-CPU: the scheduler's switch ------------------------------------- */

/* Whether pid is a target's, from the bitmap (no hashing). */
static __always_inline bool is_target_pid(__u32 pid)
{
	__u32 word = pid / 64;
	__u64 *bits = bpf_map_lookup_elem(&target_pids, &word);

	return bits && ((*bits >> (pid % 64)) & 1);
}

/*
 * A target thread comes back: its time off the CPU goes to the stack it
 * left in. Any other thread costs one bit test, a CPU's idle task (pid 0,
 * half of all switches on a machine that is not saturated) none.
 * The idle wait's time stays in the entry: this runs on the worker's own
 * account (the kernel has started its clock), once per request on a busy
 * gateway, so it does without the counts map there.
 */
static __noinline void switched_in(__u32 tgid, __u32 tid)
{
	struct offcpu_thread *t;
	__u64 delta, id;

	if (!tid || !is_target_pid(tgid))
		return;
	t = bpf_map_lookup_elem(&offcpu_threads, &tid);
	if (!t || !t->start_ns)
		return;
	delta = bpf_ktime_get_ns() - t->start_ns;
	id = t->id;
	t->start_ns = 0;
	if (!id) {
		stat_add_n(STAT_PREEMPTED_NS, delta);
		return;
	}
	/* Only this thread's own switches write its entry: no atomic needed. */
	if (id == t->idle.id) {
		t->idle_ns += delta;
		return;
	}
	if (add_count(active_counts(), id, delta))
		stat_add(STAT_OFFCPU_LOST);
}

/* The idle time summed in the entry goes to the counts (before its site changes or the thread exits). */
static __noinline void flush_idle(struct offcpu_thread *t)
{
	if (!t->idle_ns || !t->idle.id)
		return;
	if (add_count(active_counts(), t->idle.id, t->idle_ns))
		stat_add(STAT_OFFCPU_LOST);
	t->idle_ns = 0;
}

/*
 * The thread's entry, made on its first switch out (preallocated: no
 * allocation here). Not inlined: the zeroed entry stays off the switch
 * program's own frame, which the walks' frames add to.
 */
static __noinline struct offcpu_thread *offcpu_thread_of(__u32 tid)
{
	struct offcpu_thread *t = bpf_map_lookup_elem(&offcpu_threads, &tid);
	struct offcpu_thread fresh = {};

	if (t)
		return t;
	bpf_map_update_elem(&offcpu_threads, &tid, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&offcpu_threads, &tid);
}

/*
 * 0: not the event loop's wait. 1: it is (site holds where), walk it. 2:
 * the thread waited here before with the same instruction, stack pointer
 * and frame pointer, and that wait's walk found no Lua running:
 * t->idle.id is its id, no walk needed.
 *
 * The registers are enough to rule Lua out: Lua blocking in epoll would
 * have the VM's C frames between the event loop and the system call, so
 * the call would sit deeper on the stack than the loop's own wait (LuaJIT
 * coroutines share the one C stack). Only the idle wait is shortcut: any
 * other blocking call is walked, its kernel frames too, every time.
 *
 * The idle stack's copy needs no check: it was stored (or named) when the
 * site was set, and user space deletes a copy only after a drain has seen
 * its id in the counts, which the idle time reaches only when the site is
 * replaced or the thread exits (flush_idle).
 *
 * The registers are read directly (the task's pt_regs is a kernel pointer
 * the verifier knows), not through probe-read calls. Not inlined: its
 * locals stay off the switch program's own frame, which with the walks'
 * frames must fit the 512-byte stack (6.1 rounds each frame up to 32
 * bytes).
 */
static __noinline int idle_wait(struct task_struct *task, struct offcpu_thread *t,
			       struct offcpu_idle_site *site)
{
	struct pt_regs *uregs = (struct pt_regs *)bpf_task_pt_regs(task);
	__u64 nr = uregs->orig_ax;

	if (nr != NR_EPOLL_WAIT && nr != NR_EPOLL_PWAIT && nr != NR_EPOLL_PWAIT2)
		return 0;
	site->ip = uregs->ip;
	site->sp = uregs->sp;
	site->bp = uregs->bp;
	if (!t->idle.id || t->idle.ip != site->ip || t->idle.sp != site->sp || t->idle.bp != site->bp)
		return 1;
	site->id = t->idle.id;
	return 2;
}

/*
 * A target thread leaves the CPU. Blocked (not preempted, not runnable):
 * its stack now, whose copy goes into `stacks` at once, as a sample's
 * does, so the count added at the switch back always finds it.
 */
static __always_inline void switched_out(void *ctx, bool preempt, struct task_struct *prev,
					 unsigned int prev_state)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), id, now;
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid, zero = 0;
	struct offcpu_thread *t;
	struct walk_scratch *ws;
	struct proc_state *st;
	struct offcpu_walk *o;
	struct sample_key *key;
	int stored;

	/*
	 * The idle task (pid 0) is never a target. The bitmap is set and
	 * cleared with the process's `procs` entry, which only a walk needs.
	 */
	if (!tgid || !is_target_pid(tgid))
		return;
	/* In sched_switch, prev is current: its registers and stack are ours to walk. */
	if (prev->pid != tid)
		return;
	if (prev_state & TASK_DEAD_STATE) {
		t = bpf_map_lookup_elem(&offcpu_threads, &tid);
		if (t)
			flush_idle(t);
		bpf_map_delete_elem(&offcpu_threads, &tid);
		return;
	}
	t = offcpu_thread_of(tid);
	if (!t) {
		stat_add(STAT_OFFCPU_LOST);
		return;
	}
	now = bpf_ktime_get_ns();
	if (preempt || prev_state == 0) {
		stat_add(STAT_SWITCHES_PREEMPTED);
		t->id = 0;
		t->start_ns = now;
		return;
	}
	stat_add(STAT_SWITCHES_BLOCKED);
	ws = bpf_map_lookup_elem(&walks, &zero);
	if (!ws)
		return;
	o = &ws->offcpu;
	o->idle = idle_wait(prev, t, &o->site);
	if (o->idle == 2) {
		stat_add(STAT_OFFCPU_IDLE_REUSED);
		t->id = o->site.id;
		t->start_ns = now;
		return;
	}
	st = bpf_map_lookup_elem(&procs, &tgid);
	key = bpf_map_lookup_elem(&scratch, &zero);
	if (!st || !key)
		return;
	/*
	 * With CPU sampling on too (wall mode), a sample can interrupt this
	 * walk on this CPU and reuse the per-CPU scratch and walk state. It
	 * counts STAT_SAMPLES on this CPU first: a change means this stack
	 * may be torn, so it is dropped and counted.
	 */
	o->start_ns = now;
	o->samples_before = stat_get(STAT_SAMPLES);
	id = walk_stack(ctx, st, key, pid_tgid, cfg.kernel_stacks, SAMPLE_OFF_CPU);
	/* Only ws and key are kept across the walk: the rest is read again. */
	stored = store_stack(key, id);
	if (stat_get(STAT_SAMPLES) != o->samples_before) {
		if (stored == 1)
			bpf_map_delete_elem(&stacks, &id);
		stat_add(STAT_OFFCPU_INTERRUPTED);
		return;
	}
	if (stored < 0) {
		stat_add(STAT_OFFCPU_LOST);
		return;
	}
	tid = (__u32)bpf_get_current_pid_tgid();
	t = bpf_map_lookup_elem(&offcpu_threads, &tid);
	if (!t)
		return;
	if (o->idle && key->n_lua == 0 && !(key->flags & (SAMPLE_IN_LUA | SAMPLE_NO_G))) {
		o->site.id = id;
		/* The same stack from new registers keeps its time (and its copy). */
		if (t->idle.id != id)
			flush_idle(t);
		t->idle = o->site;
	}
	t->id = id;
	t->start_ns = o->start_ns;
}

/*
 * Every context switch on every CPU: a bit of `target_pids` for the thread
 * coming in and one for the process going out; hash lookups only for
 * targets. The clock is read only for targets' switches, a few of all
 * those on a machine. The last argument (prev_state) exists since 5.18.
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(offcpu_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	switched_in(next->tgid, next->pid);
	switched_out(ctx, preempt, prev, prev_state);
	return 0;
}
