import { checkRawPath } from '../proxy/proxy-routes';

/** First path segments of the admin SPA's client routes that a login may return to. */
export const RETURN_PATH_PREFIXES: readonly string[] = [
  '/approvals',
  '/operations',
  '/keys',
  '/certificates',
  '/admin-sessions',
  '/root-ceremony',
  '/subjects',
  '/audit',
];

const SAFE_CHARS = /^\/[A-Za-z0-9\-._~/?=&%+]*$/;
const MAX_LENGTH = 512;

/**
 * The post-login return path if it is a plain relative path into an allow-listed SPA route, else `/`.
 * Refuses scheme-relative (`//evil`), backslash (`/\evil`), absolute (`https://evil`), `javascript:`,
 * dot segments, encoded separators and escapes that do not decode.
 */
export function safeReturnPath(candidate: unknown): string {
  if (typeof candidate !== 'string' || candidate.length === 0 || candidate.length > MAX_LENGTH) return '/';
  if (!SAFE_CHARS.test(candidate)) return '/';
  if (candidate.startsWith('//') || /%(2f|5c|2e|00|25)/i.test(candidate)) return '/';
  // A path the keyclient itself would refuse (an escape that is no UTF-8, half an escape) is no place to land after a login.
  if (checkRawPath(candidate) === null) return '/';
  const [pathname] = candidate.split('?', 1);
  if (pathname.includes('//') || pathname.split('/').some((s) => s === '.' || s === '..')) return '/';
  if (pathname === '/') return candidate;
  const allowed = RETURN_PATH_PREFIXES.some((p) => pathname === p || pathname.startsWith(`${p}/`));
  return allowed ? candidate : '/';
}
