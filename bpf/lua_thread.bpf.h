/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Which lua_State is running. G->cur_L is right while the VM runs, but the
 * VM sets it only when it enters a thread (vm_resume, vm_pcall, vm_call,
 * vm_cpcall) and when a C function it called returns. So after a nested
 * entry for another thread returns to C, cur_L keeps naming that thread
 * until the C function returns to the VM. ngx_lua does this on every
 * response: ngx.say/ngx.eof in a request's coroutine run the body filter
 * with lua_pcall on the main thread, and the socket write that follows is
 * sampled with cur_L = the main thread, whose cframe is NULL again.
 *
 * The native stack knows better. Every VM entry leaves a C frame whose
 * saved slots (lj_frame.h, x86-64 POSIX) hold the lua_State it entered
 * (SAVE_L at CFRAME_OFS_L), and while it runs that thread's L->cframe
 * points back at the frame (CFRAME_RESUME/UNWIND_FF in the low bits). The
 * innermost VM frame above the sampled rsp names the running thread: it
 * is found by unwinding the native stack up to it with the same rows and
 * steps the native walk uses, and trusted only if the thread it names is
 * of this global_State and its cframe is exactly that frame.
 */
#ifndef APISIX_PROFILE_LUA_THREAD_BPF_H
#define APISIX_PROFILE_LUA_THREAD_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "profiler.h"
#include "walk_state.bpf.h"
#include "maps.bpf.h"
#include "helpers.bpf.h"
#include "unwind.bpf.h"

/*
 * lj_frame.h, x86-64 POSIX, the same in every LuaJIT 2.1 release we
 * support (OpenResty's 2020-2024 and upstream's): SAVE_L is 8 bytes at
 * rsp+16 in GC64 builds (vm_x64.dasc), 4 bytes at rsp+24 otherwise
 * (vm_x86.dasc); L->cframe carries two flag bits.
 */
#define LJ_CFRAME_OFS_L_GC64 16
#define LJ_CFRAME_OFS_L_32 24
#define LJ_CFRAME_RAWMASK (~(__u64)3)
/* VM frames looked at before giving up (FFI's call frame is one that is not an entry). */
#define LJ_THREAD_TRIES 4

/* What the search found, per CPU (a map value: the verifier tracks none of it). */
struct lua_thread_search {
	__u64 L;      /* the running thread, 0 until found */
	__u32 tries;  /* VM frames checked */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lua_thread_search);
} lua_thread_searches SEC(".maps");

/*
 * Whether the VM frame at sp (the native walk's current frame, inside the
 * VM's code) is an entry into a thread of G that still runs there; sets
 * the search's L if so.
 */
static __always_inline bool vm_entry_thread(const struct lj_offsets *off, __u64 G, __u64 sp,
					    struct lua_thread_search *s)
{
	__u64 L = 0, g = 0, cframe = 0;

	if (read_ref(off, sp + (off->gc64 ? LJ_CFRAME_OFS_L_GC64 : LJ_CFRAME_OFS_L_32), &L) || !L)
		return false;
	if (read_ref(off, L + off->L_glref, &g) || g != G)
		return false;
	if (read_u64(L + off->L_cframe, &cframe) || (cframe & LJ_CFRAME_RAWMASK) != sp)
		return false;
	s->L = L;
	return true;
}

/*
 * One step of the search: look at the native walk's current frame, then
 * step past it. Returns 1 to stop (found, or the walk ended). A global
 * function, checked once (see lua_walk_step).
 */
__noinline int lua_thread_step(__u64 G, __u32 table)
{
	struct lua_thread_search *s;
	struct walk_scratch *ws;
	struct lj_offsets *off;
	struct native_walk *u;
	__u32 zero = 0;
	__u64 at;

	ws = bpf_map_lookup_elem(&walks, &zero);
	s = bpf_map_lookup_elem(&lua_thread_searches, &zero);
	off = bpf_map_lookup_elem(&lj_tables, &table);
	if (!ws || !s || !off)
		return 1;
	u = &ws->native;
	/* A return address points after the call: the call is in the VM. */
	at = u->n ? u->ip - 1 : u->ip;
	if (at >= u->vm_ip && at < u->vm_hi) {
		if (s->tries >= LJ_THREAD_TRIES)
			return 1;
		s->tries++;
		if (vm_entry_thread(off, G, u->sp, s))
			return 1;
	}
	return native_walk_step();
}

/*
 * The thread whose VM entry is innermost on the native stack, or 0 (no
 * such entry, no CFI for this process, or a frame the walk cannot pass).
 * Uses the native walk's state; unwind_user starts it afresh afterwards.
 */
static __always_inline __u64 running_thread_on_stack(struct proc_state *st, struct pt_regs *uregs,
						     __u32 tgid)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_struct *task = bpf_get_current_task_btf();
	struct lua_thread_search *s;
	struct proc_mappings *pm;
	struct walk_scratch *ws;
	struct native_walk *u;
	__u32 zero = 0;

	if (!cfg.unwind_cfi)
		return 0;
	pm = bpf_map_lookup_elem(&proc_maps, &tgid);
	ws = bpf_map_lookup_elem(&walks, &zero);
	s = bpf_map_lookup_elem(&lua_thread_searches, &zero);
	if (!pm || !ws || !s)
		return 0;
	s->L = 0;
	s->tries = 0;
	u = &ws->native;
	/*
	 * As walk_stack: the main thread's stack ends by mm->start_stack.
	 * VMSTATE_NONE: not in a trace, cur_L is right while one runs. (So a
	 * trace's own frame is not passed: C it called through the FFI that
	 * ran another thread keeps the old answer, no Lua frames.)
	 */
	native_walk_begin(u, st, pm, uregs, ((__u32)pid_tgid == tgid && task->mm) ? task->mm->start_stack : 0, 0, tgid,
			  VMSTATE_NONE);
	for (int i = 0; i < MAX_USER_FRAMES + 1; i++) {
		if (lua_thread_step(st->g, st->table))
			break;
	}
	return s->L;
}

#endif
