/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * What both walks and the programs use: counters, user-memory reads (8
 * bytes, a GCRef, or 16 bytes through a per-CPU window), and the stack id
 * hash.
 */
#ifndef APISIX_PROFILE_HELPERS_BPF_H
#define APISIX_PROFILE_HELPERS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "profiler.h"
#include "maps.bpf.h"

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

static __always_inline void stat_add_n(__u32 index, __u64 n)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &index);

	if (value)
		*value += n;
}

/* This CPU's counter (the counters are per CPU: no other CPU changes it). */
static __always_inline __u64 stat_get(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&stats, &index);

	return value ? *value : 0;
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

#endif
