import { Body, Controller, Get, HttpCode, HttpException, INestApplication, Module, Param, Post } from '@nestjs/common';
import { NestExpressApplication } from '@nestjs/platform-express';
import { NestFactory } from '@nestjs/core';
import { request as httpRequest } from 'node:http';
import { createEntraTokenValidator, EntraTokenValidator, EntraTokenValidatorConfig, loadEntraMetadata, Principal } from '@keyserver/entra-token';
import { startTestIssuer, TestIssuer, TestSigningKey, TestSignOptions } from '@keyserver/entra-token/testing';
import { EntraAuthGuard } from './auth.guard';
import { AuthEventSink, AuthFailureEvent } from './auth-events';
import { AuthzModule } from './authz.module';
import { Permission } from '@keyserver/api-contract';
import { requireAccess } from './access';
import { CurrentActor, Public, RequirePermission } from './decorators';
import { definePublicRoutes } from './public-routes';
import { Actor, ResolvedSubject, SubjectResolver } from './subject';

const TENANT = '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01';
const OTHER_TENANT = '11111111-2222-4333-8444-555555555555';
const APP = '5b0f3c2a-8e7d-4f61-a9c3-1d2e3f4a5b60';
const PROV = '9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d';
const CI = 'c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f';
const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);
const S0 = T0 / 1000;

const OID = {
  ada: 'a0000001-0000-4000-8000-000000000001', // administrator
  otto: 'a0000001-0000-4000-8000-000000000005', // orderer + provisioner, SIGN on fw-1
  nora: 'a0000001-0000-4000-8000-000000000007', // no nature, APPROVE on fw-1
  dora: 'a0000001-0000-4000-8000-000000000008', // disabled provisioner
  mixed: 'a0000001-0000-4000-8000-000000000009', // user principal mapped to a client subject
  stranger: 'a0000001-0000-4000-8000-0000000000ff', // no subject
  ci: '3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7', // signer + (ignored) administrator/approver, SIGN on fw-1
};

class MemoryResolver implements SubjectResolver {
  readonly unknown: string[] = [];
  readonly subjects = new Map<string, ResolvedSubject>([
    [OID.ada, { subjectId: 's-ada', kind: 'USER', enabled: true, natures: ['ADMINISTRATOR'], keyGrants: {} }],
    [OID.otto, { subjectId: 's-otto', kind: 'USER', enabled: true, natures: ['ORDERER', 'PROVISIONER'], keyGrants: { 'fw-1': ['SIGN'] } }],
    [OID.nora, { subjectId: 's-nora', kind: 'USER', enabled: true, natures: [], keyGrants: { 'fw-1': ['APPROVE'] } }],
    [OID.dora, { subjectId: 's-dora', kind: 'USER', enabled: false, natures: ['PROVISIONER'], keyGrants: {} }],
    [OID.mixed, { subjectId: 's-mixed', kind: 'CLIENT', enabled: true, natures: ['SIGNER'], keyGrants: {} }],
    [OID.ci, { subjectId: 's-ci', kind: 'CLIENT', enabled: true, natures: ['SIGNER', 'ADMINISTRATOR', 'APPROVER'], keyGrants: { 'fw-1': ['SIGN'] } }],
  ]);
  subject(oid: string): ResolvedSubject {
    const s = this.subjects.get(oid);
    if (!s) throw new Error(`no test subject ${oid}`);
    return s;
  }
  /** Changes a subject as the API's resolver does, with a new snapshot object (a ResolvedSubject is never mutated); returns the undo. */
  update(oid: string, patch: Partial<ResolvedSubject>): () => void {
    const before = this.subject(oid);
    this.subjects.set(oid, { ...before, ...patch });
    return () => void this.subjects.set(oid, before);
  }
  async resolve(p: Principal): Promise<ResolvedSubject | null> {
    if (p.tid !== TENANT) return null;
    const s = this.subjects.get(p.oid) ?? null;
    if (!s) this.unknown.push(`${p.tid}:${p.oid}`);
    return s;
  }
}

class MemorySink implements AuthEventSink {
  readonly events: AuthFailureEvent[] = [];
  authFailed(e: AuthFailureEvent): void {
    this.events.push(e);
  }
}

@Controller()
class TestController {
  @Public()
  @Get('health')
  health(): { ok: true } {
    return { ok: true };
  }

  @RequirePermission(Permission.KeysRead)
  @Get('keys')
  keys(@CurrentActor() actor: Actor): unknown {
    return { subjectId: actor.subjectId, channel: actor.channel };
  }

  @RequirePermission(Permission.SignOrdersCreate)
  @Post('signorders')
  sign(@CurrentActor() actor: Actor, @Body() body: { keyid: string }): unknown {
    requireAccess(actor, 'SIGN', body.keyid);
    return { signedBy: actor.subjectId, keyid: body.keyid };
  }

  @RequirePermission(Permission.OperationsApprove)
  @Post('operations/:id/approvals')
  @HttpCode(200)
  approve(@Param('id') id: string): unknown {
    return { approved: id };
  }

  @RequirePermission(Permission.SelfRead)
  @Get('boom')
  boom(): never {
    throw new Error('secret internal detail /etc/keyserver');
  }
}

const PUBLIC_ROUTES = definePublicRoutes([{ method: 'GET', path: '/health', reason: 'liveness probe' }] as const);

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Record<string, unknown>;
}

function call(base: string, method: string, path: string, opts: { auth?: string[]; body?: string; contentType?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method });
    if (opts.auth) req.setHeader('Authorization', opts.auth);
    if (opts.body !== undefined) {
      req.setHeader('content-type', opts.contentType ?? 'application/json');
      req.setHeader('content-length', Buffer.byteLength(opts.body));
    }
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          /* non-JSON body: asserted by the caller */
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe(EntraAuthGuard.name, () => {
  let issuer: TestIssuer;
  let attacker: TestIssuer;
  let app: INestApplication;
  let base: string;
  let clock = T0;
  let validator: EntraTokenValidator;
  const resolver = new MemoryResolver();
  const sink = new MemorySink();

  async function startApp(v: EntraTokenValidator): Promise<{ app: INestApplication; base: string }> {
    const module = AuthzModule.forRoot({
      publicRoutes: PUBLIC_ROUTES,
      validator: { useValue: v },
      subjectResolver: { useValue: resolver },
      eventSink: { useValue: sink },
    });
    @Module({ imports: [module], controllers: [TestController] })
    class TestAppModule {}
    const a = await NestFactory.create<NestExpressApplication>(TestAppModule, { logger: false });
    a.useBodyParser('json', { limit: '64kb' });
    await a.listen(0, '127.0.0.1');
    const addr = a.getHttpServer().address() as { port: number };
    return { app: a, base: `http://127.0.0.1:${addr.port}` };
  }

  function config(extra: Partial<EntraTokenValidatorConfig> = {}): Omit<EntraTokenValidatorConfig, 'metadata'> {
    return {
      tenantId: TENANT,
      applicationId: APP,
      appRoles: ['Keyserver.CI'],
      provisioningClientIds: [PROV],
      clockToleranceSec: 60,
      jwksCooldownMs: 5 * 60_000,
      jwksCacheMaxAgeMs: 60 * 60_000,
      now: () => clock,
      ...extra,
    };
  }

  const baseClaims = (): Record<string, unknown> => ({
    iss: issuer.issuer,
    aud: APP,
    tid: TENANT,
    ver: '2.0',
    iat: clock / 1000 - 10,
    nbf: clock / 1000 - 10,
    exp: clock / 1000 + 3600,
    uti: 'uti-test',
  });
  // acct 0: a member of the tenant, as Entra writes it once the optional claim is configured (ADR 0040).
  const user = (oid: string, o: Record<string, unknown> = {}): Record<string, unknown> => ({
    ...baseClaims(),
    scp: 'keyserver',
    oid,
    sub: `pairwise-${oid}`,
    azp: APP,
    azpacr: '1',
    acct: 0,
    ...o,
  });
  const bff = (o: Record<string, unknown> = {}): Record<string, unknown> => user(OID.ada, o);
  const prov = (o: Record<string, unknown> = {}): Record<string, unknown> => user(OID.otto, { azp: PROV, azpacr: '0', ...o });
  const appTok = (o: Record<string, unknown> = {}): Record<string, unknown> => ({
    ...baseClaims(),
    roles: ['Keyserver.CI'],
    oid: OID.ci,
    sub: OID.ci,
    azp: CI,
    azpacr: '1',
    idtyp: 'app',
    ...o,
  });
  const tok = (claims: Record<string, unknown>, opts?: TestSignOptions): string => issuer.sign(claims, opts);
  const bearer = (claims: Record<string, unknown>, opts?: TestSignOptions): string[] => [`Bearer ${tok(claims, opts)}`];

  beforeAll(async () => {
    issuer = await startTestIssuer({ tenantId: TENANT });
    attacker = await startTestIssuer({ tenantId: TENANT });
    const metadata = await loadEntraMetadata(issuer.metadataUrl, { tenantId: TENANT, allowInsecureLoopback: true });
    validator = createEntraTokenValidator({ ...config(), metadata });
    ({ app, base } = await startApp(validator));
  });
  afterAll(async () => {
    await app?.close();
    await issuer?.close();
    await attacker?.close();
  });
  beforeEach(() => {
    clock = T0;
  });

  describe('happy paths', () => {
    it('serves the public route without a token and ignores a garbage one', async () => {
      expect((await call(base, 'GET', '/health')).status).toBe(200);
      expect((await call(base, 'GET', '/health', { auth: ['Bearer garbage'] })).json).toEqual({ ok: true });
    });
    it('accepts a keyclient (bff) user token on a read route, scheme case-insensitive', async () => {
      const r = await call(base, 'GET', '/keys', { auth: [`bearer ${tok(bff())}`] });
      expect(r.status).toBe(200);
      expect(r.json).toEqual({ subjectId: 's-ada', channel: 'bff' });
    });
    it('accepts a provisioning (PKCE public client) user token on the signing route', async () => {
      const r = await call(base, 'POST', '/signorders', { auth: bearer(prov()), body: JSON.stringify({ keyid: 'fw-1' }) });
      expect(r.status).toBe(201);
      expect(r.json).toEqual({ signedBy: 's-otto', keyid: 'fw-1' });
    });
    it('accepts an app (CI) token on the signing route', async () => {
      const r = await call(base, 'POST', '/signorders', { auth: bearer(appTok()), body: JSON.stringify({ keyid: 'fw-1' }) });
      expect(r.status).toBe(201);
      expect(r.json['signedBy']).toBe('s-ci');
    });
    it('grants a route through a key grant, not through natures', async () => {
      const r = await call(base, 'POST', '/operations/op-1/approvals', { auth: bearer(user(OID.nora)), body: '{}' });
      expect(r.status).toBe(200);
    });
  });

  // Every 401 must be byte-identical and carry the Bearer challenge.
  let first401: string | undefined;
  async function expect401(r: Reply): Promise<void> {
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
    expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(r.json['code']).toBe('invalid_token');
    first401 ??= r.text;
    expect(r.text).toBe(first401);
    // Exactly the fixed body: no detailed code, claim name or key id leaks.
    expect(r.json).toEqual({
      type: 'https://keyserver.dev/problems/invalid_token',
      title: 'Unauthorized',
      status: 401,
      code: 'invalid_token',
      detail: 'The access token is missing or invalid.',
    });
  }

  const otherKey = (): TestSigningKey => issuer.newUnpublishedKey();
  type Case = [name: string, send: () => Promise<Reply>, detailedCode: string];
  const get = (auth?: string[]): Promise<Reply> => call(base, 'GET', '/keys', { auth });
  const cases: Case[] = [
    ['fail missing Authorization header', () => get(), 'missing_token'],
    ['fail empty Authorization header', () => get(['']), 'missing_token'],
    ['fail duplicated Authorization headers', () => get([...bearer(bff()), ...bearer(bff())]), 'multiple_authorization_headers'],
    ['fail Basic scheme', () => get(['Basic YWRhOmRlbW8tcGFzc3dvcmQ=']), 'invalid_scheme'],
    ['fail bare token without scheme', () => get([tok(bff())]), 'invalid_scheme'],
    ['fail Bearer with two spaces', () => get([`Bearer  ${tok(bff())}`]), 'invalid_scheme'],
    ['fail token in the query string (with a valid header)', () => call(base, 'GET', `/keys?access_token=${tok(bff())}`, { auth: bearer(bff()) }), 'token_in_query'],
    ['fail token only in the query string', () => call(base, 'GET', `/keys?access_token=${tok(bff())}`), 'token_in_query'],
    ['fail two segments', () => get(['Bearer eyJhbGciOiJSUzI1NiJ9.eyJ9']), 'malformed_token'],
    ['fail non-base64url segment', () => get([`Bearer ${tok(bff()).replace('.', '.+/=')}`]), 'malformed_token'],
    // RS256 signatures are 342 characters: 4 unused bits, which decoders ignore; one valid token has one spelling.
    ['fail a valid token with its signature respelled (unused bits set)', () => { const t = tok(bff()); const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'; return get([`Bearer ${t.slice(0, -1)}${A[A.indexOf(t.slice(-1)) | 1]}`]); }, 'malformed_token'],
    ['fail header that is not JSON', () => get([`Bearer ${Buffer.from('{not json').toString('base64url')}.e30.c2ln`]), 'malformed_token'],
    ['fail JWE (5 segments)', () => get(['Bearer eyJhbGciOiJSU0EtT0FFUCJ9.a2V5.aXY.Y2lwaGVy.dGFn']), 'encrypted_token_not_supported'],
    ['fail oversize token (13 KiB)', () => get([`Bearer ${tok(bff({ pad: 'x'.repeat(10 * 1024) }))}`]), 'token_too_large'],
    ['fail alg none', () => get(bearer(bff(), { alg: 'none' })), 'malformed_token'],
    ['fail alg none with a fake signature', () => get([`${bearer(bff(), { alg: 'none' })[0]}c2ln`]), 'alg_not_allowed'],
    ['fail HS256 signed with the RSA public key', () => get(bearer(bff(), { alg: 'HS256' })), 'alg_not_allowed'],
    ['fail PS256', () => get(bearer(bff(), { alg: 'PS256' })), 'alg_not_allowed'],
    ['fail ES256 with an attacker EC key', () => get(bearer(bff(), { alg: 'ES256', key: issuer.newUnpublishedKey('EC') })), 'alg_not_allowed'],
    ['fail RS384', () => get(bearer(bff(), { alg: 'RS384' })), 'alg_not_allowed'],
    ['fail typ at+jwt', () => get(bearer(bff(), { header: { typ: 'at+jwt' } })), 'invalid_token_type'],
    ['fail missing typ', () => get(bearer(bff(), { header: { typ: undefined } })), 'invalid_token_type'],
    ['fail unknown kid', () => get(bearer(bff(), { header: { kid: 'AAAAunknownKid' } })), 'unknown_key'],
    ['fail kid path traversal', () => get(bearer(bff(), { header: { kid: '../../../../etc/passwd' } })), 'invalid_kid'],
    ['fail kid SQL injection', () => get(bearer(bff(), { header: { kid: "' OR '1'='1' --" } })), 'invalid_kid'],
    ['fail very long kid', () => get(bearer(bff(), { header: { kid: 'A'.repeat(5000) } })), 'invalid_kid'],
    ['fail kid as a number', () => get(bearer(bff(), { header: { kid: 42 } })), 'invalid_kid'],
    ['fail jku to an attacker JWKS', () => get(bearer(bff(), { key: attacker.keys[0], header: { jku: attacker.jwksUri } })), 'unknown_key'],
    ['fail x5u to an attacker URL', () => get(bearer(bff(), { key: attacker.keys[0], header: { x5u: `${attacker.baseUrl}/cert.pem` } })), 'unknown_key'],
    ['fail embedded jwk with the real kid', () => { const k = otherKey(); return get(bearer(bff(), { key: { ...k, kid: issuer.keys[0].kid }, header: { jwk: k.jwk } })); }, 'invalid_signature'],
    ['fail x5c with an attacker chain', () => get(bearer(bff(), { key: { ...otherKey(), kid: issuer.keys[0].kid }, header: { x5c: ['MIIBszCCAVmgAwIBAgIUattacker'] } })), 'invalid_signature'],
    ['fail tampered payload', () => { const [h, , s] = tok(bff()).split('.'); return get([`Bearer ${h}.${Buffer.from(JSON.stringify(bff({ oid: OID.ada, scp: 'keyserver' , azp: PROV}))).toString('base64url')}.${s}`]); }, 'invalid_signature'],
    ['fail unknown crit', () => get(bearer(bff(), { header: { crit: ['urn:example:x'], 'urn:example:x': 1 } })), 'unsupported_crit'],
    ['fail Graph token (header nonce)', () => get(bearer(bff(), { header: { nonce: 'AQABAAAAAAB' } })), 'foreign_token'],
    ['fail iss of another tenant', () => get(bearer(bff({ iss: issuer.issuer.replace(TENANT, OTHER_TENANT) }))), 'invalid_issuer'],
    ['fail v1 iss sts.windows.net', () => get(bearer(bff({ iss: `https://sts.windows.net/${TENANT}/` }))), 'invalid_issuer'],
    ['fail templated iss', () => get(bearer(bff({ iss: issuer.issuer.replace(TENANT, '{tenantid}') }))), 'invalid_issuer'],
    ['fail iss with trailing slash', () => get(bearer(bff({ iss: `${issuer.issuer}/` }))), 'invalid_issuer'],
    ['fail v1-style aud api://', () => get(bearer(bff({ aud: `api://${APP}` }))), 'invalid_audience'],
    ['fail foreign aud (Graph)', () => get(bearer(bff({ aud: '00000003-0000-0000-c000-000000000000' }))), 'invalid_audience'],
    ['fail aud array containing ours', () => get(bearer(bff({ aud: [APP, 'evil'] }))), 'invalid_audience'],
    ['fail aud array of only ours', () => get(bearer(bff({ aud: [APP] }))), 'invalid_audience'],
    ['fail ver 1.0', () => get(bearer(bff({ ver: '1.0' }))), 'invalid_version'],
    ['fail missing ver', () => get(bearer(bff({ ver: undefined }))), 'invalid_version'],
    ['fail tid mismatch', () => get(bearer(bff({ tid: OTHER_TENANT }))), 'invalid_tenant'],
    ['fail exp just past the 60 s tolerance', () => get(bearer(bff({ exp: S0 - 61 }))), 'token_expired'],
    ['fail nbf beyond the tolerance', () => get(bearer(bff({ nbf: S0 + 61 }))), 'token_not_yet_valid'],
    ['fail iat as a string', () => get(bearer(bff({ iat: String(S0) }))), 'invalid_iat'],
    ['fail iat in the future', () => get(bearer(bff({ iat: S0 + 3600, nbf: S0 }))), 'invalid_iat'],
    ['fail payload not a JSON object', () => get(bearer({}, { rawPayload: '[1,2,3]' })), 'malformed_token'],
    ['fail ID token presented as access token', () => get(bearer({ ...bff({ scp: undefined, nonce: 'n-0S6', roles: ['Keyserver.CI'] }) })), 'id_token_not_accepted'],
    ['fail ID token without nonce (no scp, no azp)', () => get(bearer(bff({ scp: undefined, azp: undefined, azpacr: undefined, roles: ['Keyserver.CI'] }))), 'invalid_claims'],
    ['fail scp keyserver2', () => get(bearer(bff({ scp: 'keyserver2' }))), 'missing_scope'],
    ['fail scp Keyserver (case)', () => get(bearer(bff({ scp: 'Keyserver' }))), 'missing_scope'],
    ['fail scp openid keyserver-admin', () => get(bearer(bff({ scp: 'openid keyserver-admin' }))), 'missing_scope'],
    ['fail scp api://.../keyserver', () => get(bearer(bff({ scp: `api://${APP}/keyserver` }))), 'missing_scope'],
    ['fail scp as an array', () => get(bearer(bff({ scp: ['keyserver'] }))), 'missing_scope'],
    ['fail app token without roles', () => get(bearer(appTok({ roles: undefined }))), 'missing_role'],
    ['fail app token with another role', () => get(bearer(appTok({ roles: ['Other.Role'] }))), 'missing_role'],
    ['fail user token with the app-only role but no scp', () => get(bearer(bff({ scp: undefined, roles: ['Keyserver.CI'] }))), 'token_kind_mismatch'],
    ['fail user token with idtyp app', () => get(bearer(bff({ idtyp: 'app' }))), 'token_kind_mismatch'],
    ['fail app token with idtyp user', () => get(bearer(appTok({ idtyp: 'user' }))), 'token_kind_mismatch'],
    ['fail unlisted public client', () => get(bearer(bff({ azp: 'deadbeef-0000-4000-8000-000000000000', azpacr: '0' }))), 'client_not_allowed'],
    ['fail keyclient id as a public client (azpacr 0)', () => get(bearer(bff({ azpacr: '0' }))), 'client_not_allowed'],
    ['fail missing azpacr on a keyclient token', () => get(bearer(bff({ azpacr: undefined }))), 'client_not_allowed'],
    ['fail app token minted by the keyclient itself', () => get(bearer(appTok({ azp: APP }))), 'client_not_allowed'],
    ['fail acct "1 " (a guest padded to look like something else)', () => get(bearer(bff({ acct: '1 ' }))), 'invalid_claims'],
    ['fail acct fullwidth "０"', () => get(bearer(bff({ acct: '０' }))), 'invalid_claims'],
    ['fail acct true', () => get(bearer(bff({ acct: true }))), 'invalid_claims'],
    ['fail acct ["0"]', () => get(bearer(bff({ acct: ['0'] }))), 'invalid_claims'],
    ['fail acct null', () => get(bearer(bff({ acct: null }))), 'invalid_claims'],
  ];

  describe('hostile tokens (401, same body)', () => {
    it.each(cases)('%s', async (_name, send, detailed) => {
      const before = sink.events.length;
      const r = await send();
      await expect401(r);
      const ev = sink.events.slice(before);
      expect(ev.map((e) => e.code)).toEqual([detailed]);
      expect(ev[0].status).toBe(401);
    });

    it('never fetched anything from the attacker issuer', () => {
      expect(attacker.jwksRequests).toBe(0);
    });
  });

  describe('authorization (403)', () => {
    async function expect403(r: Reply, code: string): Promise<void> {
      expect(r.status).toBe(403);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(r.headers['www-authenticate']).toBeUndefined();
      expect(r.json['code']).toBe(code);
    }
    it('fail keyclient (bff) token on the signing route: bff_token_not_allowed', async () => {
      // Ada may not sign anyway; give the BFF check a subject who could.
      const r = await call(base, 'POST', '/signorders', { auth: bearer(user(OID.otto)), body: '{"keyid":"fw-1"}' });
      await expect403(r, 'bff_token_not_allowed');
    });
    it('fail unknown subject: unknown_subject, recorded by the resolver', async () => {
      await expect403(await get(bearer(user(OID.stranger))), 'unknown_subject');
      expect(resolver.unknown).toContain(`${TENANT}:${OID.stranger}`);
    });
    it('fail disabled subject: subject_disabled though the token is still valid', async () => {
      await expect403(await call(base, 'POST', '/signorders', { auth: bearer(user(OID.dora, { azp: PROV, azpacr: '0' })), body: '{"keyid":"fw-1"}' }), 'subject_disabled');
    });
    it('fail subject disabled between two requests with the same token', async () => {
      const t = bearer(prov());
      expect((await get(t)).status).toBe(200);
      const undo = resolver.update(OID.otto, { enabled: false });
      try {
        await expect403(await get(t), 'subject_disabled');
      } finally {
        undo();
      }
    });
    it('fail app principal on an approver route even with approver/administrator natures', async () => {
      await expect403(await call(base, 'POST', '/operations/op-1/approvals', { auth: bearer(appTok()), body: '{}' }), 'app_principal_forbidden');
    });
    it('fail user principal mapped to a client subject: subject_kind_mismatch', async () => {
      await expect403(await get(bearer(user(OID.mixed))), 'subject_kind_mismatch');
    });
    it('fail subject without the permission: permission_denied', async () => {
      await expect403(await call(base, 'POST', '/operations/op-1/approvals', { auth: bearer(user(OID.otto)), body: '{}' }), 'permission_denied');
    });
    it('fail key grant used on another key: key_permission_denied', async () => {
      const undo = resolver.update(OID.nora, { keyGrants: { 'fw-1': ['APPROVE', 'SIGN'] } });
      try {
        const ok = await call(base, 'POST', '/signorders', { auth: bearer(user(OID.nora, { azp: PROV, azpacr: '0' })), body: '{"keyid":"fw-1"}' });
        expect(ok.status).toBe(201);
        await expect403(await call(base, 'POST', '/signorders', { auth: bearer(user(OID.nora, { azp: PROV, azpacr: '0' })), body: '{"keyid":"fw-2"}' }), 'key_permission_denied');
      } finally {
        undo();
      }
    });
    it.each([
      ['fail guest (acct 1) with the APPROVE grant on the approver route', () => bearer(user(OID.nora, { acct: 1 })), 'POST', '/operations/op-1/approvals', 'guest'],
      ['fail guest (acct "1") on the approver route', () => bearer(user(OID.nora, { acct: '1' })), 'POST', '/operations/op-1/approvals', 'guest'],
      ['fail guest (acct 1.0, the JSON number 1) on the approver route', () => [`Bearer ${tok({}, { rawPayload: `${JSON.stringify(user(OID.nora, { acct: undefined })).slice(0, -1)},"acct":1.0}` })}`], 'POST', '/operations/op-1/approvals', 'guest'],
      ['fail user token without acct (optional claim not configured) on the approver route', () => bearer(user(OID.nora, { acct: undefined })), 'POST', '/operations/op-1/approvals', undefined],
      ['fail guest administrator on a route only her administrator nature opens', () => bearer(bff({ acct: 1 })), 'GET', '/keys', 'guest'],
      ['fail administrator without acct on a route only her administrator nature opens', () => bearer(bff({ acct: undefined })), 'GET', '/keys', undefined],
    ])('%s: member_account_required', async (_name, auth, method, path, account) => {
      const before = sink.events.length;
      const r = await call(base, method, path, { auth: auth(), body: method === 'POST' ? '{}' : undefined });
      await expect403(r, 'member_account_required');
      // The detail names the cause: a guest, or a token without the acct optional claim.
      expect(r.json['detail']).toMatch(account === 'guest' ? /guest account \(acct 1\)/ : /no acct claim/);
      expect(sink.events.slice(before).map((e) => [e.status, e.code, e.principal?.account])).toEqual([[403, 'member_account_required', account]]);
    });
    it('ok the same subjects with a member token (acct 0 or "0")', async () => {
      expect((await call(base, 'POST', '/operations/op-1/approvals', { auth: bearer(user(OID.nora, { acct: '0' })), body: '{}' })).status).toBe(200);
      expect((await get(bearer(bff({ acct: 0 })))).status).toBe(200);
    });
    it('ok a guest keeps what other natures give (an orderer-provisioner signs on the provisioning channel)', async () => {
      const r = await call(base, 'POST', '/signorders', { auth: bearer(prov({ acct: 1 })), body: '{"keyid":"fw-1"}' });
      expect(r.status).toBe(201);
    });
    it('ok administrator approves nothing but reads keys', async () => {
      expect((await get(bearer(bff()))).status).toBe(200);
      await expect403(await call(base, 'POST', '/operations/op-1/approvals', { auth: bearer(bff()), body: '{}' }), 'permission_denied');
    });
  });

  describe('problem+json rendering', () => {
    it('renders an unknown route as 404 not_found', async () => {
      const r = await call(base, 'GET', '/nope');
      expect(r.status).toBe(404);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(r.json['code']).toBe('not_found');
    });
    it('renders a JSON syntax error as 400 invalid_json', async () => {
      const r = await call(base, 'POST', '/signorders', { auth: bearer(prov()), body: '{"keyid": ' });
      expect(r.status).toBe(400);
      expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(r.json['code']).toBe('invalid_json');
    });
    it('renders an oversize body as 413 payload_too_large', async () => {
      const r = await call(base, 'POST', '/signorders', { auth: bearer(prov()), body: JSON.stringify({ keyid: 'x'.repeat(100 * 1024) }) });
      expect(r.status).toBe(413);
      expect(r.json['code']).toBe('payload_too_large');
    });
    it('renders an unexpected error as a detail-free 500', async () => {
      const r = await call(base, 'GET', '/boom', { auth: bearer(bff()) });
      expect(r.status).toBe(500);
      expect(r.json).toEqual({ type: 'https://keyserver.dev/problems/internal_error', title: 'Internal Server Error', status: 500, code: 'internal_error' });
      expect(r.text).not.toContain('secret');
    });
  });

  describe('principal gate', () => {
    // The API's per-principal rate limit: consulted after authorization, its refusal answered as is.
    const seen: string[] = [];
    const gate = {
      admit(actor: Actor): void {
        seen.push(actor.subjectId);
        if (actor.subjectId === 's-ada') throw new HttpException('over the limit', 429);
      },
    };
    let gated: { app: INestApplication; base: string } | undefined;
    beforeAll(async () => {
      const module = AuthzModule.forRoot({ publicRoutes: PUBLIC_ROUTES, validator: { useValue: validator }, subjectResolver: { useValue: resolver }, eventSink: { useValue: sink }, principalGate: { useValue: gate } });
      @Module({ imports: [module], controllers: [TestController] })
      class GatedAppModule {}
      const a = await NestFactory.create<NestExpressApplication>(GatedAppModule, { logger: false });
      await a.listen(0, '127.0.0.1');
      gated = { app: a, base: `http://127.0.0.1:${(a.getHttpServer().address() as { port: number }).port}` };
    });
    afterAll(async () => {
      await gated?.app.close();
    });

    it.each([
      ['ok an authorized caller the gate admits', () => bearer(prov()), '/keys', 200, 's-otto'],
      ['fail an authorized caller the gate refuses: its refusal, not an authentication failure', () => bearer(bff()), '/keys', 429, 's-ada'],
    ])('%s', async (_name, auth, path, status, subject) => {
      seen.length = 0;
      const events = sink.events.length;
      const r = await call(gated?.base ?? '', 'GET', path, { auth: auth() });
      expect([r.status, seen, sink.events.length - events]).toEqual([status, [subject], 0]);
    });

    it('is not asked about public routes, nor about callers the guard refused', async () => {
      seen.length = 0;
      expect((await call(gated?.base ?? '', 'GET', '/health')).status).toBe(200);
      expect((await call(gated?.base ?? '', 'GET', '/keys', { auth: bearer(user(OID.stranger)) })).status).toBe(403);
      expect(seen).toEqual([]);
    });
  });

  describe('JWKS availability over HTTP', () => {
    let app2: INestApplication;
    let base2: string;
    let v2: EntraTokenValidator;
    beforeAll(async () => {
      const metadata = await loadEntraMetadata(issuer.metadataUrl, { tenantId: TENANT, allowInsecureLoopback: true });
      v2 = createEntraTokenValidator({ ...config(), metadata });
      ({ app: app2, base: base2 } = await startApp(v2));
    });
    afterAll(async () => {
      issuer.setJwksAvailable(true);
      await app2?.close();
    });

    it('fetches the JWKS once, refetches an unknown kid at most once per cooldown, keeps cached keys when it is down, and fails closed on rotation', async () => {
      const get2 = (auth: string[]): Promise<Reply> => call(base2, 'GET', '/keys', { auth });
      const start = issuer.jwksRequests;
      expect((await get2(bearer(bff()))).status).toBe(200);
      expect((await get2(bearer(bff()))).status).toBe(200);
      expect(issuer.jwksRequests - start).toBe(1);

      // A burst of unknown kids inside one cooldown: one refetch at most (here none, the set is fresh-fetched).
      for (let i = 0; i < 5; i++) await expect401(await get2(bearer(bff(), { header: { kid: `unknownKid${i}` } })));
      expect(issuer.jwksRequests - start).toBe(1);
      clock += 5 * 60_000;
      for (let i = 0; i < 5; i++) await expect401(await get2(bearer(bff(), { header: { kid: `unknownKid${i}` } })));
      expect(issuer.jwksRequests - start).toBe(2);

      // JWKS down, cache stale: last-known-good key still accepted.
      issuer.setJwksAvailable(false);
      clock += 2 * 60 * 60_000;
      expect((await get2(bearer(bff()))).status).toBe(200);
      expect(issuer.jwksRequests - start).toBe(3);

      // Keys rotated while JWKS is down: a token with the new kid is refused (fail closed).
      const old = issuer.keys[0];
      const fresh = issuer.rotateKeys();
      try {
        clock += 5 * 60_000;
        await expect401(await get2(bearer(bff(), { key: fresh })));
        expect(issuer.jwksRequests - start).toBe(4);
        // Endpoint back: after the cooldown the new key is learned and the old one is dropped.
        issuer.setJwksAvailable(true);
        clock += 5 * 60_000;
        expect((await get2(bearer(bff(), { key: fresh }))).status).toBe(200);
        await expect401(await get2(bearer(bff(), { key: old })));
      } finally {
        issuer.keys.splice(0, 1, old);
      }
    });
  });
});
