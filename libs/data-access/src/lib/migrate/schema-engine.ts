// Dev/test-only access to Prisma's WASM schema engine (@prisma/schema-engine-wasm, a devDependency),
// driven through the pg driver adapter so no native engine download is needed. Not exported from
// src/index.ts: production code never loads it.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import { Client } from 'pg';
import { bindMigrationAwareSqlAdapterFactory, type SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import { migrateDatabase } from './migrator';

/** Prisma 7.10.0's engine commit; the wasm package must be built from the same one. */
export const SCHEMA_ENGINE_WASM_VERSION = '7.10.0-4.0edf323efd1d98336f3f0a68684b56f689b900d3';

interface DiffTargetEmpty {
  tag: 'empty';
}
interface DiffTargetSchema {
  tag: 'schemaDatamodel';
  files: { path: string; content: string }[];
}
// "the database the adapter is connected to" (the engine no longer accepts URLs here)
interface DiffTargetDatasource {
  tag: 'schemaDatasource';
  files: { path: string; content: string }[];
  configDir: string;
}
type DiffTarget = DiffTargetEmpty | DiffTargetSchema | DiffTargetDatasource;

interface WasmSchemaEngine {
  diff(params: {
    from: DiffTarget;
    to: DiffTarget;
    script: boolean;
    exitCode: boolean | null;
    filters: { externalTables: string[]; externalEnums: string[] };
  }): Promise<{ exitCode: number; stdout: string | null }>;
  free(): void;
}

interface WasmBindings {
  __wbg_set_wasm(exports: WebAssembly.Exports): void;
  SchemaEngine: {
    new: (
      options: { datamodels: [string, string][] | undefined },
      debug: (line: string) => void,
      adapter: object,
    ) => Promise<WasmSchemaEngine>;
  };
}

let bindings: WasmBindings | undefined;

// The package is built for bundlers (`import * as wasm from "./x.wasm"`), so instantiate it by hand.
// The wasm panic hook reports into this global (Prisma's CLI installs the same); we rethrow its message.
const panics = {
  message: '',
  set_message(m: string): void {
    panics.message = `RuntimeError: ${m}`;
  },
};

function loadBindings(): WasmBindings {
  if (bindings) return bindings;
  (globalThis as Record<string, unknown>)['PRISMA_WASM_PANIC_REGISTRY'] = panics;
  const bgModule = '@prisma/schema-engine-wasm/schema_engine_bg';
  const bg = require(bgModule) as WasmBindings & Record<string, unknown>;
  const wasmFile = join(dirname(require.resolve(bgModule)), 'schema_engine_bg.wasm');
  const instance = new WebAssembly.Instance(new WebAssembly.Module(readFileSync(wasmFile)), {
    './schema_engine_bg.js': bg as unknown as WebAssembly.ModuleImports,
  });
  bg.__wbg_set_wasm(instance.exports);
  (instance.exports['__wbindgen_start'] as () => void)();
  bindings = bg;
  return bg;
}

type PerformIO = (query: unknown) => Promise<{ fields: { dataTypeID: number }[]; rows: unknown[] }>;
type QueryRaw = (query: unknown) => Promise<{ columnTypes: number[]; rows: unknown[] }>;
const PG_CHAR_OID = 18;
const PG_TEXT_OID = 25;
/** ColumnTypeEnum.Character of @prisma/driver-adapter-utils. */
const COLUMN_TYPE_CHARACTER = 6;
const patched = Symbol.for('keyserver.pgCharAsCharacter');
const charColumns = new WeakMap<unknown[], number[]>();

// The engine's catalog introspection selects PostgreSQL's internal "char" columns (relkind, contype, ...),
// which @prisma/adapter-pg 7.10 rejects as an unsupported type while the describer expects a
// Character value. Report such columns as Character. Only this dev/test helper installs the patch.
function reportCharAsCharacter(adapter: object): void {
  let proto: object | null = adapter;
  while (proto && !Object.prototype.hasOwnProperty.call(proto, 'performIO')) proto = Object.getPrototypeOf(proto);
  const owner = proto as (Record<string | symbol, unknown> & { performIO: PerformIO; queryRaw: QueryRaw }) | null;
  if (!owner || owner[patched]) return;
  const performIO = owner.performIO;
  const queryRaw = owner.queryRaw;
  owner.performIO = async function (this: unknown, query: unknown) {
    const result = await performIO.call(this, query);
    const idx: number[] = [];
    (result.fields ?? []).forEach((f, i) => {
      if (f.dataTypeID === PG_CHAR_OID) {
        f.dataTypeID = PG_TEXT_OID;
        idx.push(i);
      }
    });
    if (idx.length) charColumns.set(result.rows, idx);
    return result;
  };
  owner.queryRaw = async function (this: unknown, query: unknown) {
    const result = await queryRaw.call(this, query);
    for (const i of charColumns.get(result.rows) ?? []) result.columnTypes[i] = COLUMN_TYPE_CHARACTER;
    return result;
  };
  owner[patched] = true;
}

function engineAdapter(url: string): object {
  const base = new PrismaPg({ connectionString: url });
  const wrap = async <T extends object>(p: Promise<T>): Promise<T> => {
    const adapter = await p;
    reportCharAsCharacter(adapter);
    return adapter;
  };
  const factory: SqlMigrationAwareDriverAdapterFactory = {
    provider: base.provider,
    adapterName: base.adapterName,
    connect: () => wrap(base.connect()),
    connectToShadowDb: () => wrap(base.connectToShadowDb()),
  };
  return bindMigrationAwareSqlAdapterFactory(factory);
}

const noFilters = { externalTables: [], externalEnums: [] };

/**
 * Returns the SQL that turns the database at `databaseUrl` (or an empty database when null) into the
 * state described by the Prisma schema file. An up-to-date database yields an empty script
 * (only comments), see {@link isEmptyMigrationScript}.
 */
export async function diffDatabaseToSchema(databaseUrl: string | null, schemaPath: string): Promise<string> {
  const content = readFileSync(schemaPath, 'utf8');
  const url = databaseUrl ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const adapter = engineAdapter(url);
  const engine = await loadBindings().SchemaEngine.new({ datamodels: [[schemaPath, content]] }, () => undefined, adapter);
  try {
    const result = await engine.diff({
      from: databaseUrl
        ? { tag: 'schemaDatasource', files: [{ path: schemaPath, content }], configDir: dirname(schemaPath) }
        : { tag: 'empty' },
      to: { tag: 'schemaDatamodel', files: [{ path: schemaPath, content }] },
      script: true,
      exitCode: null,
      filters: noFilters,
    });
    return result.stdout ?? '';
  } catch (err) {
    if (panics.message) throw new Error(`schema engine panicked: ${panics.message}`, { cause: err });
    throw err;
  } finally {
    engine.free();
  }
}

/** True when a diff script contains no SQL statement. */
export function isEmptyMigrationScript(script: string): boolean {
  return script
    .split('\n')
    .map((l) => l.trim())
    .every((l) => l === '' || l.startsWith('--'));
}

/** UTC timestamp prefix of a migration directory name (yyyymmddHHMMSS), as Prisma names them. */
export function migrationTimestamp(d = new Date()): string {
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/**
 * The `db:diff` workflow: creates a scratch database next to `adminUrl`, applies the migrations of
 * `migrationsDir`, diffs it against `schemaPath` and, when they differ, writes
 * `<migrationsDir>/<timestamp>_<name>/migration.sql`. Returns the written path or null. The scratch
 * database is always dropped.
 */
export async function writeNextMigration(opts: {
  adminUrl: string;
  schemaPath: string;
  migrationsDir: string;
  name: string;
  now?: Date;
}): Promise<string | null> {
  if (!/^[a-z0-9_]+$/.test(opts.name)) throw new Error('migration name: lower-case letters, digits and underscores only');
  const dbName = `ks_da_diff_${randomBytes(5).toString('hex')}`;
  const admin = async (sql: string) => {
    const c = new Client({ connectionString: opts.adminUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE "${dbName}"`);
  try {
    const url = new URL(opts.adminUrl);
    url.pathname = `/${dbName}`;
    await migrateDatabase(url.toString(), undefined, { migrationsDir: opts.migrationsDir });
    const script = await diffDatabaseToSchema(url.toString(), opts.schemaPath);
    if (isEmptyMigrationScript(script)) return null;
    const dir = join(opts.migrationsDir, `${migrationTimestamp(opts.now)}_${opts.name}`);
    mkdirSync(dir);
    const file = join(dir, 'migration.sql');
    writeFileSync(file, script);
    return file;
  } finally {
    await admin(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  }
}
