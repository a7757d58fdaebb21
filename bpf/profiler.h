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
#define MAX_USER_FRAMES 64 /* power of two: used as an index mask */
#define MAX_LUA_FRAMES 256 /* power of two: used as an index mask */

/* Offset tables the kernel may hold (one per LuaJIT build and mode in use). */
#define MAX_LJ_TABLES 8

/* Native unwinding from .eh_frame: rows of every loaded file, back to back. */
#define MAX_UNWIND_ROWS (1 << 19)
/* Executable file mappings one process may have rows for. */
#define MAX_MAPPINGS 64

/* proc_state.table for processes without (a usable) LuaJIT. */
#define PROC_NO_LUAJIT 0xffffffffU

/* Words of user stack copied while a process's global_State is unknown. */
#define STACK_SNAPSHOT_WORDS 64

/* Stack ids user space can mark as named (the `known` map). */
#define MAX_KNOWN_STACKS 65536

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
	SAMPLE_UNWIND_CFI = 1 << 6,    /* native frames come from the .eh_frame unwinder */
	SAMPLE_UNWIND_END = 1 << 7,    /* ... which reached the outermost frame */
	SAMPLE_UNWIND_NO_CFI = 1 << 8, /* ... stopped: no CFI and no usable frame pointer */
	SAMPLE_UNWIND_BAD_READ = 1 << 9, /* ... stopped: a stack read failed */
	SAMPLE_UNWIND_DEPTH = 1 << 10, /* ... stopped at MAX_USER_FRAMES */
	SAMPLE_UNWIND_UNSUPPORTED = 1 << 11, /* ... stopped: CFI we cannot evaluate */
	SAMPLE_OFF_CPU = 1 << 12,      /* the thread blocked here: its count is nanoseconds off the CPU */
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
 * One unique stack. Frame arrays are leaf first; slots past n_kernel,
 * n_user and n_lua are left over from earlier samples and mean nothing.
 *
 * Samples are counted by stack id, a 64-bit hash of the used part of the
 * key that the programs build frame by frame while they walk: the counts
 * maps hold stack id -> samples, and `stacks` holds stack id -> sample_key,
 * written when an id is first counted in a drain period unless user space
 * has put the id in `known` (it has named that stack already).
 */
struct sample_key {
	__u32 pid;
	__u32 flags;
	__s32 vmstate;
	__u16 n_kernel;
	__u16 n_user;
	__u16 n_lua;
	__u16 pad0;
	__u32 label;    /* --label uri: the request URI's label id (uri_labels), 0 for none */
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

/* lua_pos flag: this frame was entered from C, a new VM entry below it. */
#define LUA_POS_FROM_C (1U << 31)
#define LUA_POS_MASK (LUA_POS_FROM_C - 1)

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
	__s32 GG_g;
	__s32 GG_J;
	__s32 J_trace;
	__s32 trace_spadjust;
};

/* One compact unwind row (src/unwind/rows.ts encodeRows writes them). */
enum unwind_kind {
	UNWIND_UNDEFINED = 0, /* no CFI here */
	UNWIND_RSP = 1,       /* CFA = rsp + cfa_offset */
	UNWIND_RBP = 2,       /* CFA = rbp + cfa_offset */
	UNWIND_PLT = 3,       /* CFA = rsp + cfa_offset + ((ip & 15) >= threshold ? 8 : 0) */
	UNWIND_UNSUPPORTED = 4,
	UNWIND_END = 5,       /* outermost frame */
};

struct unwind_row {
	__u64 pc;          /* first ELF vaddr the row covers */
	__s32 cfa_offset;
	__u8 kind;         /* enum unwind_kind in bits 0-3, PLT threshold in 4-7 */
	__s8 ra_offset;    /* return address at CFA + ra_offset */
	__s16 rbp_offset;  /* caller's rbp at CFA + rbp_offset; 0: rbp unchanged */
};

/* An executable file mapping of a process and its rows in unwind_rows. */
struct exec_mapping {
	__u64 start;
	__u64 end;
	__u64 bias;       /* runtime address = ELF vaddr + bias */
	__u32 row_first;
	__u32 row_count;
};

struct proc_mappings {
	__u32 n;          /* sorted by start */
	__u32 generation; /* new for every write: keys the kernel's cache of rows per address */
	struct exec_mapping m[MAX_MAPPINGS];
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

#define MAX_OFFCPU_THREADS 16384

/*
 * One bit per process id of the targets, in 64-bit words: 65536 words hold
 * every pid below 4,194,304 (PID_MAX_LIMIT on 64-bit, the largest pid_max).
 */
#define TARGET_PID_WORDS 65536

/*
 * A thread's last wait in epoll with no Lua running (an nginx worker's
 * event loop): the next such wait from the same instruction with the same
 * stack and frame pointers has the same stack, so its id is reused without
 * a walk. The idle wait is most of a worker's switches.
 */
struct offcpu_idle_site {
	__u64 ip;
	__u64 sp;
	__u64 bp;
	__u64 id;
};

/*
 * Off-CPU mode: one entry per target thread that has left the CPU, by
 * thread id, written in place (no insert or delete per switch: a thread's
 * entry lives until it exits). While the thread is off the CPU, start_ns
 * says since when and id in which stack (its copy is in `stacks` unless
 * known; 0 when it was preempted: still runnable, not off-CPU time, counted
 * apart). The time is added to the id's count when the thread is switched
 * back in, which sets start_ns to 0. Time in the event loop's idle wait
 * (id == idle.id) is summed in idle_ns instead, one add in place of a
 * counts-map update on most of a busy worker's switches in; it goes to the
 * counts when the idle site changes or the thread exits, and user space
 * reads what is left at the end.
 */
struct offcpu_thread {
	__u64 start_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) at the switch out; 0: on a CPU */
	__u64 id;
	struct offcpu_idle_site idle; /* id 0: no idle wait seen yet */
	__u64 idle_ns; /* time waited in idle.id, not yet in the counts */
};

/* Indexes of the per-CPU counters in the `stats` map. */
enum stat_index {
	STAT_SAMPLES = 0,      /* samples of target processes */
	STAT_LOST_MAP_FULL,    /* could not be counted: counts or stacks map full */
	STAT_USER_STACK_FAIL,  /* bpf_get_stack(user) failed */
	STAT_LUA_BAD_READ,     /* a Lua frame read failed */
	STAT_UPROBE_HITS,      /* uprobe traps taken in target processes */
	STAT_LOST_NO_MEMORY,   /* could not be counted: the kernel had no memory for its stack copy */
	STAT_SWITCHES_BLOCKED, /* target threads that left the CPU blocked (off-CPU mode) */
	STAT_SWITCHES_PREEMPTED, /* ... preempted, still runnable */
	STAT_PREEMPTED_NS,     /* nanoseconds preempted threads waited for a CPU */
	STAT_OFFCPU_LOST,      /* blocked switches not counted: a map was full */
	STAT_OFFCPU_INTERRUPTED, /* ... not counted: a CPU sample interrupted the walk (wall mode) */
	STAT_OFFCPU_IDLE_REUSED, /* blocked switches in the event loop's wait that reused its stack id */
	STAT__MAX,
};

/* Settings fixed before load (.rodata). */
struct profiler_config {
	__u32 kernel_stacks; /* 1: record kernel frames too */
	__u32 leaf_pc;       /* 1: record the leaf Lua frame's position (--lines current) */
	__u32 unwind_cfi;    /* 1: native frames from .eh_frame rows; 0: frame pointers */
	__u32 uri_labels;    /* 1: label samples with their request's URI (--label uri) */
};

/*
 * --label uri. ngx_lua keeps the ngx_http_request_t a Lua thread serves in
 * the thread's lua_State (lua_setexdata, OpenResty's LuaJIT), and the
 * request's URI is an ngx_str_t {len, data} at an offset that depends on
 * the nginx build: user space learns it from live requests
 * (src/gateway/request-layout.ts). Per process, by tgid.
 */
#define URI_LABEL_BYTES 64  /* a URI path is cut here; a power of two */
#define MAX_URI_LABELS 4096 /* distinct labels the kernel keeps per run */
struct request_uri_state {
	__u64 request;    /* while uri_offset is 0: a request a sample saw, for user space to learn from */
	__s32 L_exdata;   /* lua_State.exdata; -1: this LuaJIT has none (no labels) */
	__u32 uri_offset; /* ngx_http_request_t.uri; 0: not learned yet */
};

/* A label's bytes: the URI path up to '?' or URI_LABEL_BYTES. */
struct uri_label {
	__u32 len;
	__u8 bytes[URI_LABEL_BYTES];
};

#endif
