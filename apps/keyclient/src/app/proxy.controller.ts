import { All, Controller, Inject, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { logTarget } from '@keyserver/config';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import { readCookie } from '../http/cookies';
import { setMetricsRoute } from '@keyserver/observability';
import { checkRawPath, proxyRouteOf } from '../proxy/proxy-routes';
import { KEYCLIENT_CONTEXT, type KeyclientContext } from './context';

@Controller()
export class ProxyController {
  constructor(@Inject(KEYCLIENT_CONTEXT) private readonly ctx: KeyclientContext) {}

  /** `/api/*`: allow-listed administration and approval routes only, with the session's bearer token. */
  @All(['api', 'api/*path'])
  async proxy(@Req() req: Request, @Res() res: Response): Promise<void> {
    const path = checkRawPath(req.url);
    if (path === null) throw new KeyclientError(KeyclientErrorCode.PathRejected);
    const route = proxyRouteOf(req.method === 'HEAD' ? 'GET' : req.method, path);
    if (route === undefined) {
      // The path only, as the request line (a query may carry anything a client put there).
      this.ctx.log.warn({ event: 'proxy_refused', requestId: req.requestId, method: req.method, path: logTarget(path.split('?')[0]) }, 'route not allow-listed');
      throw new KeyclientError(KeyclientErrorCode.ProxyRouteForbidden);
    }
    // Metrics per allow-listed API route (a pattern of the list, never the path).
    setMetricsRoute(req, route);
    const session = await this.ctx.sessions.resolve(readCookie(req, this.ctx.cookies.session));
    if (!session) throw new KeyclientError(KeyclientErrorCode.Unauthenticated);
    const accessToken = await this.ctx.sessions.accessToken(session);
    const q = req.url.indexOf('?');
    const pathAndQuery = q < 0 ? path : `${path}${req.url.slice(q)}`;
    await this.ctx.proxy.forward(req, res, pathAndQuery, accessToken, req.requestId ?? '');
  }
}
