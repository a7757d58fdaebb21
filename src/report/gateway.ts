// Gateway answers from stacks: which plugin (APISIX, Kong) and which nginx
// phase each sample belongs to. Pure functions over frame names, so they
// work on our stacks and on folded files from other tools (perf, stapxx).

import { frameKind, parseLuaFrame } from './frame.js';
import type { Stack } from './stack.js';
import { uriOfFrame } from './uris.js';

// ---------------------------------------------------------------- plugins

// `.../apisix/plugins/<name>.lua`, `.../apisix/plugins/<name>/<any>.lua`,
// `.../kong/plugins/<name>/<any>.lua` (Kong's plugins are directories).
const APISIX_PLUGIN = /(?:^|\/)apisix\/plugins\/([^/]+?)(?:\.lua|\/.+\.lua)$/;
const KONG_PLUGIN = /(?:^|\/)kong\/plugins\/([^/]+)\/.+\.lua$/;

/** The plugin a Lua chunk (file) belongs to, or null. */
export function pluginOfChunk(chunk: string): string | null {
  const m = APISIX_PLUGIN.exec(chunk) ?? KONG_PLUGIN.exec(chunk);
  return m ? m[1] : null;
}

/** The plugin a frame belongs to: a Lua frame whose chunk is a plugin file; else null. */
export function pluginOfFrame(frame: string): string | null {
  const lua = parseLuaFrame(frame);
  return lua ? pluginOfChunk(lua.chunk) : null;
}

/** The plugins of one stack. */
export interface StackPlugins {
  /**
   * The plugin charged with the sample's CPU: the innermost Lua frame (the
   * one nearest the leaf) is in that plugin's code. Frames above it are C
   * functions, FFI calls, fast functions, VM states or kernel frames, all
   * called from the plugin. Null when the innermost Lua frame is no
   * plugin's (gateway code, a library) or the stack has no Lua frame.
   */
  self: string | null;
  /** Every plugin with a frame anywhere on the stack, each once, outermost first. */
  total: string[];
}

export function stackPlugins(frames: readonly string[]): StackPlugins {
  const total: string[] = [];
  let self: string | null = null;
  for (const frame of frames) {
    const info = frameInfo(frame);
    if (!info.lua) continue;
    self = info.plugin;
    if (info.plugin !== null && !total.includes(info.plugin)) total.push(info.plugin);
  }
  return { self, total };
}

// ----------------------------------------------------------------- phases

/**
 * ngx_lua's phases, named as `ngx.get_phase()` names them. A sample is in
 * one of these when ngx_lua ran Lua (or C called from it) for that phase.
 */
export const LUA_PHASES = [
  'init_worker',
  'ssl_client_hello',
  'ssl_cert',
  'ssl_session_fetch',
  'ssl_session_store',
  'set',
  'server_rewrite',
  'rewrite',
  'access',
  'content',
  'balancer',
  'header_filter',
  'body_filter',
  'log',
  'timer',
  'exit_worker',
] as const;
export type LuaPhase = (typeof LUA_PHASES)[number];

/** nginx's own work, outside any Lua phase. */
export const NGINX_WORK = [
  '[nginx: request]',
  '[nginx: upstream]',
  '[nginx: ssl handshake]',
  '[nginx: event loop]',
  '[idle]',
  '[unknown]',
] as const;
export type NginxWork = (typeof NGINX_WORK)[number];
export type Phase = LuaPhase | NginxWork;

// ngx_lua's handlers, by the phase they run Lua for. Exported symbols
// (named even in a stripped module) and static ones (named where the
// module keeps its symbol table, e.g. OpenResty's own builds).
const LUA_HANDLERS: readonly [RegExp, LuaPhase][] = [
  [/^ngx_http_lua_server_rewrite_(?:handler|by_chunk)/, 'server_rewrite'],
  [/^ngx_http_lua_rewrite_(?:handler|by_chunk)/, 'rewrite'],
  [/^ngx_http_lua_access_(?:handler|by_chunk)/, 'access'],
  [/^ngx_http_lua_content_(?:handler|by_chunk|wev_handler|run_posted_threads)/, 'content'],
  [/^ngx_http_lua_log_(?:handler|by_chunk)/, 'log'],
  [/^ngx_http_lua_header_filter(?:_by_chunk|_inline|_file)?$/, 'header_filter'],
  [/^ngx_http_lua_body_filter(?:_by_chunk|_inline|_file)?$/, 'body_filter'],
  [/^ngx_http_lua_balancer_(?:handler|by_chunk|get_peer)/, 'balancer'],
  [/^ngx_http_lua_ssl_cert_(?:handler|by_chunk)/, 'ssl_cert'],
  [/^ngx_http_lua_ssl_client_hello_(?:handler|by_chunk)/, 'ssl_client_hello'],
  [/^ngx_http_lua_ssl_sess_fetch_(?:handler|by_chunk)/, 'ssl_session_fetch'],
  [/^ngx_http_lua_ssl_sess_store_(?:handler|by_chunk)/, 'ssl_session_store'],
  [/^ngx_http_lua_(?:set_by_chunk|filter_set_by_lua)/, 'set'],
  [/^ngx_http_lua_init_worker(?:_by_inline|_by_file)?$/, 'init_worker'],
  [/^ngx_http_lua_exit_worker(?:_by_inline|_by_file)?$/, 'exit_worker'],
  [/^ngx_http_lua_timer_handler$/, 'timer'],
];

// The chunk ngx_lua names a `*_by_lua_block`/`*_by_lua` directive's code
// after: `rewrite_by_lua(nginx.conf:38)`. It is the outermost Lua frame of
// the phase's thread, also when the thread is resumed from the event loop
// (after ngx.sleep or a cosocket read), where no handler is on the stack.
const CHUNK_PHASE = /^([a-z_]+?)_by_lua(?:_block)?(?:\(|$)/;
const CHUNK_PHASES: Record<string, LuaPhase> = {
  init_worker: 'init_worker',
  ssl_client_hello: 'ssl_client_hello',
  ssl_certificate: 'ssl_cert',
  ssl_session_fetch: 'ssl_session_fetch',
  ssl_session_store: 'ssl_session_store',
  set: 'set',
  server_rewrite: 'server_rewrite',
  rewrite: 'rewrite',
  access: 'access',
  content: 'content',
  balancer: 'balancer',
  header_filter: 'header_filter',
  body_filter: 'body_filter',
  log: 'log',
  exit_worker: 'exit_worker',
};

// nginx's phase runners: which phase's handlers are below them. Where the
// handler below is ngx_lua's (named or not), the sample is in that Lua
// phase; otherwise it is nginx's own request work.
const NGINX_PHASES: readonly [RegExp, LuaPhase][] = [
  [/^ngx_http_core_rewrite_phase$/, 'rewrite'],
  [/^ngx_http_core_access_phase$/, 'access'],
  [/^ngx_http_core_content_phase$/, 'content'],
  // nginx runs the log phase's handlers when it frees a request.
  [/^ngx_http_(?:free_request|log_request)$/, 'log'],
  // ngx_lua's timers fire from nginx's timer tree.
  [/^ngx_event_expire_timers$/, 'timer'],
];

const UPSTREAM = /^ngx_http_(?:upstream|proxy|grpc|fastcgi|uwsgi|scgi)_/;
const SSL_HANDSHAKE = /^(?:ngx_ssl_handshake|ngx_http_ssl_handshake|SSL_do_handshake|ossl_statem_|tls_process_|tls_construct_)/;
// The worker waiting for events (the kernel's frames below it included).
const IDLE = /^(?:epoll_wait|epoll_pwait|epoll_pwait2|__GI_epoll_wait)$/;
// Lua running under a phase runner: ngx_lua's code (named, or an unnamed
// address in its module), LuaJIT's API and VM.
const NGX_LUA_CODE = /^(?:ngx_http_lua_|\[ngx_http_lua_module\.so\+|lua_|luaL_|lj_|\[LuaJIT VM\]$)/;

/** A stapxx C frame is `C:name`; look at the name. */
function nativeName(frame: string): string {
  return frame.startsWith('C:') ? frame.slice(2) : frame;
}

function luaHandlerPhase(name: string): LuaPhase | null {
  for (const [re, phase] of LUA_HANDLERS) if (re.test(name)) return phase;
  return null;
}

/** What one frame name says about plugins and phases; names repeat across stacks, so it is worked out once. */
interface FrameInfo {
  lua: boolean;
  /** A Lua frame's plugin. */
  plugin: string | null;
  /** A Lua phase marker: a phase's chunk, or an ngx_lua handler. */
  phase: LuaPhase | null;
  /** ngx_lua or LuaJIT code (no marker). */
  luaCode: boolean;
  nginx: boolean;
  request: boolean;
  runner: LuaPhase | null;
  work: NginxWork | null;
}

const infoCache = new Map<string, FrameInfo>();
const INFO_CACHE_LIMIT = 200_000;

function frameInfo(frame: string): FrameInfo {
  let info = infoCache.get(frame);
  if (info) return info;
  info = { lua: false, plugin: null, phase: null, luaCode: false, nginx: false, request: false, runner: null, work: null };
  if (frameKind(frame) === 'lua') {
    const lua = parseLuaFrame(frame);
    info.lua = true;
    if (lua) {
      info.plugin = pluginOfChunk(lua.chunk);
      const m = CHUNK_PHASE.exec(lua.chunk);
      info.phase = m ? (CHUNK_PHASES[m[1]] ?? null) : null;
    }
  } else {
    const name = nativeName(frame);
    info.phase = luaHandlerPhase(name);
    if (!info.phase) {
      info.luaCode = NGX_LUA_CODE.test(name);
      if (!info.luaCode) {
        info.nginx = name.startsWith('ngx_');
        info.request = name.startsWith('ngx_http_');
        info.runner = NGINX_PHASES.find(([re]) => re.test(name))?.[1] ?? null;
        if (!info.runner) {
          if (UPSTREAM.test(name)) info.work = '[nginx: upstream]';
          else if (SSL_HANDSHAKE.test(name)) info.work = '[nginx: ssl handshake]';
          else if (IDLE.test(name)) info.work = '[idle]';
        }
      }
    }
  }
  if (infoCache.size >= INFO_CACHE_LIMIT) infoCache.clear();
  infoCache.set(frame, info);
  return info;
}

const GROUP_PREFIX = '[phase:';

/** The frame `--group-by phase` puts first: `[phase:access]`, or nginx's work as named (`[nginx: upstream]`). */
export function phaseFrame(phase: Phase): string {
  return (LUA_PHASES as readonly string[]).includes(phase) ? `${GROUP_PREFIX}${phase}]` : phase;
}

/** The phase a `--group-by phase` frame names, or null for any other frame. */
export function phaseOfGroupFrame(frame: string): Phase | null {
  if (frame.startsWith(GROUP_PREFIX) && frame.endsWith(']')) {
    const name = frame.slice(GROUP_PREFIX.length, -1);
    return (LUA_PHASES as readonly string[]).includes(name) ? (name as LuaPhase) : null;
  }
  return (NGINX_WORK as readonly string[]).includes(frame) ? (frame as NginxWork) : null;
}

/** The phases of one stack. */
export interface StackPhases {
  /** The phase the sample is charged to (see stackPhase). */
  phase: Phase;
  /** Lua phases on the stack (nested ones: a body filter run by `ngx.say` in content), each once, plus `phase`. */
  onStack: Phase[];
}

/**
 * The phase of a stack (root first), decided in this order:
 * 1. a `--group-by phase` frame at the root says it;
 * 2. the innermost Lua phase marker: an ngx_lua handler by name
 *    (`ngx_http_lua_access_handler`, `ngx_http_lua_content_by_chunk`, ...)
 *    or a phase's Lua chunk (`access_by_lua(nginx.conf:41)`);
 * 3. the innermost of nginx's phase runners (`ngx_http_core_access_phase`,
 *    ..., `ngx_http_free_request` for log, `ngx_event_expire_timers` for
 *    timers) and nginx's work frames (upstream, SSL handshake, epoll):
 *    a phase runner with ngx_lua code above it is that Lua phase, without
 *    it nginx's own request work (`[nginx: request]`; a timer: the event
 *    loop); upstream, handshake, epoll frames give `[nginx: upstream]`,
 *    `[nginx: ssl handshake]`, `[idle]`;
 * 4. other nginx code: `[nginx: request]` with an `ngx_http_` frame,
 *    else `[nginx: event loop]` with an `ngx_` frame, else `[unknown]`.
 */
export function stackPhases(frames: readonly string[]): StackPhases {
  const grouped = frames.length > 0 ? phaseOfGroupFrame(frames[0]) : null;
  // A group frame says which phase the stack is charged to; the frames
  // below it still say which phases it ran inside.
  const { strong, phase } = grouped ? { ...classify(frames.slice(1)), phase: grouped } : classify(frames);
  const onStack: Phase[] = [];
  for (const p of [...strong, phase]) if (!onStack.includes(p)) onStack.push(p);
  return { phase, onStack };
}

function classify(frames: readonly string[]): { strong: LuaPhase[]; phase: Phase } {
  const strong: LuaPhase[] = [];
  // The innermost of nginx's markers: a phase runner (and whether ngx_lua
  // code follows it) or a work frame.
  let weak: { phase: LuaPhase; lua: boolean } | { work: NginxWork } | null = null;
  let request = false;
  let nginx = false;
  for (const frame of frames) {
    const info = frameInfo(frame);
    if (info.lua) {
      if (info.phase) strong.push(info.phase);
      if (weak && 'phase' in weak) weak.lua = true;
      continue;
    }
    if (info.phase) {
      strong.push(info.phase);
      continue;
    }
    if (info.luaCode) {
      if (weak && 'phase' in weak) weak.lua = true;
      continue;
    }
    if (info.nginx) nginx = true;
    if (info.request) request = true;
    if (info.runner) weak = { phase: info.runner, lua: false };
    else if (info.work) weak = { work: info.work };
  }
  let phase: Phase;
  if (strong.length > 0) phase = strong[strong.length - 1];
  else if (weak && 'phase' in weak) {
    if (weak.lua) phase = weak.phase;
    else phase = weak.phase === 'timer' ? '[nginx: event loop]' : '[nginx: request]';
  } else if (weak) phase = weak.work;
  else if (request) phase = '[nginx: request]';
  else if (nginx) phase = '[nginx: event loop]';
  else phase = '[unknown]';
  return { strong, phase };
}

/** The phase of a stack (stackPhases(frames).phase). */
export function stackPhase(frames: readonly string[]): Phase {
  return stackPhases(frames).phase;
}

// --------------------------------------------------------------- grouping

export type GroupBy = 'phase' | 'uri';
export const GROUP_BY: readonly GroupBy[] = ['phase', 'uri'];

/**
 * `--group-by phase`: each stack gets its phase as its first frame
 * (`[phase:access]`, `[nginx: upstream]`), so the flame graph and every
 * output split by phase. Stacks grouped already are left as they are.
 * `--group-by uri`: a stack's `[uri:...]` frame (--label uri) goes first;
 * stacks taken outside a request have none and stay as they are.
 * Returns new stacks; the caller merges them (mergeIdentical).
 */
export function groupStacks(stacks: readonly Stack[], by: GroupBy): Stack[] {
  if (by === 'uri') {
    return stacks.map(({ frames, count }) => {
      const at = frames.findIndex((f) => uriOfFrame(f) !== null);
      return { frames: at <= 0 ? [...frames] : [frames[at], ...frames.slice(0, at), ...frames.slice(at + 1)], count };
    });
  }
  if (by !== 'phase') throw new RangeError(`unknown grouping ${String(by)}`);
  return stacks.map(({ frames, count }) => {
    if (frames.length > 0 && phaseOfGroupFrame(frames[0])) return { frames: [...frames], count };
    return { frames: [phaseFrame(stackPhase(frames)), ...frames], count };
  });
}
