import { HttpInterceptorFn } from '@angular/common/http';

/** The header the keyclient requires on every state-changing request (see its csrfMiddleware). */
export const CSRF_HEADER = 'X-Keyserver-CSRF';
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Adds `X-Keyserver-CSRF: 1` to same-origin state-changing requests; never to other origins. */
export const csrfInterceptor: HttpInterceptorFn = (req, next) => {
  if (!UNSAFE.has(req.method) || !isSameOrigin(req.url)) return next(req);
  return next(req.clone({ setHeaders: { [CSRF_HEADER]: '1' } }));
};

function isSameOrigin(url: string): boolean {
  if (url.startsWith('/') && !url.startsWith('//')) return true;
  try {
    return new URL(url, location.href).origin === location.origin;
  } catch {
    return false;
  }
}
