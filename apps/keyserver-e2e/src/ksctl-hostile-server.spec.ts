import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '@keyserver/testing';

// ksctl against a Keyserver that lies (compromised, or a proxy or captive portal in its place): the real ksctl
// process (bin/ksctl.cjs builds it when stale) talks to a real HTTP server that answers what a hostile server would.
// What must hold: the bearer token goes nowhere else and is never printed, no answer fills ksctl's memory, an answer
// that is not the API's is refused with a stable code, and no file ksctl writes goes through a planted symlink or
// appears half-written. Exit codes and codes are compared, never messages.

const KSCTL = join(repoRoot, 'tools', 'keyserver-cli', 'bin', 'ksctl.cjs');
const TOKEN = 'tok-hostile-spec-0123456789abcdef';
const MiB = 1 << 20;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Run {
  status: number;
  stdout: string;
  stderr: string;
  json: { code?: string; status?: number } & Record<string, unknown>;
  /** Wall time of the ksctl process, start to exit. */
  ms: number;
}

function listen(handler: Handler): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })));
}

describe('ksctl against a hostile Keyserver', () => {
  let work: string;
  let api: { server: Server; url: string };
  let other: { server: Server; url: string };
  /** Every request the other origin received, with its authorization header. */
  let otherSeen: string[] = [];
  let handler: Handler = (_req, res) => res.writeHead(500).end();
  /** Bytes the API server managed to write before ksctl hung up. */
  let written = 0;
  let certPem = '';

  const ksctl = (args: string[], env: Record<string, string> = {}, timeoutMs = 90_000): Promise<Run> =>
    new Promise((resolve) => {
      const started = Date.now();
      execFile(
        process.execPath,
        [KSCTL, '--api', api.url, ...args],
        { encoding: 'utf8', cwd: work, env: { PATH: process.env['PATH'] ?? '', HOME: work, KEYSERVER_TOKEN: TOKEN, ...env }, timeout: timeoutMs, maxBuffer: 64 * MiB },
        (err, stdout, stderr) => {
          const status = err ? ((err as { code?: number }).code ?? -1) : 0;
          let json = {};
          try {
            json = JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
          } catch {
            // a table, or nothing
          }
          resolve({ status: typeof status === 'number' ? status : -1, stdout, stderr, json, ms: Date.now() - started });
        },
      );
    });

  /** A JSON answer of the shape the API gives. */
  const json = (res: ServerResponse, body: unknown, status = 200, type = 'application/json') => res.writeHead(status, { 'content-type': type }).end(JSON.stringify(body));

  /** Streams `total` bytes of a JSON array (never finished) in 1 MiB chunks, counting what was written. */
  const flood = (res: ServerResponse, status: number, type: string, total: number) => {
    res.writeHead(status, { 'content-type': type });
    const chunk = Buffer.from(`[${'"x",'.repeat(MiB / 4 - 1)}`.padEnd(MiB, ' '));
    const more = () => {
      while (written < total) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end();
    };
    res.on('close', () => undefined);
    more();
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ksctl-hostile-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, 'k.pem'), '-out', join(work, 'c.pem'), '-subj', '/CN=hostile-spec', '-days', '2'], { stdio: 'ignore' });
    certPem = readFileSync(join(work, 'c.pem'), 'utf8');
    writeFileSync(join(work, 'req.csr'), '-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n');
    writeFileSync(join(work, 'image.bin'), Buffer.alloc(1024, 7));
    api = await listen((req, res) => {
      req.resume();
      handler(req, res);
    });
    other = await listen((req, res) => {
      req.resume();
      otherSeen.push(`${req.method} ${req.url} ${req.headers.authorization ?? '(no authorization)'}`);
      json(res, [{ keyid: 'from-the-other-host' }]);
    });
    // Build once (bin/ksctl.cjs rebuilds a stale bundle) before the first timed case.
    await ksctl(['--version']);
  });
  afterAll(async () => {
    api.server.closeAllConnections();
    await new Promise((r) => api.server.close(r));
    await new Promise((r) => other.server.close(r));
    rmSync(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    otherSeen = [];
    written = 0;
  });
  afterEach(() => {
    for (const f of readdirSync(work)) if (/\.tmp$|\.partial$/.test(f)) throw new Error(`a temporary file was left behind: ${f}`);
  });

  const neverPrintsToken = (r: Run) => expect(`${r.stdout}${r.stderr}`).not.toContain(TOKEN);

  describe('redirects', () => {
    it.each<[string, number, () => string]>([
      ['fail 307 to another origin: refused, the other origin gets no request', 307, () => `${other.url}/api/keys`],
      ['fail 308 to another origin: refused, the other origin gets no request', 308, () => `${other.url}/api/keys`],
      ['fail 302 to another origin: refused, the other origin gets no request', 302, () => `${other.url}/api/keys`],
      ['fail 301 to the same origin: refused as well (the API never redirects)', 301, () => `${api.url}/elsewhere`],
    ])('%s', async (_name, status, location) => {
      handler = (req, res) => (req.url === '/elsewhere' ? json(res, [{ keyid: 'moved' }]) : res.writeHead(status, { location: location() }).end());
      const r = await ksctl(['--json', 'keys', 'list']);
      expect([r.status, r.json.code]).toEqual([4, 'redirect_refused']);
      expect(otherSeen).toEqual([]);
      neverPrintsToken(r);
    });
  });

  describe('answers that are not the API', () => {
    it.each<[string, Handler, number, string]>([
      ['fail 200 text/html holding valid JSON (a portal page): unexpected_answer', (_q, s) => json(s, [{ keyid: 'k' }], 200, 'text/html'), 1, 'unexpected_answer'],
      ['fail 200 without a content type: unexpected_answer', (_q, s) => s.writeHead(200).end('[{"keyid":"k"}]'), 1, 'unexpected_answer'],
      ['fail 200 application/json that is no JSON: unexpected_answer', (_q, s) => s.writeHead(200, { 'content-type': 'application/json' }).end('<html>\u001b[2J'), 1, 'unexpected_answer'],
      ['fail 200 with a content-length over the cap: answer_too_large before any byte is read', (_q, s) => { s.writeHead(200, { 'content-type': 'application/json', 'content-length': String(1 << 30) }); s.write('['); }, 1, 'answer_too_large'],
      ['fail 502 problem+json code that is no code: no code taken from it, exit 5', (_q, s) => json(s, { code: '\u001b]0;pwned\u0007', detail: 'x' }, 502, 'application/problem+json'), 5, ''],
      ['fail 409 problem+json code an object: no code taken from it, exit 4', (_q, s) => json(s, { code: { a: 1 }, detail: 'x' }, 409, 'application/problem+json'), 4, ''],
    ])('%s', async (_name, h, exit, code) => {
      handler = h;
      const r = await ksctl(['--json', 'keys', 'list']);
      expect([r.status, r.json.code ?? '']).toEqual([exit, code]);
      neverPrintsToken(r);
    });

    it('fail an endless 200 JSON body: answer_too_large, ksctl hangs up long before the server is done', async () => {
      handler = (_q, s) => flood(s, 200, 'application/json', 512 * MiB);
      const r = await ksctl(['--json', 'keys', 'list']);
      expect([r.status, r.json.code]).toEqual([1, 'answer_too_large']);
      expect(written).toBeLessThan(128 * MiB);
    });

    it('fail an endless problem+json error body: its status counts (exit 5), the body is not read to its end', async () => {
      handler = (_q, s) => flood(s, 503, 'application/problem+json', 512 * MiB);
      const r = await ksctl(['--json', 'keys', 'list']);
      expect([r.status, r.json.status]).toEqual([5, 503]);
      expect(written).toBeLessThan(128 * MiB);
    });

    it('ok a problem detail of 100 000 characters with escapes: one short stderr line, nothing a terminal obeys', async () => {
      handler = (_q, s) => json(s, { code: 'usage_exhausted', detail: `\u001b[2K\r\u202eevil ${'A'.repeat(100_000)}` }, 409, 'application/problem+json');
      const r = await ksctl(['keys', 'list']);
      expect(r.status).toBe(4);
      // eslint-disable-next-line no-control-regex
      expect(r.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\p{Cf}]/u);
      expect(r.stderr.length).toBeLessThan(2000);
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    });
  });

  describe('files ksctl writes', () => {
    const signAnswer: Handler = (_q, s) => json(s, { id: 'o1', result: 'aabbcc', messageSha256: null }, 201);
    const certAnswer: Handler = (_q, s) => json(s, { id: 'c1', certificate: certPem, chain: [certPem], serial: '01' }, 201);
    const keyAnswer: Handler = (_q, s) => json(s, { keyid: 'k1', hash: 'SHA256', certificate: certPem, chain: [certPem] });
    const cmsAnswer: Handler = (_q, s) => s.writeHead(201, { 'content-type': 'application/pkcs7-signature' }).end(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]));
    const exportAnswer: Handler = (_q, s) => s.writeHead(200, { 'content-type': 'application/jsonl' }).end('{"seq":1}\n');
    const csrAnswer: Handler = (_q, s) => json(s, { csr: '-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n', version: 1 });
    const DIGEST = 'ab'.repeat(32);
    const outputs: [string, Handler, (out: string) => string[]][] = [
      ['sign --out', signAnswer, (out) => ['sign', '--operation', 'o', '--key', 'k', '--digest', DIGEST, '--out', out]],
      ['cert issue --out', certAnswer, (out) => ['cert', 'issue', '--operation', 'o', '--key', 'k', '--csr', 'req.csr', '--out', out]],
      ['cert issue --chain-out', certAnswer, (out) => ['cert', 'issue', '--operation', 'o', '--key', 'k', '--csr', 'req.csr', '--chain-out', out]],
      ['keys show --chain', keyAnswer, (out) => ['keys', 'show', 'k1', '--chain', out]],
      ['sign --cms --out', cmsAnswer, (out) => ['sign', '--cms', '--operation', 'o', '--key', 'k', '--file', 'image.bin', '--out', out]],
      ['audit export --out', exportAnswer, (out) => ['audit', 'export', '--out', out]],
      ['admin key csr --out', csrAnswer, (out) => ['admin', 'key', 'csr', 'k1', '--out', out]],
    ];
    let n = 0;
    const fresh = () => {
      const dir = join(work, `case-${++n}`);
      mkdirSync(dir);
      return dir;
    };

    it.each(outputs)('fail %s naming a symlink: refused before the request (exit 2), the link target untouched', async (_name, h, args) => {
      let requests = 0;
      handler = (q, s) => {
        requests++;
        h(q, s);
      };
      const dir = fresh();
      writeFileSync(join(dir, 'victim'), 'precious');
      symlinkSync(join(dir, 'victim'), join(dir, 'out'));
      const r = await ksctl(['--json', ...args(join(dir, 'out'))]);
      expect([r.status, r.json.code, requests]).toEqual([2, 'output_not_regular_file', 0]);
      expect(readFileSync(join(dir, 'victim'), 'utf8')).toBe('precious');
      expect(lstatSync(join(dir, 'out')).isSymbolicLink()).toBe(true);
    });

    it.each(outputs)('fail %s naming a directory or a missing directory: refused before the request (exit 2)', async (_name, h, args) => {
      let requests = 0;
      handler = (q, s) => {
        requests++;
        h(q, s);
      };
      const dir = fresh();
      mkdirSync(join(dir, 'out'));
      const r1 = await ksctl(['--json', ...args(join(dir, 'out'))]);
      const r2 = await ksctl(['--json', ...args(join(dir, 'missing', 'out'))]);
      expect([r1.status, r1.json.code, r2.status, r2.json.code, requests]).toEqual([2, 'output_not_regular_file', 2, 'output_directory_missing', 0]);
    });

    it.each(outputs)('ok %s over an existing file: replaced whole by rename (another hard link keeps the old bytes)', async (_name, h, args) => {
      handler = h;
      const dir = fresh();
      writeFileSync(join(dir, 'out'), 'old');
      linkSync(join(dir, 'out'), join(dir, 'other-link'));
      const r = await ksctl(['--json', ...args(join(dir, 'out'))]);
      expect(r.status).toBe(0);
      expect(readFileSync(join(dir, 'other-link'), 'utf8')).toBe('old');
      expect(readFileSync(join(dir, 'out')).length).toBeGreaterThan(0);
      expect(readFileSync(join(dir, 'out'), 'utf8')).not.toBe('old');
      expect(readdirSync(dir).sort()).toEqual(['other-link', 'out']);
    });

    it('fail a .partial symlink planted beside audit export --out: nothing written through it', async () => {
      handler = exportAnswer;
      const dir = fresh();
      writeFileSync(join(dir, 'victim'), 'precious');
      symlinkSync(join(dir, 'victim'), join(dir, 'export.jsonl.partial'));
      const r = await ksctl(['--json', 'audit', 'export', '--out', join(dir, 'export.jsonl')]);
      expect(r.status).toBe(0);
      expect(readFileSync(join(dir, 'victim'), 'utf8')).toBe('precious');
      expect(readFileSync(join(dir, 'export.jsonl'), 'utf8')).toBe('{"seq":1}\n');
      rmSync(join(dir, 'export.jsonl.partial'));
    });

    it.each<[string, Handler, (out: string) => string[]]>([
      ['fail sign: a result that is no hex (an empty signature file)', (_q, s) => json(s, { id: 'o1', result: 'zz' }, 201), outputs[0][2]],
      ['fail sign: no result at all', (_q, s) => json(s, { id: 'o1' }, 201), outputs[0][2]],
      ['fail cert issue: a certificate that is no PEM certificate', (_q, s) => json(s, { id: 'c1', certificate: 'hello', chain: [], serial: '01' }, 201), outputs[1][2]],
      ['fail cert issue --chain-out: a chain that is no list of PEM certificates', (_q, s) => json(s, { id: 'c1', certificate: certPem, chain: 'x', serial: '01' }, 201), outputs[2][2]],
      ['fail keys show --chain: a chain of other things', (_q, s) => json(s, { keyid: 'k1', hash: 'SHA256', chain: [{ a: 1 }] }), outputs[3][2]],
      ['fail sign --cms: an answer that is no CMS (JSON)', (_q, s) => json(s, { ok: true }, 201), outputs[4][2]],
      ['fail admin key csr --out: a csr that is no PEM request', (_q, s) => json(s, { csr: 42 }), outputs[6][2]],
    ])('%s: unexpected_answer (exit 1), no file written', async (_name, h, args) => {
      handler = h;
      const dir = fresh();
      const r = await ksctl(['--json', ...args(join(dir, 'out'))]);
      expect([r.status, r.json.code]).toEqual([1, 'unexpected_answer']);
      expect(existsSync(join(dir, 'out'))).toBe(false);
    });
  });

  describe('TLS verification', () => {
    it('fail NODE_TLS_REJECT_UNAUTHORIZED=0 in the environment: refused before any credential is sent (exit 2)', async () => {
      let requests = 0;
      handler = (_q, s) => {
        requests++;
        json(s, []);
      };
      const r = await ksctl(['--json', 'keys', 'list'], { NODE_TLS_REJECT_UNAUTHORIZED: '0' });
      expect([r.status, r.json.code, requests]).toEqual([2, 'tls_verification_disabled', 0]);
    });

    it('ok NODE_TLS_REJECT_UNAUTHORIZED=1: verification stays on, the request goes', async () => {
      handler = (_q, s) => json(s, [{ keyid: 'k' }]);
      const r = await ksctl(['--json', 'keys', 'list'], { NODE_TLS_REJECT_UNAUTHORIZED: '1' });
      expect(r.status).toBe(0);
    });
  });

  // A Keyserver or identity provider that accepts the connection and then holds it (never answers, answers one byte a
  // second, stops in the middle of the body) must not hold a production line: ksctl ends by its deadline (--timeout,
  // KSCTL_TIMEOUT) with exit 7 deadline_exceeded, leaves no file, and sends no request twice.
  describe('deadlines (--timeout, KSCTL_TIMEOUT)', () => {
    let idp: { server: Server; url: string };
    let idpHandler: Handler = (_req, res) => res.writeHead(500).end();
    let silent: { server: ReturnType<typeof createTcpServer>; url: string; sockets: Socket[] };
    let seen: string[] = [];
    let n = 0;
    const fresh = () => {
      const dir = join(work, `deadline-${++n}`);
      mkdirSync(dir);
      return dir;
    };
    /** A secret login at the hostile identity provider instead of a ready token. */
    const viaIdp = (extra: Record<string, string> = {}): Record<string, string> => ({
      KEYSERVER_TOKEN: '',
      KEYSERVER_TOKEN_ENDPOINT: `${idp.url}/token`,
      KEYSERVER_CLIENT_ID: 'client',
      KEYSERVER_CLIENT_SECRET: 'secret',
      KEYSERVER_SCOPE: 'api://keyserver/.default',
      KSCTL_CACHE_DIR: join(work, `cache-${++n}`),
      ...extra,
    });
    const never: Handler = () => undefined;
    /** Headers, then one byte a second, never the end. */
    const trickle = (type: string, first: string | Buffer): Handler => (_q, s) => {
      s.writeHead(200, { 'content-type': type });
      s.write(first);
      const t = setInterval(() => s.write(' '), 1000);
      s.on('close', () => clearInterval(t));
    };
    /** Headers promising 100 bytes, 50 of them, then nothing. */
    const stall = (type: string): Handler => (_q, s) => {
      s.writeHead(200, { 'content-type': type, 'content-length': '100' });
      s.write(`[${' '.repeat(49)}`);
    };
    const quick = (r: Run) => expect(r.ms).toBeLessThan(6000);
    const timedOut = (r: Run) => {
      expect([r.status, r.json.code]).toEqual([7, 'deadline_exceeded']);
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      quick(r);
      neverPrintsToken(r);
    };

    beforeAll(async () => {
      idp = await listen((req, res) => {
        req.resume();
        idpHandler(req, res);
      });
      const sockets: Socket[] = [];
      const server = createTcpServer((sock) => void sockets.push(sock));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      silent = { server, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
      writeFileSync(join(work, 'big.bin'), Buffer.alloc(16 * MiB, 7));
    });
    afterAll(async () => {
      idp.server.closeAllConnections();
      await new Promise((r) => idp.server.close(r));
      for (const s of silent.sockets) s.destroy();
      await new Promise((r) => silent.server.close(r));
    });
    beforeEach(() => {
      seen = [];
      api.server.closeAllConnections();
    });
    const counting = (h: Handler): Handler => (q, s) => {
      seen.push(`${q.method} ${q.url?.split('?')[0]}`);
      h(q, s);
    };

    it.each<[string, Handler]>([
      ['fail the API never answers the headers', never],
      ['fail the API trickles its JSON answer one byte a second', trickle('application/json', '[')],
      ['fail the API stops in the middle of its body', stall('application/json')],
    ])('%s: exit 7 deadline_exceeded by --timeout', async (_name, h) => {
      handler = h;
      timedOut(await ksctl(['--json', '--timeout', '1', 'keys', 'list']));
    });

    it('fail a TLS server that accepts the connection and never says hello: exit 7 by --timeout', async () => {
      const r = await ksctl(['--json', '--api', silent.url, '--timeout', '1', 'keys', 'list']);
      timedOut(r);
    });

    it('fail KSCTL_TIMEOUT without --timeout: the deadline from the environment', async () => {
      handler = trickle('application/json', '[');
      timedOut(await ksctl(['--json', 'keys', 'list'], { KSCTL_TIMEOUT: '1' }));
    });

    it('fail --timeout wins over KSCTL_TIMEOUT', async () => {
      handler = never;
      timedOut(await ksctl(['--json', '--timeout', '1', 'keys', 'list'], { KSCTL_TIMEOUT: '600' }));
    });

    it.each<[string, string[], Record<string, string>]>([
      ['fail --timeout 0', ['--timeout', '0'], {}],
      ['fail --timeout -5', ['--timeout=-5'], {}],
      ['fail --timeout that is no number', ['--timeout', 'soon'], {}],
      ['fail KSCTL_TIMEOUT that is no number', [], { KSCTL_TIMEOUT: '1e3' }],
    ])('%s: exit 2 before any request', async (_name, extra, env) => {
      handler = counting((_q, s) => json(s, []));
      const r = await ksctl(['--json', ...extra, 'keys', 'list'], env);
      expect([r.status, seen]).toEqual([2, []]);
    });

    it('ok an answer that is slow but within the deadline', async () => {
      handler = (_q, s) => void setTimeout(() => json(s, [{ keyid: 'k' }]), 300);
      const r = await ksctl(['--json', '--timeout', '3', 'keys', 'list']);
      expect(r.status).toBe(0);
    });

    it('fail a sign order without Idempotency-Key that is never answered: exit 7, sent once, no --out file', async () => {
      handler = counting(never);
      const dir = fresh();
      const r = await ksctl(['--json', '--timeout', '1', 'sign', '--operation', 'o', '--key', 'k', '--digest', 'ab'.repeat(32), '--out', join(dir, 'sig')]);
      timedOut(r);
      expect(seen).toEqual(['POST /api/signorders']);
      expect(readdirSync(dir)).toEqual([]);
    });

    it('fail sign --cms whose upload the server stops reading: exit 7, sent once, no .p7s', async () => {
      handler = counting((q) => void q.pause());
      const dir = fresh();
      const r = await ksctl(['--json', '--timeout', '1', 'sign', '--cms', '--operation', 'o', '--key', 'k', '--file', 'big.bin', '--out', join(dir, 'big.p7s')]);
      timedOut(r);
      expect(seen).toEqual(['POST /api/v1/firmware/signatures']);
      expect(readdirSync(dir)).toEqual([]);
    });

    it('fail sign --cms whose CMS answer trickles: exit 7, no .p7s, no temporary file', async () => {
      handler = trickle('application/pkcs7-signature', Buffer.from([0x30, 0x82]));
      const dir = fresh();
      const r = await ksctl(['--json', '--timeout', '1', 'sign', '--cms', '--operation', 'o', '--key', 'k', '--file', 'image.bin', '--out', join(dir, 'image.p7s')]);
      timedOut(r);
      expect(readdirSync(dir)).toEqual([]);
    });

    it.each<[string, boolean]>([
      ['fail audit export --out that stops in the middle: exit 7 (not a truncated export), no file, no temporary file', true],
      ['fail audit export to stdout that stops in the middle: exit 7', false],
    ])('%s', async (_name, toFile) => {
      handler = (_q, s) => {
        s.writeHead(200, { 'content-type': 'application/jsonl' });
        s.write('{"seq":1}\n');
      };
      const dir = fresh();
      const r = await ksctl(['--json', '--timeout', '1', 'audit', 'export', ...(toFile ? ['--out', join(dir, 'audit.jsonl')] : [])]);
      expect([r.status, r.json.code ?? JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}').code]).toEqual([7, 'deadline_exceeded']);
      quick(r);
      expect(readdirSync(dir)).toEqual([]);
    });

    it('fail audit export --out that keeps coming at 0.5 MiB/s past an explicit --timeout: a hard bound, no allowance; exit 7, no file, no temporary file', async () => {
      handler = (_q, s) => {
        s.writeHead(200, { 'content-type': 'application/jsonl' });
        let i = 0;
        const t = setInterval(() => (++i === 40 ? (clearInterval(t), s.end()) : s.write(Buffer.alloc(64 * 1024, '{"seq":"1"}\n'))), 125);
        s.on('close', () => clearInterval(t));
      };
      const dir = fresh();
      const r = await ksctl(['--json', '--timeout', '1', 'audit', 'export', '--out', join(dir, 'audit.jsonl')]);
      timedOut(r);
      expect(readdirSync(dir)).toEqual([]);
    });

    it('fail operations wait whose poll is never answered: each request is bounded by KSCTL_TIMEOUT, exit 7', async () => {
      handler = never;
      timedOut(await ksctl(['--json', 'operations', 'wait', 'op1', '--timeout', '60'], { KSCTL_TIMEOUT: '1' }));
    });

    it('fail operations wait for an approval that does not come: exit 1 timeout, as before', async () => {
      handler = (_q, s) => json(s, { id: 'op1', state: 'REQUESTED', description: 'd', keys: [{ keyid: 'k', usagesAllowed: 1, usagesUsed: 0, requiredApprovers: 1, approvals: 0 }] });
      const r = await ksctl(['--json', 'operations', 'wait', 'op1', '--timeout', '1']);
      expect([r.status, r.json.code]).toEqual([1, 'timeout']);
      quick(r);
    });

    it.each<[string, Handler]>([
      ['fail the token endpoint never answers', never],
      ['fail the token endpoint trickles its answer', trickle('application/json', '{"access_token":')],
      ['fail the token endpoint stops in the middle of its body', stall('application/json')],
    ])('%s: exit 7, the API gets no request', async (_name, h) => {
      idpHandler = h;
      handler = counting((_q, s) => json(s, []));
      timedOut(await ksctl(['--json', '--timeout', '1', 'keys', 'list'], viaIdp()));
      expect(seen).toEqual([]);
    });

    it('fail ksctl login while the token endpoint never answers: exit 7', async () => {
      idpHandler = never;
      timedOut(await ksctl(['--json', '--timeout', '1', 'login'], viaIdp()));
    });

    it("fail the pipeline's OIDC endpoint (--wif) never answers: exit 7", async () => {
      idpHandler = never;
      const env = viaIdp({ KEYSERVER_CLIENT_SECRET: '', SYSTEM_OIDCREQUESTURI: `${idp.url}/oidc`, SYSTEM_ACCESSTOKEN: 'ado', AZURESUBSCRIPTION_SERVICE_CONNECTION_ID: 'sc' });
      timedOut(await ksctl(['--json', '--wif', '--timeout', '1', 'keys', 'list'], env));
    });

    // Found in the review that came with the deadline (ADR 0015 addendum 2026-12-08).
    describe('the identity provider and the token', () => {
      it.each<[string, number]>([
        ['fail the token endpoint answers 302 to another origin: redirect_refused (exit 4), the other origin gets nothing', 302],
        ['fail the token endpoint answers 307 to another origin: redirect_refused (exit 4), the other origin gets nothing', 307],
      ])('%s', async (_name, status) => {
        idpHandler = (_q, s) => s.writeHead(status, { location: `${other.url}/token` }).end();
        const r = await ksctl(['--json', 'keys', 'list'], viaIdp());
        expect([r.status, r.json.code, otherSeen]).toEqual([4, 'redirect_refused', []]);
      });

      it("fail the pipeline's OIDC endpoint answers 302: redirect_refused (exit 4)", async () => {
        idpHandler = (_q, s) => s.writeHead(302, { location: `${other.url}/oidc` }).end();
        const env = viaIdp({ KEYSERVER_CLIENT_SECRET: '', SYSTEM_OIDCREQUESTURI: `${idp.url}/oidc`, SYSTEM_ACCESSTOKEN: 'ado', AZURESUBSCRIPTION_SERVICE_CONNECTION_ID: 'sc' });
        const r = await ksctl(['--json', '--wif', 'keys', 'list'], env);
        expect([r.status, r.json.code, otherSeen]).toEqual([4, 'redirect_refused', []]);
      });

      it('fail KEYSERVER_TOKEN with a line break inside: token_malformed (exit 2), the token never printed, nothing sent', async () => {
        handler = counting((_q, s) => json(s, []));
        const r = await ksctl(['--json', 'keys', 'list'], { KEYSERVER_TOKEN: `${TOKEN}\nX-Injected: 1` });
        expect([r.status, r.json.code, seen]).toEqual([2, 'token_malformed', []]);
        neverPrintsToken(r);
      });

      it('ok KEYSERVER_TOKEN with a trailing line break (read from a file): used without it', async () => {
        handler = (q, s) => json(s, [{ keyid: q.headers.authorization === `Bearer ${TOKEN}` ? 'ok' : 'wrong' }]);
        const r = await ksctl(['--json', 'keys', 'list'], { KEYSERVER_TOKEN: `${TOKEN}\r\n` });
        expect([r.status, r.stdout]).toEqual([0, expect.stringContaining('"ok"')]);
      });

      it("fail SYSTEM_ACCESSTOKEN with a line break (--wif): token_malformed (exit 2), not sent to the pipeline's OIDC endpoint, not printed", async () => {
        const oidcSeen: string[] = [];
        idpHandler = (q, s) => {
          oidcSeen.push(q.url ?? '');
          json(s, { oidcToken: 'x' });
        };
        const env = viaIdp({ KEYSERVER_CLIENT_SECRET: '', SYSTEM_OIDCREQUESTURI: `${idp.url}/oidc`, SYSTEM_ACCESSTOKEN: `${TOKEN}\r\nX-Injected: 1`, AZURESUBSCRIPTION_SERVICE_CONNECTION_ID: 'sc' });
        const r = await ksctl(['--json', '--wif', 'keys', 'list'], env);
        expect([r.status, r.json.code, oidcSeen]).toEqual([2, 'token_malformed', []]);
        neverPrintsToken(r);
      });

      it('fail an access_token with a line break and escapes from the token endpoint: token_malformed (exit 3), not printed, not cached', async () => {
        const evil = `${TOKEN}\n\u001b]0;pwned\u0007`;
        idpHandler = (_q, s) => json(s, { access_token: evil, expires_in: 3600, token_type: 'Bearer' });
        handler = counting((_q, s) => json(s, []));
        const env = viaIdp();
        const r = await ksctl(['--json', 'keys', 'list'], env);
        expect([r.status, r.json.code, seen]).toEqual([3, 'token_malformed', []]);
        neverPrintsToken(r);
        expect(existsSync(env['KSCTL_CACHE_DIR']) ? readdirSync(env['KSCTL_CACHE_DIR']) : []).toEqual([]);
      });
    });
    // A cached token the API refuses (revoked, its signing key rolled, clock skew) was reused until it expired: every
    // run failed until then. The API answers 401 invalid_token only from its guard, before any handler (docs/security.md
    // "Token handling"), so the request was not carried out: ksctl drops the entry, gets one fresh token, sends once more.
    describe('a cached token the API refuses (401 invalid_token)', () => {
      let issued = 0;
      let grants: string[] = [];
      /** Bodies (bytes) and tokens the API saw, in order. */
      let calls: { auth: string; bytes: number; idem?: string }[] = [];
      const unauthorized: Handler = (_q, s) =>
        s.writeHead(401, { 'content-type': 'application/problem+json', 'www-authenticate': 'Bearer error="invalid_token"' }).end(JSON.stringify({ status: 401, code: 'invalid_token', title: 'Unauthorized' }));
      /** The identity provider issues fresh-1, fresh-2, …; refresh grants are recorded. */
      const issuing: Handler = (q, s) => {
        let body = '';
        q.on('data', (d: Buffer) => (body += d.toString()));
        q.on('end', () => {
          grants.push(new URLSearchParams(body).get('grant_type') ?? '');
          json(s, { access_token: `fresh-${++issued}`, expires_in: 3600, token_type: 'Bearer', refresh_token: `rt-${issued}` });
        });
      };
      /** The API: refuses the tokens in `refused`, else answers `ok`; records each request once its body has ended. */
      const apiRefusing = (refused: string[], ok: Handler = (_q, s) => json(s, [{ keyid: 'k' }])): Handler => (q, s) => {
        let bytes = 0;
        q.on('data', (d: Buffer) => (bytes += d.length));
        q.on('end', () => {
          const auth = q.headers.authorization ?? '';
          calls.push({ auth, bytes, idem: q.headers['idempotency-key'] as string | undefined });
          (refused.includes(auth.replace(/^Bearer /, '')) ? unauthorized : ok)(q, s);
        });
      };
      const cached = (dir: string) => readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as { accessToken: string; refreshToken?: string });
      const wif = { KEYSERVER_CLIENT_SECRET: '', SYSTEM_OIDCREQUESTURI: '', SYSTEM_ACCESSTOKEN: 'ado', AZURESUBSCRIPTION_SERVICE_CONNECTION_ID: 'sc' };
      beforeEach(() => {
        issued = 0;
        grants = [];
        calls = [];
        idpHandler = (q, s) => (q.url?.startsWith('/oidc') ? json(s, { oidcToken: 'pipeline-oidc' }) : issuing(q, s));
      });

      it.each<[string, string[], Record<string, string>]>([
        ['ok client secret: the refused cached token is dropped, one fresh token, the request sent once more (exit 0)', [], {}],
        ['ok workload identity (--wif): the same, through the pipeline\'s OIDC token', ['--wif'], wif],
      ])('%s', async (_name, flags, extra) => {
        const env = viaIdp({ ...extra, ...(extra['SYSTEM_OIDCREQUESTURI'] === '' ? { SYSTEM_OIDCREQUESTURI: `${idp.url}/oidc` } : {}) });
        handler = apiRefusing([]);
        expect((await ksctl(['--json', ...flags, 'keys', 'list'], env)).status).toBe(0); // caches fresh-1
        handler = apiRefusing(['fresh-1']);
        calls = [];
        const r = await ksctl(['--json', ...flags, 'keys', 'list'], env);
        expect([r.status, calls.map((x) => x.auth), issued]).toEqual([0, ['Bearer fresh-1', 'Bearer fresh-2'], 2]);
        expect(cached(env['KSCTL_CACHE_DIR']).map((t) => t.accessToken)).toEqual(['fresh-2']);
        neverPrintsToken(r);
        calls = [];
        expect((await ksctl(['--json', ...flags, 'keys', 'list'], env)).status).toBe(0); // the fresh token is cached
        expect([calls.map((x) => x.auth), issued]).toEqual([['Bearer fresh-2'], 2]);
      });

      it('ok a PKCE login: the refused access token is refreshed with the refresh token (the login kept), the request sent once more', async () => {
        const env = viaIdp({ KEYSERVER_CLIENT_SECRET: '' });
        const dir = env['KSCTL_CACHE_DIR'];
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        // ksctl's PKCE cache file: keyed by endpoint, client and scope (client.ts cacheFile, as the PKCS#11 module finds it).
        const id = createHash('sha256').update(`${env['KEYSERVER_TOKEN_ENDPOINT']}|client|${env['KEYSERVER_SCOPE']}`).digest('hex').slice(0, 32);
        writeFileSync(join(dir, `token-${id}.json`), JSON.stringify({ accessToken: 'revoked-1', expiresAt: Date.now() + 3_600_000, refreshToken: 'rt-0' }), { mode: 0o600 });
        handler = apiRefusing(['revoked-1']);
        const r = await ksctl(['--json', '--pkce', 'keys', 'list'], env);
        expect([r.status, calls.map((x) => x.auth), grants]).toEqual([0, ['Bearer revoked-1', 'Bearer fresh-1'], ['refresh_token']]);
        expect(cached(dir)).toEqual([expect.objectContaining({ accessToken: 'fresh-1', refreshToken: 'rt-1' })]);
      });

      it('ok sign --cms: the streamed image is sent whole once more, after the refusal', async () => {
        const env = viaIdp();
        handler = apiRefusing([]);
        expect((await ksctl(['--json', 'keys', 'list'], env)).status).toBe(0);
        calls = [];
        handler = apiRefusing(['fresh-1'], (_q, s) => s.writeHead(201, { 'content-type': 'application/pkcs7-signature' }).end(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01])));
        const r = await ksctl(['--json', 'sign', '--cms', '--operation', 'o', '--key', 'k', '--file', 'image.bin', '--out', 'image-401.p7s'], env);
        expect([r.status, calls]).toEqual([0, [{ auth: 'Bearer fresh-1', bytes: expect.any(Number) }, { auth: 'Bearer fresh-2', bytes: 1024 }]]);
        expect(readFileSync(join(work, 'image-401.p7s'))).toEqual(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]));
      });

      it('ok a sign order with an Idempotency-Key: sent once more with the same key', async () => {
        const env = viaIdp();
        handler = apiRefusing([]);
        expect((await ksctl(['--json', 'keys', 'list'], env)).status).toBe(0);
        calls = [];
        handler = apiRefusing(['fresh-1'], (_q, s) => json(s, { result: 'ab'.repeat(32) }, 201));
        const r = await ksctl(['--json', 'sign', '--operation', 'o', '--key', 'k', '--digest', 'ab'.repeat(32), '--idempotency-key', 'idem-401'], env);
        expect([r.status, calls.map((x) => [x.auth, x.idem])]).toEqual([0, [['Bearer fresh-1', 'idem-401'], ['Bearer fresh-2', 'idem-401']]]);
      });

      it('ok operations create with --idempotency-key and --valid-from: sent once more with the same key and the same body', async () => {
        const env = viaIdp();
        handler = apiRefusing([]);
        expect((await ksctl(['--json', 'keys', 'list'], env)).status).toBe(0);
        calls = [];
        handler = apiRefusing(['fresh-1'], (_q, s) => json(s, { id: 'op-1', state: 'REQUESTED', keys: [] }, 201));
        const order = ['--json', 'operations', 'create', '--key', 'k=2', '--description', 'release 3.1', '--valid-from', '2026-12-08T10:00:00Z', '--idempotency-key', 'ado-1234:order'];
        const r = await ksctl(order, env);
        expect([r.status, calls.map((x) => [x.auth, x.idem])]).toEqual([0, [['Bearer fresh-1', 'ado-1234:order'], ['Bearer fresh-2', 'ado-1234:order']]]);
        const sent = calls[0].bytes;
        expect(calls[1].bytes).toBe(sent);
        // A rerun of the same command later sends the same body again: the Keyserver replays its first answer.
        calls = [];
        handler = apiRefusing([], (_q, s) => json(s, { id: 'op-1', state: 'REQUESTED', keys: [] }, 201));
        await new Promise((res) => setTimeout(res, 1_100));
        expect((await ksctl(order, env)).status).toBe(0);
        expect(calls.map((x) => [x.bytes, x.idem])).toEqual([[sent, 'ado-1234:order']]);
      });

      it('fail operations create --idempotency-key without --valid-from: exit 2, nothing sent (a rerun would send another window)', async () => {
        const env = viaIdp();
        handler = apiRefusing([]);
        const r = await ksctl(['--json', 'operations', 'create', '--key', 'k=2', '--description', 'release 3.1', '--idempotency-key', 'ado-1234:order'], env);
        expect([r.status, calls]).toEqual([2, []]);
      });

      it('fail the fresh token is refused as well: exit 3 invalid_token after two requests and one token request (never a loop), nothing cached', async () => {
        const env = viaIdp();
        handler = apiRefusing([]);
        expect((await ksctl(['--json', 'keys', 'list'], env)).status).toBe(0);
        calls = [];
        handler = apiRefusing(['fresh-1', 'fresh-2', 'fresh-3']);
        const r = await ksctl(['--json', 'keys', 'list'], env);
        expect([r.status, r.json.code, calls.length, issued]).toEqual([3, 'invalid_token', 2, 2]);
        expect(cached(env['KSCTL_CACHE_DIR'])).toEqual([]);
      });

      it('fail a token fetched in this run is refused: exit 3, sent once (a fresh token is not fetched again), not cached', async () => {
        const env = viaIdp();
        handler = apiRefusing(['fresh-1', 'fresh-2']);
        const r = await ksctl(['--json', 'keys', 'list'], env);
        expect([r.status, r.json.code, calls.length, issued]).toEqual([3, 'invalid_token', 1, 1]);
        expect(cached(env['KSCTL_CACHE_DIR'])).toEqual([]);
      });

      it('fail KEYSERVER_TOKEN refused: exit 3, sent once, no token requested (the user gave it)', async () => {
        handler = apiRefusing([TOKEN]);
        const r = await ksctl(['--json', 'keys', 'list'], { KEYSERVER_TOKEN_ENDPOINT: `${idp.url}/token`, KEYSERVER_CLIENT_ID: 'client', KEYSERVER_SCOPE: 's' });
        expect([r.status, r.json.code, calls.length, issued]).toEqual([3, 'invalid_token', 1, 0]);
      });

      it.each<[string, Handler]>([
        ["fail a 401 that is not the API's (a proxy's HTML page)", (_q, s) => s.writeHead(401, { 'content-type': 'text/html' }).end('<h1>401</h1>')],
        ['fail a 401 problem with another code', (_q, s) => json(s, { status: 401, code: 'proxy_auth_required' }, 401, 'application/problem+json')],
        ['fail a 403 invalid_token', (_q, s) => json(s, { status: 403, code: 'invalid_token' }, 403, 'application/problem+json')],
      ])('%s: not sent again, no token requested, the cache kept', async (_name, refusal) => {
        const env = viaIdp();
        handler = apiRefusing([]);
        expect((await ksctl(['--json', 'keys', 'list'], env)).status).toBe(0);
        calls = [];
        handler = (q, s) => {
          calls.push({ auth: q.headers.authorization ?? '', bytes: 0 });
          refusal(q, s);
        };
        const r = await ksctl(['--json', 'keys', 'list'], env);
        expect([r.status === 0, calls.length, issued]).toEqual([false, 1, 1]);
        expect(cached(env['KSCTL_CACHE_DIR']).map((t) => t.accessToken)).toEqual(['fresh-1']);
      });

      it('fail the identity provider refuses the new token: exit 3, the refused token dropped all the same (the next run does not send it)', async () => {
        const env = viaIdp();
        handler = apiRefusing([]);
        expect((await ksctl(['--json', 'keys', 'list'], env)).status).toBe(0);
        calls = [];
        handler = apiRefusing(['fresh-1']);
        idpHandler = (_q, s) => json(s, { error: 'invalid_client' }, 401);
        const r = await ksctl(['--json', 'keys', 'list'], env);
        expect([r.status, r.json.code, calls.length]).toEqual([3, 'invalid_client', 1]);
        expect(cached(env['KSCTL_CACHE_DIR'])).toEqual([]);
      });

      it('fail the identity provider never answers the new token request: exit 7 by the one deadline', async () => {
        const env = viaIdp();
        handler = apiRefusing([]);
        expect((await ksctl(['--json', 'keys', 'list'], env)).status).toBe(0);
        handler = apiRefusing(['fresh-1']);
        idpHandler = never;
        timedOut(await ksctl(['--json', '--timeout', '1', 'keys', 'list'], env));
      });
    });
  });

  // The audit export's size is unknown beforehand: without --timeout/KSCTL_TIMEOUT its deadline is 120 s, moved 1 s
  // later per MiB as it arrives (ADR 0015 addendum 2026-12-08), so only an export that keeps coming outlasts 120 s.
  // Both runs take the default deadline, so each lasts about two minutes: they run side by side against their own
  // servers, started in beforeAll and judged by the cases.
  describe('audit export: the deadline and its per-MiB allowance (the default, no --timeout)', () => {
    const CHUNK = 64 * 1024;
    /** 0.5 MiB/s for 130 s: past the 120 s base, within the allowance (at 130 s the deadline is 120 + 65 s). */
    const STEADY_CHUNKS = 1040;
    const BASE_MS = 120_000;
    const servers: Server[] = [];
    let steady: Promise<Run>;
    let trickling: Promise<Run>;
    let steadySent: Buffer;
    let dirs: { steady: string; trickle: string };

    /** `chunks` of 64 KiB every 125 ms, then the end: a large export that keeps coming. */
    const steadyExport = (chunks: number): Handler => (_q, s) => {
      s.writeHead(200, { 'content-type': 'application/jsonl' });
      let i = 0;
      const t = setInterval(() => {
        s.write(steadySent.subarray(i * CHUNK, (i + 1) * CHUNK));
        if (++i === chunks) {
          clearInterval(t);
          s.end();
        }
      }, 125);
      s.on('close', () => clearInterval(t));
    };
    /** 1 MiB at once (1 s of allowance earned), then one byte a second, never the end. */
    const tricklingExport: Handler = (_q, s) => {
      s.writeHead(200, { 'content-type': 'application/jsonl' });
      s.write(Buffer.alloc(MiB, 0x20));
      const t = setInterval(() => s.write(' '), 1000);
      s.on('close', () => clearInterval(t));
    };
    const serve = async (h: Handler) => {
      const l = await listen((req, res) => {
        req.resume();
        h(req, res);
      });
      servers.push(l.server);
      return l.url;
    };

    beforeAll(async () => {
      steadySent = Buffer.alloc(STEADY_CHUNKS * CHUNK, '{"seq":"1"}\n');
      dirs = { steady: join(work, 'export-steady'), trickle: join(work, 'export-trickle') };
      for (const d of Object.values(dirs)) mkdirSync(d);
      const [steadyUrl, trickleUrl] = await Promise.all([serve(steadyExport(STEADY_CHUNKS)), serve(tricklingExport)]);
      steady = ksctl(['--json', '--api', steadyUrl, 'audit', 'export', '--out', join(dirs.steady, 'audit.jsonl')], {}, 200_000);
      trickling = ksctl(['--json', '--api', trickleUrl, 'audit', 'export', '--out', join(dirs.trickle, 'audit.jsonl')], {}, 200_000);
    });
    afterAll(async () => {
      await Promise.allSettled([steady, trickling]);
      for (const server of servers) {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      }
    });

    it('ok a large export that keeps coming at 0.5 MiB/s completes past the 120 s base: the allowance moved the deadline, the file whole', async () => {
      const r = await steady;
      expect([r.status, r.json['bytes']]).toEqual([0, steadySent.length]);
      expect(r.ms).toBeGreaterThan(BASE_MS);
      expect(readdirSync(dirs.steady)).toEqual(['audit.jsonl']);
      expect(createHash('sha256').update(readFileSync(join(dirs.steady, 'audit.jsonl'))).digest('hex')).toBe(createHash('sha256').update(steadySent).digest('hex'));
    }, 200_000);

    it('fail an export that trickles one byte a second after its first MiB: exit 7 deadline_exceeded at 120 s + 1 s (a trickle earns nothing), no file, no temporary file', async () => {
      const r = await trickling;
      expect([r.status, r.json.code]).toEqual([7, 'deadline_exceeded']);
      expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      expect(r.ms).toBeGreaterThan(BASE_MS + 1000);
      expect(r.ms).toBeLessThan(BASE_MS + 1000 + 6000);
      expect(readdirSync(dirs.trickle)).toEqual([]);
      neverPrintsToken(r);
    }, 200_000);
  });

  describe('answers of the wrong shape', () => {
    it('fail operations wait on a state that is no state (escapes): unexpected_answer (exit 1), not a code made of it', async () => {
      handler = (_q, s) => json(s, { id: 'op1', state: '\u001b]0;pwned\u0007', description: 'd', keys: [] });
      const r = await ksctl(['--json', 'operations', 'wait', 'op1', '--timeout', '5']);
      expect([r.status, r.json.code]).toEqual([1, 'unexpected_answer']);
    });

    it("fail sign --file when the key's hash is no string: unexpected_answer (exit 1), nothing signed", async () => {
      let orders = 0;
      handler = (q, s) => {
        if (q.method === 'POST') orders++;
        json(s, { keyid: 'k', hash: { toLowerCase: 1 } });
      };
      const r = await ksctl(['--json', 'sign', '--operation', 'o', '--key', 'k', '--file', 'image.bin']);
      expect([r.status, r.json.code, orders]).toEqual([1, 'unexpected_answer', 0]);
    });

    it('fail a JSON answer nested a million deep: unexpected_answer (exit 1), not a stack overflow', async () => {
      handler = (_q, s) => s.writeHead(200, { 'content-type': 'application/json' }).end(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`);
      const r = await ksctl(['--json', 'keys', 'list']);
      expect([r.status, r.json.code]).toEqual([1, 'unexpected_answer']);
    });
  });
});
