/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * LuaJIT 2.1 frame walk. Every struct offset comes from the lj_offsets table
 * user space loaded for this process; nothing here hard-codes a layout.
 *
 * Frame facts (lj_frame.h): a frame slot holds the function and a link word
 * (ftsz). In GC64 builds (FR2) the function is the slot below the link; in
 * other builds both share one 8-byte slot (function low, link high). The link
 * of a Lua frame is the return PC; its low 3 bits are 0. Other frames store a
 * byte delta to the previous frame plus a type in the low 3 bits.
 */
#ifndef APISIX_PROFILE_LUA_WALK_BPF_H
#define APISIX_PROFILE_LUA_WALK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "profiler.h"
#include "walk_state.bpf.h"
#include "maps.bpf.h"
#include "helpers.bpf.h"
#include "lua_thread.bpf.h"

#define LJ_TVALUE_SIZE 8
#define LJ_FRAME_TYPE 3
#define LJ_FRAME_TYPEP 7
#define LJ_FRAME_LUA 0
#define LJ_FRAME_C 1 /* also FRAME_CP: a frame entered from C (lua_call, lua_pcall) */
#define LJ_FRAME_VARG 3
#define LJ_GCPTR_MASK ((1ULL << 47) - 1)

#define LJ_FF_LUA 0
#define LJ_FF_C 1

/* Reads the function and link word of the frame whose link slot is at frame. */
static __always_inline int read_frame(const struct lua_walk *w, __u64 frame,
				      __u64 *fn, __u64 *ftsz)
{
	if (w->fr2) {
		/* The function slot sits right below the link: one read for both. */
		struct u64_pair slots = {};

		if (read_windowed(WINDOW_LUA, frame - LJ_TVALUE_SIZE, w->bottom, &slots) != 0)
			return -1;
		*fn = slots.lo & LJ_GCPTR_MASK;
		*ftsz = slots.hi;
		return 0;
	} else {
		struct u64_pair slot = {};

		if (read_windowed(WINDOW_LUA, frame, w->bottom, &slot) < 0)
			return -1;
		*fn = (__u32)slot.lo;
		*ftsz = slot.lo >> 32;
		return 0;
	}
}

/*
 * The head of a function object, read at once: from its start through a
 * Lua function's bytecode pointer, which covers the ffid too (GCfuncL and
 * GCfuncC share the header; generate.sh's tables give where each field is).
 */
#define LJ_FN_HEAD_SIZE 64 /* a power of two: the read size is masked by it */

/* Eight bytes at `at` of a block read from user memory; 0 past its end. */
static __always_inline __u64 block_u64(const __u8 *block, __u32 size, __u32 at)
{
	__u64 v = 0;

	if (at <= size - sizeof(v))
		__builtin_memcpy(&v, block + at, sizeof(v));
	return v;
}

/*
 * Encodes what a sample needs to name the function later; for a Lua
 * function also gives its bytecode start (*bc), so the frame's position
 * needs no second read of the function object.
 */
static __always_inline __u64 encode_function(const struct lua_walk *w, __u64 fn, __u64 *bc)
{
	__u8 head[LJ_FN_HEAD_SIZE] = {};
	/* Exactly what the smaller object (GCfuncL) has: no read past it. */
	__u32 size = w->fn_pc + (w->gc64 ? 8 : 4);
	__u32 at = w->fn_ffid;
	__u64 value = 0;
	__u8 ffid;

	*bc = 0;
	if (at >= size || size >= LJ_FN_HEAD_SIZE ||
	    bpf_probe_read_user(head, verifier_mask(size, LJ_FN_HEAD_SIZE - 1), (void *)fn))
		return (__u64)LUA_FRAME_BAD << LUA_FRAME_KIND_SHIFT;
	ffid = head[at & (LJ_FN_HEAD_SIZE - 1)];
	if (ffid == LJ_FF_LUA) {
		/* GCproto sits right before its bytecode: pt = pc - sizeof(GCproto). */
		value = block_u64(head, LJ_FN_HEAD_SIZE, w->fn_pc);
		if (!w->gc64)
			value = (__u32)value;
		*bc = value;
		value -= w->pt_size;
		return ((__u64)LUA_FRAME_LUA << LUA_FRAME_KIND_SHIFT) |
		       (value & LUA_FRAME_PAYLOAD_MASK);
	}
	if (ffid == LJ_FF_C) {
		if (read_u64(fn + w->fn_c_f, &value))
			return (__u64)LUA_FRAME_BAD << LUA_FRAME_KIND_SHIFT;
		return ((__u64)LUA_FRAME_C << LUA_FRAME_KIND_SHIFT) |
		       (value & LUA_FRAME_PAYLOAD_MASK);
	}
	return ((__u64)LUA_FRAME_FAST << LUA_FRAME_KIND_SHIFT) | ffid;
}

/*
 * Where a Lua function's frame is: the return PC the frame above left, as
 * an instruction index into the function's bytecode (bc; 0: not a Lua
 * function). 0 when unknown.
 */
static __always_inline __u32 function_position(const struct lua_walk *w, __u64 bc)
{
	if (!w->link_pc || !bc || w->link_pc <= bc || w->link_pc - bc > (1ULL << 26))
		return 0;
	return (w->link_pc - bc) / 4;
}

/*
 * Whether C code called this frame's function, so a new VM entry begins
 * below it: lua_call/lua_pcall from C (a C or CP frame), or an FFI callback
 * (a continuation frame whose continuation is LJ_CONT_FFI_CALLBACK).
 */
#define LJ_FRAME_CONT 2
#define LJ_CONT_FFI_CALLBACK 1
static __always_inline bool entered_from_c(const struct lua_walk *w, __u64 frame, __u64 ftsz)
{
	struct u64_pair slot = {};

	if ((ftsz & LJ_FRAME_TYPE) == LJ_FRAME_C)
		return true;
	if ((ftsz & LJ_FRAME_TYPEP) != LJ_FRAME_CONT)
		return false;
	/* The continuation: 64 bits two slots below (FR2), else the low 32 bits of the slot below. */
	if (read_windowed(WINDOW_LUA, frame - (w->fr2 ? 3 : 1) * LJ_TVALUE_SIZE, w->bottom, &slot) < 0)
		return false;
	return (w->fr2 ? slot.lo : (__u32)slot.lo) == LJ_CONT_FFI_CALLBACK;
}

/*
 * One frame of the walk in walks[0].lua into scratch[0]; returns 1 to stop.
 * A global function: the verifier checks it once, with nothing known about
 * the walk's state, whatever the caller's loop looks like.
 */
__noinline int lua_walk_step(void)
{
	struct walk_scratch *ws;
	struct sample_key *key;
	struct lua_walk *w;
	__u32 zero = 0, ins;
	__u64 fn, ftsz, pc, bc;

	ws = bpf_map_lookup_elem(&walks, &zero);
	key = bpf_map_lookup_elem(&scratch, &zero);
	if (!ws || !key)
		return 1;
	w = &ws->lua;
	if (w->frame <= w->bottom)
		return 1;
	if (read_frame(w, w->frame, &fn, &ftsz)) {
		w->flags |= SAMPLE_LUA_BAD_READ;
		return 1;
	}
	/* A vararg frame stands for the frame below it: keep link_pc for that. */
	if ((ftsz & LJ_FRAME_TYPE) == LJ_FRAME_VARG) {
		w->frame -= ftsz & ~(__u64)LJ_FRAME_TYPEP;
		return 0;
	}
	/* Skip dummy frames (function slot holds L). */
	if (fn != w->L) {
		if (w->n >= MAX_LUA_FRAMES) {
			w->flags |= SAMPLE_LUA_TRUNCATED;
			return 1;
		}
		__u64 word = encode_function(w, fn, &bc);
		__u32 pos = function_position(w, bc) |
			    (entered_from_c(w, w->frame, ftsz) ? LUA_POS_FROM_C : 0);

		key->lua[w->n & (MAX_LUA_FRAMES - 1)] = word;
		key->lua_pos[w->n & (MAX_LUA_FRAMES - 1)] = pos;
		w->id = stack_id_mix(stack_id_mix(w->id, word), pos);
		w->n++;
	}
	w->link_pc = 0;
	if ((ftsz & LJ_FRAME_TYPE) == LJ_FRAME_LUA) {
		/* Lua frame: the caller's CALL instruction says how far down it is. */
		pc = w->gc64 ? ftsz : (__u32)ftsz;
		w->link_pc = pc;
		if (bpf_probe_read_user(&ins, sizeof(ins), (void *)(pc - 4))) {
			w->flags |= SAMPLE_LUA_BAD_READ;
			return 1;
		}
		w->frame -= LJ_TVALUE_SIZE * (1 + (w->fr2 ? 1 : 0) + ((ins >> 8) & 0xff));
	} else {
		w->frame -= ftsz & ~(__u64)LJ_FRAME_TYPEP;
	}
	return 0;
}

/*
 * Some VM helpers (the FFI call and callback paths) use rdx for arguments
 * while vmstate still says "interpreter": accept the register as BASE only
 * if the slot below it holds a function object. A GCobj's type byte (gct)
 * sits right before GCfunc's ffid; functions store ~LJ_TFUNC there.
 */
#define LJ_GCT_FUNC 8
static __always_inline bool is_frame_base(const struct lj_offsets *off, __u64 base)
{
	__u64 fn = 0;
	__u8 gct = 0;

	if (off->fr2) {
		if (read_u64(base - 2 * LJ_TVALUE_SIZE, &fn))
			return false;
		fn &= LJ_GCPTR_MASK;
	} else {
		__u32 ref = 0;

		if (bpf_probe_read_user(&ref, sizeof(ref), (void *)(base - LJ_TVALUE_SIZE)))
			return false;
		fn = ref;
	}
	if (!fn || bpf_probe_read_user(&gct, sizeof(gct), (void *)(fn + off->fn_ffid - 1)))
		return false;
	return gct == LJ_GCT_FUNC;
}

/*
 * A GCRef/MRef in the lua_State head: 64 bits in GC64 builds, 32 otherwise.
 * The fields the walk needs (base, stack, maxstack, cframe) all sit in the
 * first 88 bytes, read at once into walk_scratch.l_head: one read, not four.
 */
static __always_inline __u64 l_head_ref(const struct lj_offsets *off, const __u8 *head, __u32 at)
{
	__u64 v = block_u64(head, LJ_L_HEAD_SIZE, at);

	return off->gc64 ? v : (__u32)v;
}

/*
 * Where the topmost Lua frame starts. L->base is only written back when the
 * VM calls out, so in the interpreter's own code it is stale and the BASE
 * register (rdx on x86-64) is right; while a trace runs, G->jit_base is.
 */
static __always_inline __u64 frame_base(const struct lj_offsets *off, struct proc_state *st,
					struct pt_regs *uregs, const __u8 *l_head,
					__u64 jit_base, __s32 vmstate, __u64 stack,
					struct sample_key *key)
{
	__u64 ip, reg, maxstack;

	if (vmstate >= 0) {
		if (jit_base) {
			key->flags |= SAMPLE_BASE_FROM_JIT;
			return jit_base;
		}
	} else if (vmstate == LJ_VMSTATE_INTERP && uregs) {
		ip = BPF_CORE_READ(uregs, ip);
		reg = BPF_CORE_READ(uregs, dx);
		maxstack = l_head_ref(off, l_head, off->L_maxstack);
		/* User space sets the VM's code range together with g. */
		if (ip >= st->vm_lo && ip < st->vm_hi &&
		    reg > stack && reg <= maxstack && ((reg - stack) & 7) == 0 &&
		    is_frame_base(off, reg)) {
			key->flags |= SAMPLE_BASE_FROM_REG;
			return reg;
		}
	}
	return block_u64(l_head, LJ_L_HEAD_SIZE, off->L_base);
}

/*
 * G->vmstate, G->cur_L and G->jit_base. In every layout we know they lie
 * within LJ_G_SPAN bytes, read at once (from vmstate up to whichever of the
 * two refs ends last, so the read stays inside global_State); else one read
 * each.
 */
#define LJ_G_SPAN 256
static __always_inline int read_g_fields(const struct lj_offsets *off, __u64 G, __s32 *vmstate,
					 __u64 *L, __u64 *jit_base)
{
	__u32 index = WINDOW_G;
	struct window *buf = bpf_map_lookup_elem(&windows, &index);
	__s32 lo = off->G_vmstate;
	__s32 hi = (off->G_cur_L > off->G_jit_base ? off->G_cur_L : off->G_jit_base) + 8;
	__u32 size = hi - lo;

	if (buf && lo >= 0 && lo < off->G_cur_L && lo < off->G_jit_base && size <= LJ_G_SPAN) {
		if (bpf_probe_read_user(buf->bytes, verifier_mask(size, WINDOW_BYTES - 1), (void *)(G + lo)))
			return -1;
		/* Both refs end by lo + size (how size was chosen): no stale byte is used. */
		*vmstate = (__s32)block_u64(buf->bytes, LJ_G_SPAN, 0);
		*L = block_u64(buf->bytes, LJ_G_SPAN, off->G_cur_L - lo);
		*jit_base = block_u64(buf->bytes, LJ_G_SPAN, off->G_jit_base - lo);
	} else {
		if (bpf_probe_read_user(vmstate, sizeof(*vmstate), (void *)(G + off->G_vmstate)) ||
		    read_ref(off, G + off->G_cur_L, L) || read_ref(off, G + off->G_jit_base, jit_base))
			return -1;
	}
	if (!off->gc64) {
		*L = (__u32)*L;
		*jit_base = (__u32)*jit_base;
	}
	return 0;
}

/* Walks the Lua frames into key; returns the stack id extended by them. */
static __always_inline __u64 walk_lua(struct proc_state *st, struct pt_regs *uregs,
				      struct sample_key *key, __u64 id)
{
	struct lj_offsets *off = bpf_map_lookup_elem(&lj_tables, &st->table);
	__u64 G = st->g, L = 0, jit_base = 0, stack, base, cframe, leaf_pc = 0;
	struct walk_scratch *ws;
	struct lua_walk *w;
	__s32 vmstate = 0;
	__u32 l_size, zero = 0;
	__u8 *l_head;

	if (!off)
		return id;
	ws = bpf_map_lookup_elem(&walks, &zero);
	if (!ws)
		return id;
	l_head = ws->l_head;
	/* Up to the last field needed, so the read never runs past the object. */
	l_size = off->L_cframe;
	if (off->L_base > l_size)
		l_size = off->L_base;
	if (off->L_stack > l_size)
		l_size = off->L_stack;
	if (off->L_maxstack > l_size)
		l_size = off->L_maxstack;
	l_size += 8;
	if (read_g_fields(off, G, &vmstate, &L, &jit_base))
		return id;
	if (!L || l_size >= LJ_L_HEAD_SIZE ||
	    bpf_probe_read_user(l_head, verifier_mask(l_size, LJ_L_HEAD_SIZE - 1), (void *)L))
		return id;
	/*
	 * cur_L keeps pointing at the last running lua_State after the VM
	 * returns to C; its cframe is NULL then (or, never seen, a frame
	 * below rsp that is gone). Then either no VM entry is on the stack
	 * (nginx's own work) or cur_L is stale: a nested entry for another
	 * thread (ngx_lua's body filter run by ngx.say) returned to C code
	 * that the running thread called. The stack's innermost VM entry
	 * says which (lua_thread.bpf.h).
	 */
	cframe = block_u64(l_head, LJ_L_HEAD_SIZE, off->L_cframe) & LJ_CFRAME_RAWMASK;
	if (!cframe || (uregs && cframe < BPF_CORE_READ(uregs, sp))) {
		if (!uregs)
			return id;
		L = running_thread_on_stack(st, uregs, key->pid);
		if (!L || bpf_probe_read_user(l_head, verifier_mask(l_size, LJ_L_HEAD_SIZE - 1), (void *)L))
			return id;
	}
	stack = l_head_ref(off, l_head, off->L_stack);
	if (!stack)
		return id;
	w = &ws->lua;
	/* Set with SAMPLE_IN_LUA, before any early return: --label uri reads its request. */
	w->L = L;
	key->flags |= SAMPLE_IN_LUA;
	key->vmstate = vmstate;

	base = frame_base(off, st, uregs, l_head, jit_base, vmstate, stack, key);
	if (!base)
		return id;
	/* The interpreter keeps the next instruction's address in PC (rbx). */
	if (cfg.leaf_pc && (key->flags & SAMPLE_BASE_FROM_REG))
		leaf_pc = BPF_CORE_READ(uregs, bx);
	w->frame = base - LJ_TVALUE_SIZE;
	w->link_pc = leaf_pc;
	w->id = id;
	w->bottom = stack + (off->fr2 ? LJ_TVALUE_SIZE : 0);
	w->n = 0;
	w->flags = 0;
	w->gc64 = off->gc64;
	w->fr2 = off->fr2;
	w->fn_ffid = off->fn_ffid;
	w->fn_pc = off->fn_pc;
	w->fn_c_f = off->fn_c_f;
	w->pt_size = off->pt_size;
	window_reset(WINDOW_LUA);
	/* One more step than frames fits, so a full stack still sees its end. */
	for (int i = 0; i < MAX_LUA_FRAMES + 1; i++) {
		if (lua_walk_step())
			break;
	}
	if (w->flags & SAMPLE_LUA_BAD_READ)
		stat_add(STAT_LUA_BAD_READ);
	key->flags |= w->flags;
	key->n_lua = w->n;
	return w->id;
}

#endif
