function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The look of the console (toolbar colour, system fonts), small enough to inline under the response's CSP nonce. */
const PAGE_STYLE = `
body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:#1a1b1f;background:#faf9fd}
header{background:#003f87;color:#fff;padding:1rem 1.25rem;font-weight:600}
main{max-width:34rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.5rem;font-weight:500;margin:0 0 1rem}
.card{background:#fff;border:1px solid #c4c6d0;border-radius:12px;padding:1.25rem 1.5rem}
.button{display:inline-block;margin-top:.5rem;padding:.6rem 1.25rem;border-radius:20px;background:#005cbb;color:#fff;text-decoration:none;font-weight:500}
.button:focus-visible,a:focus-visible{outline:3px solid #003f87;outline-offset:2px}
.detail{margin-top:1.5rem;font-size:.85rem;color:#44474e}
code{font-family:ui-monospace,Menlo,Consolas,monospace}
`;

function page(title: string, body: string, styleNonce?: string): string {
  const style = styleNonce ? `<style nonce="${escapeHtml(styleNonce)}">${PAGE_STYLE}</style>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Keyserver</title>${style}</head>
<body><header>Keyserver administration</header><main><h1>${escapeHtml(title)}</h1><div class="card">${body}</div></main></body></html>`;
}

/**
 * The sign-in failure page: a fixed text chosen by the keyclient, what to do next, and the stable reason code
 * as a detail for support (never the provider's own words). `styleNonce` is the nonce of the response's CSP.
 */
export function loginErrorPage(text: string, reason: string, styleNonce?: string): string {
  return page(
    'Sign-in failed',
    `<p>${escapeHtml(text)}</p><p><a class="button" href="/login">Sign in again</a></p>` +
      `<p>If it fails again, tell your Keyserver administrator the time and this code.</p>` +
      `<p class="detail">Technical detail: <code>${escapeHtml(reason)}</code></p>`,
    styleNonce,
  );
}

/** Shown instead of the SPA when SPA_DIST_DIR has no built admin SPA. */
export function spaMissingPage(): string {
  return page(
    'Admin console not built',
    '<p>The keyclient is running, but the admin single-page application has not been built, so there is nothing to show yet.</p>' +
      '<p>Build it with <code>npx nx build admin-spa</code> (output <code>dist/apps/admin-spa/browser</code>) ' +
      'or point <code>SPA_DIST_DIR</code> at the built files, then reload this page.</p>',
  );
}
