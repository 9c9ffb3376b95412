#!/usr/bin/env node
// Validates every object an overlay renders against the Kubernetes OpenAPI schemas (the kubernetes-models package),
// since no cluster is reachable in CI. Prints one JSON report; exit 1 on any problem.
//   node deploy/kubernetes/validate-schemas.mjs overlays/dev overlays/prod
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const { render } = createRequire(import.meta.url)('./render.cjs');

async function modelOf(apiVersion, kind) {
  // "apps/v1" -> kubernetes-models/apps/v1/Deployment; core "v1" -> kubernetes-models/v1/ConfigMap
  const mod = await import(`kubernetes-models/${apiVersion}/${kind}`).catch(() => undefined);
  return mod?.[kind];
}

// The schemas check types and enums but accept unknown fields (a "readinesProbe" typo would mean no probe at all,
// which the API server only warns about). The models' type declarations list every field: unknown ones are refused.
const interfaces = new Map();
function declaration(file) {
  if (interfaces.has(file)) return interfaces.get(file);
  const text = readFileSync(file, 'utf8');
  const imports = new Map();
  for (const m of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";$/gm)) for (const name of m[1].split(',').map((x) => x.trim())) imports.set(name, m[2]);
  const body = /^export interface I\w+(?: extends TypeMeta)? \{\n([\s\S]*?)^\}/m.exec(text);
  const fields = new Map();
  if (/^export interface I\w+ extends TypeMeta/m.test(text)) fields.set('apiVersion', null).set('kind', null);
  for (const m of (body?.[1] ?? '').matchAll(/^    "([^"]+)"\??: (.+?);?$/gm)) {
    const type = /^(?:Array<)?(I\w+)>?$/.exec(m[2])?.[1];
    const from = type && imports.get(type);
    fields.set(m[1], from ? resolveDeclaration(file, from) : null);
  }
  interfaces.set(file, fields);
  return fields;
}
function resolveDeclaration(fromFile, spec) {
  // Bare specifiers (@kubernetes-models/apimachinery/...) resolve from the repository's node_modules like the models.
  const js = spec.startsWith('.') ? resolve(dirname(fromFile), spec) : fileURLToPath(import.meta.resolve(spec));
  return js.replace(/\.js$/, '') + '.d.ts';
}
function unknownFields(value, file, path, out) {
  if (value === null || typeof value !== 'object' || !file) return out;
  if (Array.isArray(value)) {
    value.forEach((v, i) => unknownFields(v, file, `${path}/${i}`, out));
    return out;
  }
  const fields = declaration(file);
  for (const [k, v] of Object.entries(value)) {
    if (!fields.has(k)) out.push(`${path}/${k} is not a field of ${file.split('/').slice(-1)[0].replace('.d.ts', '')}`);
    else unknownFields(v, fields.get(k), `${path}/${k}`, out);
  }
  return out;
}

const report = { overlays: {}, problems: [] };
for (const overlay of process.argv.slice(2)) {
  const objects = render(resolve(here, overlay));
  report.overlays[overlay] = objects.map((o) => `${o.kind}/${o.metadata?.name}`);
  for (const o of objects) {
    const where = `${overlay}: ${o.kind}/${o.metadata?.name}`;
    const Model = await modelOf(o.apiVersion, o.kind);
    if (!Model) {
      report.problems.push(`${where}: no schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    const modelFile = fileURLToPath(import.meta.resolve(`kubernetes-models/${o.apiVersion}/${o.kind}`)).replace(/\.js$/, '.d.ts');
    for (const u of unknownFields(o, modelFile, '', [])) report.problems.push(`${where}: ${u}`);
    try {
      new Model(o).validate();
    } catch (err) {
      const details = (err.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ''}`);
      report.problems.push(`${where}: ${details.length ? details.join('; ') : err.message}`);
    }
  }
}
console.log(JSON.stringify(report, null, 2));
process.exit(report.problems.length ? 1 : 0);
