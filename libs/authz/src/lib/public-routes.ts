/** One route reachable without a token; `path` is relative to the global prefix, e.g. `/health`. */
export interface PublicRoute {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS' | 'ALL';
  path: string;
  /** Why it is public (reviewed). */
  reason: string;
  /**
   * Answered by the HTTP server before Nest, with a constant (the liveness probe): no controller serves it and no
   * guard runs. Only registry entries marked so may be served that way (the API registers them from this list).
   */
  edge?: true;
}

/** Normalizes a route path: one leading slash, no duplicate or trailing slashes. */
export function normalizeRoutePath(...parts: string[]): string {
  const joined = parts
    .flatMap((p) => p.split('/'))
    .filter((s) => s.length > 0)
    .join('/');
  return `/${joined}`;
}

/** Declares the public-route registry (the one place listing every `@Public()` route). */
export function definePublicRoutes<const T extends readonly PublicRoute[]>(routes: T): T {
  return routes;
}
