import { SetMetadata } from '@nestjs/common';
import { METHOD_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import type { INestApplication } from '@nestjs/common';
import { AUTHZ_ERROR_CODES, AuthzError, PUBLIC_ROUTE_KEY } from '@keyserver/authz';
import { BODY_ERROR_CODES, INVALID_TOKEN_PROBLEM } from '@keyserver/http-problems';
import { DataAccessError, DataAccessErrorCode } from '@keyserver/data-access';
import { KeyserverError, PROBLEM_CONTENT_TYPE } from '@keyserver/errors';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { BootstrapError, BootstrapErrorCode } from '../bootstrap/bootstrap-error';
import { adminSessionHeaderValue } from '../admin-sessions/admin-request';
import { AdminSessionError, AdminSessionErrorCode } from '../admin-sessions/admin-session-error';
import { IDEMPOTENT_ROUTES } from '../edge/input-checks';

/** Codes of one error class with the status each maps to (taken from the class itself, never copied). */
export interface ProblemSource {
  readonly codes: readonly { code: string; status: number }[];
}

type ErrorClass<C extends string> = new (code: C) => KeyserverError<C>;

/**
 * The codes of an error class, each with its HTTP status as the class maps it. `codes` is the class's
 * code enum (an enum object, a `{code: code}` const or a const array); a subset narrows it.
 */
export function problemSource<C extends string>(errorClass: ErrorClass<C>, codes: readonly C[] | Record<string, C>): ProblemSource {
  const list = Array.isArray(codes) ? (codes as readonly C[]) : Object.values(codes as Record<string, C>);
  return { codes: list.map((code) => ({ code, status: new errorClass(code).status })) };
}

export const API_PROBLEMS_KEY = 'keyserver:api-problems';

/**
 * Route metadata (on a controller or a handler): the error classes whose codes its routes can answer
 * with. The generic codes every route can give (token, permission, validation, body, availability) are
 * added by {@link documentProblems} from the route's shape; this lists the domain ones.
 */
export const ApiProblems = (...sources: ProblemSource[]) => SetMetadata(API_PROBLEMS_KEY, sources);

/**
 * The data layer's codes a request can meet: not the migrator's (a run at boot, never in a response), and not
 * `idempotency_key_reused`, which only the routes that honour Idempotency-Key can answer ({@link IDEMPOTENT_ROUTE_PROBLEMS}).
 */
export const DATA_ACCESS_PROBLEMS = problemSource(
  DataAccessError,
  Object.values(DataAccessErrorCode).filter(
    (c) => c !== DataAccessErrorCode.migration_failed && c !== DataAccessErrorCode.migration_checksum_mismatch && c !== DataAccessErrorCode.idempotency_key_reused,
  ),
);

const code = (c: string, status: number) => ({ code: c, status });

/** Any route: the request id / query / path validation and availability codes. */
const ANY_ROUTE: ProblemSource[] = [
  problemSource(ApiError, [ApiErrorCode.ValidationFailed, ApiErrorCode.InvalidInputEncoding, ApiErrorCode.ServiceUnavailable, ApiErrorCode.ShuttingDown]),
  // The HTTP edge, before any route runs (ADR 0011): encodings, the parser's refusals, an unmet Expect, a slow sender, the rate limit.
  problemSource(ApiError, [ApiErrorCode.UnsupportedContentEncoding, ApiErrorCode.MalformedRequest, ApiErrorCode.HeaderTooLarge, ApiErrorCode.ExpectationFailed, ApiErrorCode.RequestTimeout, ApiErrorCode.RateLimited]),
  // What the problem filter answers for anything else (an unexpected failure never leaks its message).
  { codes: [code('internal_error', 500)] },
];

/** The status body-parser (http-errors) gives each of its error types; the problem filter keeps it. */
const BODY_PARSER_STATUS: Record<string, number> = {
  'entity.too.large': 413,
  'parameters.too.many': 413,
  'encoding.unsupported': 415,
  'charset.unsupported': 415,
};

/**
 * Methods whose requests the HTTP edge parses a body of, whether or not the route declares one (an action such as
 * `POST …/approvals` takes `{}`): a body sent there meets the body parser's refusals.
 */
const BODY_METHODS = new Set(['post', 'put', 'patch', 'delete']);

/** A route with a request body: the body parser's and the media-type checks' codes. */
const BODY_ROUTE: ProblemSource[] = [
  problemSource(ApiError, [ApiErrorCode.MalformedJson, ApiErrorCode.PayloadTooLarge, ApiErrorCode.UnsupportedMediaType, ApiErrorCode.JsonTooDeep]),
  { codes: Object.entries(BODY_ERROR_CODES).map(([type, c]) => code(c, BODY_PARSER_STATUS[type] ?? 400)) },
  // Nest's own JSON syntax error, renamed by the problem filter.
  { codes: [code('invalid_json', 400)] },
];

/** A route that needs a token: one 401 body whatever the reason, and the guard's 403 codes. */
const SECURED_ROUTE: ProblemSource[] = [
  { codes: [code(INVALID_TOKEN_PROBLEM.code, 401)] },
  { codes: problemSource(AuthzError, AUTHZ_ERROR_CODES).codes.filter((c) => c.status === 403) },
  // An installation without its first administrators answers every /api route so (keyserver-api bootstrap).
  problemSource(BootstrapError, [BootstrapErrorCode.NotBootstrapped]),
];

/** A route that takes X-Admin-Session: the four-eyes gate's refusals (AdminSessionGate). */
export const ADMIN_SESSION_PROBLEMS = problemSource(AdminSessionError, [AdminSessionErrorCode.AdminSessionRequired, AdminSessionErrorCode.AdminSessionNotParticipant]);

export interface RouteFacts {
  isPublic: boolean;
  sources: ProblemSource[];
}

/** Whether a handler takes the X-Admin-Session header (an `@AdminSessionHeader()` parameter). */
function takesAdminSession(ctrl: object, name: string): boolean {
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, ctrl, name) ?? {}) as Record<string, { factory?: unknown }>;
  return Object.values(args).some((a) => a.factory === adminSessionHeaderValue);
}

/** Route facts keyed by the document's default operationId (`Controller_handler`). */
function routeFacts(app: INestApplication): Map<string, RouteFacts> {
  const discovery = app.get(DiscoveryService, { strict: false });
  const scanner = app.get(MetadataScanner, { strict: false });
  const reflector = app.get(Reflector, { strict: false });
  const out = new Map<string, RouteFacts>();
  for (const wrapper of discovery.getControllers()) {
    const ctrl = wrapper.metatype as (new (...a: never[]) => unknown) | undefined;
    if (!ctrl || !wrapper.instance) continue;
    const proto = Object.getPrototypeOf(wrapper.instance) as Record<string, unknown>;
    for (const name of scanner.getAllMethodNames(proto)) {
      const handler = proto[name] as (...args: unknown[]) => unknown;
      if (Reflect.getMetadata(METHOD_METADATA, handler) === undefined) continue;
      out.set(`${ctrl.name}_${name}`, {
        isPublic: reflector.getAllAndOverride<boolean | undefined>(PUBLIC_ROUTE_KEY, [handler, ctrl]) === true,
        sources: [
          ...(reflector.get<ProblemSource[] | undefined>(API_PROBLEMS_KEY, ctrl) ?? []),
          ...(reflector.get<ProblemSource[] | undefined>(API_PROBLEMS_KEY, handler) ?? []),
          ...(takesAdminSession(ctrl, name) ? [ADMIN_SESSION_PROBLEMS] : []),
        ],
      });
    }
  }
  return out;
}

interface Operation {
  operationId?: string;
  requestBody?: unknown;
  security?: unknown[];
  responses: Record<string, { description: string; content?: unknown }>;
}

/**
 * A route with path parameters: a value the router cannot match (too long for a parameter, a malformed escape)
 * leaves the request on no route, answered 404 `not_found`.
 */
const PATH_PARAM_ROUTE: ProblemSource[] = [problemSource(ApiError, [ApiErrorCode.NotFound])];

/** A state-changing route that does not honour Idempotency-Key: the edge refuses the header (ADR 0012 addendum "idempotency, session 25"). */
const NO_IDEMPOTENCY_ROUTE: ProblemSource[] = [problemSource(ApiError, [ApiErrorCode.IdempotencyKeyNotSupported])];

/** A route that honours Idempotency-Key: the key first used with another request. */
const IDEMPOTENT_ROUTE_PROBLEMS: ProblemSource[] = [problemSource(DataAccessError, [DataAccessErrorCode.idempotency_key_reused])];

/** What a route does with an Idempotency-Key: refuses it (a state-changing route), honours it, or has no body (none). */
export type IdempotencyKeyUse = 'refused' | 'honoured' | 'none';

/** The codes a route can answer with, grouped by status (sorted, without duplicates). */
export function problemCodes(facts: RouteFacts, hasBody: boolean, hasPathParams = false, idempotencyKey: IdempotencyKeyUse = 'none'): Map<number, string[]> {
  const sources = [
    ...ANY_ROUTE,
    ...(hasBody ? BODY_ROUTE : []),
    ...(hasPathParams ? PATH_PARAM_ROUTE : []),
    ...(idempotencyKey === 'refused' ? NO_IDEMPOTENCY_ROUTE : idempotencyKey === 'honoured' ? IDEMPOTENT_ROUTE_PROBLEMS : []),
    ...(facts.isPublic ? [] : SECURED_ROUTE),
    ...facts.sources,
  ];
  const byStatus = new Map<number, Set<string>>();
  for (const s of sources) {
    for (const c of s.codes) {
      // A 401 is always the one invalid_token body (the reason goes to the logs only).
      const status = c.status;
      const codeShown = status === 401 ? INVALID_TOKEN_PROBLEM.code : c.code;
      if (status === 401 && facts.isPublic) continue;
      if (!byStatus.has(status)) byStatus.set(status, new Set());
      byStatus.get(status)?.add(codeShown);
    }
  }
  return new Map([...byStatus.entries()].sort(([a], [b]) => a - b).map(([s, set]) => [s, [...set].sort()]));
}

const REASON: Record<number, string> = {
  400: 'Bad request',
  401: 'Missing or invalid access token (always the same body; `WWW-Authenticate: Bearer error="invalid_token"`)',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict with the current state',
  413: 'Payload too large',
  415: 'Unsupported media type',
  422: 'Unprocessable: the Idempotency-Key was first used with a different request (never retry it unchanged)',
  429: 'Too many requests',
  500: 'Internal error (no detail)',
  502: 'Bad gateway (the HSM failed)',
  503: 'Unavailable, retry later (`Retry-After`)',
};

/**
 * Adds to every operation its problem responses (RFC 9457, `application/problem+json`, the `Problem`
 * schema with the route's `code` values as an enum) and gives public routes `security: []`.
 */
export function documentProblems(app: INestApplication, doc: { paths: Record<string, Record<string, Operation>> }): void {
  const facts = routeFacts(app);
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const f = (op.operationId && facts.get(op.operationId)) || { isPublic: false, sources: [] };
      if (f.isPublic) op.security = [];
      const keyUse: IdempotencyKeyUse = IDEMPOTENT_ROUTES.has(`${method.toUpperCase()} ${path}`) ? 'honoured' : BODY_METHODS.has(method) ? 'refused' : 'none';
      for (const [status, codes] of problemCodes(f, op.requestBody !== undefined || BODY_METHODS.has(method), path.includes('{'), keyUse)) {
        op.responses[String(status)] = {
          description: `${REASON[status] ?? 'Error'}. \`code\`: ${codes.map((c) => `\`${c}\``).join(', ')}.`,
          content: {
            [PROBLEM_CONTENT_TYPE]: {
              schema: { allOf: [{ $ref: '#/components/schemas/Problem' }, { type: 'object', properties: { code: { type: 'string', enum: codes } } }] },
            },
          },
        };
      }
    }
  }
}
