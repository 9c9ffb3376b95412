#!/usr/bin/env node
// Renders a Kustomize overlay of deploy/kubernetes without a kustomize binary, for the tests (`npm test` has no
// cluster and no kubectl). It implements exactly the subset these kustomizations use and refuses anything else, so
// a new field cannot be silently ignored: resources (files and directories), namespace, images (newName/newTag),
// patches (RFC 6902 operation lists, inline or by path, target kind/name). `kubectl kustomize <dir>` renders the
// same objects (checked when the manifests were written; README.md).
//   node deploy/kubernetes/render.cjs overlays/prod      -> YAML on stdout
'use strict';
const { existsSync, readFileSync, statSync } = require('node:fs');
const { join, resolve } = require('node:path');
const YAML = require('yaml');

const SUPPORTED = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches']);
// Kinds that live in a namespace (the ones a kustomization here may hold).
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass']);

function readDocs(file) {
  return YAML.parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      return d.toJSON();
    })
    .filter((o) => o !== null && o !== undefined);
}

function kustomizationFile(dir) {
  for (const name of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${dir}: no kustomization.yaml`);
}

function unescape(token) {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** RFC 6902 add / replace / remove (the operations the overlays use). */
function applyOperation(doc, op, where) {
  if (!['add', 'replace', 'remove'].includes(op.op)) throw new Error(`${where}: patch operation ${op.op} is not supported`);
  const tokens = String(op.path).split('/').slice(1).map(unescape);
  if (tokens.length === 0) throw new Error(`${where}: patch path ${op.path} names the whole object`);
  let parent = doc;
  for (const t of tokens.slice(0, -1)) {
    const next = Array.isArray(parent) ? parent[Number(t)] : parent?.[t];
    if (next === undefined || next === null || typeof next !== 'object') throw new Error(`${where}: patch path ${op.path} does not exist`);
    parent = next;
  }
  const last = tokens[tokens.length - 1];
  const value = op.value === undefined ? undefined : JSON.parse(JSON.stringify(op.value));
  if (Array.isArray(parent)) {
    const index = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(index) || index < 0 || index > parent.length) throw new Error(`${where}: bad array index in ${op.path}`);
    if (op.op === 'add') parent.splice(index, 0, value);
    else if (index >= parent.length) throw new Error(`${where}: ${op.path} does not exist`);
    else if (op.op === 'replace') parent[index] = value;
    else parent.splice(index, 1);
    return;
  }
  if (op.op !== 'add' && !(last in parent)) throw new Error(`${where}: ${op.path} does not exist`);
  if (op.op === 'remove') delete parent[last];
  else parent[last] = value;
}

function setImages(objects, images) {
  for (const o of objects) {
    const spec = o.spec?.template?.spec ?? (o.kind === 'Pod' ? o.spec : undefined);
    if (!spec) continue;
    for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
      const [name, tag] = splitImage(c.image);
      const rule = images.find((i) => i.name === name);
      if (rule) c.image = `${rule.newName ?? name}:${rule.newTag ?? tag}`;
    }
  }
}

function splitImage(image) {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, 'latest'];
}

/** The objects a kustomization directory renders to. */
function render(dir) {
  dir = resolve(dir);
  const file = kustomizationFile(dir);
  const k = YAML.parse(readFileSync(file, 'utf8'));
  for (const key of Object.keys(k)) if (!SUPPORTED.has(key)) throw new Error(`${file}: field "${key}" is not supported by render.cjs (use kubectl kustomize, and extend render.cjs and its test)`);
  let objects = [];
  for (const r of k.resources ?? []) {
    const path = join(dir, r);
    objects = objects.concat(statSync(path).isDirectory() ? render(path) : readDocs(path));
  }
  for (const [i, p] of (k.patches ?? []).entries()) {
    const where = `${file} patches[${i}]`;
    for (const key of Object.keys(p)) if (!['path', 'patch', 'target'].includes(key)) throw new Error(`${where}: field "${key}" is not supported`);
    for (const key of Object.keys(p.target ?? {})) if (!['kind', 'name'].includes(key)) throw new Error(`${where}: target field "${key}" is not supported`);
    const ops = p.path ? YAML.parse(readFileSync(join(dir, p.path), 'utf8')) : YAML.parse(p.patch);
    if (!Array.isArray(ops)) throw new Error(`${where}: only RFC 6902 operation lists are supported`);
    const targets = objects.filter((o) => (!p.target?.kind || o.kind === p.target.kind) && (!p.target?.name || o.metadata?.name === p.target.name));
    if (targets.length === 0) throw new Error(`${where}: the target matches no object`);
    for (const t of targets) for (const op of ops) applyOperation(t, op, where);
  }
  if (k.images) setImages(objects, k.images);
  if (k.namespace) for (const o of objects) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata = { ...o.metadata, namespace: k.namespace };
  return objects;
}

module.exports = { render, applyOperation, root: __dirname };

if (require.main === module) {
  const target = process.argv[2];
  if (!target) {
    console.error('usage: node deploy/kubernetes/render.cjs overlays/<name>');
    process.exit(2);
  }
  const dir = existsSync(target) ? target : join(__dirname, target);
  process.stdout.write(render(dir).map((o) => YAML.stringify(o)).join('---\n'));
}
