/*
 * offsets.c: print the LuaJIT struct offsets apisix-profile needs, as JSON.
 *
 * Compiled by generate.sh against a configured LuaJIT tree:
 *   cc -I<tree>/src <same XCFLAGS as the library build> offsets.c
 * It includes LuaJIT's internal headers, so the numbers are exactly what the
 * compiler laid out for that source and those build flags. All values are
 * byte offsets or byte sizes, except gc64/fr2 (0 or 1).
 *
 * A field that does not exist in a build prints -1; each such case says why
 * next to the #if that guards it.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "lj_obj.h"
#include "lj_jit.h"
#include "lj_dispatch.h"
#include "lj_bc.h"

/* Fields that only some releases have: generate.sh probes the tree's headers
 * for each and passes 0 or 1, so a missing probe is an error, not a -1. */
#ifndef OFFSETS_HAVE_SNAP_MCOFS
#error "define OFFSETS_HAVE_SNAP_MCOFS to 0 or 1 (generate.sh probes SnapShot.mcofs)"
#endif
#ifndef OFFSETS_HAVE_L_EXDATA
#error "define OFFSETS_HAVE_L_EXDATA to 0 or 1 (generate.sh probes lua_State.exdata)"
#endif

static int first = 1;

static void put(const char *key, long value)
{
  printf("%s\n  \"%s\": %ld", first ? "{" : ",", key, value);
  first = 0;
}

#define OFS(type, field) ((long)offsetof(type, field))

/* `offsets bytecodes`: each bytecode's name, operand-A mode and metamethod,
 * in opcode order, from the BCDEF list of this very tree. */
#define BC_ENTRY(name, ma, mb, mc, mm) \
  printf("%s[\"%s\", \"%s\", \"%s\"]", n++ ? ",\n  " : "[\n  ", #name, #ma, #mm);

static int print_bytecodes(void)
{
  int n = 0;
  BCDEF(BC_ENTRY)
  printf("\n]\n");
  return 0;
}

int main(int argc, char **argv)
{
  if (argc > 1 && strcmp(argv[1], "bytecodes") == 0)
    return print_bytecodes();
  /* Build mode. LJ_FR2: two slots per frame (function, then ftsz/PC). */
  put("gc64", LJ_GC64);
  put("fr2", LJ_FR2);

  /* lua_State */
  put("L_size", (long)sizeof(lua_State));
  put("L_glref", OFS(lua_State, glref));
  put("L_base", OFS(lua_State, base));
  put("L_top", OFS(lua_State, top));
  put("L_maxstack", OFS(lua_State, maxstack));
  put("L_stack", OFS(lua_State, stack));
  put("L_cframe", OFS(lua_State, cframe));
  put("L_stacksize", OFS(lua_State, stacksize));
#if OFFSETS_HAVE_L_EXDATA
  /* OpenResty's branch: the pointer lua_setexdata stores (ngx_lua keeps the
   * thread's ngx_http_request_t there: --label uri reads it). */
  put("L_exdata", OFS(lua_State, exdata));
#else
  /* Upstream LuaJIT has no per-thread user data: no request to read. */
  put("L_exdata", -1);
#endif

  /* global_State */
  put("G_vmstate", OFS(global_State, vmstate));
  put("G_mainthref", OFS(global_State, mainthref));
  put("G_cur_L", OFS(global_State, cur_L));
  put("G_jit_base", OFS(global_State, jit_base));

  /* GG_State: main lua_State, then global_State, then (JIT builds) the
   * jit_State and hot counters, then the dispatch table. */
  put("GG_g", OFS(GG_State, g));
#if LJ_HASJIT
  put("GG_J", OFS(GG_State, J));
#else
  /* Built with LUAJIT_DISABLE_JIT: GG_State has no jit_State. */
  put("GG_J", -1);
#endif
  put("GG_dispatch", OFS(GG_State, dispatch));

  /* Functions: ffid and pc are in the common header (GCfuncL); f is the
   * C function pointer of GCfuncC. */
  put("fn_ffid", OFS(GCfuncL, ffid));
  put("fn_pc", OFS(GCfuncL, pc));
  put("fn_c_f", OFS(GCfuncC, f));

  /* GCproto: the bytecode follows the struct, so fn->pc - sizeof(GCproto)
   * is the prototype. */
  put("pt_size", (long)sizeof(GCproto));
  put("pt_chunkname", OFS(GCproto, chunkname));
  put("pt_firstline", OFS(GCproto, firstline));
  put("pt_numline", OFS(GCproto, numline));
  put("pt_lineinfo", OFS(GCproto, lineinfo));
  put("pt_sizebc", OFS(GCproto, sizebc));
  /* Debug info and constants, to name functions from their call sites:
   * k points between the numeric and the GC constants (GC ones at negative
   * indexes), uvinfo/varinfo are NUL-separated names. */
  put("pt_k", OFS(GCproto, k));
  put("pt_sizekgc", OFS(GCproto, sizekgc));
  put("pt_sizeuv", OFS(GCproto, sizeuv));
  put("pt_uvinfo", OFS(GCproto, uvinfo));
  put("pt_varinfo", OFS(GCproto, varinfo));

  /* GCstr: the string bytes follow the struct. */
  put("str_size", (long)sizeof(GCstr));
  put("str_len", OFS(GCstr, len));

#if LJ_HASJIT
  /* jit_State trace array (GCRef per trace number) and its size. */
  put("J_trace", OFS(jit_State, trace));
  put("J_sizetrace", OFS(jit_State, sizetrace));
  /* GCtrace */
  put("trace_nsnap", OFS(GCtrace, nsnap));
  put("trace_snap", OFS(GCtrace, snap));
  put("trace_snapmap", OFS(GCtrace, snapmap));
  put("trace_mcode", OFS(GCtrace, mcode));
  put("trace_szmcode", OFS(GCtrace, szmcode));
  put("trace_startpt", OFS(GCtrace, startpt));
  put("trace_startpc", OFS(GCtrace, startpc));
  put("trace_spadjust", OFS(GCtrace, spadjust));
  /* SnapShot */
  put("snap_size", (long)sizeof(SnapShot));
#if OFFSETS_HAVE_SNAP_MCOFS
  put("snap_mcofs", OFS(SnapShot, mcofs));
#else
  /* Older trees (luajit2 up to 2.1-20210510) keep no machine-code offset per
   * snapshot: a trace's code cannot be mapped to a snapshot's PC. */
  put("snap_mcofs", -1);
#endif
  put("snap_mapofs", OFS(SnapShot, mapofs));
  put("snap_nent", OFS(SnapShot, nent));
#else
  /* Built with LUAJIT_DISABLE_JIT: there is no jit_State in GG_State and
   * no trace is ever created, so none of these fields exist at run time. */
  put("J_trace", -1);
  put("J_sizetrace", -1);
  put("trace_nsnap", -1);
  put("trace_snap", -1);
  put("trace_snapmap", -1);
  put("snap_nent", -1);
  put("trace_mcode", -1);
  put("trace_szmcode", -1);
  put("trace_startpt", -1);
  put("trace_startpc", -1);
  put("trace_spadjust", -1);
  put("snap_size", -1);
  put("snap_mcofs", -1);
  put("snap_mapofs", -1);
#endif
  printf("\n}\n");
  return 0;
}
