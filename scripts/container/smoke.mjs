#!/usr/bin/env node
// Smoke test of a running docker-compose stack (scripts/test-containers.sh runs it twice: `first`, then
// `restarted` after `down && up`). Plain Node, no dependencies: it runs before `npm ci`.
//   node scripts/container/smoke.mjs first|restarted ENV_FILE STATE_FILE
// first:     every service healthy; the demo CI client's token is accepted (and no token is refused); a sign
//            order over a SHA-256 digest verifies with openssl against the key's certificate; an administrator
//            logs in through the keyclient (emulator sign-in, code flow) and reads keys via its proxy; the
//            keyclient listens only on KEYCLIENT_HOST; both serve Prometheus metrics on their loopback metrics ports.
// restarted: the operation made before still exists with its usage spent (PostgreSQL volume), and the same key
//            signs again under the certificate saved before (the SoftHSM token volume kept the key).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [phase, envFile, stateFile] = process.argv.slice(2);
if (!['first', 'restarted'].includes(phase) || !envFile || !stateFile) {
  console.error('usage: smoke.mjs first|restarted ENV_FILE STATE_FILE');
  process.exit(2);
}
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const env = Object.fromEntries(
  readFileSync(envFile, 'utf8')
    .split('\n')
    .filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
);
const tenant = JSON.parse(readFileSync(join(root, 'config', 'demo-tenant.json'), 'utf8'));
const tid = tenant.tenant.id;
const emulator = `http://127.0.0.1:${env.EMULATOR_PORT}`;
const api = `http://127.0.0.1:${env.KEYSERVER_API_PORT}`;
const keyclient = `http://localhost:${env.KEYCLIENT_PORT}`;
const KEYID = 'demo-fw-dev';

let step = 0;
async function check(title, fn) {
  step++;
  const started = Date.now();
  try {
    await fn();
    console.log(`smoke ${phase} ${step}. ok   ${title} (${Date.now() - started} ms)`);
  } catch (err) {
    console.error(`smoke ${phase} ${step}. FAIL ${title}: ${err.stack ?? err}`);
    process.exit(1);
  }
}

const get = (url, init = {}) => fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(15_000), ...init });

async function ciToken() {
  const ci = tenant.ciClients.find((c) => c.name === 'demo-ci');
  const r = await get(`${emulator}/${tid}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: ci.clientId,
      client_secret: ci.clientSecret,
      scope: `${tenant.keyserverApp.applicationIdUri}/.default`,
    }),
  });
  assert.equal(r.status, 200, 'token endpoint');
  return (await r.json()).access_token;
}

function apiCall(token, path, init = {}) {
  return get(`${api}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers } });
}

async function signAndVerify(token, operationid, certificatePem, label) {
  const data = Buffer.from(`container smoke ${label} ${Date.now()}`);
  const digest = createHash('sha256').update(data).digest('hex');
  const r = await apiCall(token, '/api/signorders', {
    method: 'POST',
    body: JSON.stringify({ operationid, keyid: KEYID, inputdata: digest, inputformat: 'hex', inputpadding: 'none', signatureformat: 'asn1', description: `container smoke ${label}` }),
  });
  assert.equal(r.status, 201, `sign order: ${await r.clone().text()}`);
  const { result } = await r.json();
  const work = mkdtempSync(join(tmpdir(), 'ks-smoke-'));
  try {
    writeFileSync(join(work, 'cert.pem'), certificatePem);
    writeFileSync(join(work, 'data.bin'), data);
    writeFileSync(join(work, 'sig.der'), Buffer.from(result, 'hex'));
    execFileSync('openssl', ['x509', '-in', join(work, 'cert.pem'), '-pubkey', '-noout', '-out', join(work, 'pub.pem')]);
    const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', join(work, 'pub.pem'), '-signature', join(work, 'sig.der'), join(work, 'data.bin')]);
    assert.match(out.toString(), /Verified OK/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** One cookie jar per origin, as a browser keeps them. */
class Jar {
  cookies = new Map();
  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';')[0];
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /max-age=0/i.test(line)) this.cookies.delete(pair.slice(0, eq).trim());
      else this.cookies.set(pair.slice(0, eq).trim(), value);
    }
  }
  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

/** Browser-like: follows redirects by hand across the keyclient and the emulator, fills the sign-in form once. */
async function adminLogin(username, password) {
  const jars = { [new URL(keyclient).origin]: new Jar(), [new URL(emulator).origin]: new Jar() };
  const go = async (url, init = {}) => {
    const jar = jars[new URL(url).origin];
    assert.ok(jar, `unexpected origin ${url}`);
    const r = await get(url, { ...init, headers: { ...init.headers, cookie: jar.header() } });
    jar.store(r);
    return r;
  };
  let r = await go(`${keyclient}/login?returnTo=/`);
  assert.equal(r.status, 302, 'keyclient /login redirects to the identity provider');
  let url = new URL(r.headers.get('location'), keyclient).href;
  assert.ok(url.startsWith(emulator), `login goes to the emulator, not ${url}`);
  let submitted = false;
  for (let hop = 0; hop < 20; hop++) {
    r = await go(url);
    if (r.status >= 300 && r.status < 400) {
      await r.arrayBuffer();
      url = new URL(r.headers.get('location'), url).href;
      if (url.startsWith(keyclient)) break;
      continue;
    }
    const html = await r.text();
    assert.equal(r.status, 200, `emulator page ${url}`);
    assert.ok(!submitted && /name="password"/.test(html), 'the emulator shows its sign-in form once');
    submitted = true;
    const action = new URL(/<form method="post" action="([^"]+)"/.exec(html)[1].replace(/&amp;/g, '&'), url).href;
    r = await go(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ username, password }).toString() });
    assert.ok(r.status >= 300 && r.status < 400, `sign-in answered ${r.status}`);
    url = new URL(r.headers.get('location'), action).href;
    if (url.startsWith(keyclient)) break;
  }
  assert.ok(url.startsWith(`${keyclient}/login/oauth2/code/keyserver-client`), `back at the keyclient callback, not ${url}`);
  r = await go(url);
  assert.equal(r.status, 302, 'the callback completes the login');
  return go;
}

function tryConnect(host, port) {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.setTimeout(3000, () => (s.destroy(), resolve('timeout')));
    s.once('connect', () => (s.destroy(), resolve('connected')));
    s.once('error', (e) => resolve(e.code ?? e.message));
  });
}

await check('every service answers its health check', async () => {
  for (const url of [`${emulator}/healthz`, `${api}/healthz`, `${api}/readyz`, `http://127.0.0.1:${env.KEYCLIENT_PORT}/readyz`]) {
    const r = await get(url);
    assert.equal(r.status, 200, url);
  }
});

const token = await ciToken();
await check('the demo CI client\'s token is accepted, a request without a token is refused', async () => {
  const r = await apiCall(token, '/api/keys');
  assert.equal(r.status, 200);
  assert.ok((await r.json()).some((k) => k.keyid === KEYID));
  const anonymous = await get(`${api}/api/keys`);
  assert.equal(anonymous.status, 401);
});

if (phase === 'first') {
  const state = {};
  await check('a sign order over a SHA-256 digest verifies with openssl', async () => {
    const keys = await (await apiCall(token, '/api/keys')).json();
    state.certificatePem = keys.find((k) => k.keyid === KEYID).certificate;
    const now = Date.now();
    const op = await apiCall(token, '/api/v1/operations', {
      method: 'POST',
      body: JSON.stringify({ description: 'container smoke test', validFrom: new Date(now - 60_000).toISOString(), validTo: new Date(now + 86_400_000).toISOString(), keys: [{ keyid: KEYID, usages: 2 }] }),
    });
    assert.equal(op.status, 201, `operation: ${await op.clone().text()}`);
    state.operationid = (await op.json()).id;
    await signAndVerify(token, state.operationid, state.certificatePem, 'before restart');
  });
  await check('an administrator logs in through the keyclient and reads keys through its proxy', async () => {
    const admin = tenant.users.find((u) => u.natures.includes('administrator'));
    const go = await adminLogin(admin.username, admin.password);
    const me = await go(`${keyclient}/me`);
    assert.equal(me.status, 200);
    assert.equal((await me.json()).displayName, admin.name);
    const keys = await go(`${keyclient}/api/keys`);
    assert.equal(keys.status, 200);
    assert.ok((await keys.json()).some((k) => k.keyid === 'demo-root'));
  });
  await check('Prometheus metrics on loopback: the API counted the sign order, the keyclient its requests', async () => {
    const apiText = await (await get(`http://127.0.0.1:${env.KEYSERVER_API_METRICS_PORT}/metrics`)).text();
    assert.match(apiText, new RegExp(`^keyserver_sign_orders_total\\{key="${KEYID}",outcome="success",code="none"\\} [1-9]`, 'm'));
    const kcText = await (await get(`http://127.0.0.1:${env.KEYCLIENT_METRICS_PORT}/metrics`)).text();
    assert.match(kcText, /^http_request_duration_seconds_count\{method="GET",route="\/readyz",status="200"\} [1-9]/m);
    assert.equal((await get(`${api}/metrics`)).status >= 400, true);
  });
  await check(`the keyclient listens on KEYCLIENT_HOST (${env.KEYCLIENT_HOST}) only`, async () => {
    assert.equal(env.KEYCLIENT_HOST, '127.0.0.1');
    assert.equal(await tryConnect('127.0.0.1', Number(env.KEYCLIENT_PORT)), 'connected');
    assert.equal(await tryConnect('127.0.0.2', Number(env.KEYCLIENT_PORT)), 'ECONNREFUSED');
  });
  writeFileSync(stateFile, JSON.stringify(state));
} else {
  const state = JSON.parse(readFileSync(stateFile, 'utf8'));
  await check('the operation made before the restart is still there with one usage spent (database volume)', async () => {
    const r = await apiCall(token, `/api/v1/operations/${state.operationid}`);
    assert.equal(r.status, 200);
    assert.equal((await r.json()).keys[0].usagesUsed, 1);
  });
  await check('the same HSM key signs under the certificate saved before the restart (token volume)', async () => {
    const keys = await (await apiCall(token, '/api/keys')).json();
    assert.equal(keys.find((k) => k.keyid === KEYID).certificate, state.certificatePem);
    await signAndVerify(token, state.operationid, state.certificatePem, 'after restart');
  });
}
console.log(`smoke ${phase}: all ${step} checks passed`);
