/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * --label uri: the URI path of the request a sampled Lua thread serves.
 *
 * ngx_lua stores the ngx_http_request_t a thread runs for with
 * lua_setexdata (OpenResty's LuaJIT keeps it in lua_State.exdata), for a
 * request's coroutines and, while a filter or log handler runs, for the
 * main thread. The URI is an ngx_str_t {size_t len; u_char *data} in the
 * request, at an offset that depends on how nginx was built: until user
 * space has learned it from live requests (src/gateway/request-layout.ts),
 * a sample only offers the request it saw.
 *
 * Each sample with a label costs three reads (exdata, the ngx_str_t, at
 * most URI_LABEL_BYTES of the path), a hash of those bytes, and one lookup
 * in uri_labels; the bytes are copied there once per label.
 */
#ifndef APISIX_PROFILE_REQUEST_URI_BPF_H
#define APISIX_PROFILE_REQUEST_URI_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "profiler.h"
#include "maps.bpf.h"
#include "helpers.bpf.h"

/* Where a sample's URI is read into and hashed (off the 512-byte stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct uri_label);
} uri_scratch SEC(".maps");

struct ngx_str {
	__u64 len;
	__u64 data;
};

/*
 * The label of the request the sample's running thread (the Lua walk's L,
 * set with SAMPLE_IN_LUA) of process tgid serves:
 * a 32-bit FNV-1a hash of its URI path (never 0), or 0 when there is none
 * (no request, no exdata in this LuaJIT, offset not learned yet). A global
 * function: the verifier checks it once, whatever the walks before it did.
 */
__noinline __u32 request_uri_label(__u32 tgid)
{
	struct request_uri_state *rs = bpf_map_lookup_elem(&request_uris, &tgid);
	struct ngx_str uri = {};
	struct uri_label *label;
	struct walk_scratch *ws;
	__u32 zero = 0, hash = 2166136261U, i;
	__u64 r = 0, n, L;

	ws = bpf_map_lookup_elem(&walks, &zero);
	if (!rs || !ws || rs->L_exdata < 0)
		return 0;
	L = ws->lua.L;
	if (!L)
		return 0;
	if (read_u64(L + (__u32)rs->L_exdata, &r) || !r)
		return 0;
	if (!rs->uri_offset) {
		rs->request = r;
		return 0;
	}
	if (bpf_probe_read_user(&uri, sizeof(uri), (void *)(r + rs->uri_offset)) || !uri.len || !uri.data)
		return 0;
	label = bpf_map_lookup_elem(&uri_scratch, &zero);
	if (!label)
		return 0;
	n = uri.len < URI_LABEL_BYTES ? uri.len : URI_LABEL_BYTES;
	n = verifier_mask(n, 2 * URI_LABEL_BYTES - 1);
	if (!n || n > URI_LABEL_BYTES || bpf_probe_read_user(label->bytes, n, (void *)uri.data))
		return 0;
	/* The path only: a query string would make every request a label of its own. */
	for (i = 0; i < URI_LABEL_BYTES; i++) {
		if (i >= n || label->bytes[i] == '?')
			break;
		hash = (hash ^ label->bytes[i]) * 16777619U;
	}
	if (!i)
		return 0;
	label->len = i;
	hash = (hash ^ i) * 16777619U;
	if (!hash)
		hash = 1;
	if (!bpf_map_lookup_elem(&uri_labels, &hash))
		bpf_map_update_elem(&uri_labels, &hash, label, BPF_NOEXIST);
	return hash;
}

#endif
