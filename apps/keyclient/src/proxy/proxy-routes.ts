import { CONSOLE_ROUTES, type HttpMethod } from '@keyserver/api-contract/console-routes';

export type { HttpMethod };

/** The allow-list: the console's routes, declared once in the API contract. */
export const PROXY_ROUTES = CONSOLE_ROUTES;

const ID_SEGMENT = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,127}$/;

/** The allow-list pattern `method path` matches (e.g. `/api/v1/keys/:id`), if any. `path` must have passed {@link checkRawPath}. */
export function proxyRouteOf(method: string, path: string): string | undefined {
  const segments = path.split('/');
  return PROXY_ROUTES.find(([m, pattern]) => {
    if (m !== method) return false;
    const parts = pattern.split('/');
    if (parts.length !== segments.length) return false;
    return parts.every((p, i) => (p === ':id' ? ID_SEGMENT.test(segments[i]) : p === segments[i]));
  })?.[1];
}

/** True if `method path` is on the allow-list. `path` must already have passed {@link checkRawPath}. */
export function isProxyAllowed(method: string, path: string): boolean {
  return proxyRouteOf(method, path) !== undefined;
}

/**
 * Refuses request targets that could mean something else to a server further down: dot segments,
 * encoded dots, slashes, backslashes or percent signs, double encoding, backslashes, `;` path
 * parameters, empty segments, control and non-ASCII characters; in the query whitespace, backslashes, controls
 * and '#'. Returns the path or null. The proxy forwards the target byte for byte (ProxyService), never re-encoded.
 */
export function checkRawPath(rawUrl: string): string | null {
  const q = rawUrl.indexOf('?');
  const path = q < 0 ? rawUrl : rawUrl.slice(0, q);
  if (!path.startsWith('/') || path.length > 2048) return null;
  if (!/^[A-Za-z0-9\-._~/%!$&'()*+,=:@]*$/.test(path)) return null; // no \ ; control, space or non-ASCII
  if (/%(2e|2f|5c|25|00|3b)/i.test(path)) return null;
  if (/%(?![0-9A-Fa-f]{2})/.test(path)) return null;
  if (path.length > 1 && path.includes('//')) return null;
  if (path.split('/').some((s) => s === '.' || s === '..')) return null;
  // Escapes must decode to valid UTF-8 without controls: the router decodes them, and a URIError there is a 500.
  for (const segment of path.split('/')) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return null;
    }
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(decoded)) return null;
  }
  const query = q < 0 ? '' : rawUrl.slice(q + 1);
  // A raw '#' is no part of a request target (RFC 9112 3.2.1): a URL parser further down would cut the query there.
  if (/[\s\\#]/.test(query) || [...query].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) return null;
  return path;
}
