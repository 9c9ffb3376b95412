import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import { checkRawPath } from '../proxy/proxy-routes';
import { sendProblem } from '../http/problem';
import { KEYCLIENT_CONTEXT, type KeyclientContext } from './context';
import { spaMissingPage } from './pages';

/** Placeholder in the SPA's index.html (`<app-root ngCspNonce="...">`) replaced per response. */
const NONCE_PLACEHOLDER = /KEYSERVER_CSP_NONCE/g;

/** Paths owned by the keyclient itself; never answered with the SPA (/metrics lives on its own listener, ADR 0022: here a 404). */
const RESERVED = /^\/(api|login|logout|me|healthz|readyz|metrics)(\/|$)/;

@Controller()
export class SpaController {
  private readonly root: string;
  private indexCache?: { mtimeMs: number; html: string };

  constructor(@Inject(KEYCLIENT_CONTEXT) private readonly ctx: KeyclientContext) {
    this.root = resolve(ctx.config.spaDistDir);
  }

  /** Static files of the built admin SPA, with index.html for client-side routes. */
  @Get(['/', '*path'])
  serve(@Req() req: Request, @Res() res: Response): void {
    const path = checkRawPath(req.url);
    if (path === null) throw new KeyclientError(KeyclientErrorCode.PathRejected);
    if (RESERVED.test(path)) throw new KeyclientError(KeyclientErrorCode.NotFound);
    const index = join(this.root, 'index.html');
    if (!existsSync(index)) {
      res.status(503).setHeader('cache-control', 'no-store');
      res.type('html').send(spaMissingPage());
      return;
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      throw new KeyclientError(KeyclientErrorCode.PathRejected);
    }
    const file = resolve(this.root, `.${decoded}`);
    if (file !== this.root && !file.startsWith(this.root + sep)) throw new KeyclientError(KeyclientErrorCode.PathRejected);
    if (file === index) {
      this.sendIndex(res, index);
      return;
    }
    if (file !== this.root && isFile(file)) {
      // Angular emits content-hashed bundle names; index.html itself must never be cached.
      const immutable = /\.[0-9a-f]{8,}\.|-[A-Z0-9]{8}\./i.test(file);
      res.setHeader('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
      // With a callback, every refusal of `send` (a range outside the file, a failed If-Match or If-Unmodified-Since,
      // a dotfile) is answered here as problem+json; without one it reached the filter as an unknown error (500).
      res.sendFile(file, { dotfiles: 'deny' }, (err?: SendError) => {
        if (err) this.sendFileFailed(req, res, err);
      });
      return;
    }
    if (extname(decoded) !== '') throw new KeyclientError(KeyclientErrorCode.NotFound);
    this.sendIndex(res, index);
  }

  /** The answer to a static file `send` refused (its errors carry the HTTP status they mean). */
  private sendFileFailed(req: Request, res: Response, err: SendError): void {
    const status = err.status ?? err.statusCode;
    let code: KeyclientErrorCode;
    if (status === 416) code = KeyclientErrorCode.RangeNotSatisfiable;
    else if (status === 412) code = KeyclientErrorCode.PreconditionFailed;
    else if (status === 403 || status === 404) code = KeyclientErrorCode.NotFound; // a dotfile (denied) is not there either
    else {
      if (err.code !== 'ECONNABORTED') this.ctx.log.error({ event: 'static_file_failed', requestId: req.requestId, err: err.message }, 'static file failed');
      code = KeyclientErrorCode.InternalError;
    }
    if (!res.headersSent) {
      // Validators of the file do not describe the problem document; send keeps Content-Range (bytes */size) for a 416.
      for (const name of ['etag', 'last-modified', 'accept-ranges']) res.removeHeader(name);
      if (code !== KeyclientErrorCode.RangeNotSatisfiable) res.removeHeader('content-range');
    }
    sendProblem(res, new KeyclientError(code), req.requestId);
  }

  /** index.html with a fresh CSP nonce for Angular's inline styles; never cached. */
  private sendIndex(res: Response, index: string): void {
    const mtimeMs = statSync(index).mtimeMs;
    if (!this.indexCache || this.indexCache.mtimeMs !== mtimeMs) {
      this.indexCache = { mtimeMs, html: readFileSync(index, 'utf8') };
    }
    const nonce = randomBytes(16).toString('base64');
    res.setHeader('content-security-policy', this.ctx.csp(nonce));
    res.setHeader('cache-control', 'no-store');
    res.type('html').send(this.indexCache.html.replace(NONCE_PLACEHOLDER, nonce));
  }
}

/** An error of `send` (via res.sendFile): an HTTP status for refusals, a Node error code for I/O failures. */
type SendError = Error & { status?: number; statusCode?: number; code?: string };

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
