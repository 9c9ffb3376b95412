// The HA test bed on one machine over loopback (issue 19, docs/scaling.md): etcd, three PostgreSQL 15 nodes under
// Patroni with synchronous replication, HAProxy (the primary's port checked through Patroni's REST API, the API's
// replicas checked through /readyz, the keyclient), the Entra emulator, N API replicas and the keyclient.
// Used by `npm run ha:up` / `ha:down` (scripts/ha/ha.mjs) and by `npm run test:ha` (apps/keyserver-e2e/src/ha).
// Every process starts in its own process group with its log under <dir>/logs; <dir>/state.json lists them so a
// later `ha:down` (another process) stops exactly those.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } = require('node:fs');
const { createServer } = require('node:net');
const { tmpdir } = require('node:os');
const { dirname, join } = require('node:path');
const { Client } = require('pg');
const { parse: parseYaml } = require('yaml');
const platform = require('../platform.cjs');

const root = platform.root;
const PG_BIN = process.env.HA_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const SCOPE = 'keyserver-ha';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Patroni timing (DCS): a dead leader's key expires after TTL s; loop_wait + 2 * retry_timeout <= ttl. */
const PATRONI_TIMING = { ttl: 10, loop_wait: 1, retry_timeout: 4 };

/** The loopback port plan: base + offset, so one base (HA_BASE_PORT, default 26000) names the whole bed. */
function portPlan(base, nodes, apiReplicas) {
  return {
    etcdClient: base,
    etcdPeer: base + 1,
    pgPrimary: base + 10,
    pgReplicas: base + 11,
    api: base + 20,
    keyclient: base + 21,
    haproxyStats: base + 29,
    patroniRest: Array.from({ length: nodes }, (_, i) => base + 30 + i),
    postgres: Array.from({ length: nodes }, (_, i) => base + 40 + i),
    emulator: base + 50,
    apiReplicas: Array.from({ length: apiReplicas }, (_, i) => base + 60 + i),
    keyclientBackend: base + 70,
  };
}

async function portFree(port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A base whose 100 ports are all free (tests); `preferred` first. */
async function findBase(preferred, nodes, apiReplicas) {
  const candidates = preferred ? [preferred] : [];
  // Below Linux's ephemeral range (32768+), where outgoing connections would take our ports at random.
  for (let i = 0; i < 40; i++) candidates.push(20000 + Math.floor(Math.random() * 120) * 100);
  for (const base of candidates) {
    const p = portPlan(base, nodes, apiReplicas);
    const all = [p.etcdClient, p.etcdPeer, p.pgPrimary, p.pgReplicas, p.api, p.keyclient, p.haproxyStats, ...p.patroniRest, ...p.postgres, p.emulator, ...p.apiReplicas, p.keyclientBackend];
    let free = true;
    for (const port of all) if (!(await portFree(port))) free = false;
    if (free) return base;
    if (base === preferred) throw new Error(`ports of base ${base} are in use (another bed running? npm run ha:down, or set HA_BASE_PORT)`);
  }
  throw new Error('no free port range found');
}

/** The start command of a docker-compose service: the bed runs exactly what the images run. */
function composeCommand(service) {
  const doc = parseYaml(readFileSync(join(root, 'docker-compose.yml'), 'utf8'));
  const cmd = doc.services?.[service]?.command;
  if (!cmd?.length) throw new Error(`docker-compose.yml: service ${service} has no command`);
  return cmd;
}

const postgresUser = () => {
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  return r.status === 0 ? { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) } : undefined;
};

function chownTree(path, ids) {
  chownSync(path, ids.uid, ids.gid);
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    if (e.isDirectory()) chownTree(p, ids);
    else chownSync(p, ids.uid, ids.gid);
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Child pids of `pid` (from /proc), for killing a node's PostgreSQL backends with it. */
function childrenOf(pid) {
  const out = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function postmasterPid(dataDir) {
  try {
    return Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]) || undefined;
  } catch {
    return undefined;
  }
}

async function waitFor(what, fn, timeoutMs, log) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err.message;
    }
    await sleep(250);
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms ${last ? `(${last})` : ''}${log ? `\n${log()}` : ''}`);
}

async function httpOk(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return r.ok;
}

function tail(file, bytes = 4000) {
  try {
    const s = readFileSync(file, 'utf8');
    return s.slice(-bytes);
  } catch {
    return '';
  }
}

class HaBed {
  constructor(state) {
    this.state = state;
  }

  get dir() {
    return this.state.dir;
  }
  get ports() {
    return this.state.ports;
  }
  /** Where clients go: HAProxy's frontends. */
  get urls() {
    const p = this.state.ports;
    return {
      api: `http://127.0.0.1:${p.api}`,
      keyclient: `http://localhost:${p.keyclient}`,
      emulator: `http://127.0.0.1:${p.emulator}`,
      haproxyStats: `http://127.0.0.1:${p.haproxyStats}/`,
      database: `postgresql://postgres@127.0.0.1:${p.pgPrimary}/keyserver`,
      databaseReplicas: `postgresql://postgres@127.0.0.1:${p.pgReplicas}/keyserver?target_session_attrs=any`,
      apiReplicas: p.apiReplicas.map((port) => `http://127.0.0.1:${port}`),
    };
  }

  save() {
    writeFileSync(join(this.dir, 'state.json'), JSON.stringify(this.state, null, 2));
  }

  log(name) {
    return tail(join(this.dir, 'logs', `${name}.log`));
  }

  /** Starts a detached process (own process group) with its output in logs/<name>.log. */
  spawn(name, argv, env, extra = {}) {
    const logFile = join(this.dir, 'logs', `${name}.log`);
    const fd = openSync(logFile, 'a');
    const [program, ...args] = argv;
    const child = spawn(program === 'node' ? process.execPath : program, args, {
      cwd: extra.cwd ?? root,
      env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`, ...env },
      stdio: ['ignore', fd, fd],
      detached: true,
      ...(extra.uid !== undefined ? { uid: extra.uid, gid: extra.gid } : {}),
    });
    child.unref();
    this.state.pids[name] = child.pid;
    this.save();
    return child.pid;
  }

  // ---- PostgreSQL under Patroni ---------------------------------------------------------------------------

  nodeName(i) {
    return `pg${i + 1}`;
  }

  nodeDir(i) {
    return join(this.dir, this.nodeName(i));
  }

  patroniConfig(i) {
    const p = this.state.ports;
    const dir = this.nodeDir(i);
    return {
      scope: SCOPE,
      namespace: '/keyserver/',
      name: this.nodeName(i),
      log: { level: 'INFO' },
      restapi: { listen: `127.0.0.1:${p.patroniRest[i]}`, connect_address: `127.0.0.1:${p.patroniRest[i]}` },
      etcd3: { hosts: [`127.0.0.1:${p.etcdClient}`] },
      bootstrap: {
        dcs: {
          ...PATRONI_TIMING,
          maximum_lag_on_failover: 1048576,
          // A commit is acknowledged only once the synchronous standby has it; Patroni promotes only that standby,
          // so no answered write is lost on failover.
          synchronous_mode: true,
          postgresql: {
            use_pg_rewind: true,
            use_slots: true,
            parameters: { wal_log_hints: 'on', max_connections: 200, synchronous_commit: 'on', max_wal_senders: 10, max_replication_slots: 10, hot_standby: 'on' },
          },
        },
        initdb: [{ encoding: 'UTF8' }, { locale: 'C' }, 'data-checksums'],
        // Loopback test bed only: trust. Production uses scram-sha-256 and TLS (docs/scaling.md).
        pg_hba: ['local all all trust', 'host replication replicator 127.0.0.1/32 trust', 'host all all 127.0.0.1/32 trust'],
      },
      postgresql: {
        listen: `127.0.0.1:${p.postgres[i]}`,
        connect_address: `127.0.0.1:${p.postgres[i]}`,
        data_dir: join(dir, 'data'),
        bin_dir: PG_BIN,
        pgpass: join(dir, 'pgpass'),
        authentication: {
          superuser: { username: 'postgres', password: 'postgres' },
          replication: { username: 'replicator', password: 'replicator' },
          rewind: { username: 'postgres', password: 'postgres' },
        },
        parameters: { unix_socket_directories: dir, shared_buffers: '64MB', fsync: 'on' },
      },
      watchdog: { mode: 'off' },
      tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
    };
  }

  startNode(i) {
    const dir = this.nodeDir(i);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, 'patroni.yml');
    // JSON is YAML: no YAML writer needed.
    writeFileSync(file, JSON.stringify(this.patroniConfig(i), null, 2));
    const ids = process.getuid?.() === 0 ? postgresUser() : undefined;
    if (ids) chownTree(dir, ids);
    return this.spawn(`patroni-${this.nodeName(i)}`, ['patroni', file], { HOME: dir, PATRONI_LOG_LEVEL: 'INFO' }, ids ? { ...ids, cwd: dir } : { cwd: dir });
  }

  /** kill -9 of a whole node: Patroni, the postmaster and every backend (a machine that died). */
  killNode(i) {
    const patroni = this.state.pids[`patroni-${this.nodeName(i)}`];
    const postmaster = postmasterPid(join(this.nodeDir(i), 'data'));
    const victims = [patroni, ...(postmaster ? [postmaster, ...childrenOf(postmaster)] : [])].filter((p) => p && alive(p));
    for (const pid of victims) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // a backend that exited meanwhile
      }
    }
    return victims;
  }

  /** Starts Patroni again on every node whose Patroni is not running (a node killed earlier). */
  ensureNodes() {
    const started = [];
    for (let i = 0; i < this.state.nodes; i++) {
      const pid = this.state.pids[`patroni-${this.nodeName(i)}`];
      if (!pid || !alive(pid)) {
        this.startNode(i);
        started.push(i);
      }
    }
    return started;
  }

  /** The running postmaster's pid of node i (from its postmaster.pid), or undefined. */
  postmaster(i) {
    const pid = postmasterPid(join(this.nodeDir(i), 'data'));
    return pid && alive(pid) ? pid : undefined;
  }

  /** kill -9 of node i's postmaster and backends only; its Patroni lives on and decides what follows. */
  killPostmaster(i) {
    const pm = this.postmaster(i);
    if (!pm) return [];
    const victims = [pm, ...childrenOf(pm)];
    for (const pid of victims) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    return victims;
  }

  /** Patroni's view of the cluster (GET /cluster on the first node that answers). */
  async cluster() {
    for (const port of this.state.ports.patroniRest) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/cluster`, { signal: AbortSignal.timeout(1500) });
        if (r.ok) return await r.json();
      } catch {
        // that node is down: ask the next
      }
    }
    return { members: [] };
  }

  /** Index of the node Patroni calls leader, or -1. */
  async leader() {
    const c = await this.cluster();
    const m = c.members.find((x) => x.role === 'leader' && x.state === 'running');
    return m ? this.state.ports.patroniRest.findIndex((_, i) => this.nodeName(i) === m.name) : -1;
  }

  /** Waits until there is a running leader and a streaming synchronous standby (and `replicas` streaming replicas). */
  async waitHealthy(timeoutMs = 120_000, replicas = this.state.nodes - 1) {
    return waitFor(
      'Patroni cluster (leader + synchronous standby)',
      async () => {
        const c = await this.cluster();
        const leader = c.members.find((m) => m.role === 'leader' && m.state === 'running');
        const sync = c.members.filter((m) => m.role === 'sync_standby' && ['running', 'streaming'].includes(m.state));
        const streaming = c.members.filter((m) => ['sync_standby', 'replica'].includes(m.role) && ['running', 'streaming'].includes(m.state));
        return leader && sync.length >= 1 && streaming.length >= replicas ? c : undefined;
      },
      timeoutMs,
      () => this.state.ports.patroniRest.map((_, i) => `--- ${this.nodeName(i)}\n${this.log(`patroni-${this.nodeName(i)}`).slice(-1500)}`).join('\n'),
    );
  }

  /** A clean switchover through Patroni's REST API (what `patronictl switchover` does). */
  async switchover(candidateIndex) {
    const leader = await this.leader();
    if (leader < 0) throw new Error('no leader to switch over from');
    const body = { leader: this.nodeName(leader), ...(candidateIndex !== undefined ? { candidate: this.nodeName(candidateIndex) } : {}) };
    const r = await fetch(`http://127.0.0.1:${this.state.ports.patroniRest[leader]}/switchover`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`switchover refused: ${r.status} ${text}`);
    return { from: leader, text };
  }

  // ---- HAProxy ------------------------------------------------------------------------------------------

  haproxyConfig() {
    const p = this.state.ports;
    const pgServers = (check) => p.postgres.map((port, i) => `  server ${this.nodeName(i)} 127.0.0.1:${port} check port ${p.patroniRest[i]}`).join('\n');
    return `# Generated by scripts/ha/ha-bed.cjs
global
  maxconn 4000
  stats socket ${join(this.dir, 'haproxy.sock')} mode 600 level admin

defaults
  log stdout format raw local0 info
  timeout connect 1s
  timeout client 120s
  timeout server 120s
  timeout check 1s

# Writes: only the node whose Patroni answers GET /primary 200. A node that stops being primary is marked down
# within inter*fall and its sessions are cut, so no client keeps talking to an old primary.
listen postgres_primary
  bind 127.0.0.1:${p.pgPrimary}
  mode tcp
  option httpchk GET /primary
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
${pgServers()}

# Reads that tolerate lag (reports, audit exports): any streaming standby.
listen postgres_replicas
  bind 127.0.0.1:${p.pgReplicas}
  mode tcp
  balance roundrobin
  option httpchk GET /replica
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
${pgServers()}

# The API replicas. A replica that refuses connections (crashed, restarting) is out at once (observe layer4) and a
# request that could not be sent is sent to another replica; a request already sent is never re-sent by the proxy
# (a sign order is not idempotent without its Idempotency-Key: the client decides). /readyz (database, HSM, OpenID
# metadata) takes a replica out only after 20 s of failures: a database failover makes every replica unready at
# once, and then the API's own 503 database_unavailable + Retry-After is the better answer than an empty pool.
# With no replica at all the proxy answers the same contract (problem+json 503 + Retry-After).
frontend api
  bind 127.0.0.1:${p.api}
  mode http
  option httplog
  default_backend api

backend api
  mode http
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  option http-server-close
  retry-on conn-failure
  retries 3
  option redispatch 1
  timeout server 60s
  errorfile 503 ${join(this.dir, 'api-503.http')}
  default-server inter 1s fall 20 rise 1 observe layer4 error-limit 1 on-error mark-down
${p.apiReplicas.map((port, i) => `  server api${i + 1} 127.0.0.1:${port} check`).join('\n')}

frontend keyclient
  bind 127.0.0.1:${p.keyclient}
  mode http
  default_backend keyclient

# The keyclient like the API: its /readyz fails while the database fails over, and then its own 503
# session_store_unavailable + Retry-After is the better answer than an empty backend (out only after 20 s, or at
# once when it refuses connections); with none left the proxy answers problem+json 503 + Retry-After too.
backend keyclient
  mode http
  option httpchk GET /readyz
  http-check expect status 200
  retry-on conn-failure
  retries 3
  option redispatch 1
  errorfile 503 ${join(this.dir, 'keyclient-503.http')}
  default-server inter 1s fall 20 rise 1 observe layer4 error-limit 1 on-error mark-down
  server keyclient1 127.0.0.1:${p.keyclientBackend} check

listen stats
  bind 127.0.0.1:${p.haproxyStats}
  mode http
  stats enable
  stats uri /
  stats refresh 2s
`;
  }

  startHaproxy() {
    const file = join(this.dir, 'haproxy.cfg');
    for (const [name, what] of [['api', 'API'], ['keyclient', 'keyclient']]) {
      const problem = JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, code: 'no_replica_available', detail: `no ${what} replica is available; retry shortly` });
      writeFileSync(
        join(this.dir, `${name}-503.http`),
        `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 2\r\ncache-control: no-store\r\ncontent-length: ${Buffer.byteLength(problem)}\r\nconnection: close\r\n\r\n${problem}`,
      );
    }
    writeFileSync(file, this.haproxyConfig());
    const check = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`haproxy -c refused the generated config:\n${check.stdout}${check.stderr}`);
    return this.spawn('haproxy', ['haproxy', '-db', '-f', file], {});
  }

  /** One line of HAProxy's runtime API (stats socket). */
  async haproxyCommand(command) {
    const { connect } = require('node:net');
    return new Promise((resolve, reject) => {
      const s = connect(join(this.dir, 'haproxy.sock'));
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('end', () => resolve(out));
      s.on('error', reject);
      s.write(`${command}\n`);
    });
  }

  // ---- the platform ---------------------------------------------------------------------------------------

  apiEnv(i) {
    return { ...this.state.apiEnv, KEYSERVER_API_PORT: String(this.state.ports.apiReplicas[i]) };
  }

  startApi(i) {
    return this.spawn(`api${i + 1}`, composeCommand('keyserver-api'), this.apiEnv(i));
  }

  async waitApiReady(i, timeoutMs = 90_000) {
    await waitFor(`API replica ${i + 1}`, () => httpOk(`${this.urls.apiReplicas[i]}/readyz`), timeoutMs, () => this.log(`api${i + 1}`));
  }

  /** Stops API replica i: SIGTERM (graceful, what a rolling restart does) or SIGKILL (a crash). */
  async stopApi(i, signal = 'SIGTERM', timeoutMs = 30_000) {
    const pid = this.state.pids[`api${i + 1}`];
    if (!pid || !alive(pid)) return;
    process.kill(pid, signal);
    const deadline = Date.now() + timeoutMs;
    while (alive(pid) && Date.now() < deadline) await sleep(100);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }

  /** Stops everything this bed started (SIGTERM, then SIGKILL after a grace period) and removes its directory. */
  async down({ keepDir = false } = {}) {
    const pids = this.state.pids;
    // Clients first, then the databases (Patroni stops its PostgreSQL cleanly on SIGTERM), etcd last.
    const order = Object.keys(pids).sort((a, b) => rank(a) - rank(b));
    for (const name of order) {
      const pid = pids[name];
      if (pid && alive(pid)) {
        try {
          process.kill(-pid, 'SIGTERM');
        } catch {
          process.kill(pid, 'SIGTERM');
        }
      }
      if (name.startsWith('patroni') || name === 'etcd') {
        const deadline = Date.now() + 20_000;
        while (alive(pid) && Date.now() < deadline) await sleep(100);
      }
    }
    const deadline = Date.now() + 10_000;
    while (order.some((n) => alive(pids[n])) && Date.now() < deadline) await sleep(100);
    for (const name of order) {
      if (alive(pids[name])) {
        try {
          process.kill(-pids[name], 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    // A node killed with -9 earlier leaves no Patroni to stop its PostgreSQL: stop any postmaster still running.
    for (let i = 0; i < this.state.nodes; i++) {
      const pm = postmasterPid(join(this.nodeDir(i), 'data'));
      if (pm && alive(pm)) {
        for (const pid of [pm, ...childrenOf(pm)]) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
    }
    if (!keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

function rank(name) {
  if (name === 'keyclient') return 0;
  if (name.startsWith('api')) return 1;
  if (name === 'haproxy') return 2;
  if (name === 'emulator') return 3;
  if (name.startsWith('patroni')) return 4;
  return 5; // etcd
}

/**
 * Starts the bed. Options: nodes (3), apiReplicas (2), keyclient (true), basePort (fixed ports; default: any free
 * range), dir (default a new temp dir), apiEnv (extra API environment).
 */
async function up(opts = {}) {
  const nodes = opts.nodes ?? 3;
  const apiReplicas = opts.apiReplicas ?? 2;
  for (const bin of ['etcd', 'patroni', 'haproxy', join(PG_BIN, 'postgres')]) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) throw new Error(`${bin} is not installed (apt-get install -y patroni etcd-server etcd-client haproxy postgresql-15)`);
  }
  for (const built of ['dist/apps/keyserver-api/main.js', 'dist/tools/entra-emulator/main.js', ...(opts.keyclient === false ? [] : ['dist/apps/keyclient/main.js'])]) {
    if (!existsSync(join(root, built))) throw new Error(`${built} is missing: npx nx run-many -t build -p keyserver-api keyclient entra-emulator admin-spa`);
  }
  const base = await findBase(opts.basePort, nodes, apiReplicas);
  const ports = portPlan(base, nodes, apiReplicas);
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'keyserver-ha-'));
  mkdirSync(join(dir, 'logs'), { recursive: true });
  // Patroni and PostgreSQL run as the postgres user when we are root: they must reach their node directories.
  chmodSync(dir, 0o711);
  const bed = new HaBed({ dir, base, nodes, ports, pids: {}, apiEnv: {}, keyclient: opts.keyclient !== false });
  bed.save();
  const step = opts.onStep ?? (() => undefined);
  try {
    step(`etcd on 127.0.0.1:${ports.etcdClient}`);
    bed.spawn('etcd', [
      'etcd',
      '--name', 'ha',
      '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', `http://127.0.0.1:${ports.etcdClient}`,
      '--advertise-client-urls', `http://127.0.0.1:${ports.etcdClient}`,
      '--listen-peer-urls', `http://127.0.0.1:${ports.etcdPeer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${ports.etcdPeer}`,
      '--initial-cluster', `ha=http://127.0.0.1:${ports.etcdPeer}`,
      '--initial-cluster-state', 'new',
    ], {});
    await waitFor('etcd', () => httpOk(`http://127.0.0.1:${ports.etcdClient}/health`), 30_000, () => bed.log('etcd'));

    step(`${nodes} PostgreSQL nodes under Patroni (REST ${ports.patroniRest.join(', ')}; PostgreSQL ${ports.postgres.join(', ')})`);
    bed.startNode(0);
    await waitFor('the first Patroni node as leader', async () => (await bed.leader()) === 0, 90_000, () => bed.log('patroni-pg1'));
    for (let i = 1; i < nodes; i++) bed.startNode(i);
    await bed.waitHealthy(180_000);

    step(`HAProxy: PostgreSQL primary :${ports.pgPrimary}, replicas :${ports.pgReplicas}, API :${ports.api}, keyclient :${ports.keyclient}, stats :${ports.haproxyStats}`);
    bed.startHaproxy();
    const adminUrl = `postgresql://postgres@127.0.0.1:${ports.pgPrimary}/postgres`;
    await waitFor('the primary through HAProxy', async () => {
      const c = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 2000 });
      try {
        await c.connect();
        const r = await c.query('SELECT pg_is_in_recovery() AS standby');
        if (r.rows[0].standby) return false;
        const exists = await c.query(`SELECT 1 FROM pg_database WHERE datname = 'keyserver'`);
        if (exists.rowCount === 0) await c.query('CREATE DATABASE keyserver');
        return true;
      } finally {
        await c.end().catch(() => undefined);
      }
    }, 30_000, () => bed.log('haproxy'));

    // The platform, with the e2e harness's environment builder and the compose file's commands.
    const hsmDir = join(dir, 'hsm');
    mkdirSync(hsmDir, { recursive: true, mode: 0o700 });
    const env = platform.platformEnv({
      emulatorPort: ports.emulator,
      apiPort: ports.api,
      keyclientPort: ports.keyclient,
      databaseUrl: bed.urls.database,
      hsmDir,
      sessionKey: randomBytes(32).toString('base64'),
    });
    const tenant = JSON.parse(JSON.stringify(platform.demoTenant));
    tenant.keyserverApp.redirectUris = [env.keyclient.REDIRECT_URI];
    tenant.keyserverApp.postLogoutRedirectUris = [`${env.urls.keyclient}/`];
    const tenantFile = join(dir, 'demo-tenant.json');
    writeFileSync(tenantFile, JSON.stringify(tenant));
    step(`Entra emulator :${ports.emulator}`);
    bed.spawn('emulator', composeCommand('entra-emulator'), { ...env.emulator, EMULATOR_TENANT_FILE: tenantFile });
    await waitFor('emulator', () => httpOk(env.api.OPENID_CONNECT_METADATA_DOCUMENT), 60_000, () => bed.log('emulator'));

    // The suites make deliberate bursts from one address: refusal limits off, as in the e2e harness.
    const unlimited = { REFUSAL_RATE_BURST: '1000000', REFUSAL_AUDIT_PER_KEY: '1000000', REFUSAL_AUDIT_PER_WINDOW: '1000000' };
    bed.state.apiEnv = { ...env.api, KEYSERVER_HSM_DIR: hsmDir, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', ...unlimited, ...(opts.apiEnv ?? {}) };
    bed.state.facts = platform.demoFacts({ ...env, urls: { ...env.urls, api: bed.urls.api } });
    bed.save();
    step('SoftHSM token, migrations and demo seed (keyserver-init)');
    const init = spawnSync(composeCommand('keyserver-init')[0], composeCommand('keyserver-init').slice(1), {
      cwd: root,
      env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`, ...bed.state.apiEnv },
      encoding: 'utf8',
      timeout: 180_000,
    });
    if (init.status !== 0) throw new Error(`keyserver-init failed (${init.status}): ${init.stderr}${init.stdout}`);

    step(`${apiReplicas} API replicas (${ports.apiReplicas.join(', ')})`);
    for (let i = 0; i < apiReplicas; i++) bed.startApi(i);
    for (let i = 0; i < apiReplicas; i++) await bed.waitApiReady(i);
    if (bed.state.keyclient) {
      step(`keyclient :${ports.keyclientBackend}`);
      bed.spawn('keyclient', composeCommand('keyclient'), {
        ...env.keyclient,
        KEYCLIENT_PORT: String(ports.keyclientBackend),
        KEYSERVER_API_URL: bed.urls.api,
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      });
      await waitFor('keyclient', () => httpOk(`http://127.0.0.1:${ports.keyclientBackend}/readyz`), 60_000, () => bed.log('keyclient'));
    }
    await waitFor('the API through HAProxy', () => httpOk(`${bed.urls.api}/readyz`), 30_000, () => bed.log('haproxy'));
    if (bed.state.keyclient) await waitFor('the keyclient through HAProxy', () => httpOk(`http://127.0.0.1:${ports.keyclient}/readyz`), 30_000, () => bed.log('haproxy'));
    return bed;
  } catch (err) {
    if (!opts.keepOnFailure) await bed.down({ keepDir: true }).catch(() => undefined);
    err.message = `${err.message}\n(logs in ${join(dir, 'logs')})`;
    throw err;
  }
}

/** The bed described by a state.json (for `ha:down` from another process). */
function load(dir) {
  return new HaBed(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')));
}

module.exports = { up, load, HaBed, portPlan, PATRONI_TIMING, composeCommand };
