import { createHash, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import fc from 'fast-check';
import { createEntraTokenValidator, EntraTokenValidator, EntraTokenValidatorConfig } from './validator';
import { loadEntraMetadata, EntraMetadata } from './metadata';
import { TokenError, TokenErrorCode } from './errors';
import { startTestIssuer, TestIssuer, TestSigningKey, TestSignOptions } from './testing/test-issuer';

const TENANT = '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01';
const APP = '5b0f3c2a-8e7d-4f61-a9c3-1d2e3f4a5b60';
const PROV = '9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d';
const CI = 'c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f';
const USER_OID = 'a0000001-0000-4000-8000-000000000001';
const CI_OID = '3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7';
const T0 = Date.UTC(2026, 10, 29, 12, 0, 0);
const S0 = T0 / 1000;

describe(createEntraTokenValidator.name, () => {
  let issuer: TestIssuer;
  let metadata: EntraMetadata;
  let clock = T0;
  const now = (): number => clock;

  function validator(extra: Partial<EntraTokenValidatorConfig> = {}): EntraTokenValidator {
    return createEntraTokenValidator({
      tenantId: TENANT,
      applicationId: APP,
      metadata,
      appRoles: ['Keyserver.CI'],
      provisioningClientIds: [PROV],
      clockToleranceSec: 60,
      jwksCooldownMs: 5 * 60_000,
      jwksCacheMaxAgeMs: 60 * 60_000,
      now,
      ...extra,
    });
  }
  const base = (): Record<string, unknown> => ({
    iss: issuer.issuer,
    aud: APP,
    tid: TENANT,
    ver: '2.0',
    iat: S0 - 10,
    nbf: S0 - 10,
    exp: S0 + 3600,
    uti: 'uti-1',
  });
  const userClaims = (o: Record<string, unknown> = {}): Record<string, unknown> => ({
    ...base(),
    scp: 'keyserver',
    oid: USER_OID,
    sub: 'pairwise-sub-ada',
    azp: APP,
    azpacr: '1',
    name: 'Ada Admin',
    preferred_username: 'ada.admin@demo.test',
    ...o,
  });
  const appClaims = (o: Record<string, unknown> = {}): Record<string, unknown> => ({
    ...base(),
    roles: ['Keyserver.CI'],
    oid: CI_OID,
    sub: CI_OID,
    azp: CI,
    azpacr: '1',
    idtyp: 'app',
    ...o,
  });
  const bearer = (claims: Record<string, unknown>, opts?: TestSignOptions): string => `Bearer ${issuer.sign(claims, opts)}`;

  async function codeOf(p: Promise<unknown>): Promise<TokenErrorCode | 'accepted'> {
    try {
      await p;
      return 'accepted';
    } catch (e) {
      if (e instanceof TokenError) {
        expect(e.status).toBe(401);
        return e.code;
      }
      throw e;
    }
  }

  beforeAll(async () => {
    issuer = await startTestIssuer({ tenantId: TENANT });
    metadata = await loadEntraMetadata(issuer.metadataUrl, { tenantId: TENANT, allowInsecureLoopback: true });
  });
  afterAll(() => issuer.close());
  beforeEach(() => {
    clock = T0;
    issuer.setJwksAvailable(true);
  });

  it('accepts a keyclient user token as channel bff with (tid, oid) identity', async () => {
    const p = await validator().authenticate(bearer(userClaims()));
    expect(p).toMatchObject({ kind: 'user', channel: 'bff', tid: TENANT, oid: USER_OID, azp: APP, scopes: ['keyserver'], tokenId: 'uti-1', expiresAt: S0 + 3600, displayName: 'Ada Admin' });
  });

  it.each([
    ['NUL in name', { name: 'Mallory\u0000Admin' }, { displayName: 'Mallory\ufffdAdmin' }],
    ['lone surrogate and bidi control in name', { name: 'a\ud800\u0085b' }, { displayName: 'a\ufffd\ufffdb' }],
    ['control characters in preferred_username', { preferred_username: 'ada\r\n@demo.test' }, { username: 'ada\ufffd\ufffd@demo.test' }],
    ['a huge name is cut to 256 characters', { name: '𝔘'.repeat(1000) }, { displayName: '𝔘'.repeat(256) }],
    ['a non-string name is dropped', { name: { x: 1 } }, { displayName: undefined }],
    ['a uti that is not id-shaped is dropped', { uti: 'a\u0000b' }, { tokenId: undefined }],
  ])('ok a hostile display claim (%s) is accepted as storable text', async (_n, claims, expected) => {
    const p = await validator().authenticate(bearer(userClaims(claims)));
    expect(p).toMatchObject(expected);
  });

  it('accepts a public-client user token as channel provisioning', async () => {
    const p = await validator().authenticate(bearer(userClaims({ azp: PROV, azpacr: '0', scp: 'openid keyserver profile' })));
    expect(p).toMatchObject({ kind: 'user', channel: 'provisioning', azp: PROV, scopes: ['openid', 'keyserver', 'profile'] });
  });

  it('treats azp = APPLICATION_ID with azpacr 0 as provisioning when the app is a listed public client', async () => {
    const v = validator({ provisioningClientIds: [PROV, APP] });
    expect((await v.authenticate(bearer(userClaims({ azpacr: '0' })))).channel).toBe('provisioning');
    expect(await codeOf(validator().authenticate(bearer(userClaims({ azpacr: '0' }))))).toBe('client_not_allowed');
  });

  it('accepts an app token with the APP_ROLE (idtyp app, or oid = sub)', async () => {
    const v = validator();
    expect(await v.authenticate(bearer(appClaims()))).toMatchObject({ kind: 'app', channel: 'app', oid: CI_OID, roles: ['Keyserver.CI'] });
    expect((await v.authenticate(bearer(appClaims({ idtyp: undefined })))).kind).toBe('app');
  });

  it('accepts GUIDs configured in upper case', async () => {
    const v = validator({ tenantId: TENANT.toUpperCase(), applicationId: APP.toUpperCase(), provisioningClientIds: [PROV.toUpperCase()] });
    expect((await v.authenticate(bearer(userClaims()))).channel).toBe('bff');
    expect((await v.authenticate(bearer(userClaims({ azp: PROV, azpacr: '0' })))).channel).toBe('provisioning');
  });

  it('honours a custom keyclient client id for the bff channel', async () => {
    const kc = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
    const v = validator({ keyclientClientId: kc });
    expect((await v.authenticate(bearer(userClaims({ azp: kc, azpacr: '2' })))).channel).toBe('bff');
    expect(await codeOf(v.authenticate(bearer(userClaims())))).toBe('client_not_allowed');
  });

  const table: Array<[string, () => Promise<unknown>, TokenErrorCode | 'accepted']> = [
    ['fail missing header', () => validator().authenticate(undefined), 'missing_token'],
    ['fail two headers', () => validator().authenticate([bearer(userClaims()), bearer(userClaims())]), 'multiple_authorization_headers'],
    ['fail Basic scheme', () => validator().authenticate('Basic dXNlcjpwYXNz'), 'invalid_scheme'],
    ['fail double space', () => validator().authenticate(`Bearer  ${issuer.sign(userClaims())}`), 'invalid_scheme'],
    ['fail query token', () => validator().authenticate(bearer(userClaims()), { queryHasToken: true }), 'token_in_query'],
    ['fail oversize', () => validator().authenticate(`Bearer ${'a'.repeat(13 * 1024)}`), 'token_too_large'],
    ['fail two segments', () => validator().authenticate('Bearer abc.def'), 'malformed_token'],
    ['fail JWE', () => validator().authenticate('Bearer a.b.c.d.e'), 'encrypted_token_not_supported'],
    ['fail alg none', () => validator().authenticate(`Bearer ${issuer.sign(userClaims(), { alg: 'none' })}`), 'malformed_token'],
    ['fail HS256 with the public key', () => validator().authenticate(bearer(userClaims(), { alg: 'HS256' })), 'alg_not_allowed'],
    ['fail PS256', () => validator().authenticate(bearer(userClaims(), { alg: 'PS256' })), 'alg_not_allowed'],
    ['fail typ at+jwt', () => validator().authenticate(bearer(userClaims(), { header: { typ: 'at+jwt' } })), 'invalid_token_type'],
    ['fail crit', () => validator().authenticate(bearer(userClaims(), { header: { crit: ['exp'] } })), 'unsupported_crit'],
    ['fail header nonce', () => validator().authenticate(bearer(userClaims(), { header: { nonce: 'abc' } })), 'foreign_token'],
    ['fail kid traversal', () => validator().authenticate(bearer(userClaims(), { header: { kid: '../../etc/passwd' } })), 'invalid_kid'],
    ['fail missing kid', () => validator().authenticate(bearer(userClaims(), { header: { kid: undefined } })), 'invalid_kid'],
    ['fail bad signature', () => validator().authenticate(bearer(userClaims(), { key: { ...issuer.newUnpublishedKey(), kid: issuer.keys[0].kid } })), 'invalid_signature'],
    ['fail expired beyond tolerance', () => validator().authenticate(bearer(userClaims({ exp: S0 - 61 }))), 'token_expired'],
    ['fail nbf beyond tolerance', () => validator().authenticate(bearer(userClaims({ nbf: S0 + 61 }))), 'token_not_yet_valid'],
    ['fail iat in the future', () => validator().authenticate(bearer(userClaims({ iat: S0 + 120, nbf: S0 }))), 'invalid_iat'],
    ['fail iat string', () => validator().authenticate(bearer(userClaims({ iat: String(S0) }))), 'invalid_iat'],
    ['fail exp string', () => validator().authenticate(bearer(userClaims({ exp: String(S0 + 3600) }))), 'invalid_claims'],
    ['fail missing nbf', () => validator().authenticate(bearer(userClaims({ nbf: undefined }))), 'invalid_claims'],
    ['fail lifetime over 28 h', () => validator().authenticate(bearer(userClaims({ exp: S0 + 29 * 3600 }))), 'token_lifetime_too_long'],
    ['fail v1 issuer', () => validator().authenticate(bearer(userClaims({ iss: `https://sts.windows.net/${TENANT}/` }))), 'invalid_issuer'],
    ['fail aud array', () => validator().authenticate(bearer(userClaims({ aud: [APP, 'evil'] }))), 'invalid_audience'],
    ['fail ver 1.0', () => validator().authenticate(bearer(userClaims({ ver: '1.0' }))), 'invalid_version'],
    ['fail tid mismatch', () => validator().authenticate(bearer(userClaims({ tid: '00000000-0000-4000-8000-000000000000' }))), 'invalid_tenant'],
    ['fail ID token (nonce claim)', () => validator().authenticate(bearer(userClaims({ nonce: 'n-0S6_WzA2Mj' }))), 'id_token_not_accepted'],
    ['fail scp keyserver2', () => validator().authenticate(bearer(userClaims({ scp: 'keyserver2' }))), 'missing_scope'],
    ['fail scp array', () => validator().authenticate(bearer(userClaims({ scp: ['keyserver'] }))), 'missing_scope'],
    ['fail user token with idtyp app', () => validator().authenticate(bearer(userClaims({ idtyp: 'app' }))), 'token_kind_mismatch'],
    ['fail user token with oid = sub', () => validator().authenticate(bearer(userClaims({ sub: USER_OID }))), 'token_kind_mismatch'],
    ['fail keyclient as public client', () => validator().authenticate(bearer(userClaims({ azpacr: '0' }))), 'client_not_allowed'],
    ['fail provisioning client with a secret', () => validator().authenticate(bearer(userClaims({ azp: PROV, azpacr: '1' }))), 'client_not_allowed'],
    ['fail app token without role', () => validator().authenticate(bearer(appClaims({ roles: [] }))), 'missing_role'],
    ['fail roles not an array', () => validator().authenticate(bearer(appClaims({ roles: 'Keyserver.CI' }))), 'invalid_claims'],
    ['fail user token with app role but no scp', () => validator().authenticate(bearer(userClaims({ scp: undefined, roles: ['Keyserver.CI'] }))), 'token_kind_mismatch'],
    ['fail app token from the keyclient itself', () => validator().authenticate(bearer(appClaims({ azp: APP }))), 'client_not_allowed'],
    ['fail oid not a GUID', () => validator().authenticate(bearer(userClaims({ oid: "1' OR '1'='1" }))), 'invalid_claims'],
    // Case and unicode variants: Entra writes GUIDs in lower case, so (tid, oid) has exactly one spelling.
    ['fail oid in upper case (a second spelling of the same principal key)', () => validator().authenticate(bearer(userClaims({ oid: USER_OID.toUpperCase() }))), 'invalid_claims'],
    ['fail app oid in upper case', () => validator().authenticate(bearer(appClaims({ oid: CI_OID.toUpperCase(), sub: CI_OID.toUpperCase() }))), 'invalid_claims'],
    ['fail oid with fullwidth digits', () => validator().authenticate(bearer(userClaims({ oid: USER_OID.replace(/0/g, '\uff10') }))), 'invalid_claims'],
    ['fail oid with a zero-width space', () => validator().authenticate(bearer(userClaims({ oid: `${USER_OID}\u200b` }))), 'invalid_claims'],
    ['fail azp in upper case', () => validator().authenticate(bearer(userClaims({ azp: APP.toUpperCase() }))), 'invalid_claims'],
    ['fail app token from the keyclient itself, azp in upper case', () => validator().authenticate(bearer(appClaims({ azp: APP.toUpperCase() }))), 'invalid_claims'],
    ['fail tid in upper case', () => validator().authenticate(bearer(userClaims({ tid: TENANT.toUpperCase() }))), 'invalid_tenant'],
    ['fail tid with braces', () => validator().authenticate(bearer(userClaims({ tid: `{${TENANT}}` }))), 'invalid_tenant'],
    ['fail roles in another case', () => validator().authenticate(bearer(appClaims({ roles: ['keyserver.ci'] }))), 'missing_role'],
    ['fail roles with a zero-width space', () => validator().authenticate(bearer(appClaims({ roles: ['Keyserver.CI\u200b'] }))), 'missing_role'],
    ['fail roles NFKC look-alike (fullwidth I)', () => validator().authenticate(bearer(appClaims({ roles: ['Keyserver.C\uff29'] }))), 'missing_role'],
    ['fail scp in upper case', () => validator().authenticate(bearer(userClaims({ scp: 'KEYSERVER' }))), 'missing_scope'],
    ['fail scp separated by a tab', () => validator().authenticate(bearer(userClaims({ scp: 'openid\tkeyserver' }))), 'missing_scope'],
    ['fail scp with a no-break space', () => validator().authenticate(bearer(userClaims({ scp: 'keyserver\u00a0' }))), 'missing_scope'],
    ['fail scp as the App ID URI', () => validator().authenticate(bearer(userClaims({ scp: `api://${APP}/keyserver` }))), 'missing_scope'],
    ['fail idtyp device on a user token', () => validator().authenticate(bearer(userClaims({ idtyp: 'device' }))), 'token_kind_mismatch'],
    ['fail idtyp App (case) on an app token', () => validator().authenticate(bearer(appClaims({ idtyp: 'App', sub: 'pairwise' }))), 'token_kind_mismatch'],
    // Audience and resource confusion.
    ['fail aud the App ID URI (a v1-style audience)', () => validator().authenticate(bearer(userClaims({ aud: `api://${APP}` }))), 'invalid_audience'],
    ['fail aud the App ID URI with a trailing slash', () => validator().authenticate(bearer(userClaims({ aud: `api://${APP}/` }))), 'invalid_audience'],
    ['fail aud in upper case', () => validator().authenticate(bearer(userClaims({ aud: APP.toUpperCase() }))), 'invalid_audience'],
    ['fail aud of another resource (Microsoft Graph)', () => validator().authenticate(bearer(userClaims({ aud: '00000003-0000-0000-c000-000000000000' }))), 'invalid_audience'],
    ['fail aud a one-element array', () => validator().authenticate(bearer(userClaims({ aud: [APP] }))), 'invalid_audience'],
    ['fail missing aud', () => validator().authenticate(bearer(userClaims({ aud: undefined }))), 'invalid_claims'],
    // Issuer of another tenant, whatever tid says.
    ['fail iss of another tenant with our tid', () => validator().authenticate(bearer(userClaims({ iss: issuer.issuer.replace(TENANT, '11111111-2222-4333-8444-555555555555') }))), 'invalid_issuer'],
    ['fail iss in upper case', () => validator().authenticate(bearer(userClaims({ iss: issuer.issuer.toUpperCase() }))), 'invalid_issuer'],
    // Header injection: keys come only from the configured JWKS.
    ['fail ES256 with an attacker EC key', () => validator().authenticate(bearer(userClaims(), { alg: 'ES256', key: issuer.newUnpublishedKey('EC') })), 'alg_not_allowed'],
    ['fail RS384', () => validator().authenticate(bearer(userClaims(), { alg: 'RS384' })), 'alg_not_allowed'],
    ['fail alg in lower case', () => validator().authenticate(bearer(userClaims(), { header: { alg: 'rs256' } })), 'alg_not_allowed'],
    ['fail embedded jwk of the attacker with the real kid', () => { const k = issuer.newUnpublishedKey(); return validator().authenticate(bearer(userClaims(), { key: { ...k, kid: issuer.keys[0].kid }, header: { jwk: k.jwk } })); }, 'invalid_signature'],
    ['fail jku to an attacker key set with an unknown kid', () => validator().authenticate(bearer(userClaims(), { key: issuer.newUnpublishedKey(), header: { jku: 'http://127.0.0.1:1/keys' } })), 'unknown_key'],
    ['fail x5u and x5c with the real kid', () => validator().authenticate(bearer(userClaims(), { key: { ...issuer.newUnpublishedKey(), kid: issuer.keys[0].kid }, header: { x5u: 'http://127.0.0.1:1/c.pem', x5c: ['MIIB'] } })), 'invalid_signature'],
    ['fail crit empty array', () => validator().authenticate(bearer(userClaims(), { header: { crit: [] } })), 'unsupported_crit'],
    ['fail a tab after Bearer', () => validator().authenticate(`Bearer\t${issuer.sign(userClaims())}`), 'invalid_scheme'],
    ['fail a space after the token (HTTP parsers trim it; a raw value keeps it)', () => validator().authenticate(`${bearer(userClaims())} `), 'invalid_scheme'],
    ['fail two tokens in one header', () => validator().authenticate(`${bearer(userClaims())}, ${bearer(userClaims())}`), 'invalid_scheme'],
    ['fail two tokens joined by a comma', () => validator().authenticate(`${bearer(userClaims())},${issuer.sign(userClaims())}`), 'malformed_token'],
    ['fail crit b64 (RFC 7797 unencoded payload)', () => validator().authenticate(bearer(userClaims(), { header: { crit: ['b64'], b64: false } })), 'unsupported_crit'],
    // x5t is a v1.0 header member (v2.0 tokens carry only kid): it never selects a key, whatever it names.
    ['fail x5t naming the published key while kid names none', () => validator().authenticate(bearer(userClaims(), { header: { kid: 'not-a-published-kid', x5t: issuer.keys[0].kid } })), 'unknown_key'],
    ['fail no kid, only an x5t naming the published key', () => validator().authenticate(bearer(userClaims(), { header: { kid: undefined, x5t: issuer.keys[0].kid } })), 'invalid_kid'],
    ['fail x5t#S256 naming the published key while kid names none', () => validator().authenticate(bearer(userClaims(), { header: { kid: 'not-a-published-kid', 'x5t#S256': issuer.keys[0].kid } })), 'unknown_key'],
    ['ok an x5t beside the kid (a v1-style header) is ignored, not trusted', () => validator().authenticate(bearer(userClaims(), { header: { x5t: 'anything' } })), 'accepted'],
  ];
  it.each(table)('%s', async (_name, run, code) => {
    expect(await codeOf(run())).toBe(code);
  });

  it('accepts exp and nbf just inside the 60 s tolerance', async () => {
    const v = validator();
    expect((await v.authenticate(bearer(userClaims({ exp: S0 - 59 })))).oid).toBe(USER_OID);
    expect((await v.authenticate(bearer(userClaims({ nbf: S0 + 59 })))).oid).toBe(USER_OID);
  });

  // RFC 7519 §4: a recipient rejects duplicate claim names or keeps the lexically last one. jose keeps the last, and
  // every check reads that one parse (never a second parser), so a duplicate cannot split verification from use.
  describe('duplicated JSON members in the payload', () => {
    const dup = (member: string, first: unknown, last: unknown, claims = userClaims()): string => {
      const text = JSON.stringify({ ...claims, [member]: undefined });
      return `Bearer ${issuer.sign({}, { rawPayload: `${text.slice(0, -1)},${JSON.stringify(member)}:${JSON.stringify(first)},${JSON.stringify(member)}:${JSON.stringify(last)}}` })}`;
    };
    it.each([
      ['fail aud ours then evil', 'aud', APP, 'evil', 'invalid_audience'],
      ['ok aud evil then ours (the last one is the audience every check saw)', 'aud', 'evil', APP, 'accepted'],
      ['fail tid ours then another tenant', 'tid', TENANT, '11111111-2222-4333-8444-555555555555', 'invalid_tenant'],
      ['fail scp keyserver then another scope', 'scp', 'keyserver', 'User.Read', 'missing_scope'],
      ['fail oid a GUID then an injection', 'oid', USER_OID, "' OR 1=1 --", 'invalid_claims'],
      ['fail exp valid then expired', 'exp', S0 + 3600, S0 - 3600, 'token_expired'],
    ] as const)('%s', async (_n, member, first, last, expected) => {
      const v = validator({ verifiedTokenCacheSize: 0 });
      expect(await codeOf(v.authenticate(dup(member, first, last)))).toBe(expected);
    });

    // The header too: decodeProtectedHeader (our checks) and jwtVerify read the same last-wins parse.
    it.each([
      ['fail alg RS256 then HS256', '"RS256"', '"HS256"', 'alg_not_allowed'],
      ['ok alg none then RS256 (RS256 is what every check saw and verified)', '"none"', '"RS256"', 'accepted'],
      ['fail typ JWT then at+jwt', null, null, 'invalid_token_type'],
    ] as const)('%s (header)', async (_n, first, last, expected) => {
      const kid = JSON.stringify(issuer.keys[0].kid);
      const rawHeader = first === null ? `{"alg":"RS256","kid":${kid},"typ":"JWT","typ":"at+jwt"}` : `{"typ":"JWT","kid":${kid},"alg":${first},"alg":${last}}`;
      const v = validator({ verifiedTokenCacheSize: 0 });
      expect(await codeOf(v.authenticate(`Bearer ${issuer.sign(userClaims(), { rawHeader })}`))).toBe(expected);
    });

    it('ok the principal carries the last oid, the one that was checked', async () => {
      const other = 'a0000001-0000-4000-8000-0000000000aa';
      expect((await validator().authenticate(dup('oid', other, USER_OID))).oid).toBe(USER_OID);
    });
  });

  // exp/nbf/iat of any size or type: accepted exactly when all three are numbers, iat and nbf are not beyond the
  // tolerance, exp is not before now - tolerance, and exp - iat is at most 28 h. Never a throw other than TokenError.
  it('decides huge, negative, fractional and non-numeric exp/nbf/iat by the profile only (property)', async () => {
    const v = validator({ verifiedTokenCacheSize: 0 });
    const time = fc.oneof(
      fc.integer({ min: S0 - 40 * 3600, max: S0 + 40 * 3600 }),
      fc.constantFrom(S0, S0 - 60, S0 + 60, S0 - 61, S0 + 61, 0, -1, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308, -1e308, S0 + 0.5),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.constantFrom<unknown>(String(S0), null, true, [S0], { n: S0 }),
    );
    await fc.assert(
      fc.asyncProperty(time, time, time, async (iat, nbf, exp) => {
        const outcome = await codeOf(v.authenticate(bearer(userClaims({ iat, nbf, exp }))));
        const num = (x: unknown): x is number => typeof x === 'number';
        const ok = num(iat) && num(nbf) && num(exp) && iat <= S0 + 60 && nbf <= S0 + 60 && exp > S0 - 60 && exp - iat <= 28 * 3600;
        if (ok) expect(outcome).toBe('accepted');
        else expect(outcome).not.toBe('accepted');
      }),
      { numRuns: 300 },
    );
  });

  it('rejects clockToleranceSec above 60', () => {
    expect(() => validator({ clockToleranceSec: 61 })).toThrow(RangeError);
  });

  it.each([
    ['fail a JWKS cooldown under 1 s (no bound on the fetches an attacker causes)', { jwksCooldownMs: 999 }],
    ['fail a JWKS cooldown over 5 min (a new kid held back longer)', { jwksCooldownMs: 5 * 60_000 + 1 }],
    ['fail a JWKS cooldown that is not a number', { jwksCooldownMs: Number.NaN }],
    ['fail a JWKS cache age under the cooldown', { jwksCooldownMs: 60_000, jwksCacheMaxAgeMs: 59_999 }],
    ['fail a JWKS cache age over 24 h', { jwksCacheMaxAgeMs: 24 * 3600_000 + 1 }],
  ] as const)('%s', (_n, extra) => {
    expect(() => validator(extra)).toThrow(RangeError);
  });

  it.each([
    ['ok the defaults', { jwksCooldownMs: undefined, jwksCacheMaxAgeMs: undefined }],
    ['ok 1 s and 24 h', { jwksCooldownMs: 1000, jwksCacheMaxAgeMs: 24 * 3600_000 }],
    ['ok 5 min and 5 min', { jwksCooldownMs: 5 * 60_000, jwksCacheMaxAgeMs: 5 * 60_000 }],
  ] as const)('%s', (_n, extra) => {
    expect(() => validator(extra)).not.toThrow();
  });

  // The `acct` optional claim (0 member, 1 guest): only a proven member may later use the human-only natures (authz).
  describe('acct (member or B2B guest) on user tokens', () => {
    /** A user token whose payload is `userClaims()` with `"acct":<raw JSON text>` written as is. */
    const rawAcct = (json: string): string => {
      const text = JSON.stringify(userClaims());
      return `Bearer ${issuer.sign({}, { rawPayload: `${text.slice(0, -1)},"acct":${json}}` })}`;
    };

    it.each([
      ['ok member as Entra writes it (number 0)', { acct: 0 }, 'member'],
      ['ok member as the one-digit string "0"', { acct: '0' }, 'member'],
      ['ok guest (number 1)', { acct: 1 }, 'guest'],
      ['ok guest as the string "1"', { acct: '1' }, 'guest'],
      ['ok no acct (optional claim not configured): no account, proves nothing', {}, undefined],
    ])('%s', async (_n, claims, account) => {
      const p = await validator().authenticate(bearer(userClaims(claims)));
      expect(p.kind).toBe('user');
      expect(p.account).toBe(account);
      expect('account' in p).toBe(account !== undefined);
    });

    it.each([
      ['fail "1 " (trailing space)', '"1 "'],
      ['fail " 0" (leading space)', '" 0"'],
      ['fail "00"', '"00"'],
      ['fail "+0"', '"+0"'],
      ['fail "0.0" as a string', '"0.0"'],
      ['fail fullwidth "０"', '"０"'],
      ['fail Arabic-Indic zero "٠"', '"٠"'],
      ['fail "member"', '"member"'],
      ['fail empty string', '""'],
      ['fail true', 'true'],
      ['fail false', 'false'],
      ['fail null', 'null'],
      ['fail ["0"]', '["0"]'],
      ['fail [0]', '[0]'],
      ['fail {"0":0}', '{"0":0}'],
      ['fail 2', '2'],
      ['fail -1', '-1'],
      ['fail 0.5', '0.5'],
      ['fail -0', '-0'],
      ['fail 1e300', '1e300'],
    ])('%s: the token is refused (invalid_claims)', async (_n, json) => {
      expect(await codeOf(validator().authenticate(rawAcct(json)))).toBe('invalid_claims');
    });

    it.each([
      ['fail 1.0 is the JSON number 1: a guest', '1.0', 'guest'],
      ['ok 0.0 is the JSON number 0: a member (JSON has one number type, and Entra signed it)', '0.0', 'member'],
    ])('%s', async (_n, json, account) => {
      expect((await validator().authenticate(rawAcct(json))).account).toBe(account);
    });

    it('keeps the account of a token it remembers as verified', async () => {
      const v = validator();
      const token = bearer(userClaims({ acct: 1, uti: 'uti-guest' }));
      expect((await v.authenticate(token)).account).toBe('guest');
      expect((await v.authenticate(token)).account).toBe('guest');
    });

    it('ok app tokens are unaffected: acct is not read, whatever it holds', async () => {
      for (const acct of [0, 1, '1 ', ['0'], true]) {
        const p = await validator().authenticate(bearer(appClaims({ acct })));
        expect(p.kind).toBe('app');
        expect(p.account).toBeUndefined();
      }
    });

    it('proves a member only for 0 or "0", refuses every value but 0, 1, "0" and "1" (property)', async () => {
      const v = validator({ verifiedTokenCacheSize: 0 });
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.constantFrom<unknown>(0, 1, '0', '1', '1 ', '０', true, ['0'], -1, 2), fc.jsonValue({ maxDepth: 2 })), async (acct) => {
          const text = JSON.stringify(acct);
          const outcome = await v.authenticate(rawAcct(text)).then(
            (p) => p.account ?? 'none',
            (e: unknown) => (e instanceof TokenError ? e.code : 'thrown'),
          );
          const parsed: unknown = JSON.parse(text);
          const expected = Object.is(parsed, 0) || parsed === '0' ? 'member' : parsed === 1 || parsed === '1' ? 'guest' : 'invalid_claims';
          expect(outcome).toBe(expected);
        }),
        { numRuns: 200 },
      );
    });
  });

  // RFC 4648 §3.5: the bits after the last full octet must be zero. Decoders ignore them, so without this check one
  // signed token has several spellings (16 for an RS256 signature): different texts, different SHA-256, one token.
  describe('canonical base64url segments', () => {
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    /** The other spellings of a segment's last character (same decoded bytes, non-zero unused bits). */
    const respellings = (segment: string): string[] => {
      const unused = segment.length % 4 === 2 ? 0b1111 : segment.length % 4 === 3 ? 0b11 : 0;
      const base = ALPHABET.indexOf(segment.at(-1) as string) & ~unused;
      const out: string[] = [];
      for (let bits = 1; bits <= unused; bits++) out.push(segment.slice(0, -1) + ALPHABET[base | bits]);
      return out;
    };
    /** A token whose header and payload segments are given as text, signed over exactly that text. */
    const signText = (h: string, p: string): string => `${h}.${p}.${cryptoSign('sha256', Buffer.from(`${h}.${p}`), issuer.keys[0].privateKey).toString('base64url')}`;
    /** A header or payload as a segment whose length leaves unused bits (4 when 2 = length % 4). */
    const segment = (json: Record<string, unknown>): string => {
      for (let pad = 0; ; pad++) {
        const s = Buffer.from(JSON.stringify({ ...json, ...(pad ? { x: 'x'.repeat(pad) } : {}) })).toString('base64url');
        if (s.length % 4 === 2) return s;
      }
    };
    const header = (): Record<string, unknown> => ({ typ: 'JWT', alg: 'RS256', kid: issuer.keys[0].kid });

    it.each([
      ['fail the signature respelled (a second text of a valid token)', () => { const [h, p, s] = issuer.sign(userClaims()).split('.'); return `${h}.${p}.${respellings(s)[0]}`; }, 'malformed_token'],
      ['fail a signed header segment with non-zero unused bits', () => { const h = segment(header()); return signText(respellings(h)[0], segment(userClaims())); }, 'malformed_token'],
      ['fail a signed payload segment with non-zero unused bits', () => { const p = segment(userClaims()); return signText(segment(header()), respellings(p)[0]); }, 'malformed_token'],
      ['fail a segment of 4k+1 characters (no octet ends there)', () => { const [h, p, s] = issuer.sign(userClaims()).split('.'); return `${h}.${p}.${s}${s.length % 4 === 0 ? 'A' : s.length % 4 === 2 ? 'AAA' : 'AA'}`; }, 'malformed_token'],
      ['fail a padded signature', () => `${issuer.sign(userClaims())}==`, 'malformed_token'],
      ['fail a trailing dot', () => `${issuer.sign(userClaims())}.`, 'malformed_token'],
      ['fail four segments', () => `${issuer.sign(userClaims())}.e30`, 'malformed_token'],
      ['fail base64 (not url) characters', () => issuer.sign(userClaims()).replace(/-/g, '+').replace(/_/g, '/').replace(/^([^+/]*)$/, '$1+'), 'malformed_token'],
      ['ok canonical segments whose length leaves unused bits', () => signText(segment(header()), segment(userClaims())), 'accepted'],
    ] as const)('%s', async (_n, make, expected) => {
      expect(await codeOf(validator({ verifiedTokenCacheSize: 0 }).authenticate(`Bearer ${make()}`))).toBe(expected);
    });

    it('accepts a token in exactly one spelling, also once it is remembered as verified (property)', async () => {
      const v = validator();
      await fc.assert(
        fc.asyncProperty(fc.string({ minLength: 1, maxLength: 40 }), fc.nat(), async (uti, pick) => {
          const token = issuer.sign(userClaims({ uti }));
          const [h, p, s] = token.split('.');
          expect(await codeOf(v.authenticate(`Bearer ${token}`))).toBe('accepted');
          const variants = [...respellings(s).map((x) => `${h}.${p}.${x}`), ...respellings(p).map((x) => `${h}.${x}.${s}`), ...respellings(h).map((x) => `${x}.${p}.${s}`)];
          expect(variants.length).toBeGreaterThan(0);
          expect(await codeOf(v.authenticate(`Bearer ${variants[pick % variants.length]}`))).toBe('malformed_token');
        }),
        { numRuns: 100 },
      );
    });
  });

  // Keys come only from the tenant's JWKS, but a key the set publishes is trusted for everything it verifies: one that
  // cannot carry an RS256 signature safely must select nothing (FIPS 186-5 §A.1.1: 2^16 < e < 2^256, e odd; RFC 8725
  // §3.2 / jose: modulus >= 2048 bits; RFC 7517 §4.3: key_ops without "verify" is not a verification key).
  describe('which published keys can verify', () => {
    const rsaKey = (opts: { bits?: number; exponent?: number; jwk?: Record<string, unknown> } = {}): TestSigningKey => {
      const pair = generateKeyPairSync('rsa', { modulusLength: opts.bits ?? 2048, publicExponent: opts.exponent ?? 65537 });
      const kid = `extra${Math.random().toString(36).slice(2)}`;
      const jwk = { ...(pair.publicKey.export({ format: 'jwk' }) as Record<string, unknown>), kid, use: 'sig', alg: 'RS256', ...opts.jwk };
      return { kid, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
    };
    /** With e = 1, s^e mod n = s: the EMSA-PKCS1-v1_5 encoding of the hash is a "signature" anyone can write. */
    const forgeForExponentOne = (claims: Record<string, unknown>, kid: string): string => {
      const b = (x: string): string => Buffer.from(x).toString('base64url');
      const input = `${b(JSON.stringify({ typ: 'JWT', alg: 'RS256', kid }))}.${b(JSON.stringify(claims))}`;
      const t = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), createHash('sha256').update(input).digest()]);
      const em = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(256 - t.length - 3, 0xff), Buffer.from([0]), t]);
      return `${input}.${em.toString('base64url')}`;
    };
    const published = async (extra: TestSigningKey[], token: (keys: TestSigningKey[]) => string): Promise<TokenErrorCode | 'accepted'> => {
      issuer.keys.push(...extra);
      try {
        const v = validator({ verifiedTokenCacheSize: 0 });
        await v.refreshKeys();
        return await codeOf(v.authenticate(`Bearer ${token(extra)}`));
      } finally {
        issuer.keys.splice(1);
      }
    };

    it.each([
      ['fail a key with exponent 1 (a token forged without any private key)', () => { const k = rsaKey(); return [{ ...k, jwk: { ...k.jwk, e: 'AQ' } }]; }, (k: TestSigningKey[]) => forgeForExponentOne(userClaims(), k[0].kid), 'unknown_key'],
      ['fail a key with exponent 3', () => [rsaKey({ exponent: 3 })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['fail a 1024-bit key (an unknown key, not a malformed token)', () => [rsaKey({ bits: 1024 })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['fail key_ops without verify', () => [rsaKey({ jwk: { key_ops: ['encrypt'] } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['fail key_ops not an array', () => [rsaKey({ jwk: { key_ops: 'verify' } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['fail use enc', () => [rsaKey({ jwk: { use: 'enc' } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['fail a key for RS384', () => [rsaKey({ jwk: { alg: 'RS384' } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['fail a kid published twice (ambiguous: selects nothing)', () => { const k = rsaKey(); return [k, { ...rsaKey(), kid: k.kid, jwk: { ...rsaKey().jwk, kid: k.kid } }]; }, (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      // A JWKS entry's issuer member (Entra's /discovery/v2.0/keys): a templated one counts with our tenant substituted,
      // a concrete one only on exact match; a key published for another issuer never verifies our tokens.
      ['fail a key whose JWKS issuer is another tenant', () => [rsaKey({ jwk: { issuer: issuer.issuer.replace(TENANT, '11111111-2222-4333-8444-555555555555') } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['fail a key whose JWKS issuer is the v1 issuer of our tenant', () => [rsaKey({ jwk: { issuer: `https://sts.windows.net/${TENANT}/` } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['fail a key whose JWKS issuer is not a string', () => [rsaKey({ jwk: { issuer: [issuer.issuer] } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['ok a key whose JWKS issuer is the {tenantid} template', () => [rsaKey({ jwk: { issuer: issuer.issuer.replace(TENANT, '{tenantid}') } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'accepted'],
      ['ok a key whose JWKS issuer is ours exactly', () => [rsaKey({ jwk: { issuer: issuer.issuer } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'accepted'],
      // One key type per kid (RFC 8725 §3.1: each key with exactly one algorithm): only RSA keys enter the set.
      ['fail a kid whose published key is an EC key', () => { const k = rsaKey(); const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }); return [{ ...k, jwk: { ...ec, kid: k.kid, use: 'sig' } }]; }, (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['fail a kid whose published key claims kty RSA for EC material', () => { const k = rsaKey(); const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }); return [{ ...k, jwk: { ...ec, kty: 'RSA', kid: k.kid, use: 'sig' } }]; }, (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'unknown_key'],
      ['ok key_ops ["verify"]', () => [rsaKey({ jwk: { key_ops: ['verify'] } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'accepted'],
      ['ok a 4096-bit key without use and alg', () => [rsaKey({ bits: 4096, jwk: { use: undefined, alg: undefined } })], (k: TestSigningKey[]) => issuer.sign(userClaims(), { key: k[0] }), 'accepted'],
    ] as const)('%s', async (_n, keys, token, expected) => {
      expect(await published(keys(), token)).toBe(expected);
    });

    it('still verifies with the other keys of a set that also publishes unusable ones', async () => {
      const bad = rsaKey({ exponent: 3 });
      expect(await published([bad], () => issuer.sign(userClaims()))).toBe('accepted');
    });
  });

  describe('JWKS cache', () => {
    it('fetches once, then refetches an unknown kid at most once per cooldown', async () => {
      const v = validator();
      const before = issuer.jwksRequests;
      await v.authenticate(bearer(userClaims()));
      await v.authenticate(bearer(userClaims()));
      expect(issuer.jwksRequests - before).toBe(1);
      const unknown = { header: { kid: 'unknownKid123' } };
      expect(await codeOf(v.authenticate(bearer(userClaims(), unknown)))).toBe('unknown_key');
      expect(await codeOf(v.authenticate(bearer(userClaims(), unknown)))).toBe('unknown_key');
      expect(issuer.jwksRequests - before).toBe(1);
      clock += 5 * 60_000;
      expect(await codeOf(v.authenticate(bearer(userClaims({ exp: clock / 1000 + 600 }), unknown)))).toBe('unknown_key');
      expect(issuer.jwksRequests - before).toBe(2);
    });

    it('fetches once for a burst of concurrent unknown kids, however many arrive', async () => {
      const v = validator();
      await v.authenticate(bearer(userClaims()));
      clock += 5 * 60_000;
      const before = issuer.jwksRequests;
      const codes = await Promise.all(Array.from({ length: 50 }, (_, i) => codeOf(v.authenticate(bearer(userClaims(), { header: { kid: `unknownKid${i}` } })))));
      expect(new Set(codes)).toEqual(new Set(['unknown_key']));
      expect(issuer.jwksRequests - before).toBe(1);
    });

    // Entra publishes new keys ahead of use, but an emergency rotation signs with a kid the cache has never seen. An
    // attacker's made-up kids spend the refresh too; with the defaults they may hold a genuine new kid back for one
    // short interval (30 s), not for Microsoft's 5-minute cooldown, and still cause at most one fetch per interval.
    it('verifies a genuine new kid within 30 s of its publication through a flood of made-up kids, one fetch per 30 s (defaults)', async () => {
      const v = validator({ jwksCooldownMs: undefined, jwksCacheMaxAgeMs: undefined, verifiedTokenCacheSize: 0 });
      await v.refreshKeys();
      const before = issuer.jwksRequests;
      const fresh = issuer.newUnpublishedKey();
      const publishAt = 47;
      let firstOk: number | null = null;
      try {
        for (let t = 0; t < 300; t++) {
          clock = T0 + t * 1000;
          const s = clock / 1000;
          const claims = userClaims({ iat: s, nbf: s, exp: s + 600 });
          const burst = await Promise.all(Array.from({ length: 5 }, (_, i) => codeOf(v.authenticate(bearer(claims, { header: { kid: `madeUp${t}x${i}` } })))));
          expect(new Set(burst)).toEqual(new Set(['unknown_key']));
          if (t === publishAt) issuer.keys.push(fresh);
          if (t >= publishAt && firstOk === null) {
            const code = await codeOf(v.authenticate(bearer(claims, { key: fresh })));
            if (code === 'accepted') firstOk = t;
            else expect(code).toBe('unknown_key');
          }
        }
      } finally {
        issuer.keys.splice(1);
      }
      expect(firstOk).not.toBeNull();
      expect((firstOk as number) - publishAt).toBeLessThanOrEqual(30);
      expect(issuer.jwksRequests - before).toBeLessThanOrEqual(300 / 30);
    });

    it('whatever kids a flood spells and whenever the new key appears: one fetch per 30 s at most, the new kid verifies 30 s after publication (property)', async () => {
      const fresh = issuer.newUnpublishedKey();
      const real = issuer.keys[0].kid;
      const kid = fc.oneof(
        fc.stringMatching(/^[A-Za-z0-9_-]{1,128}$/),
        fc.constantFrom(fresh.kid.toUpperCase(), fresh.kid.toLowerCase(), `${fresh.kid}A`, fresh.kid.slice(1), `${real}A`, real.slice(0, -1)),
        fc.string({ maxLength: 200 }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: 4000 }), kid), { minLength: 1, maxLength: 60 }), fc.integer({ min: 0, max: 120_000 }), async (flood, publishAt) => {
          clock = T0;
          const v = validator({ jwksCooldownMs: undefined, jwksCacheMaxAgeMs: undefined, verifiedTokenCacheSize: 0 });
          await v.refreshKeys();
          const before = issuer.jwksRequests;
          const genuine = async (): Promise<TokenErrorCode | 'accepted'> => {
            const s = clock / 1000;
            return codeOf(v.authenticate(bearer(userClaims({ iat: s, nbf: s, exp: s + 600 }), { key: fresh })));
          };
          try {
            for (const [dt, k] of flood) {
              clock += dt;
              if (clock - T0 >= publishAt && issuer.keys.length === 1) issuer.keys.push(fresh);
              await codeOf(v.authenticate(bearer(userClaims(), { header: { kid: k } })));
              if (clock - T0 >= publishAt + 30_000) expect(await genuine()).toBe('accepted');
            }
            clock = Math.max(clock, T0 + publishAt + 30_000);
            if (issuer.keys.length === 1) issuer.keys.push(fresh);
            expect(await genuine()).toBe('accepted');
            expect(issuer.jwksRequests - before).toBeLessThanOrEqual(Math.floor((clock - T0) / 30_000));
          } finally {
            issuer.keys.splice(1);
            clock = T0;
          }
        }),
        { numRuns: 40 },
      );
    });

    it('keeps last-known-good keys when the JWKS endpoint fails after the cache expired', async () => {
      const v = validator();
      await v.authenticate(bearer(userClaims()));
      issuer.setJwksAvailable(false);
      clock += 2 * 60 * 60_000;
      const s = clock / 1000;
      const p = await v.authenticate(bearer(userClaims({ iat: s, nbf: s, exp: s + 600 })));
      expect(p.oid).toBe(USER_OID);
      expect(v.keyStats().failures).toBe(1);
    });

    // The cooldown also paces retries while the endpoint fails: a retry that hangs must not hold every request that
    // names a known kid for the fetch timeout, once per interval, for as long as the outage lasts.
    it('during a JWKS outage, answers a known kid from the last-known-good keys without waiting for a hanging retry', async () => {
      const v = validator({ jwksCooldownMs: undefined, jwksCacheMaxAgeMs: undefined, verifiedTokenCacheSize: 0 });
      await v.refreshKeys();
      issuer.setJwksAvailable(false);
      const at = (ms: number): string => {
        clock = T0 + ms;
        const s = clock / 1000;
        return bearer(userClaims({ iat: s, nbf: s, exp: s + 600 }));
      };
      expect(await codeOf(v.authenticate(at(60 * 60_000)))).toBe('accepted');
      expect(v.keyStats().failures).toBe(1);
      issuer.setJwksStalled(true);
      const before = issuer.jwksRequests;
      try {
        const outcome = await Promise.race([
          codeOf(v.authenticate(at(60 * 60_000 + 5 * 60_000))),
          new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), 1000)),
        ]);
        expect(outcome).toBe('accepted');
        // The retry did go out, in the background.
        for (let i = 0; i < 50 && issuer.jwksRequests === before; i++) await new Promise((r) => setTimeout(r, 10));
        expect(issuer.jwksRequests - before).toBe(1);
      } finally {
        issuer.setJwksStalled(false);
        await v.refreshKeys().catch(() => undefined);
      }
    });

    it('fails closed when the endpoint is down and no key was ever fetched', async () => {
      issuer.setJwksAvailable(false);
      const v = validator();
      expect(await codeOf(v.authenticate(bearer(userClaims())))).toBe('keys_unavailable');
      await expect(v.refreshKeys()).rejects.toMatchObject({ code: 'jwks_unreachable' });
    });

    it('verifies a repeated token once, and still refuses it once expired or when its key left the JWKS', async () => {
      const v = validator();
      const oldKey = issuer.keys[0];
      const start = clock;
      const s = clock / 1000;
      const token = bearer(userClaims({ iat: s, nbf: s, exp: s + 600 }));
      const first = await v.authenticate(token);
      const again = await v.authenticate(token);
      expect(again).toEqual(first);
      again.roles.push('tampered');
      expect((await v.authenticate(token)).roles).toEqual(first.roles);
      // One changed character of the signature is a different token: verified, and refused.
      const forged = token.slice(0, -2) + (token.endsWith('A') ? 'B' : 'A') + token.slice(-1);
      expect(await codeOf(v.authenticate(forged))).toBe('invalid_signature');
      clock = start + 661_000;
      expect(await codeOf(v.authenticate(token))).toBe('token_expired');
      clock = start;
      const other = bearer(userClaims({ iat: s, nbf: s, exp: s + 600, uti: 'uti-2' }));
      await v.authenticate(other);
      const fresh = issuer.rotateKeys();
      try {
        clock = start + 5 * 60_000;
        const t = clock / 1000;
        // A token of the new key makes the validator fetch the new key set, without the old key.
        expect((await v.authenticate(bearer(userClaims({ iat: t, nbf: t, exp: t + 600 }), { key: fresh }))).oid).toBe(USER_OID);
        expect(await codeOf(v.authenticate(other))).toBe('unknown_key');
      } finally {
        issuer.keys.splice(0, 1, oldKey);
        clock = start;
      }
    });

    it('verifies a remembered token again when its kid now names other key material', async () => {
      const v = validator();
      const oldKey = issuer.keys[0];
      const s = clock / 1000;
      const token = bearer(userClaims({ iat: s, nbf: s, exp: s + 3600 }));
      expect(await codeOf(v.authenticate(token))).toBe('accepted');
      const other = issuer.newUnpublishedKey();
      issuer.keys.splice(0, 1, { ...other, kid: oldKey.kid, jwk: { ...other.jwk, kid: oldKey.kid } });
      try {
        clock += 5 * 60_000;
        // An unknown kid after the cooldown makes the validator fetch the set: same kid, new key.
        expect(await codeOf(v.authenticate(bearer(userClaims(), { header: { kid: 'unknownKid123' } })))).toBe('unknown_key');
        expect(await codeOf(v.authenticate(token))).toBe('invalid_signature');
      } finally {
        issuer.keys.splice(0, 1, oldKey);
      }
    });

    it('picks up a rotated key after the cooldown and then refuses the old one', async () => {
      const v = validator();
      const oldKey = issuer.keys[0];
      await v.authenticate(bearer(userClaims()));
      const fresh = issuer.rotateKeys();
      try {
        clock += 5 * 60_000;
        const s = clock / 1000;
        const claims = userClaims({ iat: s, nbf: s, exp: s + 600 });
        expect((await v.authenticate(bearer(claims, { key: fresh }))).oid).toBe(USER_OID);
        expect(await codeOf(v.authenticate(bearer(claims, { key: oldKey })))).toBe('unknown_key');
      } finally {
        issuer.keys.splice(0, 1, oldKey);
      }
    });
  });
});
