import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { apiRaw, type Connection } from './client';
import { CliError, Exit } from './errors';

// Which API failures a pipeline should retry (exit 5) and which it should not (ADR 0046): a real HTTP server
// answers each status and problem code, ksctl's client maps it.
describe(apiRaw.name, () => {
  let server: Server;
  let c: Connection;
  let answer: { status: number; code?: string } = { status: 200 };

  beforeAll(async () => {
    server = createServer((_req, res) => {
      const body = answer.code ? JSON.stringify({ type: 'about:blank', title: 'x', status: answer.status, code: answer.code }) : '';
      res.writeHead(answer.status, body ? { 'content-type': 'application/problem+json' } : {}).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    c = { apiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, method: 'token', token: 'any' };
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it.each<[string, number, string | undefined, Exit]>([
    ['fail 502 timestamp_tsa_untrusted: exit 4, a retry does not help (the TSA configuration does)', 502, 'timestamp_tsa_untrusted', Exit.Refused],
    ['fail 502 timestamp_clock_skew: exit 4, a retry does not help (a clock does)', 502, 'timestamp_clock_skew', Exit.Refused],
    ['fail 502 timestamp_tsa_revoked: exit 4, a retry does not help (another TSA certificate does)', 502, 'timestamp_tsa_revoked', Exit.Refused],
    ['fail 502 timestamp_tsa_crl_stale: exit 4, a retry does not help (a fresh CMS_TSA_CRL does)', 502, 'timestamp_tsa_crl_stale', Exit.Refused],
    ['fail 500 route_authorization_misconfigured: exit 4, a retry does not help (the deployment does)', 500, 'route_authorization_misconfigured', Exit.Refused],
    ['fail 503 timestamp_unavailable: exit 5, retry', 503, 'timestamp_unavailable', Exit.Unavailable],
    ['fail 502 timestamp_reply_invalid: exit 5, retry', 502, 'timestamp_reply_invalid', Exit.Unavailable],
    ['fail 503 database_unavailable: exit 5, retry', 503, 'database_unavailable', Exit.Unavailable],
    ['fail 502 without a problem body: exit 5, retry', 502, undefined, Exit.Unavailable],
    ['fail 409 usage_exhausted: exit 4', 409, 'usage_exhausted', Exit.Refused],
    ['fail 401: exit 3', 401, 'invalid_token', Exit.Auth],
  ])('%s', async (_name, status, code, exit) => {
    answer = { status, code };
    const err = await apiRaw(c, 'POST', '/api/v1/firmware/signatures').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect(err).toMatchObject({ exit, status, code });
  });

  it('ok 200: the response', async () => {
    answer = { status: 200 };
    expect((await apiRaw(c, 'GET', '/api/v1/me')).status).toBe(200);
  });
});
