import type { AddressInfo } from 'node:net';
import { request as httpRequest } from 'node:http';
import { Controller, Get, Module, NotFoundException, Param, type INestApplication } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import pino from 'pino';
import type { AuditInput, AuditRepository } from '@keyserver/data-access';
import { ProblemDetailsFilter, REFUSAL_OBSERVER } from '@keyserver/http-problems';
import type { ApiConfig } from '../config/api-config';
import { EDGE, EdgeRefusalObserver, EdgeServices } from './edge';
import { ApiHttpAdapter } from './http-server';
import { REFUSALS_AGGREGATED_ACTION } from './refusal-audit';

@Controller('api/v1/things')
class ThingsController {
  @Get(':id')
  thing(@Param('id') id: string): { id: string } {
    // A 404 a handler raises: its service audits its own refusals (here: nothing); the edge must not add one.
    if (id === 'missing') throw new NotFoundException();
    return { id };
  }
}

/**
 * A request whose path matches no route is refused 404 `not_found` and audited `request.refused` through the bounded
 * refusal audit, like every refusal no service sees (ADR 0011 addendum "routes that do not exist").
 */
describe(`${EdgeServices.name}: requests that match no route`, () => {
  const audited: AuditInput[] = [];
  let edge: EdgeServices;
  let app: INestApplication;
  let port: number;

  beforeAll(async () => {
    // Two identical refusals of one caller audited one by one per window, then counted.
    const config = { edge: { rateBurst: 1_000, ratePerMinute: 1, rateMaxTracked: 1_000, auditWindowMs: 3_600_000, auditPerKey: 2, auditPerWindow: 1_000 } } as unknown as ApiConfig;
    const audit = { append: (input: AuditInput) => (audited.push(input), Promise.resolve()) } as unknown as AuditRepository;
    edge = new EdgeServices(config, audit, pino({ level: 'silent' }));
    @Module({
      controllers: [ThingsController],
      providers: [
        { provide: EDGE, useValue: edge },
        { provide: REFUSAL_OBSERVER, useClass: EdgeRefusalObserver },
        { provide: APP_FILTER, useClass: ProblemDetailsFilter },
      ],
    })
    class UnmatchedTestModule {}
    const moduleRef = await Test.createTestingModule({ imports: [UnmatchedTestModule] }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(new ApiHttpAdapter({ logger: pino({ level: 'silent' }) }), { logger: false });
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  });
  afterAll(() => app?.close());
  // Each case starts a fresh audit window (what the last one counted is written, then forgotten).
  beforeEach(async () => {
    await edge.refusals.flush();
    audited.length = 0;
  });

  /** The target exactly as written (no client-side normalisation of `..` or `//`). */
  const send = (method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; code?: string }> =>
    new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, code: body ? (JSON.parse(body) as { code?: string }).code : undefined }));
      });
      req.on('error', reject);
      req.end();
    });

  it.each([
    ['fail a path no route has', 'GET', '/api/v1/nothing'],
    ['fail an empty segment', 'GET', '/api/v1/things//renewal'],
    ['fail a raw dot-dot segment', 'GET', '/api/v1/things/../../healthz'],
    ['fail an encoded dot-dot segment', 'GET', '/api/v1/things/%2e%2e/%2e%2e/me'],
    ['fail a double slash in front', 'GET', '//api/v1/things/a'],
    ['fail a method the path has no route for', 'DELETE', '/api/v1/things/a'],
  ])('%s: 404 not_found, audited request.refused with method, path and address, no actor', async (_n, method, path) => {
    expect(await send(method, path)).toEqual({ status: 404, code: 'not_found' });
    await new Promise((r) => setImmediate(r));
    expect(audited.map((a) => [a.action, a.outcome, a.errorCode, a.actorOid, a.details])).toEqual([
      ['request.refused', 'DENIED', 'not_found', null, { method, path, status: 404, ip: '127.0.0.1' }],
    ]);
  });

  it('fail a caller with credentials on a route that does not exist: audited by its address, the token neither checked nor trusted', async () => {
    expect(await send('GET', '/api/v1/nothing-either', { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJvaWQiOiJ4In0.' })).toEqual({ status: 404, code: 'not_found' });
    await new Promise((r) => setImmediate(r));
    expect(audited.map((a) => [a.errorCode, a.actorTid, a.actorOid, (a.details as { path: string }).path])).toEqual([['not_found', null, null, '/api/v1/nothing-either']]);
  });

  it('ok a 404 a route handler raises is not audited at the edge (its service audits its own refusals)', async () => {
    expect(await send('GET', '/api/v1/things/missing')).toEqual({ status: 404, code: 'not_found' });
    expect(await send('GET', '/api/v1/things/a')).toEqual({ status: 200, code: undefined });
    await new Promise((r) => setImmediate(r));
    expect(audited).toEqual([]);
  });

  it('fail a scan of many paths from one address: the first refusals appended one by one, the rest one aggregated event', async () => {
    for (let i = 0; i < 20; i++) expect((await send('GET', `/api/v1/scan-${i}`)).status).toBe(404);
    await new Promise((r) => setImmediate(r));
    expect(audited.map((a) => a.action)).toEqual(['request.refused', 'request.refused']);
    await edge.refusals.flush();
    expect(audited.map((a) => [a.action, (a.details as { count?: number }).count])).toEqual([
      ['request.refused', undefined],
      ['request.refused', undefined],
      [REFUSALS_AGGREGATED_ACTION, 18],
    ]);
  });
});
