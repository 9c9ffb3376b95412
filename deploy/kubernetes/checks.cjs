// Checks of rendered manifests that no schema makes: selectors that match, ports and probes that exist, the
// environment a container really gets, and which flows the NetworkPolicies allow. Used by the manifest tests of
// apps/keyserver-api and apps/keyclient (npm test).
'use strict';
const { join } = require('node:path');
const { render } = require('./render.cjs');

const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'Job']);

/**
 * Secrets the production overlay expects to be created out of band (README.md), with example values in the format
 * the apps' config schemas require; the tests feed them where a rendered overlay has no Secret.
 */
const OUT_OF_BAND_SECRETS = {
  'keyserver-api': { DATABASE_URL: 'postgresql://keyserver:example-password@keyserver-db-rw.keyserver-db.svc:5432/keyserver' },
  'keyserver-hsm': { PKCS11_PIN: 'example-partition-pin' },
  'keyserver-entra': { CLIENT_SECRET: 'example-client-secret-value' },
  keyclient: {
    SESSION_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
    DATABASE_URL: 'postgresql://keyserver_keyclient:example-password@keyserver-db-rw.keyserver-db.svc:5432/keyserver',
  },
};

function renderOverlay(name) {
  return render(join(__dirname, 'overlays', name));
}

const workloads = (objects) => objects.filter((o) => WORKLOAD_KINDS.has(o.kind));
const podSpec = (w) => w.spec.template.spec;
const allContainers = (w) => [...(podSpec(w).initContainers ?? []), ...podSpec(w).containers];

function find(objects, kind, name) {
  return objects.find((o) => o.kind === kind && o.metadata?.name === name);
}

/** Kubernetes label selector semantics (matchLabels and matchExpressions In/NotIn/Exists/DoesNotExist). */
function selects(selector, labels) {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    if (e.operator === 'In' && !(has && e.values.includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && e.values.includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** The environment a container gets from its env and envFrom (ConfigMaps and Secrets of the overlay, else out-of-band). */
function containerEnv(objects, container) {
  const env = {};
  const source = (kind, name) => {
    const o = find(objects, kind, name);
    if (o) return { ...(o.data ?? {}), ...(o.stringData ?? {}) };
    if (kind === 'Secret' && OUT_OF_BAND_SECRETS[name]) return OUT_OF_BAND_SECRETS[name];
    throw new Error(`${container.name}: ${kind} ${name} is neither rendered nor a documented out-of-band Secret`);
  };
  for (const f of container.envFrom ?? []) {
    if (f.configMapRef) Object.assign(env, source('ConfigMap', f.configMapRef.name));
    if (f.secretRef) Object.assign(env, source('Secret', f.secretRef.name));
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.configMapKeyRef) env[e.name] = source('ConfigMap', e.valueFrom.configMapKeyRef.name)[e.valueFrom.configMapKeyRef.key];
    else if (e.valueFrom?.secretKeyRef) env[e.name] = source('Secret', e.valueFrom.secretKeyRef.name)[e.valueFrom.secretKeyRef.key];
    if (env[e.name] === undefined) throw new Error(`${container.name}: ${e.name} refers to a key that does not exist`);
  }
  return env;
}

/** The volume a container sees at `path` (longest mountPath prefix), or undefined when nothing is mounted there. */
function volumeAt(workload, container, path) {
  const mount = (container.volumeMounts ?? [])
    .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, '')}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  return mount && { mount, volume: (podSpec(workload).volumes ?? []).find((v) => v.name === mount.name) };
}

/** Problems with labels, selectors and named ports across one overlay. */
function selectorProblems(objects) {
  const problems = [];
  const pods = workloads(objects).map((w) => ({ w, labels: w.spec.template.metadata?.labels ?? {} }));
  for (const { w, labels } of pods) {
    if (!selects(w.spec.selector, labels)) problems.push(`${w.kind}/${w.metadata.name}: selector does not match its pod template labels`);
    for (const c of allContainers(w)) {
      const ports = new Set((c.ports ?? []).flatMap((p) => [p.name, p.containerPort]));
      for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
        const port = c[probe]?.httpGet?.port;
        if (port !== undefined && !ports.has(port)) problems.push(`${w.metadata.name}/${c.name}: ${probe} port ${port} is not a container port`);
      }
    }
  }
  for (const s of objects.filter((o) => o.kind === 'Service')) {
    const matched = pods.filter((p) => selects({ matchLabels: s.spec.selector }, p.labels));
    if (matched.length === 0) problems.push(`Service/${s.metadata.name}: selector matches no pod template`);
    for (const port of s.spec.ports) {
      const ok = matched.some((p) => p.w.spec.template.spec.containers.some((c) => (c.ports ?? []).some((cp) => cp.name === port.targetPort || cp.containerPort === port.targetPort)));
      if (matched.length && !ok) problems.push(`Service/${s.metadata.name}: targetPort ${port.targetPort} is no container port`);
    }
  }
  for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget')) {
    if (!pods.some((p) => selects(pdb.spec.selector, p.labels))) problems.push(`PodDisruptionBudget/${pdb.metadata.name}: selector matches no pod template`);
  }
  for (const np of objects.filter((o) => o.kind === 'NetworkPolicy')) {
    const empty = Object.keys(np.spec.podSelector ?? {}).length === 0;
    if (!empty && !pods.some((p) => selects(np.spec.podSelector, p.labels))) problems.push(`NetworkPolicy/${np.metadata.name}: podSelector matches no pod template`);
  }
  return problems;
}

/** Problems with the containers' and pods' security settings (non-root, read-only, no privilege, no API token). */
function securityProblems(objects) {
  const problems = [];
  for (const w of workloads(objects)) {
    const spec = podSpec(w);
    const where = `${w.kind}/${w.metadata.name}`;
    if (spec.automountServiceAccountToken !== false) problems.push(`${where}: automountServiceAccountToken is not false`);
    if (spec.securityContext?.seccompProfile?.type !== 'RuntimeDefault') problems.push(`${where}: no RuntimeDefault seccomp profile`);
    if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problems.push(`${where}: shares a host namespace`);
    for (const c of allContainers(w)) {
      const sc = c.securityContext ?? {};
      if ((sc.runAsNonRoot ?? spec.securityContext?.runAsNonRoot) !== true) problems.push(`${where}/${c.name}: runAsNonRoot is not true`);
      if ((sc.runAsUser ?? spec.securityContext?.runAsUser) === 0) problems.push(`${where}/${c.name}: runs as uid 0`);
      if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}/${c.name}: root filesystem is not read-only`);
      if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}/${c.name}: allowPrivilegeEscalation is not false`);
      if (sc.privileged) problems.push(`${where}/${c.name}: privileged`);
      if (!(sc.capabilities?.drop ?? []).includes('ALL') || (sc.capabilities?.add ?? []).length) problems.push(`${where}/${c.name}: capabilities are not dropped`);
      if (!c.resources?.limits?.memory) problems.push(`${where}/${c.name}: no memory limit`);
    }
  }
  return problems;
}

function ipInCidr(ip, cidr) {
  const [base, bits] = cidr.split('/');
  const n = (a) => a.split('.').reduce((x, o) => (x << 8) + Number(o), 0) >>> 0;
  const mask = Number(bits) === 0 ? 0 : (~0 << (32 - Number(bits))) >>> 0;
  return (n(ip) & mask) === (n(base) & mask);
}

/**
 * Whether the overlay's NetworkPolicies let a pod with `from` labels (in `namespace`) open a TCP connection to `to`:
 * a pod ({ labels, namespace }) or an address ({ ip }), on `port`. Both the egress side and, for pods of the
 * overlay, the ingress side must allow it (policies are allow-lists once a pod is selected).
 */
function allowed(objects, namespace, fromLabels, to, port) {
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
  const peerMatches = (peer, target) => {
    if (peer.ipBlock) return target.ip !== undefined && ipInCidr(target.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((c) => ipInCidr(target.ip, c));
    if (target.ip !== undefined) return false;
    const ns = target.namespace ?? namespace;
    const nsOk = peer.namespaceSelector ? selects(peer.namespaceSelector, { 'kubernetes.io/metadata.name': ns }) : ns === namespace;
    const podOk = peer.podSelector ? selects(peer.podSelector, target.labels) : true;
    return nsOk && podOk;
  };
  const portMatches = (rule) => !rule.ports || rule.ports.some((p) => (p.protocol ?? 'TCP') === 'TCP' && (p.port === undefined || p.port === port));
  const side = (type, podLabels, peerTarget) => {
    const selecting = policies.filter((p) => (p.spec.policyTypes ?? ['Ingress']).includes(type) && selects(p.spec.podSelector, podLabels) || (Object.keys(p.spec.podSelector ?? {}).length === 0));
    if (selecting.length === 0) return true;
    const rules = selecting.flatMap((p) => (type === 'Egress' ? p.spec.egress : p.spec.ingress) ?? []);
    return rules.some((r) => portMatches(r) && (!(type === 'Egress' ? r.to : r.from) || (type === 'Egress' ? r.to : r.from).some((peer) => peerMatches(peer, peerTarget))));
  };
  const egress = side('Egress', fromLabels, to);
  const ingress = to.ip !== undefined || (to.namespace && to.namespace !== namespace) ? true : side('Ingress', to.labels, { labels: fromLabels, namespace });
  return egress && ingress;
}

module.exports = { volumeAt, renderOverlay, workloads, allContainers, find, selects, containerEnv, selectorProblems, securityProblems, allowed, ipInCidr, OUT_OF_BAND_SECRETS };
