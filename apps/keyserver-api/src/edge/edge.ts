import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { getActor, getRefusedPrincipal, type Actor, type PrincipalGate } from '@keyserver/authz';
import { bodyCoding, clientKey, renderProblem, type RefusalObserver, type RenderedProblem } from '@keyserver/http-problems';
import type { AuditInput } from '@keyserver/data-access';
import { AuditRepository } from '@keyserver/data-access';
import type { Principal } from '@keyserver/entra-token';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PROBLEM_CONTENT_TYPE } from '@keyserver/errors';
import type { Logger } from 'pino';
import { API_CONFIG, LOGGER } from '../app/tokens';
import type { ApiConfig } from '../config/api-config';
import { ApiErrorCode, EdgeRefusal } from '../common/api-error';
import { checkHeaderSection, checkIdempotencyKeyRoute, checkRequestTarget } from './input-checks';
import { RefusalLimiter } from './rate-limiter';
import { RefusalAudit } from './refusal-audit';
import { LIVENESS_PATH, READINESS_PATH } from '../health/liveness';

/** Injection token of the one {@link EdgeServices} of an API process. */
export const EDGE = Symbol('KEYSERVER_EDGE');

/** Probes are answered whatever the caller's record (orchestrators poll them; they say nothing). */
const UNLIMITED_PATHS = new Set([LIVENESS_PATH, READINESS_PATH]);
const ANON_CHARGED = Symbol('keyserverAnonymousCharged');
const UNMET_EXPECTATION = Symbol('keyserverUnmetExpectation');

/**
 * The server's `checkExpectation` listener: Node emits it for an `Expect` other than 100-continue (in an HTTP/1.1
 * request) and would otherwise answer a bare 417. The request takes the usual path, marked, and {@link requestGuard}
 * refuses it as problem+json (request id, log line, metrics, rate limit and audit as any refusal at the edge).
 */
export function routeUnmetExpectation(server: { emit(event: 'request', req: IncomingMessage, res: ServerResponse): boolean }) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    (req as unknown as Record<symbol, boolean>)[UNMET_EXPECTATION] = true;
    server.emit('request', req, res);
  };
}

const AWAITING_BODY = Symbol('keyserverAwaitingBody');
type AwaitingBody = { res: ServerResponse; expectsContinue: boolean };

/** Marks a request whose body is not to be read yet: until {@link proceedToBody}, its answer closes the connection. */
function awaitBody(req: object, res: ServerResponse, expectsContinue: boolean): void {
  const marked = req as Record<symbol, AwaitingBody | undefined>;
  marked[AWAITING_BODY] = { res, expectsContinue: expectsContinue || marked[AWAITING_BODY]?.expectsContinue === true };
  // A final status before the body: the body is left unsent (the client waits for a 100) or unread, so the
  // connection cannot carry another request (RFC 9110 §10.1.1); Node then closes it once the answer is written.
  res.setHeader('connection', 'close');
}

/**
 * The server's `checkContinue` listener (a request with `Expect: 100-continue`): Node sends no `100 Continue` while
 * this listener exists, so the request takes the usual path, marked, and {@link proceedToBody} sends the 100 once
 * the request may go on to its body: every route in the server's `preParsing` hook, except a route that decides
 * first (the firmware route, after its checks: ADR 0011 addendum "refused before the image").
 */
export function deferContinue(server: { emit(event: 'request', req: IncomingMessage, res: ServerResponse): boolean }) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    awaitBody(req, res, true);
    server.emit('request', req, res);
  };
}

/**
 * A route that decides before it reads its body (CONTINUE_AFTER_CHECKS_ROUTES): any refusal until the handler calls
 * {@link proceedToBody}, the guard's 401/403 included, closes the connection instead of reading (discarding) a body
 * that may be gigabytes long.
 */
export function holdBody(req: IncomingMessage, res: ServerResponse): void {
  awaitBody(req, res, false);
}

/**
 * The request may send and have its body read now: the `100 Continue` its `Expect` waits for, and the connection kept
 * as usual. Nothing for a request not marked ({@link deferContinue}, {@link holdBody}); once.
 */
export function proceedToBody(req: object): void {
  const marked = req as Record<symbol, AwaitingBody | undefined>;
  const waiting = marked[AWAITING_BODY];
  if (!waiting) return;
  marked[AWAITING_BODY] = undefined;
  const { res, expectsContinue } = waiting;
  if (res.headersSent || res.writableEnded) return;
  res.removeHeader('connection');
  if (expectsContinue) res.writeContinue();
}

/** Statuses that charge a caller's bucket: refusals, except conflicts (normal under concurrency) and 429 itself. */
const chargeable = (status: number): boolean => status >= 400 && status < 500 && status !== 409 && status !== 429;

/** The caller's address as the socket sees it (`trust proxy` is off: X-Forwarded-For is never believed). */
export const remoteIp = (req: IncomingMessage): string => req.socket?.remoteAddress ?? 'unknown';
/**
 * The caller keys of the rate limits and of the bounded refusal audit: the one definition of each format (every place
 * that keys by caller imports these, so that one caller is one key wherever it is counted).
 * An authenticated caller (a valid token) is its principal.
 */
export const principalKey = (tid: string, oid: string): string => `principal:${tid}/${oid}`;
/**
 * The key of a caller without a valid token, from its address: its {@link clientKey}, the connection gate's notion of
 * one client (an IPv6 caller per /64), so that rotating addresses inside a /64 escapes neither the rate limit nor the
 * aggregation.
 */
export const addressKey = (address: string | undefined): string => `ip:${clientKey(address)}`;
/** {@link addressKey} of the request's socket address. */
export const ipKey = (req: IncomingMessage): string => addressKey(remoteIp(req));
/** The path for audit details: never the query (it may hold credentials), capped. */
const auditPath = (req: IncomingMessage & { originalUrl?: string }): string => (req.originalUrl ?? req.url ?? '').split('?')[0].slice(0, 256);

/** True for body-parser / raw-body / http-errors client errors (they are raised at the edge). */
function isParserError(e: unknown): boolean {
  if (typeof e !== 'object' || e === null || e instanceof EdgeRefusal) return false;
  const r = e as Record<string, unknown>;
  return typeof r['status'] === 'number' && r['status'] >= 400 && r['status'] < 500 && (typeof r['type'] === 'string' || r['expose'] === true);
}

/**
 * True when the request matched no route (Fastify's not-found handler answers it: `request.is404`). Nothing ran for it,
 * no guard and no service, so nothing else would audit it; a 404 a handler raises is the handler's to audit.
 */
function matchedNoRoute(req: IncomingMessage): boolean {
  return (req as IncomingMessage & { is404?: unknown }).is404 === true;
}

/**
 * The per-process limits and bounded audit of refusals (docs/adr/0011-edge-refusals-and-rate-limits.md): token
 * buckets per client (`clientKey`: an IPv4 address or an IPv6 /64; unauthenticated and failing callers) and per
 * principal (failing authenticated callers), and the aggregating refusal audit every refusal path writes through.
 */
export class EdgeServices implements OnModuleInit, OnApplicationShutdown {
  readonly limiter: RefusalLimiter;
  readonly refusals: RefusalAudit;

  constructor(config: ApiConfig, audit: AuditRepository, logger: Logger) {
    const c = config.edge;
    this.limiter = new RefusalLimiter({ burst: c.rateBurst, perMinute: c.ratePerMinute, maxTracked: c.rateMaxTracked });
    this.refusals = new RefusalAudit((input) => audit.append(input), { windowMs: c.auditWindowMs, perKey: c.auditPerKey, perWindow: c.auditPerWindow, maxKeys: c.rateMaxTracked }, logger);
  }

  onModuleInit(): void {
    this.refusals.start();
  }

  /** Writes the counted refusals before the database pool closes. */
  async onApplicationShutdown(): Promise<void> {
    await this.refusals.stop();
  }

  /** A request without credentials spends a token of its IP's bucket at the door; over the limit it is a 429. */
  admitAnonymous(req: IncomingMessage & { originalUrl?: string }): void {
    if (req.headers['authorization'] !== undefined) return;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    if (UNLIMITED_PATHS.has(q < 0 ? url : url.slice(0, q))) return;
    (req as unknown as Record<symbol, boolean>)[ANON_CHARGED] = true;
    const t = this.limiter.take(ipKey(req));
    if (!t.ok) throw rateLimited(t.retryAfterSeconds);
  }

  /** Audits a refusal at the edge (bounded: identical refusals of one caller are aggregated). */
  auditEdgeRefusal(req: IncomingMessage & { originalUrl?: string; id?: unknown }, code: string, status: number, principal?: Pick<Principal, 'tid' | 'oid' | 'azp'>): Promise<void> {
    const ip = remoteIp(req);
    const input: AuditInput = {
      action: 'request.refused',
      outcome: 'DENIED',
      errorCode: code,
      actorTid: principal?.tid ?? null,
      actorOid: principal?.oid ?? null,
      actorClient: principal?.azp ?? null,
      requestId: typeof req.id === 'string' ? req.id : null,
      details: { method: (req.method ?? '').slice(0, 16), path: auditPath(req), status, ip },
    };
    return this.refusals.record(`request.refused|${code}|${principal ? principalKey(principal.tid, principal.oid) : ipKey(req)}`, input);
  }

  /** Charges a refusal to its caller: the principal when the token was valid, else the IP (once per request). */
  chargeRefusal(req: IncomingMessage, status: number, principal?: Pick<Principal, 'tid' | 'oid'>): { ok: boolean; retryAfterSeconds: number } {
    if (!chargeable(status)) return { ok: true, retryAfterSeconds: 0 };
    if (principal) return this.limiter.take(principalKey(principal.tid, principal.oid));
    if ((req as unknown as Record<symbol, boolean>)[ANON_CHARGED]) return { ok: true, retryAfterSeconds: 0 };
    return this.limiter.take(ipKey(req));
  }

  /**
   * What every 4xx goes through (the problem filter's observer, and {@link requestGuard}): charges the caller's
   * bucket, answers the refusal of a caller already over its limit with 429 + Retry-After instead (what was refused
   * stays refused and audited; an authenticated principal's next requests get 429 from PrincipalLimitGate
   * before they run), and audits refusals raised at the edge and requests that matched no route, which nothing else
   * would audit.
   */
  observe(req: IncomingMessage, exception: unknown, problem: RenderedProblem): RenderedProblem | undefined {
    const principal = getActor(req)?.principal ?? getRefusedPrincipal(req);
    const charged = this.chargeRefusal(req, problem.status, principal);
    let out: RenderedProblem | undefined;
    // A path no route matches (`//`, `..`, a typo, a scanner's guesses) is audited like a refusal at the edge, keyed
    // by address (no guard ran: a token it carried was never checked, so nothing of it is recorded), ADR 0011 addendum.
    let auditable = exception instanceof EdgeRefusal || isParserError(exception) || matchedNoRoute(req);
    if (!charged.ok) {
      out = renderProblem(rateLimited(charged.retryAfterSeconds));
      auditable = true;
    }
    if (auditable) {
      const shown = out ?? problem;
      void this.auditEdgeRefusal(req, shown.body.code, shown.status, principal);
    }
    return out;
  }

  /** Renders, observes and sends a refusal outside Nest's exception filters (see {@link requestGuard}). */
  sendRefusal(req: FastifyRequest, reply: FastifyReply, exception: unknown): void {
    const rendered = renderProblem(exception);
    const final = (rendered.status < 500 ? this.observe(req as unknown as IncomingMessage, exception, rendered) : undefined) ?? rendered;
    const payload = JSON.stringify(final.body);
    reply.code(final.status).headers(final.headers).header('content-type', `${PROBLEM_CONTENT_TYPE}; charset=utf-8`);
    // The body (if any) is not read: close the connection rather than parse what follows; and after a malformed
    // header section nothing that follows on the connection can be trusted to be framed as the client meant.
    const malformed = exception instanceof EdgeRefusal && exception.code === ApiErrorCode.MalformedRequest;
    if (malformed || req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) reply.header('connection', 'close');
    void reply.send(payload);
  }

  /** Whether an authenticated principal is over its limit of refusals. */
  principalAllowed(principal: Pick<Principal, 'tid' | 'oid'>) {
    return this.limiter.peek(principalKey(principal.tid, principal.oid));
  }
}

function rateLimited(retryAfterSeconds: number): EdgeRefusal {
  const e = new EdgeRefusal(ApiErrorCode.RateLimited, 'too many refused requests; retry later');
  e.retryAfterSeconds = retryAfterSeconds;
  return e;
}

/**
 * First check of every request, in the server's request hook (before the body is read and before Nest): refuses
 * an unmet `Expect` (417, see {@link routeUnmetExpectation}), a header section parsers could read differently (no
 * Host, a repeated Host/Authorization/Content-Type/Idempotency-Key: 400 malformed_request), compressed bodies and
 * transfer codings other than chunked (415: nothing here inflates, so no
 * zip bomb and no corrupt stream reaches a parser), request targets that decode to control characters or invalid
 * UTF-8 (400 invalid_input_encoding), an Idempotency-Key on a state-changing route that does not honour it (400
 * idempotency_key_not_supported) and anonymous callers over their limit (429). Returns false when it answered
 * the request with a refusal.
 */
export function requestGuard(edge: EdgeServices, request: FastifyRequest, reply: FastifyReply): boolean {
  try {
    if ((request.raw as unknown as Record<symbol, boolean>)[UNMET_EXPECTATION]) {
      throw new EdgeRefusal(ApiErrorCode.ExpectationFailed, 'no expectation other than 100-continue can be met');
    }
    checkHeaderSection(request.raw);
    const coding = bodyCoding(request.headers);
    if (coding === 'content-encoding') throw new EdgeRefusal(ApiErrorCode.UnsupportedContentEncoding, 'request bodies must not carry a Content-Encoding');
    if (coding === 'transfer-encoding') throw new EdgeRefusal(ApiErrorCode.UnsupportedContentEncoding, 'request bodies must not carry a transfer coding other than chunked');
    // The Fastify request, not the raw one: the charge is remembered on the object the problem filter sees.
    edge.admitAnonymous(request as unknown as IncomingMessage);
    checkRequestTarget(request.raw.url ?? '');
    checkIdempotencyKeyRoute(request.raw.method ?? '', request.raw.url ?? '', request.raw.headers);
  } catch (e) {
    edge.sendRefusal(request, reply, e);
    return false;
  }
  return true;
}

/**
 * A request routed after SIGTERM began the bounded shutdown (its header section was still arriving then): answered
 * `503 shutting_down` with `Connection: close` before anything runs, its body (if any) unread. Nothing was done, so a
 * client may retry any method elsewhere; not charged nor audited (the server's doing, not the caller's).
 */
export function refuseWhileShuttingDown(edge: EdgeServices, request: FastifyRequest, reply: FastifyReply): void {
  reply.header('connection', 'close');
  edge.sendRefusal(request, reply, new EdgeRefusal(ApiErrorCode.ShuttingDown, 'the server is shutting down; send the request again'));
}

/** After authentication (the guard's {@link PrincipalGate}): a principal over its limit of refusals gets 429 until its bucket refills. */
@Injectable()
export class PrincipalLimitGate implements PrincipalGate {
  constructor(@Inject(EDGE) private readonly edge: EdgeServices) {}

  admit(actor: Actor): void {
    const t = this.edge.principalAllowed(actor.principal);
    if (!t.ok) throw rateLimited(t.retryAfterSeconds);
  }
}

/** The problem filter's {@link RefusalObserver}: {@link EdgeServices.observe}. */
@Injectable()
export class EdgeRefusalObserver implements RefusalObserver {
  constructor(@Inject(EDGE) private readonly edge: EdgeServices) {}

  observe(req: IncomingMessage, exception: unknown, problem: RenderedProblem): RenderedProblem | undefined {
    return this.edge.observe(req, exception, problem);
  }
}

/** Nest providers of the edge (the EdgeServices instance is built once per process from the deps). */
export const edgeProviders = [
  { provide: EDGE, useFactory: (c: ApiConfig, audit: AuditRepository, logger: Logger) => new EdgeServices(c, audit, logger), inject: [API_CONFIG, AuditRepository, LOGGER] },
];
