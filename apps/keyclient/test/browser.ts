import http from 'node:http';

/** One response as the browser saw it; every response is kept for the token-leak scan. */
export interface SeenResponse {
  method: string;
  url: string;
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface StoredCookie {
  name: string;
  value: string;
  host: string;
  path: string;
  secure: boolean;
  httpOnly: boolean;
  sameSite: 'strict' | 'lax' | 'none';
  expiresAt?: number;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Origin of the page that caused the request; decides SameSite (default: same as the target). */
  initiator?: string;
  /** A top-level navigation (as opposed to fetch/XHR); Lax cookies follow cross-site only then. */
  navigation?: boolean;
  /** navigate(): do not request a URL matching this; return the redirect that pointed to it. */
  stopBefore?: (url: string) => boolean;
}

export interface NavigationResult extends SeenResponse {
  /** Set when navigate() stopped before requesting this URL (see stopBefore). */
  stoppedBefore?: string;
}

/** Schemeful site of an origin; for IP and single-label hosts the host itself. */
function site(origin: string): string {
  const u = new URL(origin);
  return `${u.protocol}//${u.hostname}`;
}

/**
 * A minimal browser over real HTTP: a cookie jar that enforces `__Host-` rules and SameSite,
 * treats http://localhost and 127.0.0.1 as secure contexts (as browsers do), sends raw request
 * targets (no path normalisation) and never follows redirects on its own.
 */
export class Browser {
  readonly cookies: StoredCookie[] = [];
  readonly rejectedCookies: string[] = [];

  constructor(private readonly seen: SeenResponse[]) {}

  cookie(host: string, name: string): StoredCookie | undefined {
    return this.cookies.find((c) => c.host === host && c.name === name);
  }

  setCookie(host: string, name: string, value: string, sameSite: StoredCookie['sameSite'] = 'strict'): void {
    this.removeCookie(host, name);
    this.cookies.push({ name, value, host, path: '/', secure: true, httpOnly: true, sameSite });
  }

  removeCookie(host: string, name: string): void {
    const i = this.cookies.findIndex((c) => c.host === host && c.name === name);
    if (i >= 0) this.cookies.splice(i, 1);
  }

  private isSecureContext(url: URL): boolean {
    return url.protocol === 'https:' || ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  }

  private storeCookies(url: URL, setCookies: string[] | undefined): void {
    for (const line of setCookies ?? []) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const cookie: StoredCookie = { name, value, host: url.hostname, path: '/', secure: false, httpOnly: false, sameSite: 'lax' };
      let hasDomain = false;
      let pathAttr: string | undefined;
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=');
        const key = k.toLowerCase();
        if (key === 'secure') cookie.secure = true;
        else if (key === 'httponly') cookie.httpOnly = true;
        else if (key === 'domain') hasDomain = true;
        else if (key === 'path') pathAttr = v;
        else if (key === 'samesite') cookie.sameSite = v.toLowerCase() as StoredCookie['sameSite'];
        else if (key === 'max-age') cookie.expiresAt = Date.now() + Number(v) * 1000;
        else if (key === 'expires' && cookie.expiresAt === undefined) cookie.expiresAt = Date.parse(v);
      }
      cookie.path = pathAttr ?? '/';
      if (cookie.secure && !this.isSecureContext(url)) {
        this.rejectedCookies.push(`${name}: Secure cookie from an insecure origin`);
        continue;
      }
      if (name.startsWith('__Host-') && (!cookie.secure || hasDomain || pathAttr !== '/')) {
        this.rejectedCookies.push(`${name}: violates __Host- prefix rules`);
        continue;
      }
      if (cookie.sameSite === 'none' && !cookie.secure) {
        this.rejectedCookies.push(`${name}: SameSite=None without Secure`);
        continue;
      }
      this.removeCookie(url.hostname, name);
      if (cookie.expiresAt === undefined || cookie.expiresAt > Date.now()) this.cookies.push(cookie);
    }
  }

  private cookieHeader(url: URL, sameSite: boolean, method: string, navigation: boolean): string | undefined {
    const now = Date.now();
    const list = this.cookies.filter((c) => {
      if (c.host !== url.hostname) return false; // cookies are not isolated by port
      if (c.expiresAt !== undefined && c.expiresAt <= now) return false;
      if (c.secure && !this.isSecureContext(url)) return false;
      if (!url.pathname.startsWith(c.path)) return false;
      if (sameSite) return true;
      if (c.sameSite === 'strict') return false;
      if (c.sameSite === 'lax') return navigation && (method === 'GET' || method === 'HEAD');
      return true;
    });
    return list.length ? list.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }

  /** One request, no redirects followed. `target` may hold a raw, unnormalised path. */
  request(target: string, options: RequestOptions = {}): Promise<SeenResponse> {
    const url = new URL(target);
    const rawPath = target.slice(url.origin.length) || '/';
    const method = options.method ?? 'GET';
    const initiator = options.initiator ?? url.origin;
    const sameSite = site(initiator) === site(url.origin);
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    const cookie = this.cookieHeader(url, sameSite, method, options.navigation ?? false);
    if (cookie && headers['cookie'] === undefined) headers['cookie'] = cookie;
    if (options.body !== undefined && headers['content-length'] === undefined && headers['transfer-encoding'] !== 'chunked') {
      headers['content-length'] = String(Buffer.byteLength(options.body));
    }
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: url.hostname, port: url.port, method, path: rawPath, headers, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            this.storeCookies(url, res.headers['set-cookie']);
            const seen: SeenResponse = {
              method,
              url: target,
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            };
            this.seen.push(seen);
            resolve(seen);
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      if (options.body !== undefined) req.write(options.body);
      req.end();
    });
  }

  /**
   * A top-level navigation that follows redirects like a browser: 303 (and 302 after POST) turn into
   * GET, and once the chain has crossed sites SameSite=Strict cookies stay home.
   */
  async navigate(target: string, options: RequestOptions = {}): Promise<NavigationResult> {
    let url = target;
    let method = options.method ?? 'GET';
    let body = options.body;
    let headers = options.headers;
    let initiator = options.initiator ?? new URL(target).origin;
    let crossed = site(initiator) !== site(new URL(target).origin);
    for (let hop = 0; hop < 20; hop++) {
      const res = await this.request(url, {
        method,
        body,
        headers,
        navigation: true,
        initiator: crossed ? 'http://cross-site.invalid' : initiator,
      });
      if (res.status < 300 || res.status >= 400 || !res.headers.location) return res;
      const next = new URL(res.headers.location, url).href;
      if (options.stopBefore?.(next)) return { ...res, stoppedBefore: next };
      crossed = crossed || site(new URL(url).origin) !== site(new URL(next).origin);
      initiator = new URL(url).origin;
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
        headers = undefined;
      }
      url = next;
    }
    throw new Error('too many redirects');
  }
}

/** The first `<form method="post">` of a page: its absolute action and hidden inputs. */
export function parseForm(html: string, pageUrl: string): { action: string; fields: Record<string, string> } | null {
  const form = /<form[^>]*method="post"[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html)
    ?? /<form[^>]*action="([^"]*)"[^>]*method="post"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) return null;
  const decode = (s: string) =>
    s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
  const fields: Record<string, string> = {};
  for (const m of form[2].matchAll(/<input[^>]*>/gi)) {
    const name = /name="([^"]*)"/.exec(m[0])?.[1];
    const value = /value="([^"]*)"/.exec(m[0])?.[1] ?? '';
    if (name) fields[name] = decode(value);
  }
  return { action: new URL(decode(form[1]), pageUrl).href, fields };
}
