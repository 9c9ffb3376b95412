import { HttpParams } from '@angular/common/http';

/** Query parameters without the empty ones (the API refuses unknown or empty filters). */
export function queryParams(q: Record<string, string | number | boolean | null | undefined>): HttpParams {
  let p = new HttpParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '') continue;
    p = p.set(k, String(v));
  }
  return p;
}

/** Rows per page: small enough to stay fast with thousands of rows, large enough to scan. */
export const PAGE_SIZE = 50;
