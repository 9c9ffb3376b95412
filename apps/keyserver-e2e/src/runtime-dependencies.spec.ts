import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { composeCommand, repoRoot } from '@keyserver/testing';

// The images keep only `dependencies` (`npm prune --omit=dev --omit=optional`, Dockerfile). A package the built
// servers load but that is only a devDependency (or not declared at all) works on a developer's machine and crashes
// the container at start: "Cannot find module 'express'" (issue 14). `npm run test:containers` proves the images
// with a Docker engine; this checks the same rule on every `npm test`, on the build it made.

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };

/** Loaded by a dependency, not by our code, so absent from our bundles' require() calls. */
const LOADED_BY_DEPENDENCIES: Record<string, string> = {
  // NestFactory.create() without an adapter (the keyclient) loads it through @nestjs/core's loadPackage.
  '@nestjs/platform-express': 'keyclient',
};

/** The package a module specifier names: `pg/lib/utils` → `pg`, `@scope/a/b` → `@scope/a`; undefined for builtins and relative paths. */
function packageOf(specifier: string): string | undefined {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:')) return undefined;
  const parts = specifier.split('/');
  const name = specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  return builtinModules.includes(name) ? undefined : name;
}

/** The packages a compiled file require()s with a literal specifier. */
function requiredPackages(js: string): string[] {
  const names = [...js.matchAll(/\brequire\(\s*(["'])([^"'\n]+)\1\s*\)/g)].map((m) => packageOf(m[2]));
  return [...new Set(names.filter((n): n is string => n !== undefined))].sort();
}

/** Every .js file under a directory (the tsc-built emulator is a tree, the webpack-built servers one file). */
function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? jsFiles(p) : e.name.endsWith('.js') ? [p] : [];
  });
}

describe(packageOf.name, () => {
  it.each([
    ['ok a package', 'pino', 'pino'],
    ['ok a file inside a package', 'pg/lib/utils', 'pg'],
    ['ok a scoped package', '@nestjs/core', '@nestjs/core'],
    ['ok a file inside a scoped package', '@prisma/client/runtime/client', '@prisma/client'],
    ['ok a builtin is no package', 'fs', undefined],
    ['ok a node: builtin is no package', 'node:crypto', undefined],
    ['ok a relative path is no package', './app.module', undefined],
  ])('%s', (_name, specifier, expected) => {
    expect(packageOf(specifier)).toBe(expected);
  });
});

describe(requiredPackages.name, () => {
  it('finds literal require() calls with either quote and ignores dynamic ones', () => {
    const js = `const a = require("express"); const b = require('pg/lib/utils'); require(name); require("node:fs"); x.require("@nestjs/core");`;
    expect(requiredPackages(js)).toEqual(['@nestjs/core', 'express', 'pg']);
  });
});

describe('built servers', () => {
  const servers = ['keyserver-api', 'keyclient', 'entra-emulator'].map((service) => {
    const main = join(repoRoot, composeCommand(service)[1]);
    // The emulator is compiled file by file (tsc), the API and the keyclient are one webpack bundle each.
    const files = !existsSync(main) ? [] : service === 'entra-emulator' ? jsFiles(dirname(main)) : [main];
    return { service, main, files };
  });

  it.each(servers.map((s) => [s.service, s] as const))('%s loads only packages declared in dependencies (the rest is pruned from its image)', (_service, s) => {
    expect(s.files.length).toBeGreaterThan(0);
    const used = new Set(s.files.flatMap((f) => requiredPackages(readFileSync(f, 'utf8'))));
    // Workspace libraries ship inside the build (bundled, or compiled next to the emulator), never from node_modules.
    const workspace = [...used].filter((n) => n.startsWith('@keyserver/'));
    expect(workspace.filter((n) => !existsSync(join(dirname(s.main), 'libs', n.slice('@keyserver/'.length))))).toEqual([]);
    const outside = [...used].filter((n) => !n.startsWith('@keyserver/'));
    expect(outside.length).toBeGreaterThan(3);
    expect(outside.filter((n) => !(n in pkg.dependencies))).toEqual([]);
  });

  it('the packages a dependency loads for us are declared too', () => {
    expect(Object.keys(LOADED_BY_DEPENDENCIES).filter((n) => !(n in pkg.dependencies))).toEqual([]);
  });
});
