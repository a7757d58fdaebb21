import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import {
  assertRunning,
  ContainerError,
  DockerClient,
  dockerSocketPath,
  inspectContainer,
  matchContainer,
  parseContainerList,
  parseInspect,
} from '../../src/target/docker.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/docker/${name}`, import.meta.url), 'utf8'));

const REAL_ID = 'abdae8ea9cc3fec5db73bcd1d5caf2108991ef23443e43a601d4d9d7c0ac5c0c';

describe('pure parts', () => {
  it('parses a real inspect answer of a running container', () => {
    expect(parseInspect(fixture('inspect-running.json'))).toEqual({
      id: REAL_ID,
      name: 'pf-fixture',
      running: true,
      pid: 19877,
      state: 'running',
    });
  });

  it('parses created and exited containers, and assertRunning names the state', () => {
    const created = parseInspect(fixture('inspect-created.json'));
    expect(created).toMatchObject({ name: 'pf-x1', running: false, pid: 0, state: 'created' });
    const exited = parseInspect(fixture('inspect-exited.json'));
    expect(exited).toMatchObject({ name: 'pf-b', running: false, pid: 0, state: 'exited' });
    expect(() => assertRunning(exited)).toThrow('container pf-b is not running (state: exited)');
    expect(() => assertRunning(parseInspect(fixture('inspect-running.json')))).not.toThrow();
  });

  it('rejects answers that are not an inspect result', () => {
    expect(() => parseInspect({ message: 'x' })).toThrow(ContainerError);
    expect(() => parseContainerList({})).toThrow('unexpected container list answer');
  });

  it('parses a real container list', () => {
    expect(parseContainerList(fixture('list-one.json'))).toEqual([{ id: REAL_ID, names: ['pf-fixture'], state: 'running' }]);
  });

  const list = [
    { id: 'abc1' + '0'.repeat(60), names: ['apisix'], state: 'running' },
    { id: 'abc2' + '0'.repeat(60), names: ['etcd'], state: 'running' },
    { id: 'def0' + '0'.repeat(60), names: ['abc1'], state: 'exited' },
  ];

  it('matches full id, then name, then unique id prefix', () => {
    expect(matchContainer(list[1].id, list)).toBe(list[1]);
    expect(matchContainer('apisix', list)).toBe(list[0]);
    expect(matchContainer('/apisix', list)).toBe(list[0]);
    expect(matchContainer('abc1', list)).toBe(list[2]); // a name beats an id prefix, as in docker
    expect(matchContainer('abc2', list)).toBe(list[1]);
    expect(matchContainer('def', list)).toBe(list[2]);
    expect(matchContainer('nope', list)).toBeNull();
    expect(matchContainer('', list)).toBeNull();
  });

  it('refuses an ambiguous prefix, naming the candidates', () => {
    let err: unknown;
    try {
      matchContainer('abc', list);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ContainerError);
    expect((err as ContainerError).kind).toBe('ambiguous-container');
    expect((err as ContainerError).message).toBe(
      "container id prefix 'abc' is ambiguous: 2 containers match (abc100000000 (apisix), abc200000000 (etcd)): give more of the id or the name",
    );
  });

  it('takes the socket from DOCKER_HOST=unix://... and refuses other schemes', () => {
    expect(dockerSocketPath({})).toBe('/var/run/docker.sock');
    expect(dockerSocketPath({ DOCKER_HOST: '' })).toBe('/var/run/docker.sock');
    expect(dockerSocketPath({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock' })).toBe('/run/user/1000/docker.sock');
    expect(() => dockerSocketPath({ DOCKER_HOST: 'tcp://10.0.0.1:2375' })).toThrow(
      'DOCKER_HOST=tcp://10.0.0.1:2375 is not supported: only unix:// sockets are (unset it to use /var/run/docker.sock)',
    );
  });
});

// A fake dockerd: answers like Docker 20.10 (checked against the real one:
// ambiguous prefix -> 500 "Multiple IDs found with provided prefix: x").
interface FakeContainer {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; Pid: number };
}

function fake(id: string, name: string, running = true, pid = 4242): FakeContainer {
  return { Id: id, Name: `/${name}`, State: { Status: running ? 'running' : 'exited', Running: running, Pid: running ? pid : 0 } };
}

interface FakeDaemon {
  socketPath: string;
  requests: string[];
  containers: FakeContainer[];
  /** Only resolve full ids on /containers/{ref}/json (like a minimal engine). */
  fullIdsOnly: boolean;
  /** Paths that never get an answer. */
  hang: Set<string>;
  /** Paths answered with 500 and this message. */
  fail: Map<string, string>;
}

describe('DockerClient against a fake daemon', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apisix-profile-docker-'));
  let server: http.Server;
  const daemon: FakeDaemon = {
    socketPath: join(dir, 'docker.sock'),
    requests: [],
    containers: [],
    fullIdsOnly: false,
    hang: new Set(),
    fail: new Map(),
  };
  const send = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const url = req.url ?? '';
      daemon.requests.push(url);
      if (daemon.hang.has(url)) return;
      const failure = daemon.fail.get(url);
      if (failure !== undefined) return send(res, 500, { message: failure });
      if (url === '/containers/json?all=1') {
        return send(
          res,
          200,
          daemon.containers.map((c) => ({ Id: c.Id, Names: [c.Name], State: c.State.Status, Status: 'Up' })),
        );
      }
      const m = /^\/containers\/([^/]+)\/json$/.exec(url);
      if (!m) return send(res, 404, { message: 'page not found' });
      const ref = decodeURIComponent(m[1]);
      const exact = daemon.containers.find((c) => c.Id === ref || (!daemon.fullIdsOnly && c.Name === `/${ref}`));
      if (exact) return send(res, 200, exact);
      const byPrefix = daemon.fullIdsOnly ? [] : daemon.containers.filter((c) => c.Id.startsWith(ref));
      if (byPrefix.length > 1) return send(res, 500, { message: `Multiple IDs found with provided prefix: ${ref}` });
      if (byPrefix.length === 1) return send(res, 200, byPrefix[0]);
      return send(res, 404, { message: `No such container: ${ref}` });
    });
    await new Promise<void>((resolve) => server.listen(daemon.socketPath, resolve));
  });

  afterEach(() => {
    daemon.requests = [];
    daemon.containers = [];
    daemon.fullIdsOnly = false;
    daemon.hang.clear();
    daemon.fail.clear();
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const client = () => new DockerClient({ socketPath: daemon.socketPath });
  const apisixId = '7ab46f7daef5' + '1'.repeat(52);
  const etcdId = '7557a561071d' + '2'.repeat(52);
  const oldId = '9501f6318571' + '3'.repeat(52);

  async function errorOf(p: Promise<unknown>): Promise<ContainerError> {
    try {
      await p;
    } catch (e) {
      expect(e).toBeInstanceOf(ContainerError);
      return e as ContainerError;
    }
    throw new Error('expected a ContainerError');
  }

  it('inspects by name, /name, full id and id prefix', async () => {
    daemon.containers = [fake(apisixId, 'apisix', true, 1234), fake(etcdId, 'etcd')];
    const want = { id: apisixId, name: 'apisix', running: true, pid: 1234, state: 'running' };
    for (const ref of ['apisix', '/apisix', apisixId, '7ab4']) {
      expect(await client().inspectContainer(ref)).toEqual(want);
    }
    expect(daemon.requests).toEqual([
      '/containers/apisix/json',
      '/containers/apisix/json',
      `/containers/${apisixId}/json`,
      '/containers/7ab4/json',
    ]);
  });

  it('falls back to the container list when the daemon resolves only full ids', async () => {
    daemon.containers = [fake(apisixId, 'apisix', true, 1234), fake(etcdId, 'etcd')];
    daemon.fullIdsOnly = true;
    expect((await client().inspectContainer('/etcd')).id).toBe(etcdId);
    expect((await client().inspectContainer('7ab46f')).name).toBe('apisix');
    expect(daemon.requests).toEqual([
      '/containers/etcd/json',
      '/containers/json?all=1',
      `/containers/${etcdId}/json`,
      '/containers/7ab46f/json',
      '/containers/json?all=1',
      `/containers/${apisixId}/json`,
    ]);
  });

  it('reports an ambiguous prefix with the candidates', async () => {
    daemon.containers = [fake(apisixId, 'apisix'), fake(etcdId, 'etcd'), fake(oldId, 'old', false)];
    const err = await errorOf(client().inspectContainer('7'));
    expect(err.kind).toBe('ambiguous-container');
    expect(err.exitCode).toBe(ExitCode.BadArguments);
    expect(err.message).toBe(
      "container id prefix '7' is ambiguous: 2 containers match (7ab46f7daef5 (apisix), 7557a561071d (etcd)): give more of the id or the name",
    );
  });

  it('reports an unknown container with the exact message', async () => {
    daemon.containers = [fake(apisixId, 'apisix')];
    for (const ref of ['nope', 'abc', '../etc', '-x', '']) {
      const err = await errorOf(client().inspectContainer(ref));
      expect(err.kind).toBe('no-such-container');
      expect(err.message).toBe(`no container named or with id prefix '${ref}' (docker ps -a lists them)`);
      expect(err.exitCode).toBe(ExitCode.TargetNotFound);
    }
  });

  it('returns stopped containers; assertRunning refuses them', async () => {
    daemon.containers = [fake(oldId, 'apisix', false)];
    const info = await client().inspectContainer('apisix');
    expect(info).toEqual({ id: oldId, name: 'apisix', running: false, pid: 0, state: 'exited' });
    let err: unknown;
    try {
      assertRunning(info);
    } catch (e) {
      err = e;
    }
    expect((err as ContainerError).kind).toBe('not-running');
    expect((err as ContainerError).message).toBe('container apisix is not running (state: exited)');
  });

  it('maps API failures to api-error', async () => {
    daemon.containers = [fake(apisixId, 'apisix')];
    daemon.fail.set('/containers/json?all=1', 'database is locked\nmore');
    const err = await errorOf(client().inspectContainer('other'));
    expect(err.kind).toBe('api-error');
    expect(err.message).toBe('Docker API GET /containers/json?all=1 failed: database is locked');
  });

  it('times out', async () => {
    daemon.hang.add('/containers/apisix/json');
    const started = Date.now();
    const err = await errorOf(new DockerClient({ socketPath: daemon.socketPath, timeoutMs: 200 }).inspectContainer('apisix'));
    expect(err.kind).toBe('timeout');
    expect(err.message).toBe(
      `Docker API on ${daemon.socketPath} did not answer GET /containers/apisix/json within 0.2 s: is dockerd hung?`,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('maps a missing socket to socket-missing', async () => {
    const err = await errorOf(inspectContainer('apisix', { socketPath: join(dir, 'missing.sock') }));
    expect(err.kind).toBe('socket-missing');
    expect(err.message).toBe(
      `Docker socket ${join(dir, 'missing.sock')} not found: is dockerd running? set DOCKER_HOST=unix://... to use another`,
    );
  });

  it('maps a dead socket (nothing listening) to socket-refused', async () => {
    const stale = join(dir, 'stale.sock');
    writeFileSync(stale, '');
    const err = await errorOf(inspectContainer('apisix', { socketPath: stale }));
    expect(err.kind).toBe('socket-refused');
    expect(err.message).toBe(
      `Docker socket ${stale} refused the connection: dockerd is not running (stale socket?); start it or set DOCKER_HOST=unix://...`,
    );
  });

  it('uses DOCKER_HOST when no socket is given', async () => {
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${daemon.socketPath}`;
    try {
      daemon.containers = [fake(apisixId, 'apisix', true, 99)];
      expect((await inspectContainer('apisix')).pid).toBe(99);
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });
});
