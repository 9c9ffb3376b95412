import { loadEntraMetadata } from './metadata';
import { EntraMetadataError, EntraMetadataErrorCode } from './errors';
import { startTestIssuer, TestIssuer } from './testing/test-issuer';
import { isLoopbackHost } from './http-fetch';

const TENANT = '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01';

describe(loadEntraMetadata.name, () => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startTestIssuer({ tenantId: TENANT });
  });
  afterAll(() => issuer.close());
  afterEach(() => issuer.setMetadata(null));

  async function codeOf(url: string, allowInsecureLoopback = true, tenantId = TENANT): Promise<EntraMetadataErrorCode | 'ok'> {
    try {
      await loadEntraMetadata(url, { tenantId, allowInsecureLoopback });
      return 'ok';
    } catch (e) {
      if (e instanceof EntraMetadataError) return e.code;
      throw e;
    }
  }
  const doc = (o: Record<string, unknown>): Record<string, unknown> => ({
    issuer: issuer.issuer,
    jwks_uri: issuer.jwksUri,
    ...o,
  });

  it('loads a tenant-specific v2.0 document from a loopback issuer', async () => {
    const m = await loadEntraMetadata(issuer.metadataUrl, { tenantId: TENANT, allowInsecureLoopback: true });
    expect(m).toMatchObject({ issuer: issuer.issuer, jwksUri: issuer.jwksUri, allowInsecureLoopback: true });
  });

  it('refuses plain http unless loopback is allowed', async () => {
    expect(await codeOf(issuer.metadataUrl, false)).toBe('metadata_insecure_url');
    expect(await codeOf(`http://example.com/${TENANT}/v2.0/.well-known/openid-configuration`, true)).toBe('metadata_insecure_url');
  });

  const cases: Array<[string, () => void, EntraMetadataErrorCode, string?]> = [
    ['fail templated issuer', () => issuer.setMetadata(doc({ issuer: `${issuer.baseUrl}/{tenantid}/v2.0` })), 'metadata_issuer_templated'],
    ['fail v1 issuer', () => issuer.setMetadata(doc({ issuer: `${issuer.baseUrl}/${TENANT}/` })), 'metadata_not_v2'],
    ['fail other tenant', () => issuer.setMetadata(doc({ issuer: `${issuer.baseUrl}/11111111-1111-4111-8111-111111111111/v2.0` })), 'metadata_tenant_mismatch'],
    ['fail missing jwks_uri', () => issuer.setMetadata(doc({ jwks_uri: undefined })), 'metadata_missing_jwks_uri'],
    ['fail foreign jwks_uri', () => issuer.setMetadata(doc({ jwks_uri: 'https://evil.example/keys' })), 'metadata_jwks_uri_invalid'],
    ['fail not JSON object', () => issuer.setMetadata({ nothing: true }), 'metadata_invalid'],
  ];
  it.each(cases)('%s', async (_n, arrange, code) => {
    arrange();
    expect(await codeOf(issuer.metadataUrl)).toBe(code);
  });

  it('refuses a metadata URL without v2.0 in its path', async () => {
    expect(await codeOf(`${issuer.baseUrl}/${TENANT}/.well-known/openid-configuration`)).toBe('metadata_not_v2');
  });

  it('reports an unreachable document', async () => {
    expect(await codeOf(`${issuer.baseUrl}/${TENANT}/v2.0/nothing/.well-known/openid-configuration`)).toBe('metadata_unreachable');
    expect(await codeOf(`http://127.0.0.1:1/${TENANT}/v2.0/.well-known/openid-configuration`)).toBe('metadata_unreachable');
  });

  it('refuses a TENANT_ID that is not a GUID', async () => {
    expect(await codeOf(issuer.metadataUrl, true, 'common')).toBe('invalid_tenant_id');
  });

  it('recognises loopback hosts only', () => {
    expect(['127.0.0.1', '127.8.9.10', 'localhost', '[::1]'].every(isLoopbackHost)).toBe(true);
    expect(['128.0.0.1', '127.0.0.1.evil.com', 'localhost.evil.com', '10.0.0.1'].some(isLoopbackHost)).toBe(false);
  });
});
