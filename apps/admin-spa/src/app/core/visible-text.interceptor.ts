import { HttpErrorResponse, HttpResponse, type HttpInterceptorFn } from '@angular/common/http';
import { visibleJson } from '@keyserver/api-contract/visible-text';
import { catchError, map, throwError } from 'rxjs';

/**
 * The one place the console makes the API's text safe to read (ADR 0047): every string of every JSON answer and
 * problem detail, keys included, has its controls, bidi, zero-width and other hidden characters written as
 * `\u{hex}`, so no template, attribute or dialog can show a description, a name or a provenance field that reads
 * differently from what was stored. Angular's interpolation already keeps text from becoming markup; this keeps it
 * from being reordered or hidden. Tab, CR and LF stay (HTML draws them as a space; a PEM in JSON needs them). Text
 * and binary downloads (certificates, exports) are left as they are.
 */
export const visibleTextInterceptor: HttpInterceptorFn = (req, next) => {
  if (req.responseType !== 'json') return next(req);
  return next(req).pipe(
    map((event) => (event instanceof HttpResponse && event.body !== null ? event.clone({ body: visibleJson(event.body, 'html') }) : event)),
    catchError((err: unknown) =>
      throwError(() =>
        err instanceof HttpErrorResponse && err.error !== null && typeof err.error === 'object' && !(err.error instanceof Blob) && !(err.error instanceof ProgressEvent)
          ? new HttpErrorResponse({ error: visibleJson(err.error, 'html'), headers: err.headers, status: err.status, statusText: err.statusText, url: err.url ?? undefined })
          : err,
      ),
    ),
  );
};
