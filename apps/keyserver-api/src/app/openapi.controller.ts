import { Controller, Get, Header, Inject, NotFoundException, Param, Req, Res, StreamableFile } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Public } from '@keyserver/authz';
import { OPENAPI_DOCUMENT } from './openapi';

/** Swagger UI's files, served by the API itself (no CDN): the browser loads nothing from elsewhere. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const uiDir = (): string => (require('swagger-ui-dist/absolute-path.js') as () => string)();

/** The only files served from swagger-ui-dist, with their media types (no path from the request reaches the disk). */
const UI_FILES: Readonly<Record<string, string>> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

/** Replaces swagger-ui-dist's swagger-initializer.js: a file, not an inline script, so a strict CSP holds. */
const INIT_JS = `window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({ url: '/api/docs', dom_id: '#swagger-ui', deepLinking: true, validatorUrl: null, tryItOutEnabled: false });
});
`;

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Keyserver API</title>
<link rel="stylesheet" href="/api/docs/ui/swagger-ui.css">
<link rel="icon" type="image/png" href="/api/docs/ui/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/ui/swagger-ui-bundle.js"></script>
<script src="/api/docs/ui/init.js"></script>
</body>
</html>
`;

/**
 * The UI page's own policy: scripts and the spec from this origin only, no inline script, no framing.
 * Swagger UI sets style attributes, hence 'unsafe-inline' for styles only.
 */
export const DOCS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const DOC_TYPES = ['application/json', 'text/html'] as const;

/**
 * Which of {@link DOC_TYPES} an Accept header prefers, as Express' `req.accepts()` (negotiator) decided it: per
 * type the most specific matching range (then the highest q, then the later one), then the highest q, the most
 * specific match, the earlier range and the order above; no header means JSON; nothing acceptable means undefined.
 */
export function preferredDocType(accept: string | undefined): (typeof DOC_TYPES)[number] | undefined {
  if (accept === undefined) return DOC_TYPES[0];
  const ranges = accept.split(',').flatMap((part, o) => {
    const [range, ...params] = part.trim().split(';');
    const [type, subtype] = range.trim().toLowerCase().split('/');
    if (!type || !subtype) return [];
    const qParam = params.map((p) => p.trim().split('=')).find(([k]) => k.trim().toLowerCase() === 'q');
    const q = qParam ? Number.parseFloat(qParam[1] ?? '') : 1;
    return [{ type, subtype, q: Number.isNaN(q) ? 1 : q, o }];
  });
  const ranked = DOC_TYPES.map((t, i) => {
    const [type, subtype] = t.split('/');
    let best: { q: number; s: number; o: number } | undefined;
    for (const r of ranges) {
      if ((r.type !== '*' && r.type !== type) || (r.subtype !== '*' && r.subtype !== subtype)) continue;
      const s = (r.type === type ? 4 : 0) + (r.subtype === subtype ? 2 : 0);
      if (!best || s > best.s || (s === best.s && (r.q > best.q || (r.q === best.q && r.o > best.o)))) best = { q: r.q, s, o: r.o };
    }
    return { t, i, ...(best ?? { q: 0, s: 0, o: -1 }) };
  }).filter((c) => c.q > 0);
  ranked.sort((a, b) => b.q - a.q || b.s - a.s || a.o - b.o || a.i - b.i);
  return ranked[0]?.t;
}

@ApiExcludeController()
@Controller()
export class OpenApiController {
  private readonly files = new Map<string, Buffer>();

  constructor(@Inject(OPENAPI_DOCUMENT) private readonly document: { current: object | null }) {}

  /** The OpenAPI document (JSON) for clients; Swagger UI for a browser (Accept prefers text/html). */
  @Public()
  @Get('api/docs')
  @Header('vary', 'Accept')
  docs(@Req() req: FastifyRequest, @Res({ passthrough: true }) res: FastifyReply): object | string | null {
    if (preferredDocType(req.headers.accept) === 'text/html') {
      res.header('content-type', 'text/html; charset=utf-8');
      res.header('content-security-policy', DOCS_CSP);
      res.header('x-content-type-options', 'nosniff');
      return HTML;
    }
    return this.document.current;
  }

  @Public()
  @Get('api/docs/ui/:file')
  asset(@Param('file') file: string, @Res({ passthrough: true }) res: FastifyReply): StreamableFile {
    const type = file === 'init.js' ? 'text/javascript; charset=utf-8' : Object.hasOwn(UI_FILES, file) ? UI_FILES[file] : undefined;
    if (!type) throw new NotFoundException();
    let body = this.files.get(file);
    if (!body) {
      body = file === 'init.js' ? Buffer.from(INIT_JS) : readFileSync(join(uiDir(), file));
      this.files.set(file, body);
    }
    res.header('cache-control', 'public, max-age=3600');
    res.header('x-content-type-options', 'nosniff');
    // A StreamableFile, not the Buffer: Nest would serialize a Buffer as JSON.
    return new StreamableFile(body, { type, length: body.length });
  }
}
