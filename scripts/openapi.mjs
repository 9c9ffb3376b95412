// Regenerates docs/openapi.json from the built API, with the same environment as the test that compares them
// (apps/keyserver-e2e/src/openapi.spec.ts). Generating touches no database, HSM or provider.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const platform = require('./platform.cjs');
const build = spawnSync('npx', ['nx', 'run', 'keyserver-api:build'], { cwd: platform.root, stdio: 'inherit', env: { NX_NO_CLOUD: 'true', NX_DAEMON: 'false', NX_TUI: 'false', ...process.env } });
if (build.status !== 0) process.exit(build.status ?? 1);
const dir = mkdtempSync(join(tmpdir(), 'ks-openapi-'));
try {
  const api = { ...platform.platformEnv({ hsmDir: dir, sessionKey: 'x' }).api };
  delete api.PKCS11_PIN_FILE; // a placeholder PIN instead: nothing logs in
  const out = join(platform.root, 'docs', 'openapi.json');
  const r = spawnSync(process.execPath, [join(platform.root, 'dist', 'apps', 'keyserver-api', 'main.js'), 'openapi', out], {
    cwd: platform.root,
    env: { ...process.env, ...api, PKCS11_PIN: 'not-used' },
    stdio: 'inherit',
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
  console.log(`wrote ${out}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
