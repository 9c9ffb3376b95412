// Container health check without curl: exit 0 when the URL answers 2xx within 3 s.
const url = process.argv[2];
try {
  const r = await fetch(url, { signal: AbortSignal.timeout(3000) });
  process.exit(r.ok ? 0 : 1);
} catch {
  process.exit(1);
}
