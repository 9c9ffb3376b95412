/** What replaces a credential in a log line. */
export const REDACTED = '***';

/** A compact JWS/JWT (three base64url parts, the header starting `eyJ`), wherever it appears. */
const JWT = /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g;
/** Query parameters that carry credentials in OAuth and OpenID Connect (RFC 6749, 6750, 7521, 7636; OIDC). */
const CREDENTIAL_PARAMS = new Set([
  'access_token',
  'id_token',
  'refresh_token',
  'code',
  'code_verifier',
  'client_secret',
  'client_assertion',
  'assertion',
  'token',
  'password',
  // node-postgres reads the client key's passphrase from a connection URL's query too.
  'sslpassword',
]);

/**
 * A request target fit for a log line: the value of every credential-carrying query parameter and every
 * JWT-shaped value anywhere (path or query) is replaced by `***`. Works on the raw target (no decoding).
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  const path = (q < 0 ? url : url.slice(0, q)).replace(JWT, REDACTED);
  if (q < 0) return path;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair.replace(JWT, REDACTED);
      let name = pair.slice(0, eq);
      try {
        name = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // a malformed name is kept as it came
      }
      return CREDENTIAL_PARAMS.has(name.toLowerCase()) ? `${pair.slice(0, eq)}=${REDACTED}` : pair.replace(JWT, REDACTED);
    })
    .join('&');
  return `${path}?${query}`;
}

/**
 * A configured URL (a DATABASE_URL, say) fit for a log line: its user-info (`user:password@`) becomes `***@`, then
 * {@link redactUrl} masks credential query parameters. The authority ends at the first '/', '?' or '#' and its
 * user-info at its last '@', as WHATWG URL reads it; the text is not parsed (that would normalise what it prints).
 */
export function maskUrlCredentials(url: string): string {
  return redactUrl(
    url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)/i, (_all, scheme: string, authority: string) => {
      const at = authority.lastIndexOf('@');
      return at < 0 ? scheme + authority : `${scheme}${REDACTED}${authority.slice(at)}`;
    }),
  );
}

/** Header names whose values are credentials (never logged). */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);

/** Headers fit for a log line: credential headers become `***`, JWT-shaped values in any other header too. */
export function redactHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (CREDENTIAL_HEADERS.has(name.toLowerCase())) out[name] = REDACTED;
    else if (typeof value === 'string') out[name] = value.replace(JWT, REDACTED);
    else if (Array.isArray(value)) out[name] = value.map((v) => (typeof v === 'string' ? v.replace(JWT, REDACTED) : v));
    else out[name] = value;
  }
  return out;
}

/** Free text (a log message) with every JWT-shaped value replaced by `***`. */
export function redactText(text: string): string {
  return text.replace(JWT, REDACTED);
}
