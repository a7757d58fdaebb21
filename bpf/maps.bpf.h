/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The settings and maps of the profiler's BPF object: what the programs and
 * the walks share, and what user space reaches through
 * src/native/profiler-object.ts (every name used there is declared here).
 */
#ifndef APISIX_PROFILE_MAPS_BPF_H
#define APISIX_PROFILE_MAPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "profiler.h"
#include "walk_state.bpf.h"

/* Settings fixed before load (.rodata): the verifier prunes by them. */
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
	__uint(max_entries, MAX_KNOWN_STACKS);
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

/*
 * Off-CPU mode: target threads by thread id (preallocated: the switch
 * holds the run queue's lock, where nothing may allocate).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_OFFCPU_THREADS);
	__type(key, __u32);
	__type(value, struct offcpu_thread);
} offcpu_threads SEC(".maps");

/*
 * Off-CPU mode: the targets' pids as a bitmap (bit pid % 64 of word pid /
 * 64), the switch program's first test of both threads of every switch on
 * the machine. An array lookup is inlined to an address computation, where
 * a hash lookup would hash and walk a bucket: most switches on a busy
 * machine are other processes'. User space sets a bit with the process's
 * `procs` entry and clears it with it. Sized to 1 in CPU mode.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TARGET_PID_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} target_pids SEC(".maps");

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

/* --label uri: per target process, where its requests keep their URI. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROCS);
	__type(key, __u32);
	__type(value, struct request_uri_state);
} request_uris SEC(".maps");

/*
 * --label uri: label id (a hash of the URI path) -> its bytes, written once
 * per id; user space reads them after sampling. Preallocated: the sampling
 * path never allocates. A URI first seen when it is full keeps its id in
 * the stack and is shown as [other].
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_URI_LABELS);
	__type(key, __u32);
	__type(value, struct uri_label);
} uri_labels SEC(".maps");

/* A sample_key is too large for the 512-byte BPF stack: build it here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sample_key);
} scratch SEC(".maps");

#endif
