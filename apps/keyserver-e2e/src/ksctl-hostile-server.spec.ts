import { execFile, execFileSync } from 'node:child_process';
import { existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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

  const ksctl = (args: string[], env: Record<string, string> = {}): Promise<Run> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [KSCTL, '--api', api.url, ...args],
        { encoding: 'utf8', cwd: work, env: { PATH: process.env['PATH'] ?? '', HOME: work, KEYSERVER_TOKEN: TOKEN, ...env }, timeout: 90_000, maxBuffer: 64 * MiB },
        (err, stdout, stderr) => {
          const status = err ? ((err as { code?: number }).code ?? -1) : 0;
          let json = {};
          try {
            json = JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
          } catch {
            // a table, or nothing
          }
          resolve({ status: typeof status === 'number' ? status : -1, stdout, stderr, json });
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
});
