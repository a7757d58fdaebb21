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
#include "walk_state.bpf.h"

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
 * Two count maps (stack id -> samples): the programs add to the active one
 * while user space drains the other, so draining never races with counting
 * and loses nothing. Preallocated: the sampling path never allocates for
 * them.
 */
struct counts_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
};
struct counts_map counts0 SEC(".maps");
struct counts_map counts1 SEC(".maps");

/* Stack id -> the stack itself, for ids user space has not named yet. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sample_key);
} stacks SEC(".maps");

/* Stack ids user space has named: their stacks need no copy any more. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u8);
} known SEC(".maps");

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

/*
 * The row each address resolved to, per CPU, direct-mapped by a hash of
 * the address: a sampled worker returns to the same few hundred addresses
 * again and again, and one inlined array lookup is far cheaper than two
 * binary searches through rows that are cold in the cache. A slot is
 * valid for one process and one generation of its mappings.
 */
#define ROW_CACHE_BITS 12
struct row_cache_slot {
	__u64 addr;
	__u32 pid;
	__u32 generation;
	struct unwind_row row;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1 << ROW_CACHE_BITS);
	__type(key, __u32);
	__type(value, struct row_cache_slot);
} row_cache SEC(".maps");

/*
 * Copies of the memory the two walks are reading, per CPU: the native walk
 * goes up the user stack, the Lua walk down the Lua stack, and one read of
 * a window serves the next few frames, where reading each word costs a
 * helper call of its own. The native window is a page: nginx's frames from
 * the sampled leaf up to main() span 2-4 KB, which one read covers, where
 * 512-byte windows took six reads per sample (a read costs 200-350 ns,
 * most of it fixed). Lua frames are small and close together.
 */
#define WINDOW_BYTES 4096       /* a power of two: offsets are masked by it */
#define WINDOW_LUA_BYTES 512    /* how much of its window the Lua walk reads */
#define PAGE_BYTES 4096
enum window_index {
	WINDOW_NATIVE = 0, /* read upwards from its start */
	WINDOW_LUA = 1,    /* read downwards from its end */
	WINDOW_G = 2,      /* global_State from vmstate to jit_base (lua_walk.bpf.h) */
	WINDOW__COUNT,
};
struct window {
	__u64 start; /* user address of bytes[0] */
	__u32 len;   /* bytes holds len bytes from start; 0: nothing */
	__u32 pad;
	__u8 bytes[WINDOW_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WINDOW__COUNT);
	__type(key, __u32);
	__type(value, struct window);
} windows SEC(".maps");

/* The state of the sample's Lua and native walks (walk_state.bpf.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_scratch);
} walks SEC(".maps");

/* A sample_key is too large for the 512-byte BPF stack: build it here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sample_key);
} scratch SEC(".maps");

/* --- helpers ------------------------------------------------------------- */

/*
 * v & mask, kept even where the compiler can prove it changes nothing: the
 * verifier tracks bounds through the mask, not through an earlier compare.
 */
#define verifier_mask(v, mask) ({ __u64 __v = (v); asm volatile("" : "+r"(__v)); __v & (mask); })

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

/*
 * One step of the stack id hash: xor the word in, then multiply and fold
 * so every input bit reaches every output bit. Steps do not commute, so
 * the same frames in another order give another id.
 */
static __always_inline __u64 stack_id_mix(__u64 h, __u64 word)
{
	h ^= word;
	h *= 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

/* Forgets what a window holds: it belongs to an earlier sample. */
static __always_inline void window_reset(__u32 index)
{
	struct window *w = bpf_map_lookup_elem(&windows, &index);

	if (w)
		w->len = 0;
}

struct u64_pair {
	__u64 lo;
	__u64 hi;
};

/* Fills the start of a window with len bytes of user memory at start. */
static __always_inline long read_window_bytes(struct window *w, __u64 start, __u64 len)
{
	/* Masked to twice the size, then compared: the verifier bounds it so. */
	len = verifier_mask(len, 2 * WINDOW_BYTES - 1);
	if (!len || len > WINDOW_BYTES)
		return -1;
	return bpf_probe_read_user(w->bytes, len, (void *)start);
}

/*
 * Reads 16 bytes of user memory at addr into out through a window: from the
 * copy when it holds them, else the window moves there. The Lua window ends
 * at addr + 16 (the walk goes down) and never starts below limit (the Lua
 * stack's first slot: what lies before it is not the walk's to read). The
 * native window starts at addr (the walk goes up) and, when limit is set
 * and above addr, ends by it: the main thread's stack is readable at least
 * that far up, so a read near the outermost frames does not run off the
 * stack and fail (a failed read costs more than a good one). Otherwise a
 * window that cannot be read whole is read to the end of addr's page, and
 * where even that fails, the 16 bytes alone. Returns 0 when all 16
 * bytes were read, 1 when only the first 8 were (out->hi is 0 then), < 0 on
 * failure. A global function: the verifier checks it once, not at every
 * call site.
 */
__noinline int read_windowed(__u32 index, __u64 addr, __u64 limit, struct u64_pair *out)
{
	struct window *w = bpf_map_lookup_elem(&windows, &index);
	__u64 at, start, len;

	if (!out)
		return -1;
	if (!w)
		goto direct;
	at = addr - w->start;
	if (addr < w->start || at + 16 > w->len) {
		if (index == WINDOW_LUA) {
			len = WINDOW_LUA_BYTES;
			start = addr + 16 - len;
			if (start > addr || start < limit)
				start = limit;
		} else {
			len = WINDOW_BYTES;
			start = addr;
			if (limit && addr + 16 <= limit && limit - addr < len)
				start = limit - len;
		}
		if (start > addr || addr - start > len - 16)
			goto direct;
		if (read_window_bytes(w, start, len)) {
			/* The native walk off its stack's known end: the rest of the page. */
			len = PAGE_BYTES - (addr & (PAGE_BYTES - 1));
			start = addr;
			if (index == WINDOW_LUA || len < 16 || read_window_bytes(w, start, len)) {
				w->len = 0;
				goto direct;
			}
		}
		w->start = start;
		w->len = len;
		at = addr - start;
	}
	at = verifier_mask(at, WINDOW_BYTES - 1);
	if (at > WINDOW_BYTES - 16)
		return -1;
	__builtin_memcpy(out, w->bytes + at, 16);
	return 0;
direct:
	if (bpf_probe_read_user(out, 16, (void *)addr) == 0)
		return 0;
	out->hi = 0;
	return bpf_probe_read_user(&out->lo, 8, (void *)addr) == 0 ? 1 : -1;
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

#define E_EXIST 17
#define E_2BIG 7

/*
 * The common case is one lookup by an 8-byte id. The stack itself is copied
 * only for the first sample of an id in a drain period, and not at all once
 * user space has named it.
 */
static __always_inline void count_sample(struct sample_key *key, __u64 id)
{
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&control, &zero);
	void *map = (active && *active) ? (void *)&counts1 : (void *)&counts0;
	__u64 one = 1, *count;
	int err;

	count = bpf_map_lookup_elem(map, &id);
	if (count) {
		__sync_fetch_and_add(count, 1);
		return;
	}
	/* The stack goes in before its count, so a drained id always has one. */
	if (!bpf_map_lookup_elem(&known, &id)) {
		/*
		 * An int: kernels before 6.4 call the hash map's update directly
		 * and it returns an int, so the upper half of the 64-bit result
		 * is not a sign extension (on 6.1 EEXIST read as 4294967279, and
		 * every sample of a stack still held from the last drain period
		 * was counted as lost).
		 */
		err = (int)bpf_map_update_elem(&stacks, &id, key, BPF_NOEXIST);
		if (err && err != -E_EXIST) {
			/* Full (E2BIG), or no element could be allocated (ENOMEM). */
			stat_add(err == -E_2BIG ? STAT_LOST_MAP_FULL : STAT_LOST_NO_MEMORY);
			return;
		}
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

SEC("perf_event")
int sample_stack(struct bpf_perf_event_data *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct task_struct *task;
	__u64 stack_top = 0;
	struct proc_state *st = bpf_map_lookup_elem(&procs, &tgid);
	struct proc_mappings *pm;
	struct sample_key *key;
	struct pt_regs *uregs;
	__u32 zero = 0;
	__u64 id;
	long n;

	if (!st)
		return 0;
	key = bpf_map_lookup_elem(&scratch, &zero);
	if (!key)
		return 0;
	key->pid = tgid;
	key->flags = 0;
	key->vmstate = VMSTATE_NONE;
	key->n_kernel = 0;
	key->n_user = 0;
	key->n_lua = 0;
	key->pad0 = 0;
	key->pad1 = 0;
	stat_add(STAT_SAMPLES);
	id = stack_id_mix(0, tgid);

	if (cfg.kernel_stacks && !in_user_mode(ctx)) {
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

	/* The frame counts end the id, so frames cannot move between kinds. */
	id = stack_id_mix(id, ((__u64)key->flags << 32) | (__u32)key->vmstate);
	id = stack_id_mix(id, ((__u64)key->n_kernel << 32) | ((__u64)key->n_user << 16) | key->n_lua);
	count_sample(key, id);
	return 0;
}
