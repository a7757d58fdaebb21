/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The only ABI between the BPF programs and user space. Plain fixed-width
 * structs and limits. src/native/abi.ts mirrors it; test/unit/abi.test.ts
 * fails when the two drift.
 */
#ifndef APISIX_PROFILE_PROFILER_H
#define APISIX_PROFILE_PROFILER_H

/* Deepest native stacks (kernel and user) and Lua stacks one sample keeps. */
#define MAX_KERNEL_FRAMES 32
#define MAX_USER_FRAMES 32
#define MAX_LUA_FRAMES 256 /* power of two: used as an index mask */

/* Offset tables the kernel may hold (one per LuaJIT build and mode in use). */
#define MAX_LJ_TABLES 8

/* proc_state.table for processes without (a usable) LuaJIT. */
#define PROC_NO_LUAJIT 0xffffffffU

/* Words of user stack copied while a process's global_State is unknown. */
#define STACK_SNAPSHOT_WORDS 64

/* Processes one run may profile at once (workers of one or more masters). */
#define MAX_PROCS 1024

/*
 * A Lua frame is one u64: a kind in the top 4 bits and a payload below.
 * Payloads: the GCproto address (Lua function), the lua_CFunction address
 * (C function), the fast-function id (builtin).
 */
#define LUA_FRAME_KIND_SHIFT 60
#define LUA_FRAME_PAYLOAD_MASK ((1ULL << LUA_FRAME_KIND_SHIFT) - 1)
enum lua_frame_kind {
	LUA_FRAME_LUA = 1,
	LUA_FRAME_C = 2,
	LUA_FRAME_FAST = 3,
	LUA_FRAME_BAD = 4, /* a frame slot that could not be read */
};

/* sample_key.flags */
enum sample_flags {
	SAMPLE_IN_LUA = 1 << 0,       /* the sampled thread was inside the LuaJIT VM */
	SAMPLE_LUA_TRUNCATED = 1 << 1, /* more Lua frames than MAX_LUA_FRAMES */
	SAMPLE_LUA_BAD_READ = 1 << 2,  /* a Lua frame read failed; walk stopped */
	SAMPLE_BASE_FROM_REG = 1 << 3, /* interpreter BASE taken from the register */
	SAMPLE_BASE_FROM_JIT = 1 << 4, /* compiled code: walked from G->jit_base */
	SAMPLE_NO_G = 1 << 5,          /* LuaJIT not (yet) located in this process */
};

/* LuaJIT's vmstate values (~LJ_VMST_*); >= 0 means compiled trace N. */
#define LJ_VMSTATE_INTERP (-1)
#define LJ_VMSTATE_C (-2)
#define LJ_VMSTATE_GC (-3)
#define LJ_VMSTATE_EXIT (-4)
#define LJ_VMSTATE_RECORD (-5)
#define LJ_VMSTATE_OPT (-6)
#define LJ_VMSTATE_ASM (-7)
/* vmstate value stored when the sample was not inside the VM at all. */
#define VMSTATE_NONE (-100)

/*
 * One unique stack. Unused frame slots are zero so that equal stacks give
 * equal keys. Frame arrays are leaf first.
 */
struct sample_key {
	__u32 pid;
	__u32 flags;
	__s32 vmstate;
	__u16 n_kernel;
	__u16 n_user;
	__u16 n_lua;
	__u16 pad0;
	__u32 pad1;
	__u64 kernel[MAX_KERNEL_FRAMES];
	__u64 user[MAX_USER_FRAMES];
	__u64 lua[MAX_LUA_FRAMES];
	/*
	 * Per Lua frame: the bytecode position its function is at (index of
	 * the next instruction, as the frame link or PC register holds it),
	 * 0 when unknown. Callers' positions name their callees (the CALL
	 * before them); the leaf's is kept only with cfg.leaf_pc.
	 */
	__u32 lua_pos[MAX_LUA_FRAMES];
};

/*
 * LuaJIT struct layout for one build and mode, in bytes (-1: not present).
 * the JSON tables in luajit-offsets/tables hold the values under the same names.
 */
struct lj_offsets {
	__s32 gc64;
	__s32 fr2;
	__s32 L_glref;
	__s32 L_base;
	__s32 L_stack;
	__s32 L_maxstack;
	__s32 L_cframe;
	__s32 G_vmstate;
	__s32 G_cur_L;
	__s32 G_jit_base;
	__s32 fn_ffid;
	__s32 fn_pc;
	__s32 fn_c_f;
	__s32 pt_size;
};

/* Per target process, keyed by tgid. User space creates it; BPF fills g. */
struct proc_state {
	__u64 L;      /* a lua_State the uprobe saw; user space derives g from it */
	__u64 dispatch; /* r14 at a recent sample: the VM's DISPATCH register when it ran */
	__u64 g;      /* global_State address, set by user space once validated */
	__u64 vm_lo;  /* [vm_lo, vm_hi): the VM's bytecode handlers (interpreter) */
	__u64 vm_hi;
	__u32 table;  /* index into lj_tables once g is set; PROC_NO_LUAJIT: none to find */
	__u32 uprobe_hits;
	/*
	 * The top of the user stack at a recent sample, while g is unknown.
	 * The VM's C frame keeps the running lua_State there, so user space
	 * can find it even when no API function is called and no register
	 * holds DISPATCH (non-GC64 traces).
	 */
	__u64 stack_words[STACK_SNAPSHOT_WORDS];
};

/* Indexes of the per-CPU counters in the `stats` map. */
enum stat_index {
	STAT_SAMPLES = 0,      /* samples of target processes */
	STAT_LOST_MAP_FULL,    /* could not be counted: counts map full */
	STAT_USER_STACK_FAIL,  /* bpf_get_stack(user) failed */
	STAT_LUA_BAD_READ,     /* a Lua frame read failed */
	STAT_UPROBE_HITS,      /* uprobe traps taken in target processes */
	STAT__MAX,
};

/* Settings fixed before load (.rodata). */
struct profiler_config {
	__u32 kernel_stacks; /* 1: record kernel frames too */
	__u32 leaf_pc;       /* 1: record the leaf Lua frame's position (--lines current) */
};

#endif
