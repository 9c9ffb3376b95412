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
 * A request target fit for a log line: the value of every credential-carrying query parameter (and, with `keep`,
 * of every parameter not named in it) and every JWT-shaped value anywhere (path or query) is replaced by `***`.
 * Works on the raw target (no decoding).
 */
export function redactUrl(url: string, keep?: ReadonlySet<string>): string {
  const q = url.indexOf('?');
  const path = (q < 0 ? url : url.slice(0, q)).replace(JWT, REDACTED);
  if (q < 0) return path;
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      let name = eq < 0 ? pair : pair.slice(0, eq);
      try {
        name = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // a malformed name is kept as it came
      }
      // A bare word (`?s3cr3t`) is a value without a name: only a name the server defines is shown.
      if (eq < 0) return keep !== undefined && !keep.has(name) ? REDACTED : pair.replace(JWT, REDACTED);
      const credential = CREDENTIAL_PARAMS.has(name.toLowerCase()) || (keep !== undefined && !keep.has(name));
      return credential ? `${pair.slice(0, eq).replace(JWT, REDACTED)}=${REDACTED}` : pair.replace(JWT, REDACTED);
    })
    .join('&');
  return `${path}?${query}`;
}

/** The longest request target a log line holds (a path may be up to Node's 16 KiB header limit). */
export const LOG_TARGET_MAX = 1024;

/**
 * A request target for a log line: {@link redactUrl} (with `keep`, the query parameters a server defines: the value
 * of any other is masked too, whatever a client put there: `api_key`, `pin`, `secret`…), then cut to
 * {@link LOG_TARGET_MAX} characters with the number cut off. Redacted before it is cut, so a cut never leaves part of a credential that the redaction would have
 * masked whole; bounded, so one request cannot write a line that log shippers split (Docker's json-file splits at
 * 16 KiB, and the second half of a split line is text the caller chose).
 */
export function logTarget(url: string, keep?: ReadonlySet<string>): string {
  const redacted = redactUrl(url, keep);
  return redacted.length <= LOG_TARGET_MAX ? redacted : `${redacted.slice(0, LOG_TARGET_MAX)}…(+${redacted.length - LOG_TARGET_MAX})`;
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
