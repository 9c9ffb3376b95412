/**
 * The URL the console may bind as a link or navigate to, or null. Angular's URL sanitiser stops `javascript:` only
 * (a `data:`, `vbscript:` or any other scheme passes), so what the API hands over as a URL is checked here by scheme.
 */

/** `raw` as an absolute https URL (normalised by the URL parser), else null: a link out of the console (provenance). */
export function httpsUrl(raw: string): string | null {
  try {
    const u = new URL(raw);
    return u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

/** `raw` when it resolves (against this page) to an http(s) URL, else null: a full-page navigation (logout). */
export function navigableUrl(raw: string, base: string): string | null {
  try {
    const u = new URL(raw, base);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
  } catch {
    return null;
  }
}
