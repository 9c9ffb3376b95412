const fs = require('fs');
const path = require('path');
const bg = require('@prisma/schema-engine-wasm/schema_engine_bg');
const wasmPath = path.join(path.dirname(require.resolve('@prisma/schema-engine-wasm/schema_engine_bg')), 'schema_engine_bg.wasm');
const mod = new WebAssembly.Module(fs.readFileSync(wasmPath));
const inst = new WebAssembly.Instance(mod, { './schema_engine_bg.js': bg });
bg.__wbg_set_wasm(inst.exports);
inst.exports.__wbindgen_start();
const { PrismaPg } = require('@prisma/adapter-pg');
const { bindSqlAdapterFactory } = require('@prisma/driver-adapter-utils');
(async () => {
  const schemaPath = path.resolve('libs/data-access/prisma/schema.prisma');
  const content = fs.readFileSync(schemaPath, 'utf8');
  const factory = bindSqlAdapterFactory(new PrismaPg({ connectionString: 'postgres://postgres@127.0.0.1:5432/ks_da_probe' }));
  const engine = await bg.SchemaEngine.new({ datamodels: [[schemaPath, content]] }, (l) => {}, factory);
  const r = await engine.diff({ from: { tag: 'empty' }, to: { tag: 'schemaDatamodel', files: [{ path: schemaPath, content }] }, script: true, exitCode: null, filters: { externalTables: [], externalEnums: [] } });
  console.log(r.stdout);
})().catch((e) => { console.error('ERR', e); process.exit(1); });
