// Plugins and nginx phases from stacks (src/report/gateway.ts), on stacks
// as the profiler writes them for the gateway fixture (fixtures/gateway/,
// Debian's nginx and stripped ngx_lua module), as perf and stapxx write them.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFolded } from '../../src/report/fold.js';
import {
  groupStacks,
  phaseFrame,
  phaseOfGroupFrame,
  pluginOfChunk,
  pluginOfFrame,
  stackPhase,
  stackPhases,
  stackPlugins,
} from '../../src/report/gateway.js';
import { mergeIdentical } from '../../src/report/stack.js';
import { summarize } from '../../src/report/summary.js';

const fixture = (name: string) => parseFolded(readFileSync(new URL(`../../fixtures/${name}`, import.meta.url), 'utf8'));
const split = (line: string) => line.split(';');

// The worker's frames below every request (Debian's nginx 1.22, stripped ngx_lua).
const LOOP = 'main;ngx_master_process_cycle;[nginx+0x51340];ngx_spawn_process;[nginx+0x51af0];ngx_process_events_and_timers;[nginx+0x54130]';
const REQ = `${LOOP};[nginx+0x70980];[nginx+0x70480];ngx_http_core_run_phases`;
const A = '/usr/local/apisix/apisix';

// Real stacks of the gateway fixture under load (paths shortened).
const STACKS = {
  rewriteC: `${REQ};ngx_http_core_rewrite_phase;[ngx_http_lua_module.so+0x2c5e0];ngx_http_lua_run_thread;(rewrite_by_lua(nginx.conf:38):0);apisix.http_rewrite_phase (${A}/init.lua:56);run_plugins (${A}/init.lua:44);(${A}/plugins/jwt-auth.lua:8);[ngx_http_lua_module.so+0x17640];HMAC;EVP_Q_mac;SHA1_Update;[libcrypto.so.3+0x28eda0]`,
  router: `${REQ};ngx_http_core_rewrite_phase;[ngx_http_lua_module.so+0x2c5e0];ngx_http_lua_run_thread;(rewrite_by_lua(nginx.conf:38):0);apisix.http_rewrite_phase (${A}/init.lua:56);before (${A}/init.lua:67);router.match (${A}/core/router.lua:7)`,
  access: `${REQ};ngx_http_core_access_phase;[ngx_http_lua_module.so+0x2ce40];ngx_http_lua_run_thread;(access_by_lua(nginx.conf:41):0);apisix.http_access_phase (${A}/init.lua:56);run_plugins (${A}/init.lua:44);(${A}/plugins/limit-count.lua:5)`,
  accessNoLua: `${REQ};ngx_http_core_access_phase;[ngx_http_lua_module.so+0x2ce40];ngx_http_lua_run_thread;ngx_http_lua_del_thread`,
  content: `${REQ};ngx_http_core_content_phase;ngx_http_lua_content_by_chunk;ngx_http_lua_run_thread;(content_by_lua(nginx.conf:44):0);apisix.http_content_phase (${A}/init.lua:56);run_plugins (${A}/init.lua:44);(${A}/plugins/mocking.lua:6)`,
  headerFilter: `${REQ};ngx_http_core_content_phase;ngx_http_lua_content_by_chunk;ngx_http_lua_run_thread;[LuaJIT VM];[ngx_http_lua_module.so+0x19270];ngx_http_lua_send_chain_link;ngx_http_lua_send_header_if_needed;[ngx_http_lua_module.so+0x2e370];ngx_http_lua_header_filter_by_chunk;lua_pcall;(header_filter_by_lua(nginx.conf:47):0);apisix.http_header_filter_phase (${A}/init.lua:56);run_plugins (${A}/init.lua:44);response-rewrite.header_filter (${A}/plugins/response-rewrite.lua:6)`,
  bodyFilterEof: `${REQ};ngx_http_core_content_phase;ngx_http_lua_content_by_chunk;ngx_http_lua_run_thread;ngx_http_lua_send_chain_link;ngx_http_send_special;ngx_http_output_filter;[nginx+0xa2ad0];[ngx_http_lua_module.so+0x404a0];ngx_http_lua_body_filter_inline;ngx_http_lua_body_filter_by_chunk;lua_pcall;(body_filter_by_lua(nginx.conf:50):0);apisix.http_body_filter_phase (${A}/init.lua:56)`,
  contentWrite: `${REQ};ngx_http_core_content_phase;ngx_http_lua_content_by_chunk;ngx_http_lua_run_thread;ngx_http_lua_send_chain_link;ngx_http_send_special;ngx_http_output_filter;[nginx+0xa2ad0];[ngx_http_lua_module.so+0x404a0];[nginx+0x91030];ngx_http_write_filter;ngx_linux_sendfile_chain;ngx_writev;writev`,
  log: `${REQ};ngx_http_core_content_phase;[nginx+0x6e1c0];ngx_http_free_request;[nginx+0x6b9c0];[ngx_http_lua_module.so+0x3d490];lua_pcall;(log_by_lua(nginx.conf:53):0);apisix.http_log_phase (${A}/init.lua:56);run_plugins (${A}/init.lua:44);(${A}/plugins/prometheus/exporter.lua:5)`,
  logNoLuaFrames: `${REQ};ngx_http_core_content_phase;[nginx+0x6e1c0];ngx_http_free_request;[nginx+0x6b9c0];[ngx_http_lua_module.so+0x3d490];lua_pushcclosure;[libluajit-5.1.so.2.1.0+0x31490]`,
  timer: `${LOOP.replace(';[nginx+0x54130]', '')};ngx_event_expire_timers;[ngx_http_lua_module.so+0x47000];ngx_http_lua_run_thread;(${A}/init.lua:79);info.report (${A}/plugins/server-info.lua:6)`,
  idle: `${LOOP};epoll_wait;entry_SYSCALL_64_after_hwframe_[k];do_syscall_64_[k];__x64_sys_epoll_wait_[k];do_epoll_wait_[k]`,
  recv: `${LOOP};[nginx+0x71830];ngx_unix_recv;recv;entry_SYSCALL_64_after_hwframe_[k]`,
  postedRequests: `${LOOP};[nginx+0x70980];ngx_http_run_posted_requests`,
  vmOnly: '[LuaJIT VM]',
};

describe('plugins', () => {
  it('names the plugin of an APISIX or Kong plugin file', () => {
    expect(pluginOfChunk(`${A}/plugins/limit-count.lua`)).toBe('limit-count');
    expect(pluginOfChunk(`${A}/plugins/limit-count/init.lua`)).toBe('limit-count');
    expect(pluginOfChunk(`${A}/plugins/ai-drivers/openai/client.lua`)).toBe('ai-drivers');
    expect(pluginOfChunk('apisix/plugins/cors.lua')).toBe('cors');
    expect(pluginOfChunk('/usr/local/share/lua/5.1/kong/plugins/rate-limiting/handler.lua')).toBe('rate-limiting');
    expect(pluginOfChunk('/usr/local/share/lua/5.1/kong/plugins/base_plugin.lua')).toBeNull();
    expect(pluginOfChunk(`${A}/plugin.lua`)).toBeNull();
    expect(pluginOfChunk(`${A}/init.lua`)).toBeNull();
    expect(pluginOfChunk('/opt/myapisix/plugins/x.lua')).toBeNull();
    expect(pluginOfChunk('content_by_lua(nginx.conf:40)')).toBeNull();
  });

  it('reads our frames and stapxx frames, not native ones', () => {
    expect(pluginOfFrame(`_M.access (${A}/plugins/key-auth.lua:80)`)).toBe('key-auth');
    expect(pluginOfFrame(`@${A}/plugins/key-auth.lua:80`)).toBe('key-auth');
    expect(pluginOfFrame(`T:@${A}/plugins/limit-count/init.lua:301`)).toBe('limit-count');
    expect(pluginOfFrame('ngx_http_lua_ffi_hmac_sha1')).toBeNull();
  });

  it('charges C called from a plugin to the plugin (self), gateway code to none', () => {
    expect(stackPlugins(split(STACKS.rewriteC))).toEqual({ self: 'jwt-auth', total: ['jwt-auth'] });
    expect(stackPlugins(split(STACKS.router))).toEqual({ self: null, total: [] });
    expect(stackPlugins(split(STACKS.log))).toEqual({ self: 'prometheus', total: ['prometheus'] });
  });

  it('a non-plugin Lua frame between the plugin and the leaf takes self; nested plugins count once each', () => {
    const viaCore = [...split(STACKS.access), `core.json.encode (${A}/core/json.lua:90)`, 'string.format'];
    expect(stackPlugins(viaCore)).toEqual({ self: null, total: ['limit-count'] });
    const nested = [...split(STACKS.access), `redis.get (${A}/plugins/limit-count/redis.lua:12)`, `(${A}/plugins/jwt-auth.lua:8)`, `(${A}/plugins/limit-count.lua:5)`];
    expect(stackPlugins(nested)).toEqual({ self: 'limit-count', total: ['limit-count', 'jwt-auth'] });
  });
});

describe('phases', () => {
  it('finds each Lua phase in real stacks of the stripped module', () => {
    expect(stackPhase(split(STACKS.rewriteC))).toBe('rewrite');
    expect(stackPhase(split(STACKS.router))).toBe('rewrite');
    expect(stackPhase(split(STACKS.access))).toBe('access');
    expect(stackPhase(split(STACKS.accessNoLua))).toBe('access');
    expect(stackPhase(split(STACKS.content))).toBe('content');
    expect(stackPhase(split(STACKS.contentWrite))).toBe('content');
    expect(stackPhase(split(STACKS.log))).toBe('log');
    expect(stackPhase(split(STACKS.logNoLuaFrames))).toBe('log');
    expect(stackPhase(split(STACKS.timer))).toBe('timer');
  });

  it('a filter run from content is the filter; content counts it in total', () => {
    expect(stackPhases(split(STACKS.headerFilter))).toEqual({ phase: 'header_filter', onStack: ['content', 'header_filter'] });
    expect(stackPhases(split(STACKS.bodyFilterEof))).toEqual({ phase: 'body_filter', onStack: ['content', 'body_filter'] });
  });

  it("names nginx's own work", () => {
    expect(stackPhase(split(STACKS.idle))).toBe('[idle]');
    expect(stackPhase(split(STACKS.recv))).toBe('[nginx: event loop]');
    expect(stackPhase(split(STACKS.postedRequests))).toBe('[nginx: request]');
    expect(stackPhase(split(STACKS.vmOnly))).toBe('[unknown]');
    expect(stackPhase([])).toBe('[unknown]');
    // a static file or `return 200`: nginx's content phase, no Lua
    expect(stackPhase(split(`${REQ};ngx_http_core_content_phase;[nginx+0x8a1c0];ngx_http_send_header`))).toBe('[nginx: request]');
    // nginx's own timers (e.g. an upstream keepalive timeout)
    expect(stackPhase(split(`${LOOP};ngx_event_expire_timers;[nginx+0x6f000];ngx_close_connection`))).toBe('[nginx: event loop]');
    // proxy_pass: nginx's content phase hands over to the upstream module
    expect(stackPhase(split(`${REQ};ngx_http_core_content_phase;ngx_http_proxy_handler;ngx_http_read_client_request_body;ngx_http_upstream_init;ngx_event_connect_peer;connect`))).toBe('[nginx: upstream]');
    expect(stackPhase(split(`${LOOP};ngx_http_ssl_handshake;ngx_ssl_handshake;SSL_do_handshake;[libssl.so.3+0x5a000]`))).toBe('[nginx: ssl handshake]');
  });

  it('Lua inside nginx work is the Lua phase: balancer, ssl_cert, a cosocket handshake', () => {
    expect(stackPhase(split(`${REQ};ngx_http_core_content_phase;ngx_http_proxy_handler;ngx_http_upstream_init;[nginx+0x7c000];[ngx_http_lua_module.so+0x4e900];ngx_http_lua_balancer_handler_inline;lua_pcall;(balancer_by_lua(nginx.conf:90):0)`))).toBe('balancer');
    expect(stackPhase(split(`${LOOP};ngx_ssl_handshake;SSL_do_handshake;[libssl.so.3+0x5a000];ngx_http_lua_ssl_cert_handler;lua_resume`))).toBe('ssl_cert');
    expect(stackPhase(split(`${LOOP};ngx_ssl_handshake;SSL_do_handshake;[libssl.so.3+0x5a000];[ngx_http_lua_module.so+0x49000];ngx_http_lua_run_thread;(ssl_client_hello_by_lua(nginx.conf:70):0)`))).toBe('ssl_client_hello');
    expect(stackPhase(split(`${STACKS.access};ngx_http_lua_ffi_socket_tcp_sslhandshake;ngx_ssl_handshake;SSL_do_handshake`))).toBe('access');
  });

  it('a thread resumed from the event loop keeps its phase (after ngx.sleep or a cosocket read)', () => {
    // content_by_lua resumed by its sleep timer: no handler on the stack, the chunk says it
    expect(stackPhase(split(`${LOOP};ngx_event_expire_timers;[ngx_http_lua_module.so+0x5c000];[ngx_http_lua_module.so+0x5c100];ngx_http_lua_run_thread;(content_by_lua(nginx.conf:44):0);(${A}/plugins/mocking.lua:6)`))).toBe('content');
    // access resumed through nginx's phase runner
    expect(stackPhase(split(`${LOOP};[nginx+0x70980];ngx_http_core_run_phases;ngx_http_core_access_phase;[ngx_http_lua_module.so+0x2ce40];ngx_http_lua_run_thread;(${A}/plugins/limit-count.lua:5)`))).toBe('access');
  });

  it('reads perf-style and stapxx-style folded lines', () => {
    const perf = fixture('report/perf.folded');
    expect(perf.map((s) => stackPhase(s.frames))).toEqual([
      '[idle]',
      'content',
      'content',
      'content',
      'content',
      // a cosocket resumed by the event loop: perf shows no Lua frame to say which phase
      '[nginx: event loop]',
      'timer',
      // no nginx frame at all
      '[unknown]',
    ]);
    const stapxx = fixture('gateway/stapxx.folded');
    expect(stapxx.map((s) => stackPhase(s.frames))).toEqual(['access', 'access', 'access', 'log', 'header_filter', 'timer', 'content']);
  });

  it('group frames: [phase:x] for Lua phases, nginx work as named', () => {
    expect(phaseFrame('access')).toBe('[phase:access]');
    expect(phaseFrame('[nginx: upstream]')).toBe('[nginx: upstream]');
    expect(phaseOfGroupFrame('[phase:body_filter]')).toBe('body_filter');
    expect(phaseOfGroupFrame('[idle]')).toBe('[idle]');
    expect(phaseOfGroupFrame('[phase:nope]')).toBeNull();
    expect(phaseOfGroupFrame('[GC]')).toBeNull();
  });
});

describe('groupStacks', () => {
  const stacks = [
    { frames: split(STACKS.access), count: 3 },
    { frames: split(STACKS.idle), count: 2 },
  ];

  it('puts the phase first, once', () => {
    const grouped = groupStacks(stacks, 'phase');
    expect(grouped.map((s) => s.frames[0])).toEqual(['[phase:access]', '[idle]']);
    expect(grouped[0].frames.slice(1)).toEqual(stacks[0].frames);
    expect(groupStacks(grouped, 'phase')).toEqual(grouped);
    expect(stacks[0].frames[0]).toBe('main');
  });

  it('keeps the summaries: a grouped stack has the same phase and plugins', () => {
    const plain = summarize(mergeIdentical(stacks));
    const grouped = summarize(mergeIdentical(groupStacks(stacks, 'phase')));
    expect(grouped.phases).toEqual(plain.phases);
    expect(grouped.plugins).toEqual(plain.plugins);
  });

  it('a grouped filter stack still counts in content\'s total', () => {
    const [g] = groupStacks([{ frames: split(STACKS.headerFilter), count: 1 }], 'phase');
    expect(g.frames[0]).toBe('[phase:header_filter]');
    expect(stackPhases(g.frames)).toEqual({ phase: 'header_filter', onStack: ['content', 'header_filter'] });
    const real = mergeIdentical(fixture('gateway/gateway.folded'));
    expect(summarize(mergeIdentical(groupStacks(real, 'phase'))).phases).toEqual(summarize(real).phases);
  });
});

describe('summary: plugins and phases', () => {
  it('a real gateway profile: plugin and phase tables (the walkthrough in docs/gateway.md)', () => {
    const stacks = mergeIdentical(fixture('gateway/gateway.folded'));
    const s = summarize(stacks);
    expect(s.totalSamples).toBe(903);
    expect(s.plugins.map((p) => [p.name, p.self, p.total])).toEqual([
      ['mocking', 278, 278],
      ['prometheus', 114, 114],
      ['jwt-auth', 103, 103],
      ['limit-count', 97, 97],
      ['ip-restriction', 95, 95],
      ['response-rewrite', 85, 85],
      ['server-info', 16, 16],
    ]);
    expect(s.plugins[2]).toEqual({ name: 'jwt-auth', self: 103, total: 103, selfShare: 103 / 903, totalShare: 103 / 903 });
    expect(s.phases.map((p) => [p.name, p.self, p.total])).toEqual([
      ['content', 307, 411],
      ['access', 196, 196],
      ['rewrite', 142, 142],
      ['log', 124, 124],
      ['body_filter', 52, 52],
      ['header_filter', 52, 52],
      ['timer', 16, 16],
      ['[nginx: request]', 5, 5],
      ['[nginx: event loop]', 4, 4],
      ['[unknown]', 4, 4],
      ['[idle]', 1, 1],
    ]);
    // every sample has one phase
    expect(s.phases.reduce((sum, p) => sum + p.self, 0)).toBe(903);
    // one rewrite sample lost its native frames: its Lua chunk still names the phase
    const cut = stacks.filter((st) => st.frames[0].startsWith('(rewrite_by_lua('));
    expect(cut.map((st) => stackPhase(st.frames))).toEqual(['rewrite']);
  });

  it('stapxx input: plugins from `@chunk:line` frames, sorted by total, self where the innermost Lua frame is', () => {
    const s = summarize(mergeIdentical(fixture('gateway/stapxx.folded')));
    expect(s.plugins.map((p) => [p.name, p.self, p.total])).toEqual([
      ['limit-count', 120, 120],
      ['jwt-auth', 80, 120],
      ['prometheus', 0, 60],
      ['rate-limiting', 10, 10],
      ['server-info', 10, 10],
    ]);
  });

  it('empty arrays, never missing keys', () => {
    const none = summarize([]);
    expect(none.plugins).toEqual([]);
    expect(none.phases).toEqual([]);
    const noPlugins = summarize([{ frames: split(STACKS.router), count: 4 }]);
    expect(noPlugins.plugins).toEqual([]);
    expect(noPlugins.phases).toEqual([{ name: 'rewrite', self: 4, total: 4, selfShare: 1, totalShare: 1 }]);
  });
});
