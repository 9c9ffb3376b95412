import type { Request, Response } from 'express';
import type { KeyclientConfig } from '../config/keyclient-config';

export interface CookieNames {
  session: string;
  transaction: string;
}

/** `__Host-` names need Secure; with COOKIE_SECURE=false (plain-http dev only) the prefix is dropped. */
export function cookieNames(config: KeyclientConfig): CookieNames {
  const prefix = config.cookieSecure ? '__Host-' : '';
  return { session: `${prefix}keyclient-session`, transaction: `${prefix}keyclient-tx` };
}

/** Reads one cookie from the request without any cookie-parser middleware. First occurrence wins. */
export function readCookie(req: Request, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function setCookie(
  res: Response,
  config: KeyclientConfig,
  name: string,
  value: string,
  opts: { sameSite: 'strict' | 'lax'; maxAgeMs?: number },
): void {
  res.cookie(name, value, {
    httpOnly: true,
    secure: config.cookieSecure,
    sameSite: opts.sameSite,
    path: '/',
    ...(opts.maxAgeMs !== undefined ? { maxAge: opts.maxAgeMs } : {}),
    encode: (v: string) => v,
  });
}

export function clearCookie(res: Response, config: KeyclientConfig, name: string, sameSite: 'strict' | 'lax'): void {
  res.cookie(name, '', {
    httpOnly: true,
    secure: config.cookieSecure,
    sameSite,
    path: '/',
    expires: new Date(0),
    encode: (v: string) => v,
  });
}
