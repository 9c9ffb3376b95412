import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { composeCommand, platformEnv, repoRoot, runStep } from '@keyserver/testing';

describe('OpenAPI document', () => {
  it('is OpenAPI 3.1 and the committed docs/openapi.json matches the code', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ks-openapi-'));
    try {
      // Generating the document touches no database, HSM or provider: a placeholder PIN is enough.
      const { PKCS11_PIN_FILE: _file, ...api } = platformEnv({ hsmDir: dir, sessionKey: 'x' }).api;
      const env = { ...api, PKCS11_PIN: 'not-used' };
      const [, main] = composeCommand('keyserver-api');
      const out = join(dir, 'openapi.json');
      const r = runStep(['node', main, 'openapi', out], env);
      expect(r.stderr.split('\n').filter((l) => l && !/Warning|--trace/.test(l))).toEqual([]);
      expect(r.status).toBe(0);
      const generated = JSON.parse(readFileSync(out, 'utf8'));
      expect(generated.openapi).toBe('3.1.0');
      const committed = JSON.parse(readFileSync(join(repoRoot, 'docs', 'openapi.json'), 'utf8'));
      // Regenerate with: npm run openapi
      expect(committed).toEqual(generated);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
