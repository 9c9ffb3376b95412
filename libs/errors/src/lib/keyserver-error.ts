/**
 * Base class of every error the Keyserver turns into an RFC 9457 problem+json response.
 * Each module defines its own subclass with a code enum and maps each code to an HTTP status once.
 */
export abstract class KeyserverError<C extends string = string> extends Error {
  /** Stable, machine-readable error code (snake_case), part of the API contract. */
  readonly code: C;
  /** HTTP status the code maps to. */
  abstract readonly status: number;
  /** Safe, human-readable detail for the problem body. Never include secrets or token contents. */
  readonly detail?: string;

  constructor(code: C, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${code}: ${detail}` : code, options);
    this.name = new.target.name;
    this.code = code;
    this.detail = detail;
  }
}

/**
 * The one shape of a module's error class: `export class XError extends errorClass(STATUS) {}`, where STATUS maps
 * every code of the module's enum to its HTTP status (once). The class name is the subclass's own.
 */
export function errorClass<C extends string>(status: Readonly<Record<C, number>>) {
  class CodedError extends KeyserverError<C> {
    get status(): number {
      return status[this.code];
    }
  }
  return CodedError;
}

/** RFC 9457 problem details as the Keyserver emits them. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  instance?: string;
  requestId?: string;
  [extension: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** Builds the problem body for an error code; the type URI is stable per code. */
export function problemFor(
  status: number,
  code: string,
  title: string,
  detail?: string,
  extra?: Record<string, unknown>,
): ProblemDetails {
  return {
    type: `https://keyserver.dev/problems/${code}`,
    title,
    status,
    code,
    ...(detail ? { detail } : {}),
    ...extra,
  };
}

/**
 * A whole HTTP/1.1 problem+json response as raw bytes, for a socket whose request Node's parser refused (no
 * response object exists then). The connection is closed after it: the request's framing cannot be trusted.
 */
export function rawProblemResponse(status: number, code: string, title: string): string {
  const payload = JSON.stringify(problemFor(status, code, title));
  return (
    `HTTP/1.1 ${status} ${title}\r\n` +
    `content-type: ${PROBLEM_CONTENT_TYPE}; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(payload)}\r\n` +
    'cache-control: no-store\r\nconnection: close\r\n\r\n' +
    payload
  );
}
