import { createHash, verify, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Client } from 'pg';
import { clientCredentialsToken, demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';

// A co-located PostgreSQL reached through its Unix socket (DATABASE_URL ...?host=/var/run/postgresql; docs/scaling.md):
// the API's pool, its LISTEN connection and the sign path all run on it, with nothing over TCP.
const SOCKET_DIR = '/var/run/postgresql';

describe('the API on a co-located database through its Unix socket', () => {
  let p: RunningPlatform;
  let token: string;
  const ci = demoTenant.ciClients.find((c) => c.name === 'demo-ci');

  beforeAll(async () => {
    // A co-located database may also ask for V8's background threads at a lower priority (ADR 0039, opt-in).
    p = await startPlatform({ databaseSocketDir: SOCKET_DIR, extraApiEnv: { V8_BACKGROUND_NICE: '10' } });
    if (!ci?.clientSecret) throw new Error('demo-ci client missing from config/demo-tenant.json');
    token = await clientCredentialsToken(p.facts, ci.clientId, ci.clientSecret);
  });

  afterAll(async () => {
    await p?.stop();
  });

  const api = (path: string, body?: unknown) =>
    fetch(`${p.env.urls.api}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  it('signs an order that Node verifies, and every connection of the API is a Unix socket', async () => {
    const now = Date.now();
    const op = await api('/api/v1/operations', { description: 'over the socket', validFrom: new Date(now - 60_000).toISOString(), validTo: new Date(now + 3_600_000).toISOString(), keys: [{ keyid: 'demo-fw-dev', usages: 1 }] });
    expect(op.status).toBe(201);
    const { id: operationid } = (await op.json()) as { id: string };
    const firmware = Buffer.from('firmware over a socket');
    const digest = createHash('sha256').update(firmware).digest('hex');
    const order = await api('/api/signorders', { operationid, keyid: 'demo-fw-dev', inputdata: digest, inputformat: 'hex', inputpadding: 'none', signatureformat: 'asn1', description: 'socket order' });
    expect(order.status).toBe(201);
    const { result } = (await order.json()) as { result: string };
    const keys = (await (await api('/api/keys')).json()) as { keyid: string; certificate: string }[];
    const cert = new X509Certificate(keys.find((k) => k.keyid === 'demo-fw-dev')?.certificate ?? '');
    expect(verify('sha256', firmware, { key: cert.publicKey, dsaEncoding: 'der' }, Buffer.from(result, 'hex'))).toBe(true);
    const db = new Client({ connectionString: p.databaseUrl });
    await db.connect();
    try {
      const rows = (
        await db.query<{ socket: boolean }>(`SELECT client_addr IS NULL AND client_port = -1 AS "socket" FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
      ).rows;
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.socket)).toBe(true);
    } finally {
      await db.end();
    }
  });

  it('with V8_BACKGROUND_NICE=10, V8 background threads run at nice 10 and every other thread at 0', () => {
    // /proc/<pid>/task/<tid>/stat: "tid (comm) state ..."; nice is the 19th field, the 17th after the comm.
    const tasks = `/proc/${p.api.child.pid}/task`;
    const threads = readdirSync(tasks).map((tid) => {
      const stat = readFileSync(`${tasks}/${tid}/stat`, 'utf8');
      return { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) };
    });
    const nices = (v8: boolean) => [...new Set(threads.filter((t) => (t.name === 'V8Worker') === v8).map((t) => t.nice))];
    expect(nices(true)).toEqual([10]);
    // Every other thread at 0: the main thread, the HSM lanes (WorkerThread, once started), libuv's pool.
    expect(nices(false)).toEqual([0]);
    expect(threads.some((t) => t.name === 'MainThread')).toBe(true);
  });
});
