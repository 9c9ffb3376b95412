import { EntraMetadataError, EntraMetadataErrorCode } from './errors';

/** The subset of `fetch` this library uses (injectable for tests). */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

const LOOPBACK_V4 = /^127(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === 'localhost' || h === '[::1]' || h === '::1' || LOOPBACK_V4.test(h);
}

/** Parses a URL that must be https (or http on a loopback host when allowed). */
export function parseTrustedUrl(
  raw: string,
  allowInsecureLoopback: boolean,
  invalidCode: EntraMetadataErrorCode,
  what: string,
): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new EntraMetadataError(invalidCode, `${what} is not a URL`);
  }
  if (url.username || url.password) {
    throw new EntraMetadataError(invalidCode, `${what} must not carry credentials`);
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && allowInsecureLoopback && isLoopbackHost(url.hostname)) return url;
  throw new EntraMetadataError('metadata_insecure_url', `${what} must use https (plain http only for loopback hosts when allowed)`);
}

/** GETs a JSON document with a timeout, no redirects and a size cap. */
export async function fetchJson(
  fetchFn: FetchLike,
  url: string,
  timeoutMs: number,
  maxBytes: number,
  codes: { unreachable: EntraMetadataErrorCode; invalid: EntraMetadataErrorCode },
): Promise<unknown> {
  let res: Response;
  try {
    res = await fetchFn(url, {
      method: 'GET',
      headers: { accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (cause) {
    throw new EntraMetadataError(codes.unreachable, `GET ${url} failed`, { cause });
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw new EntraMetadataError(codes.unreachable, `GET ${url} answered ${res.status}`);
  }
  let text: string;
  try {
    const buf = await res.arrayBuffer();
    if (buf.byteLength > maxBytes) throw new EntraMetadataError(codes.invalid, `${url} is larger than ${maxBytes} bytes`);
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch (cause) {
    if (cause instanceof EntraMetadataError) throw cause;
    throw new EntraMetadataError(codes.unreachable, `reading ${url} failed`, { cause });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new EntraMetadataError(codes.invalid, `${url} is not JSON`, { cause });
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
