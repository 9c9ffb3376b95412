// Opens and closes a Pkcs11Signer in a process of its own (fresh module state), for tests of what several API
// processes do at once on one token. Runs the TypeScript source through jiti with the workspace's path aliases.
// Usage: node open-signer.child.cjs '<json Pkcs11SignerOptions>' [startAt epoch ms]; prints one JSON line {ok, code, ms}.
// startAt: the moment to open at, so that processes started together open together (their load times differ).
'use strict';
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '../../../..');
const started = Date.now();
const paths = JSON.parse(readFileSync(join(root, 'tsconfig.base.json'), 'utf8')).compilerOptions.paths;
const alias = Object.fromEntries(Object.entries(paths).filter(([k]) => !k.includes('*')).map(([k, v]) => [k, join(root, v[0])]));
const jiti = require('jiti')(__filename, { alias });
const { createPkcs11Signer } = jiti(join(root, 'libs/pkcs11-signer/src/lib/pkcs11-signer.ts'));

const opts = JSON.parse(process.argv[2]);
const startAt = Number(process.argv[3] ?? 0);
while (Date.now() < startAt); // a busy wait: a timer would add its own spread
const loaded = Date.now();
createPkcs11Signer(opts).then(
  async (signer) => {
    await signer.close();
    console.log(JSON.stringify({ ok: true, ms: Date.now() - loaded, loadMs: loaded - started }));
  },
  (e) => {
    console.log(JSON.stringify({ ok: false, code: e.code ?? String(e.message), ms: Date.now() - loaded, loadMs: loaded - started }));
    process.exitCode = 3;
  },
);
