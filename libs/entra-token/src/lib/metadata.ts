import { EntraMetadataError } from './errors';
import { FetchLike, fetchJson, isRecord, parseTrustedUrl } from './http-fetch';

/** The parts of the tenant's OpenID Connect metadata document the Keyserver relies on. */
export interface EntraMetadata {
  /** Exact issuer, e.g. `https://login.microsoftonline.com/{TENANT_ID}/v2.0`. */
  issuer: string;
  jwksUri: string;
  authorizationEndpoint?: string;
  tokenEndpoint?: string;
  endSessionEndpoint?: string;
  /** Whether plain-http loopback URLs were allowed when loading (the key store inherits it). */
  allowInsecureLoopback: boolean;
}

export interface LoadEntraMetadataOptions {
  /** TENANT_ID (GUID). */
  tenantId: string;
  fetch?: FetchLike;
  /** Allow `http://` for 127.0.0.0/8, ::1 and localhost (emulator, tests). Never in production. */
  allowInsecureLoopback?: boolean;
  timeoutMs?: number;
}

export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const WELL_KNOWN = '/.well-known/openid-configuration';

function optionalUrl(doc: Record<string, unknown>, key: string): string | undefined {
  const v = doc[key];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/**
 * Fetches OPENID_CONNECT_METADATA_DOCUMENT and refuses anything but a tenant-specific v2.0 document:
 * issuer ends in `/v2.0`, names TENANT_ID, is not the `{tenantid}` template, is the prefix of the
 * metadata URL (OIDC Discovery §4.3), and `jwks_uri` is on the issuer's origin.
 * @throws EntraMetadataError
 */
export async function loadEntraMetadata(metadataUrl: string, options: LoadEntraMetadataOptions): Promise<EntraMetadata> {
  const { tenantId } = options;
  const allowInsecureLoopback = options.allowInsecureLoopback ?? false;
  if (!GUID.test(tenantId)) throw new EntraMetadataError('invalid_tenant_id', 'TENANT_ID must be a GUID');
  const url = parseTrustedUrl(metadataUrl, allowInsecureLoopback, 'metadata_url_invalid', 'OPENID_CONNECT_METADATA_DOCUMENT');
  if (!url.pathname.includes('/v2.0/')) {
    throw new EntraMetadataError('metadata_not_v2', 'the metadata URL must be the v2.0 document');
  }
  const doc = await fetchJson(options.fetch ?? fetch, url.href, options.timeoutMs ?? 10_000, 1024 * 1024, {
    unreachable: 'metadata_unreachable',
    invalid: 'metadata_invalid',
  });
  if (!isRecord(doc) || typeof doc['issuer'] !== 'string') {
    throw new EntraMetadataError('metadata_invalid', 'the metadata document has no issuer');
  }
  const issuer = doc['issuer'];
  if (/\{tenant(id)?\}/i.test(issuer)) {
    throw new EntraMetadataError('metadata_issuer_templated', 'the issuer is the multi-tenant template; use the tenant-specific metadata URL');
  }
  if (!issuer.endsWith('/v2.0')) throw new EntraMetadataError('metadata_not_v2', 'the issuer does not end in /v2.0');
  const issuerUrl = parseTrustedUrl(issuer, allowInsecureLoopback, 'metadata_invalid', 'issuer');
  const segments = issuerUrl.pathname.split('/').map((s) => s.toLowerCase());
  if (!segments.includes(tenantId.toLowerCase())) {
    throw new EntraMetadataError('metadata_tenant_mismatch', 'the issuer does not name TENANT_ID');
  }
  if (url.origin + url.pathname !== issuer + WELL_KNOWN) {
    throw new EntraMetadataError('metadata_issuer_mismatch', 'the metadata URL is not <issuer>/.well-known/openid-configuration');
  }
  const jwks = doc['jwks_uri'];
  if (typeof jwks !== 'string' || jwks.length === 0) {
    throw new EntraMetadataError('metadata_missing_jwks_uri', 'the metadata document has no jwks_uri');
  }
  const jwksUrl = parseTrustedUrl(jwks, allowInsecureLoopback, 'metadata_jwks_uri_invalid', 'jwks_uri');
  if (jwksUrl.origin !== issuerUrl.origin) {
    throw new EntraMetadataError('metadata_jwks_uri_invalid', 'jwks_uri is not on the issuer origin');
  }
  return {
    issuer,
    jwksUri: jwksUrl.href,
    authorizationEndpoint: optionalUrl(doc, 'authorization_endpoint'),
    tokenEndpoint: optionalUrl(doc, 'token_endpoint'),
    endSessionEndpoint: optionalUrl(doc, 'end_session_endpoint'),
    allowInsecureLoopback,
  };
}
