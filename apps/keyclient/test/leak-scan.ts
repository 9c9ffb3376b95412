import type { Harness } from './harness';

/**
 * Asserts that no keyclient response (status line aside: headers and body) and no log line ever
 * carried an access, refresh or ID token, the client secret or the session encryption key.
 */
export function expectNoSecretsLeaked(h: Harness): { responses: number; secrets: number } {
  const secrets = [...h.tokens, h.config.clientSecret, h.config.sessionEncryptionKey.toString('base64')];
  // Parts of tokens count too: a JWT's signature alone would still be a leak.
  const needles = new Set<string>();
  for (const s of secrets) {
    needles.add(s);
    for (const part of s.split('.')) if (part.length >= 24) needles.add(part);
  }
  const responses = h.seen.filter((r) => r.url.startsWith(h.kc));
  for (const r of responses) {
    const text = `${JSON.stringify(r.headers)}\n${r.body}`;
    for (const n of needles) {
      if (text.includes(n)) throw new Error(`secret material leaked in the response to ${r.method} ${r.url}`);
    }
  }
  for (const line of h.logs) {
    for (const n of needles) {
      if (line.includes(n)) throw new Error('secret material leaked into the logs');
    }
  }
  return { responses: responses.length, secrets: h.tokens.size };
}
