/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * Native user-stack unwinding from .eh_frame rows that user space compiled
 * (src/unwind/rows.ts) and loaded per file into unwind_rows, with each
 * process's executable mappings in proc_maps. Frame pointers only where no
 * CFI covers a PC. Compiled trace code (anonymous memory, no CFI) sits on
 * the VM's C frame lowered by the trace's spadjust, so it continues with the
 * VM's own row.
 */
#ifndef APISIX_PROFILE_UNWIND_BPF_H
#define APISIX_PROFILE_UNWIND_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "profiler.h"
#include "walk_state.bpf.h"
#include "maps.bpf.h"
#include "helpers.bpf.h"

#define LJ_TRACE_ENTRY_SP 16

/* The mapping holding ip, by binary search over the sorted list. */
static __always_inline struct exec_mapping *find_mapping(struct proc_mappings *pm, __u64 ip)
{
	__u32 lo = 0, hi = pm->n, mid;

	if (hi > MAX_MAPPINGS)
		hi = MAX_MAPPINGS;
	for (int i = 0; i < 7 && lo < hi; i++) {
		mid = (lo + hi) / 2;
		if (mid >= MAX_MAPPINGS)
			return NULL;
		if (ip < pm->m[mid].start)
			hi = mid;
		else if (ip >= pm->m[mid].end)
			lo = mid + 1;
		else
			return &pm->m[mid];
	}
	return NULL;
}

/* The row covering vaddr: the last one in the mapping's range with pc <= vaddr. */
static __always_inline struct unwind_row *find_row(struct exec_mapping *m, __u64 vaddr)
{
	__u32 lo = m->row_first, hi = m->row_first + m->row_count, mid, idx;
	struct unwind_row *row;

	if (!m->row_count)
		return NULL;
	for (int i = 0; i < 21 && hi - lo > 1; i++) {
		mid = lo + (hi - lo) / 2;
		row = bpf_map_lookup_elem(&unwind_rows, &mid);
		if (!row)
			return NULL;
		if (row->pc <= vaddr)
			lo = mid;
		else
			hi = mid;
	}
	idx = lo;
	row = bpf_map_lookup_elem(&unwind_rows, &idx);
	if (!row || row->pc > vaddr)
		return NULL;
	return row;
}

/*
 * Resolves addr to its row into walks[0].row: 0 when addr is in a known
 * mapping of pid (a row of kind UNWIND_UNDEFINED when the mapping has no
 * CFI there), -1 when it is not (e.g. trace machine code). Found rows are
 * cached in row_cache. A global function: its two binary searches are
 * checked once, not once for every state of the walk around them.
 */
__noinline int resolve_row(__u32 pid, __u32 generation, __u64 addr)
{
	__u32 slot_index = ((addr ^ pid) * 0x9e3779b97f4a7c15ULL) >> (64 - ROW_CACHE_BITS);
	struct row_cache_slot *slot = bpf_map_lookup_elem(&row_cache, &slot_index);
	struct walk_scratch *ws;
	struct proc_mappings *pm;
	struct exec_mapping *m;
	struct unwind_row *row, *out;
	__u32 zero = 0;

	ws = bpf_map_lookup_elem(&walks, &zero);
	if (!ws)
		return -1;
	out = &ws->row;
	if (slot && slot->addr == addr && slot->pid == pid && slot->generation == generation) {
		*out = slot->row;
		return 0;
	}
	pm = bpf_map_lookup_elem(&proc_maps, &pid);
	if (!pm)
		return -1;
	m = find_mapping(pm, addr);
	if (!m)
		return -1;
	row = find_row(m, addr - m->bias);
	if (row) {
		*out = *row;
	} else {
		out->pc = 0;
		out->cfa_offset = 0;
		out->kind = UNWIND_UNDEFINED;
		out->ra_offset = 0;
		out->rbp_offset = 0;
	}
	if (slot) {
		slot->addr = addr;
		slot->pid = pid;
		slot->generation = generation;
		slot->row = *out;
	}
	return 0;
}

/* Eight bytes of user stack at addr. */
static __always_inline int read_stack_u64(const struct native_walk *u, __u64 addr, __u64 *out)
{
	struct u64_pair v = {};

	if (read_windowed(WINDOW_NATIVE, addr, u->stack_top, &v) < 0)
		return -1;
	*out = v.lo;
	return 0;
}

/* Sixteen bytes of user stack at addr. */
static __always_inline int read_stack_pair(const struct native_walk *u, __u64 addr,
					   struct u64_pair *out)
{
	return read_windowed(WINDOW_NATIVE, addr, u->stack_top, out) == 0 ? 0 : -1;
}

/* The trace being run lowered rsp below the VM's frame by its spadjust. */
static __always_inline int trace_spadjust(struct native_walk *u, __u64 *adjust)
{
	struct lj_offsets *off = bpf_map_lookup_elem(&lj_tables, &u->table);
	__u64 J, traces = 0, T = 0;
	__u16 spadjust = 0;

	if (!off || off->J_trace < 0 || u->vmstate <= 0)
		return -1;
	J = u->g - off->GG_g + off->GG_J;
	if (read_u64(J + off->J_trace, &traces) || !traces)
		return -1;
	if (read_ref(off, traces + (__u64)u->vmstate * (off->gc64 ? 8 : 4), &T) || !T)
		return -1;
	if (bpf_probe_read_user(&spadjust, sizeof(spadjust), (void *)(T + off->trace_spadjust)))
		return -1;
	*adjust = spadjust;
	return 0;
}

/* Follow rbp where no CFI covers ip: only if it points up the stack. */
static __always_inline long frame_pointer_step(struct native_walk *u)
{
	struct u64_pair pair = {}; /* saved rbp, then the return address */

	if (!u->bp || u->bp < u->sp || u->bp - u->sp > (8 << 20) ||
	    read_stack_pair(u, u->bp, &pair)) {
		u->flags |= SAMPLE_UNWIND_NO_CFI;
		return 1;
	}
	u->sp = u->bp + 16;
	u->bp = pair.lo;
	u->ip = pair.hi;
	return 0;
}

/*
 * One frame of the walk in walks[0].native into scratch[0]; returns 1 to
 * stop. A global function, checked once (see lua_walk_step).
 */
__noinline int native_walk_step(void)
{
	struct walk_scratch *ws;
	struct native_walk *u;
	struct unwind_row row;
	struct sample_key *key;
	__u32 zero = 0;
	__u64 lookup, cfa, ra = 0, adjust = 0;
	__u8 kind;
	int found;

	ws = bpf_map_lookup_elem(&walks, &zero);
	key = bpf_map_lookup_elem(&scratch, &zero);
	if (!ws || !key)
		return 1;
	u = &ws->native;
	if (!u->ip) {
		u->flags |= SAMPLE_UNWIND_END;
		return 1;
	}
	/* A return address points after the call: look up the call itself. */
	lookup = u->n ? u->ip - 1 : u->ip;
	found = resolve_row(u->pid, u->generation, lookup) == 0;
	if (!found && !u->trace_done && u->vmstate > 0 && u->g && u->vm_ip &&
	    trace_spadjust(u, &adjust) == 0) {
		/*
		 * Trace machine code: continue from the VM's frame. BC_JLOOP
		 * lowers rsp by 16 (CFRAME_SIZE_JIT - CFRAME_SIZE on x86-64)
		 * before jumping in, the trace by its spadjust.
		 */
		u->trace_done = 1;
		u->sp += adjust + LJ_TRACE_ENTRY_SP;
		lookup = u->vm_ip;
		found = resolve_row(u->pid, u->generation, lookup) == 0;
	} else if (!found && u->n) {
		/* Not code we know: do not record a frame we cannot name or trust. */
		u->flags |= SAMPLE_UNWIND_NO_CFI;
		return 1;
	}
	if (u->n >= MAX_USER_FRAMES) {
		u->flags |= SAMPLE_UNWIND_DEPTH;
		return 1;
	}
	key->user[u->n & (MAX_USER_FRAMES - 1)] = u->ip;
	u->id = stack_id_mix(u->id, u->ip);
	u->n++;
	if (!found)
		return frame_pointer_step(u);
	row = ws->row;
	kind = row.kind & 0xf;
	/*
	 * LuaJIT describes its whole VM with one row, which does not know
	 * about the helpers the VM calls inside itself (vm_mod and friends).
	 * A leaf there has a VM return address on top of the stack: pop it.
	 */
	if (u->n == 1 && lookup >= u->vm_ip && lookup < u->vm_hi) {
		__u64 top = 0;

		if (read_stack_u64(u, u->sp, &top) == 0 && top >= u->vm_ip && top < u->vm_hi)
			u->sp += 8;
	}
	switch (kind) {
	case UNWIND_END:
		u->flags |= SAMPLE_UNWIND_END;
		return 1;
	case UNWIND_UNSUPPORTED:
		u->flags |= SAMPLE_UNWIND_UNSUPPORTED;
		return 1;
	case UNWIND_RSP:
		cfa = u->sp + row.cfa_offset;
		break;
	case UNWIND_RBP:
		cfa = u->bp + row.cfa_offset;
		break;
	case UNWIND_PLT:
		cfa = u->sp + row.cfa_offset + ((lookup & 15) >= (row.kind >> 4) ? 8 : 0);
		break;
	default:
		return frame_pointer_step(u);
	}
	if (row.rbp_offset && row.rbp_offset == row.ra_offset - 8) {
		/* The usual prologue (push rbp right after the call): one read for both. */
		struct u64_pair pair = {};

		if (read_stack_pair(u, cfa + row.rbp_offset, &pair)) {
			u->flags |= SAMPLE_UNWIND_BAD_READ;
			return 1;
		}
		u->bp = pair.lo;
		ra = pair.hi;
	} else {
		if (read_stack_u64(u, cfa + row.ra_offset, &ra)) {
			u->flags |= SAMPLE_UNWIND_BAD_READ;
			return 1;
		}
		if (row.rbp_offset && read_stack_u64(u, cfa + row.rbp_offset, &u->bp)) {
			u->flags |= SAMPLE_UNWIND_BAD_READ;
			return 1;
		}
	}
	u->sp = cfa;
	u->ip = ra;
	return 0;
}

/*
 * Starts a native walk at the registers the thread left user space with.
 * The sampler's walk (unwind_user) and the search for the running
 * lua_State (lua_thread.bpf.h) begin alike; only the id so far, the pid
 * and the VM state differ.
 */
static __always_inline void native_walk_begin(struct native_walk *u, struct proc_state *st,
					      struct proc_mappings *pm, struct pt_regs *uregs,
					      __u64 stack_top, __u64 id, __u32 pid, __s32 vmstate)
{
	u->ip = BPF_CORE_READ(uregs, ip);
	u->sp = BPF_CORE_READ(uregs, sp);
	u->bp = BPF_CORE_READ(uregs, bp);
	u->g = st->g;
	u->vm_ip = st->vm_lo;
	u->vm_hi = st->vm_hi;
	u->stack_top = stack_top;
	u->id = id;
	u->pid = pid;
	u->n = 0;
	u->flags = 0;
	u->table = st->table;
	u->vmstate = vmstate;
	u->trace_done = 0;
	u->generation = pm->generation;
	window_reset(WINDOW_NATIVE);
}

/* Walks the native frames into key; returns the stack id extended by them. */
static __always_inline __u64 unwind_user(struct proc_state *st, struct proc_mappings *pm,
					 struct pt_regs *uregs, struct sample_key *key,
					 __u64 stack_top, __u64 id)
{
	struct walk_scratch *ws;
	struct native_walk *u;
	__u32 zero = 0;

	ws = bpf_map_lookup_elem(&walks, &zero);
	if (!ws)
		return id;
	u = &ws->native;
	native_walk_begin(u, st, pm, uregs, stack_top, id, key->pid, key->vmstate);
	/* One more step than frames fits, so a full stack still sees its end. */
	for (int i = 0; i < MAX_USER_FRAMES + 1; i++) {
		if (native_walk_step())
			break;
	}
	key->n_user = u->n;
	key->flags |= SAMPLE_UNWIND_CFI | u->flags;
	return u->id;
}

#endif
