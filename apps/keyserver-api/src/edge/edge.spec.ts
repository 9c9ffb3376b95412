import type { AddressInfo } from 'node:net';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import type { AuditInput, AuditRepository } from '@keyserver/data-access';
import type { ApiConfig } from '../config/api-config';
import { addressKey, EdgeServices, ipKey, principalKey, requestGuard } from './edge';
import { ApiHttpAdapter } from './http-server';

/** EdgeServices with a burst of `burst` refusals per caller and one refusal per caller audited one by one. */
function edgeOf(burst: number): { edge: EdgeServices; audited: AuditInput[] } {
  const audited: AuditInput[] = [];
  const config = { edge: { rateBurst: burst, ratePerMinute: 1, rateMaxTracked: 1_000, auditWindowMs: 3_600_000, auditPerKey: 1, auditPerWindow: 1_000 } } as unknown as ApiConfig;
  const audit = { append: (input: AuditInput) => (audited.push(input), Promise.resolve()) } as unknown as AuditRepository;
  return { edge: new EdgeServices(config, audit, pino({ level: 'silent' })), audited };
}

/** A request as the edge sees it before routing: no credentials, from `address`. */
const anonymous = (address: string) => ({ method: 'GET', url: '/api/v1/keys', headers: {}, socket: { remoteAddress: address } }) as unknown as IncomingMessage;
const admitted = (edge: EdgeServices, address: string): boolean => {
  try {
    edge.admitAnonymous(anonymous(address));
    return true;
  } catch {
    return false;
  }
};

describe(EdgeServices.name, () => {
  it.each([
    ['fail two addresses of one IPv6 /64 (an attacker rotating its interface id)', '2001:db8:1:2::a', '2001:db8:1:2:ffff:1:2:3'],
    ['fail one /64 written two ways (zero compression, case, zone id)', '2001:db8:1:2::1', '2001:DB8:1:2:0:0:0:1%eth0'],
    ['fail one IPv4 caller seen plain and IPv4-mapped', '203.0.113.7', '::ffff:203.0.113.7'],
  ])('%s: one anonymous bucket', (_n, first, second) => {
    const { edge } = edgeOf(2);
    expect([admitted(edge, first), admitted(edge, first)]).toEqual([true, true]);
    expect(admitted(edge, second)).toBe(false);
  });

  it.each([
    ['ok two IPv6 /64s', '2001:db8:1:2::a', '2001:db8:1:3::a'],
    ['ok two IPv4 addresses', '203.0.113.7', '203.0.113.8'],
  ])('%s keep their own buckets', (_n, first, second) => {
    const { edge } = edgeOf(2);
    expect([admitted(edge, first), admitted(edge, first), admitted(edge, first)]).toEqual([true, true, false]);
    expect(admitted(edge, second)).toBe(true);
  });

  it('fail refusals charged to a caller without a valid token (401s, edge refusals) from one /64: one bucket', () => {
    const { edge } = edgeOf(2);
    expect([edge.chargeRefusal(anonymous('2001:db8::1'), 401).ok, edge.chargeRefusal(anonymous('2001:db8::2'), 401).ok]).toEqual([true, true]);
    expect(edge.chargeRefusal(anonymous('2001:db8:0:0:1:2:3:4'), 401).ok).toBe(false);
  });

  it('fail identical refusals from one /64 are one caller in the bounded audit: the second is counted, not appended; the address is still recorded as seen', async () => {
    const { edge, audited } = edgeOf(10);
    await edge.auditEdgeRefusal(anonymous('2001:db8:1:2::a'), 'malformed_request', 400);
    await edge.auditEdgeRefusal(anonymous('2001:db8:1:2::b'), 'malformed_request', 400);
    expect(audited.map((a) => a.details)).toEqual([expect.objectContaining({ ip: '2001:db8:1:2::a' })]);
    await edge.refusals.stop();
    expect(audited.map((a) => [a.action, (a.details as { count?: number }).count])).toEqual([
      ['request.refused', undefined],
      ['audit.refusals_aggregated', 1],
    ]);
  });

  describe('on a real HTTP server', () => {
    let server: FastifyInstance;
    let edge: EdgeServices;
    let port: number;

    beforeAll(async () => {
      edge = edgeOf(3).edge;
      server = new ApiHttpAdapter({ logger: pino({ level: 'silent' }), edge }).getInstance() as unknown as FastifyInstance;
      server.addHook('onRequest', (request, reply, done) => {
        if (requestGuard(edge, request, reply)) done();
      });
      server.get('/api/v1/keys', async () => ({ ok: true }));
      // Dual-stack: an IPv4 caller arrives as ::ffff:a.b.c.d, an IPv6 one as itself.
      await server.listen({ host: '::', port: 0 });
      port = (server.server.address() as AddressInfo).port;
    });
    afterAll(() => server.close());

    const get = (host: string): Promise<{ status: number; code?: string; remote?: string }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ host, port, path: '/api/v1/keys', agent: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(body) as { code?: string }).code }));
        });
        req.on('error', reject);
        req.end();
      });

    it.each([
      ['fail an IPv6 caller over its limit: its whole /64 is (::1 here, any other address of ::/64 next)', '::1', '0:0:0:0:1:2:3:4'],
      ['fail an IPv4 caller over its limit through a dual-stack listener: the plain IPv4 address is too', '127.0.0.1', '127.0.0.1'],
    ])('%s', async (_n, host, sibling) => {
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await get(host)).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(admitted(edge, sibling)).toBe(false);
    });
  });
});

// The caller keys are the one definition every rate limit and the bounded refusal audit key by (the resolver's and the
// auth sink's included): a change of format here is a change of who counts as one caller, so it is pinned.
describe('caller keys', () => {
  it('ok a principal is principal:<tid>/<oid>', () => {
    expect(principalKey('72f988bf-0000-4000-8000-000000000001', '0b0b0b0b-0000-4000-8000-000000000002')).toBe('principal:72f988bf-0000-4000-8000-000000000001/0b0b0b0b-0000-4000-8000-000000000002');
  });

  it.each([
    ['ok an IPv4 address', '203.0.113.7', 'ip:203.0.113.7'],
    ['ok an IPv4-mapped IPv6 address is the IPv4 address', '::ffff:203.0.113.7', 'ip:203.0.113.7'],
    ['ok an IPv6 address is its /64', '2001:DB8:1:2::a%eth0', 'ip:2001:db8:1:2::/64'],
    ['fail text that is no address is one unknown caller', 'not-an-address', 'ip:unknown'],
    ['fail no address is the unknown caller', undefined, 'ip:unknown'],
  ])('%s: %s -> %s', (_n, address, key) => {
    expect(addressKey(address)).toBe(key);
    expect(ipKey(anonymous(address as string))).toBe(key);
  });
});
