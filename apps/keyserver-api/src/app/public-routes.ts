import { definePublicRoutes } from '@keyserver/authz';
import { LIVENESS_PATH, READINESS_PATH } from '../health/liveness';

/** Every route reachable without a token. The boot fails if this list and the @Public() marks disagree. */
export const PUBLIC_ROUTES = definePublicRoutes([
  { method: 'GET', path: LIVENESS_PATH, reason: 'liveness probe: says nothing but "ok"', edge: true },
  { method: 'GET', path: READINESS_PATH, reason: 'readiness probe: dependency status words only' },
  { method: 'GET', path: '/api/docs', reason: 'the OpenAPI document (and Swagger UI for a browser) is public by design' },
  { method: 'GET', path: '/api/docs/ui/:file', reason: 'Swagger UI\'s static files (a fixed list), served offline by the API' },
  { method: 'POST', path: '/api/v1/tsa', reason: 'RFC 3161 time-stamping: relying parties and signing tools ask anonymously; a token only says that a hash existed at a time (ADR 0024)' },
  { method: 'GET', path: '/api/v1/crl/:keyid', reason: 'CRLs are fetched anonymously by relying parties via the certificates\' CRL distribution point' },
  { method: 'GET', path: '/api/v1/crl/:keyid/versions/:version', reason: 'the CRL of one key version: the CRL distribution point of the certificates that version signed (ADR 0029)' },
] as const);
