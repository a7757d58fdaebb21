// A minimal Docker Engine API client: GET requests over the daemon's unix
// socket with node:http, enough to turn `--container NAME|ID-PREFIX` into the
// container's init pid. Parsing of API answers is pure and exported for tests.
import http from 'node:http';
import { CliError, ExitCode } from '../errors.js';

const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
const DOCKER_TIMEOUT_MS = 5_000;

export type ContainerErrorKind =
  | 'bad-docker-host'
  | 'socket-missing'
  | 'socket-refused'
  | 'socket-permission'
  | 'timeout'
  | 'api-error'
  | 'no-such-container'
  | 'ambiguous-container'
  | 'not-running'
  | 'not-visible'
  | 'no-nginx'
  | 'no-such-pid-in-container';

const EXIT_CODES: Record<ContainerErrorKind, number> = {
  'bad-docker-host': ExitCode.BadArguments,
  'socket-missing': ExitCode.TargetNotFound,
  'socket-refused': ExitCode.TargetNotFound,
  'socket-permission': ExitCode.Permission,
  timeout: ExitCode.TargetNotFound,
  'api-error': ExitCode.TargetNotFound,
  'no-such-container': ExitCode.TargetNotFound,
  'ambiguous-container': ExitCode.BadArguments,
  'not-running': ExitCode.TargetNotFound,
  'not-visible': ExitCode.TargetNotFound,
  'no-nginx': ExitCode.TargetNotFound,
  'no-such-pid-in-container': ExitCode.TargetNotFound,
};

/** Everything that can go wrong finding a container target: one line, a kind, an exit code. */
export class ContainerError extends CliError {
  constructor(
    readonly kind: ContainerErrorKind,
    message: string,
  ) {
    super(message, EXIT_CODES[kind]);
    this.name = 'ContainerError';
  }
}

export interface ContainerInfo {
  /** Full 64-hex id. */
  id: string;
  /** Name without the leading '/'. */
  name: string;
  running: boolean;
  /** Init process pid as dockerd sees it (0 when not running). */
  pid: number;
  /** Docker's State.Status: created, running, paused, restarting, exited, dead... */
  state: string;
}

/** One row of GET /containers/json. */
export interface ContainerSummary {
  id: string;
  names: string[];
  state: string;
}

/** The socket path from DOCKER_HOST (unix:// only) or the default. */
export function dockerSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  if (host === undefined || host === '') return DEFAULT_DOCKER_SOCKET;
  if (host.startsWith('unix://') && host.length > 'unix://'.length) return host.slice('unix://'.length);
  throw new ContainerError(
    'bad-docker-host',
    `DOCKER_HOST=${host} is not supported: only unix:// sockets are (unset it to use ${DEFAULT_DOCKER_SOCKET})`,
  );
}

/** Pure: GET /containers/{id}/json answer -> ContainerInfo. */
export function parseInspect(body: unknown): ContainerInfo {
  const o = body as { Id?: unknown; Name?: unknown; State?: { Status?: unknown; Running?: unknown; Pid?: unknown } };
  if (!o || typeof o.Id !== 'string' || typeof o.State !== 'object' || o.State === null) {
    throw new ContainerError('api-error', 'Docker API: unexpected container inspect answer');
  }
  const running = o.State.Running === true;
  return {
    id: o.Id,
    name: typeof o.Name === 'string' ? o.Name.replace(/^\//, '') : '',
    running,
    pid: typeof o.State.Pid === 'number' ? o.State.Pid : 0,
    state: typeof o.State.Status === 'string' ? o.State.Status : running ? 'running' : 'unknown',
  };
}

/** Pure: GET /containers/json answer -> summaries. */
export function parseContainerList(body: unknown): ContainerSummary[] {
  if (!Array.isArray(body)) throw new ContainerError('api-error', 'Docker API: unexpected container list answer');
  return body.map((row: { Id?: unknown; Names?: unknown; State?: unknown }) => ({
    id: typeof row.Id === 'string' ? row.Id : '',
    names: Array.isArray(row.Names) ? row.Names.filter((n): n is string => typeof n === 'string').map((n) => n.replace(/^\//, '')) : [],
    state: typeof row.State === 'string' ? row.State : '',
  }));
}

/**
 * Pure: the container `ref` names, with Docker's precedence: full id, then
 * exact name (with or without the leading '/'), then unique id prefix.
 * Returns null when nothing matches; throws on an ambiguous prefix.
 */
export function matchContainer(ref: string, list: ContainerSummary[]): ContainerSummary | null {
  const wanted = ref.replace(/^\//, '');
  if (wanted === '') return null;
  const byId = list.find((c) => c.id === wanted);
  if (byId) return byId;
  const byName = list.find((c) => c.names.includes(wanted));
  if (byName) return byName;
  if (!/^[0-9a-f]+$/.test(wanted)) return null;
  const byPrefix = list.filter((c) => c.id.startsWith(wanted));
  if (byPrefix.length > 1) {
    const shown = byPrefix
      .slice(0, 4)
      .map((c) => `${c.id.slice(0, 12)} (${c.names[0] ?? '?'})`)
      .join(', ');
    throw new ContainerError(
      'ambiguous-container',
      `container id prefix '${wanted}' is ambiguous: ${byPrefix.length} containers match (${shown}${byPrefix.length > 4 ? ', ...' : ''}): give more of the id or the name`,
    );
  }
  return byPrefix[0] ?? null;
}

function noSuchContainer(ref: string): ContainerError {
  return new ContainerError('no-such-container', `no container named or with id prefix '${ref}' (docker ps -a lists them)`);
}

/** Throws 'not-running' unless the container runs and has an init pid. */
export function assertRunning(c: ContainerInfo): void {
  if (!c.running || c.pid <= 0) {
    throw new ContainerError('not-running', `container ${c.name || c.id.slice(0, 12)} is not running (state: ${c.state})`);
  }
}

export interface DockerClientOptions {
  /** Unix socket path; default from DOCKER_HOST or /var/run/docker.sock. */
  socketPath?: string;
  /** Whole-request deadline in ms (default 5000). */
  timeoutMs?: number;
}

interface ApiResponse {
  status: number;
  body: unknown;
}

export class DockerClient {
  readonly socketPath: string;
  readonly timeoutMs: number;

  constructor(options: DockerClientOptions = {}) {
    this.socketPath = options.socketPath ?? dockerSocketPath();
    this.timeoutMs = options.timeoutMs ?? DOCKER_TIMEOUT_MS;
  }

  /** GET a path; answers with status and parsed JSON (null for an empty or non-JSON body). */
  get(path: string): Promise<ApiResponse> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | null, value?: ApiResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value as ApiResponse);
      };
      const req = http.request(
        { socketPath: this.socketPath, path, method: 'GET', headers: { Host: 'docker', Accept: 'application/json' } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => finish(this.mapSocketError(e)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = null;
            try {
              body = text === '' ? null : JSON.parse(text);
            } catch {
              body = null;
            }
            finish(null, { status: res.statusCode ?? 0, body });
          });
        },
      );
      const timer = setTimeout(() => {
        finish(
          new ContainerError(
            'timeout',
            `Docker API on ${this.socketPath} did not answer GET ${path} within ${formatSeconds(this.timeoutMs)}: is dockerd hung?`,
          ),
        );
        req.destroy();
      }, this.timeoutMs);
      req.on('error', (e) => finish(this.mapSocketError(e)));
      req.end();
    });
  }

  /** GET that must answer 2xx with JSON, else an 'api-error'. */
  async getJson(path: string): Promise<unknown> {
    const res = await this.get(path);
    if (res.status < 200 || res.status >= 300) throw apiError(path, res);
    return res.body;
  }

  async listContainers(): Promise<ContainerSummary[]> {
    return parseContainerList(await this.getJson('/containers/json?all=1'));
  }

  /**
   * The container named by `ref` (name, full id or unique id prefix). Asks
   * the daemon directly first, then matches against the list of all
   * containers itself (for daemons that resolve fewer forms, and to name the
   * candidates of an ambiguous prefix). Does not require it to run: see assertRunning.
   */
  async inspectContainer(ref: string): Promise<ContainerInfo> {
    const wanted = ref.trim().replace(/^\//, '');
    // Docker's own name rule; anything else can name no container.
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(wanted)) throw noSuchContainer(ref);
    const direct = await this.get(`/containers/${encodeURIComponent(wanted)}/json`);
    if (direct.status === 200) return parseInspect(direct.body);
    // 404: unknown; 400/409/500: some daemons' answer to an ambiguous prefix.
    if (![400, 404, 409, 500].includes(direct.status)) throw apiError(`/containers/${wanted}/json`, direct);
    const match = matchContainer(wanted, await this.listContainers());
    if (!match) throw noSuchContainer(wanted);
    const res = await this.get(`/containers/${match.id}/json`);
    if (res.status === 404) throw noSuchContainer(wanted); // removed meanwhile
    if (res.status !== 200) throw apiError(`/containers/${match.id}/json`, res);
    return parseInspect(res.body);
  }

  private mapSocketError(e: Error): ContainerError {
    const code = (e as NodeJS.ErrnoException).code;
    const sock = this.socketPath;
    switch (code) {
      case 'ENOENT':
      case 'ENOTDIR':
        return new ContainerError(
          'socket-missing',
          `Docker socket ${sock} not found: is dockerd running? set DOCKER_HOST=unix://... to use another`,
        );
      case 'ECONNREFUSED':
      case 'ENOTSOCK':
        return new ContainerError(
          'socket-refused',
          `Docker socket ${sock} refused the connection: dockerd is not running (stale socket?); start it or set DOCKER_HOST=unix://...`,
        );
      case 'EACCES':
      case 'EPERM':
        return new ContainerError(
          'socket-permission',
          `permission denied on Docker socket ${sock}: run as root (the profiler needs root anyway)`,
        );
      default:
        return new ContainerError('api-error', `Docker API on ${sock} failed: ${e.message}`);
    }
  }
}

/** One-shot helper: inspect `ref` with a fresh client. */
export function inspectContainer(ref: string, options: DockerClientOptions = {}): Promise<ContainerInfo> {
  return new DockerClient(options).inspectContainer(ref);
}

function apiError(path: string, res: ApiResponse): ContainerError {
  const msg = (res.body as { message?: unknown } | null)?.message;
  const detail = typeof msg === 'string' ? msg.split('\n')[0] : `HTTP ${res.status}`;
  return new ContainerError('api-error', `Docker API GET ${path} failed: ${detail}`);
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}
