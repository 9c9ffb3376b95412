import { ApiErrorCode, EdgeRefusal } from '../common/api-error';
import { IDEMPOTENT_ROUTE } from '../common/idempotency-key';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
// eslint-disable-next-line no-control-regex -- C0 controls and DEL never belong in a path segment or a query value (NUL cannot even be stored in PostgreSQL text).
const CONTROL = /[\u0000-\u001f\u007f]/;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A string PostgreSQL and the audit chain can hold as-is: well-formed UTF-16 (no lone surrogate) and no NUL. */
export function isStorableText(s: string): boolean {
  return !s.includes('\u0000') && !LONE_SURROGATE.test(s);
}

/** Decodes one percent-encoded component strictly: malformed escapes and invalid UTF-8 are refused, not replaced. */
function decodeStrict(component: string, plusIsSpace: boolean): string {
  try {
    return decodeURIComponent(plusIsSpace ? component.replace(/\+/g, ' ') : component);
  } catch {
    throw new EdgeRefusal(ApiErrorCode.InvalidInputEncoding, 'the request target holds a malformed percent-encoding or invalid UTF-8');
  }
}

/**
 * Refuses a request target whose path segments or query parameters decode to something no route should see:
 * malformed percent-encoding, invalid UTF-8, NUL and other control characters (400 invalid_input_encoding).
 */
export function checkRequestTarget(url: string): void {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  // Without a '%' nothing decodes to anything else ('+' only becomes a space): one scan of each part suffices.
  if (!url.includes('%')) {
    if (CONTROL.test(path)) throw new EdgeRefusal(ApiErrorCode.InvalidInputEncoding, 'a path segment holds a control character');
    if (q >= 0 && CONTROL.test(url.slice(q + 1))) throw new EdgeRefusal(ApiErrorCode.InvalidInputEncoding, 'a query parameter holds a control character');
    return;
  }
  for (const segment of path.split('/')) {
    if (CONTROL.test(decodeStrict(segment, false))) {
      throw new EdgeRefusal(ApiErrorCode.InvalidInputEncoding, 'a path segment holds a control character');
    }
  }
  if (q < 0) return;
  for (const pair of url.slice(q + 1).split('&')) {
    const eq = pair.indexOf('=');
    const name = decodeStrict(eq < 0 ? pair : pair.slice(0, eq), true);
    const value = eq < 0 ? '' : decodeStrict(pair.slice(eq + 1), true);
    if (CONTROL.test(name) || CONTROL.test(value)) {
      throw new EdgeRefusal(ApiErrorCode.InvalidInputEncoding, 'a query parameter holds a control character');
    }
  }
}

interface Frame {
  value: unknown;
  depth: number;
  parent?: Frame;
  key?: string;
}

const pathOf = (f: Frame): string => {
  const keys: string[] = [];
  for (let x: Frame | undefined = f; x?.key !== undefined; x = x.parent) keys.push(x.key);
  // Only for the error detail; capped so a long hostile key is not echoed whole.
  return (keys.reverse().join('.') || 'body').slice(0, 200);
};

/**
 * Checks a parsed JSON value without recursion (a deep value cannot overflow the stack, and nothing is copied per
 * level): at most `maxDepth` nested objects/arrays (400 json_too_deep), no prototype-pollution keys (400
 * validation_failed), and every key and string storable text (400 invalid_input_encoding).
 */
export function checkJsonValue(root: unknown, maxDepth: number): void {
  const stack: Frame[] = [{ value: root, depth: 0 }];
  while (stack.length > 0) {
    const f = stack.pop() as Frame;
    const v = f.value;
    if (typeof v === 'string') {
      if (!isStorableText(v)) throw new EdgeRefusal(ApiErrorCode.InvalidInputEncoding, `${pathOf(f)}: NUL or a lone surrogate in a string`);
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    const depth = f.depth + 1;
    if (depth > maxDepth) throw new EdgeRefusal(ApiErrorCode.JsonTooDeep, `JSON nested deeper than ${maxDepth} levels`);
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], depth, parent: f, key: String(i) });
      continue;
    }
    for (const key of Object.keys(v)) {
      if (!isStorableText(key)) throw new EdgeRefusal(ApiErrorCode.InvalidInputEncoding, `${pathOf(f)}: NUL or a lone surrogate in a field name`);
      if (FORBIDDEN_KEYS.has(key)) throw new EdgeRefusal(ApiErrorCode.ValidationFailed, `forbidden field name at ${pathOf({ value: null, depth, parent: f, key })}`);
      stack.push({ value: (v as Record<string, unknown>)[key], depth, parent: f, key });
    }
  }
}

/** Bits of the headers a request may carry at most once (by name length first: one compare for most headers). */
function singleHeaderBit(name: string): number {
  switch (name.length) {
    case 4:
      return name.toLowerCase() === 'host' ? 1 : 0;
    case 12:
      return name.toLowerCase() === 'content-type' ? 2 : 0;
    case 13:
      return name.toLowerCase() === 'authorization' ? 4 : 0;
    case 15:
      return name.toLowerCase() === 'idempotency-key' ? 8 : 0;
    default:
      return 0;
  }
}

/**
 * Refuses a header section that parsers read differently (400 malformed_request): an HTTP/1.1 request without
 * Host (Node would answer a bare 400), and a second Host, Content-Type, Authorization or Idempotency-Key. Node keeps
 * the first of these and drops the rest; a proxy or WAF in front may have judged the last, so which token, type or
 * key counted would depend on who reads. Duplicate Content-Length and Transfer-Encoding are the parser's own refusals.
 */
export function checkHeaderSection(req: { httpVersionMajor: number; httpVersionMinor: number; headers: { host?: string }; rawHeaders: string[] }): void {
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && req.headers.host === undefined) {
    throw new EdgeRefusal(ApiErrorCode.MalformedRequest, 'an HTTP/1.1 request must carry a Host header');
  }
  const raw = req.rawHeaders;
  let seen = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const bit = singleHeaderBit(raw[i]);
    if (bit === 0) continue;
    if (seen & bit) throw new EdgeRefusal(ApiErrorCode.MalformedRequest, `the ${raw[i]} header must not be repeated`);
    seen |= bit;
  }
}

/** The routes that honour an Idempotency-Key (method and path exactly as routed; ADR 0012 addendum "idempotency, session 25"). */
export const IDEMPOTENT_ROUTES: ReadonlySet<string> = new Set(Object.values(IDEMPOTENT_ROUTE));

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Refuses an Idempotency-Key (present, even empty) on a state-changing request to any route but
 * {@link IDEMPOTENT_ROUTES} (400 idempotency_key_not_supported), before anything runs: such a route would ignore
 * the key, and a client retrying it in the belief that the key makes it exactly-once would sign a second firmware
 * or create a second operation. Safe methods repeat harmlessly and keep it.
 */
export function checkIdempotencyKeyRoute(method: string, url: string, headers: Record<string, string | string[] | undefined>): void {
  if (headers['idempotency-key'] === undefined || SAFE_METHODS.has(method)) return;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (!IDEMPOTENT_ROUTES.has(`${method} ${path}`)) {
    throw new EdgeRefusal(ApiErrorCode.IdempotencyKeyNotSupported, `${method} ${path} does not honour Idempotency-Key; only ${[...IDEMPOTENT_ROUTES].join(', ')} do`);
  }
}
