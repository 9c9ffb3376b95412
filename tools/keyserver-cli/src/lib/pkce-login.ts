import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CliError, Exit, tokenRequest, writeCache, type Connection } from './client';
import { Deadline } from './deadline';

export interface PkceLoginOptions {
  authorizationEndpoint: string;
  /** The customer's PKCE_REDIRECT_URI (loopback); port 0 picks a free port (Entra ignores loopback ports). */
  redirectUri: string;
  openBrowser: boolean;
  timeoutMs: number;
  /** The code exchange after the sign-in ends by this deadline (KSCTL_TIMEOUT), as every request of ksctl does. */
  requestTimeoutSeconds?: number;
  /** Where the sign-in URL is printed (stderr by default, so --json output stays clean). */
  print?: (line: string) => void;
}

/**
 * Authorization code flow with PKCE S256 as a public client on a loopback redirect: prints the sign-in
 * URL (and opens a browser when one exists), waits for the redirect, exchanges the code, caches the tokens.
 */
export async function pkceLogin(c: Connection, o: PkceLoginOptions): Promise<{ expiresAt: number }> {
  const target = new URL(o.redirectUri);
  if (target.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) {
    throw new CliError('the PKCE redirect URI must be http on a loopback address', Exit.Usage);
  }
  if (!c.clientId || !c.scope) throw new CliError('set KEYSERVER_CLIENT_ID and KEYSERVER_SCOPE (or use --demo)', Exit.Usage);
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(16).toString('base64url');

  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new CliError(`cannot listen on ${target.host}: ${e.message}`, Exit.Failure)));
    server.listen(Number(target.port || 80), target.hostname.replace(/^\[|\]$/g, ''), () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const redirectUri = `http://${target.hostname}:${port}${target.pathname}`;
  try {
    const url = new URL(o.authorizationEndpoint);
    url.search = new URLSearchParams({
      client_id: c.clientId,
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: `openid profile offline_access ${c.scope}`,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      prompt: 'select_account',
    }).toString();
    (o.print ?? ((l) => process.stderr.write(l + '\n')))(`Sign in at: ${url.href}`);
    if (o.openBrowser && process.env['DISPLAY'] && spawnSync('sh', ['-c', 'command -v xdg-open']).status === 0) {
      spawn('xdg-open', [url.href], { detached: true, stdio: 'ignore' }).unref();
    }
    const code = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new CliError('no sign-in within the timeout', Exit.Auth, 'login_timeout')), o.timeoutMs);
      server.on('request', (req, res) => {
        const got = new URL(req.url ?? '/', redirectUri);
        if (got.pathname !== target.pathname) {
          res.writeHead(404).end();
          return;
        }
        const ok = got.searchParams.get('state') === state && got.searchParams.get('code');
        res.writeHead(ok ? 200 : 400, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(ok ? 'Signed in to the Keyserver. You can close this window.' : 'Sign-in failed. Return to the terminal.');
        clearTimeout(timer);
        if (ok) {
          resolve(got.searchParams.get('code') as string);
          return;
        }
        // Any local page can reach this listener: only an OAuth error code's shape gets to the terminal.
        const raw = got.searchParams.get('error');
        const reason = raw === null ? 'state_mismatch' : /^[a-z_]{1,64}$/.test(raw) ? raw : 'invalid_callback';
        reject(new CliError(`sign-in failed (${reason})`, Exit.Auth, reason));
      });
    });
    const exchange = o.requestTimeoutSeconds ? { ...c, deadline: new Deadline(o.requestTimeoutSeconds) } : c;
    const t = await tokenRequest(exchange, { grant_type: 'authorization_code', client_id: c.clientId, code, redirect_uri: redirectUri, code_verifier: verifier });
    writeCache(c, t);
    return { expiresAt: t.expiresAt };
  } finally {
    server.close();
  }
}
