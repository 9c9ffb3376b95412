import { HttpErrorResponse } from '@angular/common/http';
import { PROBLEM_MESSAGES } from './problem-messages';

/** An RFC 9457 problem as the SPA shows it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  requestId?: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** Any thrown value (usually an HttpErrorResponse) as a Problem with a stable code. */
export function toProblem(err: unknown): Problem {
  if (err instanceof HttpErrorResponse) {
    const body: unknown = typeof err.error === 'string' ? safeParse(err.error) : err.error;
    if (isRecord(body) && typeof body['code'] === 'string') {
      return {
        type: typeof body['type'] === 'string' ? body['type'] : 'about:blank',
        title: typeof body['title'] === 'string' ? body['title'] : err.statusText,
        status: typeof body['status'] === 'number' ? body['status'] : err.status,
        code: body['code'],
        detail: typeof body['detail'] === 'string' ? body['detail'] : undefined,
        requestId: typeof body['requestId'] === 'string' ? body['requestId'] : (err.headers?.get('x-request-id') ?? undefined),
      };
    }
    if (err.status === 0) return { type: 'about:blank', title: 'Network error', status: 0, code: 'network_error' };
    return {
      type: 'about:blank',
      title: err.statusText || 'Error',
      status: err.status,
      code: err.status === 401 ? 'unauthenticated' : err.status === 403 ? 'forbidden' : err.status === 404 ? 'not_found' : 'internal_error',
      requestId: err.headers?.get('x-request-id') ?? undefined,
    };
  }
  return { type: 'about:blank', title: 'Error', status: 0, code: 'internal_error', detail: err instanceof Error ? err.message : undefined };
}

function safeParse(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

/** Plain words for a problem: the table entry for its code, else its title. */
export function problemMessage(p: Problem): string {
  return PROBLEM_MESSAGES[p.code] ?? p.title;
}
