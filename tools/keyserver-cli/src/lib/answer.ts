import { isDeadlineError } from './deadline';
import { CliError, Exit } from './errors';

/**
 * How much of an answer ksctl reads. The largest JSON answer the API gives is a page of a list or a key with its chain
 * (well under 1 MiB); 16 MiB leaves room and still keeps a hostile or broken server from filling ksctl's memory.
 * Problem bodies and token endpoint answers are small by nature. The audit export and a CMS signature are streamed to
 * a file and not bounded here.
 */
export const MAX_ANSWER_BYTES = 16 << 20;
export const MAX_PROBLEM_BYTES = 64 << 10;
/** A problem `detail` is cut to this many characters before it reaches a terminal or a CI log. */
export const MAX_DETAIL_CHARS = 500;

/** A problem code as the API writes them (`usage_exhausted`): anything else is not taken as a code. */
const PROBLEM_CODE = /^[a-z][a-z0-9_]{0,79}$/;

/**
 * The deepest nesting a JSON answer may have: the API's answers are a few levels deep; a million `[` fit in 16 MiB and
 * JSON.parse takes them, but printing them (JSON.stringify, the table) overflows the stack.
 */
export const MAX_ANSWER_DEPTH = 64;

/** Whether `text` (JSON) nests deeper than `max` arrays and objects, counted outside strings, without parsing it. */
export function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b || ch === 0x7b) {
      if (++depth > max) return true;
    } else if (ch === 0x5d || ch === 0x7d) depth--;
  }
  return false;
}

/** JSON media types: `application/json`, `application/problem+json` and other `+json`. */
const JSON_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json\s*(?:;|$)/i;

/**
 * The body of `r`, at most `max` bytes: a Content-Length above it is refused before a byte is read, and a body that
 * grows past it is cancelled (the connection closes) the moment it does.
 * @throws CliError(answer_too_large, exit 1)
 */
export async function boundedBody(r: Response, max: number): Promise<Buffer> {
  const tooLarge = () => new CliError(`the Keyserver's answer exceeds ${max} bytes: not read`, Exit.Failure, 'answer_too_large', r.status);
  const declared = Number(r.headers.get('content-length') ?? NaN);
  if (declared > max) {
    await r.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (!r.body) return Buffer.alloc(0);
  const reader = r.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > max) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/**
 * A successful answer's JSON: only a JSON media type is parsed (a proxy's or portal's HTML page holding valid JSON is
 * not the API), an empty body is `undefined` (204).
 * @throws CliError(unexpected_answer | answer_too_large, exit 1)
 */
export async function jsonAnswer(r: Response, what: string): Promise<unknown> {
  const body = await boundedBody(r, MAX_ANSWER_BYTES);
  if (body.length === 0) return undefined;
  if (!JSON_TYPE.test(r.headers.get('content-type') ?? '')) {
    throw new CliError(`${what}: the answer is not JSON (content type ${r.headers.get('content-type') ?? 'none'})`, Exit.Failure, 'unexpected_answer', r.status);
  }
  const text = body.toString('utf8');
  if (nestsDeeperThan(text, MAX_ANSWER_DEPTH)) throw new CliError(`${what}: the answer nests deeper than ${MAX_ANSWER_DEPTH} levels`, Exit.Failure, 'unexpected_answer', r.status);
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`${what}: the answer is not valid JSON`, Exit.Failure, 'unexpected_answer', r.status);
  }
}

/** What ksctl takes from a failure's problem body: a code of the API's shape and a short detail, else nothing. */
export interface ProblemSummary {
  code?: string;
  detail?: string;
}

/**
 * The problem body of a failed answer, read up to {@link MAX_PROBLEM_BYTES} (a larger one is dropped, its status
 * still counts): `code` only when it has the API's shape, `detail` only a string, cut to {@link MAX_DETAIL_CHARS}.
 */
export async function problemOf(r: Response): Promise<ProblemSummary> {
  let parsed: unknown;
  try {
    const body = await boundedBody(r, MAX_PROBLEM_BYTES);
    parsed = JSON_TYPE.test(r.headers.get('content-type') ?? '') ? JSON.parse(body.toString('utf8')) : undefined;
  } catch (err) {
    if (isDeadlineError(err)) throw err; // the deadline passed while the body came: that is the failure
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null) return {};
  const p = parsed as Record<string, unknown>;
  const code = typeof p['code'] === 'string' && PROBLEM_CODE.test(p['code']) ? p['code'] : undefined;
  const detail = typeof p['detail'] === 'string' ? (p['detail'].length > MAX_DETAIL_CHARS ? `${p['detail'].slice(0, MAX_DETAIL_CHARS)}…` : p['detail']) : undefined;
  return { ...(code ? { code } : {}), ...(detail ? { detail } : {}) };
}

/**
 * The JSON object of a token endpoint's (or the pipeline's OIDC endpoint's) answer, whatever its status, read up to
 * {@link MAX_PROBLEM_BYTES}; `{}` for anything else (the caller refuses a missing token).
 */
export async function smallJsonObject(r: Response): Promise<Record<string, unknown>> {
  try {
    const parsed: unknown = JSON.parse((await boundedBody(r, MAX_PROBLEM_BYTES)).toString('utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch (err) {
    if (isDeadlineError(err)) throw err; // a trickling identity provider is a passed deadline, not a refused login
    return {};
  }
}

const HEX = /^(?:[0-9a-fA-F]{2})+$/;
/** One PEM block of `label`, nothing before or after it but whitespace. */
const pemBlock = (label: string) => new RegExp(`^\\s*-----BEGIN ${label}-----\\r?\\n[A-Za-z0-9+/=\\r\\n]+-----END ${label}-----\\s*$`);

/**
 * A value of an answer ksctl writes to a file, checked for its shape first: a signature that is not hex, or a
 * certificate that is not one PEM certificate, would be written as an empty or garbage file with exit 0.
 * @throws CliError(unexpected_answer, exit 1)
 */
export const answerShape = {
  hex(value: unknown, what: string): Buffer {
    if (typeof value !== 'string' || !HEX.test(value)) throw new CliError(`the Keyserver's ${what} is not hex`, Exit.Failure, 'unexpected_answer');
    return Buffer.from(value, 'hex');
  },
  pem(value: unknown, what: string, label = 'CERTIFICATE'): string {
    if (typeof value !== 'string' || !pemBlock(label).test(value)) throw new CliError(`the Keyserver's ${what} is not one PEM ${label}`, Exit.Failure, 'unexpected_answer');
    return value;
  },
  pemList(value: unknown, what: string): string[] {
    if (!Array.isArray(value)) throw new CliError(`the Keyserver's ${what} is not a list of PEM certificates`, Exit.Failure, 'unexpected_answer');
    return value.map((v) => answerShape.pem(v, what));
  },
};
