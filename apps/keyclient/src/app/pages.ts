function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title></head>
<body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
}

/** The sign-in failure page: a fixed text chosen by the keyclient and a stable reason code. */
export function loginErrorPage(text: string, reason: string): string {
  return page(
    'Sign-in failed',
    `<p>${escapeHtml(text)}</p><p>Reason: <code>${escapeHtml(reason)}</code></p><p><a href="/login">Sign in again</a></p>`,
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
