/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;margin:0}
main{max-width:440px;margin:64px auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:24px;font-weight:600;margin:0 0 16px}
label{display:block;margin:16px 0 4px}
input{width:100%;box-sizing:border-box;padding:6px 4px;font-size:15px;border:0;border-bottom:1px solid #666}
button{margin-top:24px;background:#0067b8;color:#fff;border:0;padding:8px 32px;font-size:15px}
.error{color:#a4262c;margin:12px 0}
.hint{color:#666;font-size:13px}
</style>
</head>
<body><main>${body}</main></body>
</html>`;
}

export interface LoginPageModel {
  action: string;
  tenantName: string;
  clientName: string;
  username?: string;
  error?: string;
}

/** The sign-in form: plain HTML, works without JavaScript, labelled inputs for browser tests. */
export function loginPage(m: LoginPageModel): string {
  return page(
    `Sign in to your account - ${m.tenantName}`,
    `<h1>Sign in</h1>
<p class="hint">${escapeHtml(m.tenantName)} &middot; to continue to ${escapeHtml(m.clientName)}</p>
${m.error ? `<p class="error" role="alert" id="login-error">${escapeHtml(m.error)}</p>` : ''}
<form method="post" action="${escapeHtml(m.action)}" autocomplete="off">
<label for="username">Email, phone, or Skype</label>
<input id="username" name="username" type="email" autocomplete="username" required value="${escapeHtml(m.username ?? '')}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p class="hint">Entra ID emulator &ndash; local development only.</p>`,
  );
}

/** A plain message page (errors, signed-out confirmation). */
export function messagePage(title: string, message: string, detail?: string): string {
  return page(
    title,
    `<h1>${escapeHtml(title)}</h1><p role="alert">${escapeHtml(message)}</p>${
      detail ? `<p class="hint">${escapeHtml(detail)}</p>` : ''
    }`,
  );
}
