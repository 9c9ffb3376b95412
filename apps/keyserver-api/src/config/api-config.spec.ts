import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ConfigError } from '@keyserver/config';
import { describeConfig, insecureLoopbackWarnings, loadApiConfig, tsaTrustWarnings } from './api-config';

const VALID: Record<string, string> = {
  TENANT_ID: '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01',
  APPLICATION_ID: '5b0f3c2a-8e7d-4f61-a9c3-1d2e3f4a5b60',
  OPENID_CONNECT_METADATA_DOCUMENT: 'https://login.microsoftonline.com/7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01/v2.0/.well-known/openid-configuration',
  DATABASE_URL: 'postgresql://keyserver@db-rw:5432/keyserver',
  PKCS11_MODULE: process.execPath,
  PKCS11_TOKEN_LABEL: 'keyserver',
  PKCS11_PIN: '123456',
};

function variableOf(env: Record<string, string | undefined>): string {
  try {
    loadApiConfig(env);
    return '(accepted)';
  } catch (err) {
    if (err instanceof ConfigError) return err.variable;
    throw err;
  }
}

describe(loadApiConfig.name, () => {
  it('ok bounds every database wait by default (connect 5 s, statement 30 s, lock 10 s)', () => {
    expect(loadApiConfig(VALID).database).toEqual({ pooler: 'none', poolSize: 10, connectTimeoutMs: 5_000, statementTimeoutMs: 30_000, lockTimeoutMs: 10_000 });
  });

  it('ok takes the failover bounds from the environment', () => {
    const c = loadApiConfig({ ...VALID, DATABASE_CONNECT_TIMEOUT_MS: '2000', DATABASE_STATEMENT_TIMEOUT_MS: '0', DATABASE_LOCK_TIMEOUT_MS: '500', DATABASE_POOL_SIZE: '4' });
    expect(c.database).toEqual({ pooler: 'none', poolSize: 4, connectTimeoutMs: 2_000, statementTimeoutMs: 0, lockTimeoutMs: 500 });
  });

  it('ok without a pooler: prepared statements, the access cache on (5 s), migrations on DATABASE_URL', () => {
    const c = loadApiConfig(VALID);
    expect([c.database.pooler, c.accessCacheTtlMs, c.databaseDirectUrl]).toEqual(['none', 5_000, VALID['DATABASE_URL']]);
  });

  it('ok behind a transaction-pooling PgBouncer: no session state, the access cache on (5 s) with its listener and the migrations on DATABASE_DIRECT_URL', () => {
    const direct = 'postgresql://keyserver@db-rw:5432/keyserver';
    const pooled = { ...VALID, DATABASE_URL: 'postgresql://keyserver@pgbouncer:6432/keyserver', DATABASE_POOLER: 'transaction', DATABASE_DIRECT_URL: direct };
    const c = loadApiConfig(pooled);
    expect([c.database.pooler, c.accessCacheTtlMs, c.databaseDirectUrl]).toEqual(['transaction', 5_000, direct]);
    expect(loadApiConfig({ ...pooled, ACCESS_CACHE_TTL_MS: '30000' }).accessCacheTtlMs).toBe(30_000);
    expect(loadApiConfig({ ...pooled, ACCESS_CACHE_TTL_MS: '0' }).accessCacheTtlMs).toBe(0);
  });

  it('ok a co-located database through its Unix socket (host= names the socket directory)', () => {
    const url = 'postgresql://keyserver@localhost:5432/keyserver?host=%2Fvar%2Frun%2Fpostgresql';
    expect(loadApiConfig({ ...VALID, DATABASE_URL: url }).databaseUrl).toBe(url);
  });

  it('ok leaves V8 background threads alone unless told to lower them (ADR 0039)', () => {
    expect(loadApiConfig(VALID).v8BackgroundNice).toBe(0);
    expect([loadApiConfig(VALID).edge.headersTimeoutMs, loadApiConfig(VALID).edge.requestTimeoutMs]).toEqual([66_000, 300_000]);
    expect(loadApiConfig({ ...VALID, V8_BACKGROUND_NICE: '10' }).v8BackgroundNice).toBe(10);
  });

  it.each([
    ['ok the defaults: 4096 per process, 1024 per address, 30 s of grace', {}, [4096, 1024, 30_000]],
    ['ok a total under the per-address default caps the per-address limit', { HTTP_MAX_CONNECTIONS: '500' }, [500, 500, 30_000]],
    ['ok behind a load balancer: the per-address limit raised to the total', { HTTP_MAX_CONNECTIONS: '8000', HTTP_MAX_CONNECTIONS_PER_IP: '8000', HTTP_SHUTDOWN_GRACE_MS: '0' }, [8000, 8000, 0]],
  ])('%s', (_name, patch, limits) => {
    const edge = loadApiConfig({ ...VALID, ...patch }).edge;
    expect([edge.maxConnections, edge.maxConnectionsPerIp, edge.shutdownGraceMs]).toEqual(limits);
  });

  it.each([
    ['fail a multi-host DATABASE_URL (node-postgres connects to one endpoint)', { DATABASE_URL: 'postgresql://u@db1:5432,db2:5432/ks?target_session_attrs=read-write' }, 'DATABASE_URL'],
    ['fail target_session_attrs the pool cannot honour', { DATABASE_URL: 'postgresql://u@db/ks?target_session_attrs=standby' }, 'DATABASE_URL'],
    ['fail a connect timeout below 100 ms', { DATABASE_CONNECT_TIMEOUT_MS: '10' }, 'DATABASE_CONNECT_TIMEOUT_MS'],
    ['fail a negative statement timeout', { DATABASE_STATEMENT_TIMEOUT_MS: '-1' }, 'DATABASE_STATEMENT_TIMEOUT_MS'],
    ['fail a lock timeout that is not a number', { DATABASE_LOCK_TIMEOUT_MS: 'soon' }, 'DATABASE_LOCK_TIMEOUT_MS'],
    ['fail an unknown pooler mode', { DATABASE_POOLER: 'session' }, 'DATABASE_POOLER'],
    ['fail a transaction pooler without a direct URL for the migrations and the access cache listener (sessions)', { DATABASE_POOLER: 'transaction' }, 'DATABASE_DIRECT_URL'],
    ['fail an access cache TTL above 60 s behind a transaction pooler (the same bound as without)', { DATABASE_POOLER: 'transaction', DATABASE_DIRECT_URL: 'postgresql://u@db/ks', ACCESS_CACHE_TTL_MS: '60001' }, 'ACCESS_CACHE_TTL_MS'],
    ['fail a multi-host DATABASE_DIRECT_URL', { DATABASE_DIRECT_URL: 'postgresql://u@db1:5432,db2:5432/ks' }, 'DATABASE_DIRECT_URL'],
    ['fail a V8 background nice above 19 (no such priority)', { V8_BACKGROUND_NICE: '20' }, 'V8_BACKGROUND_NICE'],
    ['fail a negative V8 background nice (a raised priority needs privileges)', { V8_BACKGROUND_NICE: '-5' }, 'V8_BACKGROUND_NICE'],
    ['fail a request timeout shorter than the headers timeout (Node refuses the server)', { HTTP_HEADERS_TIMEOUT_MS: '10000', HTTP_REQUEST_TIMEOUT_MS: '5000' }, 'HTTP_REQUEST_TIMEOUT_MS'],
    ['fail a headers timeout under a second', { HTTP_HEADERS_TIMEOUT_MS: '10' }, 'HTTP_HEADERS_TIMEOUT_MS'],
    ['fail a per-address connection limit above the total (it would never apply)', { HTTP_MAX_CONNECTIONS: '100', HTTP_MAX_CONNECTIONS_PER_IP: '200' }, 'HTTP_MAX_CONNECTIONS_PER_IP'],
    ['fail no connections at all', { HTTP_MAX_CONNECTIONS: '0' }, 'HTTP_MAX_CONNECTIONS'],
    ['fail a per-address connection limit that is not a number', { HTTP_MAX_CONNECTIONS_PER_IP: 'many' }, 'HTTP_MAX_CONNECTIONS_PER_IP'],
    ['fail a shutdown grace above ten minutes', { HTTP_SHUTDOWN_GRACE_MS: '600001' }, 'HTTP_SHUTDOWN_GRACE_MS'],
    ['fail the audit checkpoint policy as the public TSA policy (anyone could then have a checkpoint stamped)', { TSA_POLICY_OID: '2.25.71213305904928989567330069075920600616' }, 'TSA_POLICY_OID'],
    ['fail an audit checkpoint interval under 100 ms (0 turns sealing off)', { AUDIT_CHECKPOINT_INTERVAL_MS: '50' }, 'AUDIT_CHECKPOINT_INTERVAL_MS'],
    ['fail a negative audit checkpoint interval', { AUDIT_CHECKPOINT_INTERVAL_MS: '-1' }, 'AUDIT_CHECKPOINT_INTERVAL_MS'],
    ['fail an audit checkpoint interval above a day', { AUDIT_CHECKPOINT_INTERVAL_MS: '86400001' }, 'AUDIT_CHECKPOINT_INTERVAL_MS'],
  ])('%s', (_name, patch, variable) => {
    expect(variableOf({ ...VALID, ...patch })).toBe(variable);
  });

  it.each([
    ['ok the default: a checkpoint a minute', {}, 60_000],
    ['ok 0: no checkpoints', { AUDIT_CHECKPOINT_INTERVAL_MS: '0' }, 0],
    ['ok 100 ms', { AUDIT_CHECKPOINT_INTERVAL_MS: '100' }, 100],
  ])('%s (AUDIT_CHECKPOINT_INTERVAL_MS)', (_n, patch, ms) => {
    expect(loadApiConfig({ ...VALID, ...patch }).auditCheckpointIntervalMs).toBe(ms);
  });
});

describe(`${loadApiConfig.name}: plain-http OpenID metadata (ADR 0011 addendum "insecure loopback")`, () => {
  const EMULATOR = 'http://127.0.0.1:4011/7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01/v2.0/.well-known/openid-configuration';
  const FLAG = 'OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK';

  it.each([
    ['ok the default: https only, plain http refused for the metadata, its issuer and its JWKS', {}, false],
    ['ok explicitly off with https', { [FLAG]: 'false' }, false],
    ['ok the emulator on loopback, explicitly allowed (npm start, compose, the dev overlay, the tests)', { OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR, [FLAG]: 'true' }, true],
    ['ok the emulator on [::1], allowed with 1', { OPENID_CONNECT_METADATA_DOCUMENT: 'http://[::1]:4011/t/v2.0/.well-known/openid-configuration', [FLAG]: '1' }, true],
  ])('%s', (_name, patch, allowed) => {
    expect(loadApiConfig({ ...VALID, ...patch }).allowInsecureLoopback).toBe(allowed);
  });

  it.each([
    ['fail a plain-http loopback metadata URL without the setting (production never trusts keys fetched over http)', { OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail a plain-http loopback metadata URL with the setting off', { OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR, [FLAG]: 'false' }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail the setting with an https metadata URL (it would only let the document name http loopback keys)', { [FLAG]: 'true' }, FLAG],
    ['fail the setting with plain http to a remote host', { OPENID_CONNECT_METADATA_DOCUMENT: 'http://login.example.com/t/v2.0/.well-known/openid-configuration', [FLAG]: 'true' }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail a setting that is not true or false', { OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR, [FLAG]: 'yes' }, FLAG],
  ])('%s', (_name, patch, variable) => {
    expect(variableOf({ ...VALID, ...patch })).toBe(variable);
  });

  it('ok a production installation on the emulator is warned about at boot; https or demo mode is not', () => {
    expect(insecureLoopbackWarnings(loadApiConfig({ ...VALID, OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR, [FLAG]: 'true' }))).toEqual([expect.stringContaining(FLAG)]);
    expect(insecureLoopbackWarnings(loadApiConfig({ ...VALID, OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR, [FLAG]: 'true', KEYSERVER_MODE: 'demo', ADMIN_SESSION_APPROVALS: '2' }))).toEqual([]);
    expect(insecureLoopbackWarnings(loadApiConfig(VALID))).toEqual([]);
  });
});

describe(describeConfig.name, () => {
  it.each([
    ['fail a password in the user-info', 'postgresql://keyserver:Zq9user@db-rw:5432/keyserver'],
    ['fail a password in the query (node-postgres reads it there too)', 'postgresql://keyserver@db-rw:5432/keyserver?password=Zq9query'],
    ['fail an sslpassword with an encoded name', 'postgresql://keyserver@db-rw:5432/keyserver?sslmode=require&sslpass%77ord=Zq9ssl'],
  ])('%s: the boot log line never carries it', (_n, url) => {
    const line = JSON.stringify(describeConfig(loadApiConfig({ ...VALID, DATABASE_URL: url, DATABASE_DIRECT_URL: url })));
    expect(line).not.toContain('Zq9');
    expect(line).not.toContain(VALID['PKCS11_PIN']);
  });
});

describe('external TSA trust (ADR 0043)', () => {
  const URL_ = 'https://tsa.example.com/tsr';
  let dir: string;
  const file = (n: string) => join(dir, n);
  const pin = () => createHash('sha256').update(new X509Certificate(readFileSync(file('ca.pem'))).raw).digest('hex');

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ks-tsa-trust-'));
    for (const name of ['ca', 'other']) {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file(`${name}.key`), '-subj', `/CN=${name} TSA root`, '-days', '30', '-out', file(`${name}.pem`)], { stdio: 'pipe' });
    }
    writeFileSync(file('two.pem'), `${readFileSync(file('ca.pem'), 'utf8')}${readFileSync(file('other.pem'), 'utf8')}`);
    // CRLs as a CA operator makes them (openssl ca -gencrl), PEM and DER.
    for (const name of ['ca', 'other']) {
      writeFileSync(file(`${name}-index.txt`), '');
      writeFileSync(file(`${name}-ca.cnf`), ['[ca]', 'default_ca = d', '[d]', `database = ${file(`${name}-index.txt`)}`, 'default_md = sha256', 'default_crl_days = 7'].join('\n'));
      execFileSync('openssl', ['ca', '-gencrl', '-config', file(`${name}-ca.cnf`), '-keyfile', file(`${name}.key`), '-cert', file(`${name}.pem`), '-out', file(`${name}.crl`)], { stdio: 'pipe' });
    }
    execFileSync('openssl', ['crl', '-in', file('ca.crl'), '-outform', 'DER', '-out', file('ca.crl.der')], { stdio: 'pipe' });
    writeFileSync(file('empty.pem'), 'no certificate in here\n');
    writeFileSync(file('broken.pem'), '-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['fail a TSA URL without an anchor or a pin', () => ({ CMS_TSA_URL: URL_ }), 'CMS_TSA_CA_CERT'],
    ['fail an anchor file that does not exist', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('missing.pem') }), 'CMS_TSA_CA_CERT'],
    ['fail an anchor file without a certificate', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('empty.pem') }), 'CMS_TSA_CA_CERT'],
    ['fail an anchor file with a certificate that does not parse', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('broken.pem') }), 'CMS_TSA_CA_CERT'],
    ['fail a pin that is not a SHA-256', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CERT_SHA256: 'ab:cd' }), 'CMS_TSA_CERT_SHA256'],
    ['fail a SHA-1 fingerprint as a pin', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CERT_SHA256: 'a'.repeat(40) }), 'CMS_TSA_CERT_SHA256'],
    ['fail an anchor without a TSA URL (the own TSA would be used)', () => ({ CMS_TSA_CA_CERT: file('ca.pem') }), 'CMS_TSA_CA_CERT'],
    ['fail a pin without a TSA URL', () => ({ CMS_TSA_CERT_SHA256: pin() }), 'CMS_TSA_CERT_SHA256'],
    ['ok an anchor file', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem') }), '(accepted)'],
    ['ok a pin alone', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CERT_SHA256: pin() }), '(accepted)'],
    ['ok no external TSA, no trust', () => ({}), '(accepted)'],
    ['fail a clock skew below one second', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem'), CMS_TSA_MAX_SKEW_MS: '999' }), 'CMS_TSA_MAX_SKEW_MS'],
    ['fail a clock skew over an hour', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem'), CMS_TSA_MAX_SKEW_MS: '3600001' }), 'CMS_TSA_MAX_SKEW_MS'],
    ['fail a clock skew that is not a number', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem'), CMS_TSA_MAX_SKEW_MS: '5m' }), 'CMS_TSA_MAX_SKEW_MS'],
    ['fail a CRL file without a TSA URL', () => ({ CMS_TSA_CRL: file('ca.crl') }), 'CMS_TSA_CRL'],
    ['fail a CRL file with a pin alone (revoking a pinned certificate is changing the pin)', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CERT_SHA256: pin(), CMS_TSA_CRL: file('ca.crl') }), 'CMS_TSA_CRL'],
    ['fail a CRL file that does not exist', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem'), CMS_TSA_CRL: file('missing.crl') }), 'CMS_TSA_CRL'],
    ['fail a CRL file without a CRL', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem'), CMS_TSA_CRL: file('ca.pem') }), 'CMS_TSA_CRL'],
    ['fail a CRL of a CA that is not an anchor', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem'), CMS_TSA_CRL: file('other.crl') }), 'CMS_TSA_CRL'],
    ['ok a PEM CRL of the anchor', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem'), CMS_TSA_CRL: file('ca.crl') }), '(accepted)'],
    ['ok a DER CRL of the anchor, with a pin too', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem'), CMS_TSA_CERT_SHA256: pin(), CMS_TSA_CRL: file('ca.crl.der') }), '(accepted)'],
    ['ok a clock skew of one minute', () => ({ CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem'), CMS_TSA_MAX_SKEW_MS: '60000' }), '(accepted)'],
  ])('%s', (_name, patch, variable) => {
    expect(variableOf({ ...VALID, ...patch() })).toBe(variable);
  });

  it('ok the boot log names each CRL, and warns about an anchor without a CRL, or a CA trusted without CMS_TSA_CRL', () => {
    const c = loadApiConfig({ ...VALID, CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('two.pem'), CMS_TSA_CRL: file('ca.crl') });
    expect((describeConfig(c).cmsTimestamp as { trust: { crls: string[] } }).trust.crls).toEqual([expect.stringMatching(/^CN=ca TSA root: 0 revoked, next update \d{4}-/)]);
    expect(tsaTrustWarnings(c)).toEqual([expect.stringContaining('holds no CRL of CN=other TSA root')]);
    expect(tsaTrustWarnings(c, new Date(Date.now() + 8 * 86_400_000))).toEqual([expect.stringContaining('past its nextUpdate'), expect.stringContaining('holds no CRL of CN=other TSA root')]);
    expect(tsaTrustWarnings(loadApiConfig({ ...VALID, CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem') }))).toEqual([expect.stringContaining('without CMS_TSA_CRL')]);
    expect(tsaTrustWarnings(loadApiConfig({ ...VALID, CMS_TSA_URL: URL_, CMS_TSA_CERT_SHA256: pin() }))).toEqual([]);
  });

  it('ok the clock skew defaults to 5 minutes', () => {
    expect(loadApiConfig({ ...VALID, CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('ca.pem') }).cmsTimestamp.maxSkewMs).toBe(300_000);
  });

  it('ok every certificate of the anchor file is an anchor, and the boot log names them by subject and fingerprint', () => {
    const c = loadApiConfig({ ...VALID, CMS_TSA_URL: URL_, CMS_TSA_CA_CERT: file('two.pem'), CMS_TSA_CERT_SHA256: pin() });
    expect(c.cmsTimestamp.trust?.anchors.map((a) => a.subject)).toEqual(['CN=ca TSA root', 'CN=other TSA root']);
    expect(c.cmsTimestamp.trust?.pins.map((p) => Buffer.from(p).toString('hex'))).toEqual([pin()]);
    const logged = describeConfig(c).cmsTimestamp as { trust: { anchors: string[]; pins: string[] } };
    expect(logged.trust).toEqual({ anchors: [`CN=ca TSA root (SHA-256 ${pin()})`, expect.stringMatching(/^CN=other TSA root \(SHA-256 [0-9a-f]{64}\)$/)], pins: [pin()] });
  });

  it('ok a pin as openssl prints it or as plain hex, in any case: the same 32 bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.boolean(), fc.boolean(), (bytes, colons, upper) => {
        let text = Buffer.from(bytes).toString('hex');
        if (colons) text = (text.match(/../g) ?? []).join(':');
        if (upper) text = text.toUpperCase();
        const c = loadApiConfig({ ...VALID, CMS_TSA_URL: URL_, CMS_TSA_CERT_SHA256: ` ${text} ,${'0'.repeat(64)}` });
        expect(c.cmsTimestamp.trust?.pins.map((p) => Buffer.from(p).toString('hex'))).toEqual([Buffer.from(bytes).toString('hex'), '0'.repeat(64)]);
      }),
      { numRuns: 200 },
    );
  });
});

describe(`${loadApiConfig.name}: four eyes`, () => {
  // Concepts 3.9: one authorizer is for test/dev systems only; in production a session whose only administrator is its
  // creator would let one person create keys, lower approvers and grant herself roles.
  it.each([
    ['fail one authorizer in production (the default mode)', {}, '1', 'ADMIN_SESSION_APPROVALS'],
    ['fail one authorizer with KEYSERVER_MODE=production', { KEYSERVER_MODE: 'production' }, '1', 'ADMIN_SESSION_APPROVALS'],
    ['ok one authorizer on a demo system', { KEYSERVER_MODE: 'demo' }, '1', '(accepted)'],
    ['ok two authorizers in production', { KEYSERVER_MODE: 'production' }, '2', '(accepted)'],
    ['ok three authorizers in production', {}, '3', '(accepted)'],
  ])('%s', (_name, patch, approvals, variable) => {
    expect(variableOf({ ...VALID, ...patch, ADMIN_SESSION_APPROVALS: approvals })).toBe(variable);
  });
});
