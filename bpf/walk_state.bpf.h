/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The state of a sample's two walks. It lives in a per-CPU map value
 * (walks), not on the BPF stack: the verifier knows nothing of a map
 * value's contents, so it checks each walk step once for any frame count
 * and any flags. Values it could track (a counter from 0, flag bits built
 * from constants) made recent kernels check a step once per value, and the
 * cost of one program grew with every kernel release until it crossed the
 * verifier's limit.
 */
#ifndef APISIX_PROFILE_WALK_STATE_BPF_H
#define APISIX_PROFILE_WALK_STATE_BPF_H

#include "vmlinux.h"
#include "profiler.h"

/* One Lua frame walk (lua_walk.bpf.h). */
struct lua_walk {
	__u64 frame;  /* link slot of the current frame */
	__u64 bottom; /* first slot that is not a frame */
	__u64 L;
	__u64 link_pc; /* return PC the frame above left in this frame's function */
	__u64 id;     /* stack id so far (stack_id_mix) */
	__u32 n;      /* Lua frames recorded */
	__u32 flags;
	__s32 gc64;
	__s32 fr2;
	__s32 fn_ffid;
	__s32 fn_pc;
	__s32 fn_c_f;
	__s32 pt_size;
};

/* One native frame walk (unwind.bpf.h). */
struct native_walk {
	__u64 ip;
	__u64 sp;
	__u64 bp;
	__u64 g;
	__u64 vm_ip;      /* an address inside the VM, for trace frames */
	__u64 vm_hi;      /* [vm_ip, vm_hi): the VM's code */
	__u64 stack_top;  /* the stack is readable up to here; 0: unknown */
	__u64 id;         /* stack id so far (stack_id_mix) */
	__u32 pid;
	__u32 n;
	__u32 flags;
	__u32 table;
	__s32 vmstate;
	__u32 trace_done;
	__u32 generation; /* of the process's proc_maps entry, for row_cache */
};

/*
 * The off-CPU switch's state (bpf/profiler.bpf.c switched_out), kept here
 * rather than on the BPF stack: what lives across the stack walk would be
 * spilled to the program's own frame, which with the walks' frames must
 * fit the 512-byte stack (6.1 rounds each frame up to 32 bytes).
 */
struct offcpu_walk {
	struct offcpu_idle_site site; /* where the thread waits, if idle */
	__u64 start_ns;               /* the switch's time */
	__u64 samples_before;         /* this CPU's STAT_SAMPLES before the walk */
	__u32 idle;                   /* it waits in the event loop */
	__u32 pad;
};

/*
 * The head of the lua_State being walked, read at once up to the last
 * field needed (lua_walk.bpf.h walk_lua). A power of two: the read size is
 * masked by it. Here rather than on the BPF stack, where it took 128 of the
 * sampler's and the switch's own frame, whose call chains must fit 512
 * bytes with a quarter to spare (src/kernel/verifier.ts STACK_BUDGET).
 */
#define LJ_L_HEAD_SIZE 128

struct walk_scratch {
	__u8 l_head[LJ_L_HEAD_SIZE];
	struct lua_walk lua;
	struct native_walk native;
	struct unwind_row row; /* what resolve_row found */
	struct offcpu_walk offcpu;
};

#endif
