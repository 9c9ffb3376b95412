import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PATH_METADATA } from '@nestjs/common/constants';
import { API_CONFIG_VARIABLES, loadApiConfig } from '../config/api-config';
import { HealthController } from '../health/health.controller';
import { LIVENESS_PATH } from '../health/liveness';

// deploy/kubernetes (ADR 0025), rendered without a cluster: every object against the Kubernetes schemas (the
// kubernetes-models package, with unknown fields refused), then what no schema checks — selectors, ports, probes on
// real routes, the API's environment against its config schema, security contexts and the NetworkPolicy flows.

const root = join(__dirname, '..', '..', '..', '..');
const deployDir = join(root, 'deploy', 'kubernetes');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const checks = require(join(deployDir, 'checks.cjs')) as {
  renderOverlay(name: string): K8sObject[];
  workloads(objects: K8sObject[]): K8sObject[];
  allContainers(w: K8sObject): Container[];
  find(objects: K8sObject[], kind: string, name: string): K8sObject | undefined;
  containerEnv(objects: K8sObject[], c: Container): Record<string, string>;
  selectorProblems(objects: K8sObject[]): string[];
  securityProblems(objects: K8sObject[]): string[];
  allowed(objects: K8sObject[], namespace: string, from: Record<string, string>, to: { labels?: Record<string, string>; namespace?: string; ip?: string }, port: number): boolean;
  volumeAt(w: K8sObject, c: Container, path: string): { mount: { readOnly?: boolean }; volume: { secret?: { secretName: string }; emptyDir?: unknown } } | undefined;
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type K8sObject = { kind: string; apiVersion: string; metadata: { name: string; namespace?: string }; spec?: any; data?: Record<string, string> };
interface Container {
  name: string;
  image: string;
  env?: { name: string }[];
  readinessProbe?: { httpGet?: { path: string } };
  livenessProbe?: { httpGet?: { path: string } };
  startupProbe?: { httpGet?: { path: string } };
}

const OVERLAYS = ['dev', 'prod'] as const;
const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, checks.renderOverlay(o)])) as Record<(typeof OVERLAYS)[number], K8sObject[]>;

function validateSchemas(...targets: string[]): { problems: string[]; overlays: Record<string, string[]> } {
  try {
    return JSON.parse(execFileSync(process.execPath, [join(deployDir, 'validate-schemas.mjs'), ...targets], { encoding: 'utf8' }));
  } catch (err) {
    const out = (err as { stdout?: string }).stdout;
    if (out) return JSON.parse(out);
    throw err;
  }
}

const apiDeployment = (objects: K8sObject[]) => checks.find(objects, 'Deployment', 'keyserver-api') as K8sObject;
const apiContainer = (objects: K8sObject[]) => (apiDeployment(objects).spec.template.spec.containers as Container[]).find((c) => c.name === 'api') as Container;
const route = (handler: unknown) => `/${Reflect.getMetadata(PATH_METADATA, handler as object)}`;

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  it('ok every object of the dev and prod overlays validates against the Kubernetes schemas, with no unknown field', () => {
    const r = validateSchemas('overlays/dev', 'overlays/prod');
    expect(r.problems).toEqual([]);
    expect(r.overlays['overlays/prod'].length).toBeGreaterThan(10);
  });

  it('fail the schema check bites: a wrong type, a wrong enum value and a misspelt field are each reported', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ks-k8s-bad-'));
    try {
      writeFileSync(join(dir, 'kustomization.yaml'), 'resources: [bad.yaml]\n');
      writeFileSync(
        join(dir, 'bad.yaml'),
        [
          'apiVersion: apps/v1',
          'kind: Deployment',
          'metadata: {name: bad}',
          'spec:',
          '  replicas: "three"',
          '  selector: {matchLabels: {a: b}}',
          '  template:',
          '    metadata: {labels: {a: b}}',
          '    spec:',
          '      containers:',
          '        - {name: c, image: i, imagePullPolicy: Sometimes, readinesProbe: {httpGet: {path: /readyz, port: 1}}}',
        ].join('\n'),
      );
      const problems = validateSchemas(dir).problems.join('\n');
      expect(problems).toContain('/spec/replicas must be integer');
      expect(problems).toContain('imagePullPolicy must be equal to one of the allowed values');
      expect(problems).toContain('readinesProbe is not a field of Container');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(OVERLAYS)('ok %s: selectors match their pods, Services and probes name real container ports', (overlay) => {
    expect(checks.selectorProblems(rendered[overlay])).toEqual([]);
  });

  it.each(OVERLAYS)('ok %s: every container runs as non-root with a read-only root filesystem, no privilege, no API token', (overlay) => {
    expect(checks.securityProblems(rendered[overlay])).toEqual([]);
  });

  it.each(OVERLAYS)('ok %s: the API probes its real routes (readiness /readyz, liveness /healthz)', (overlay) => {
    const c = apiContainer(rendered[overlay]);
    expect(c.readinessProbe?.httpGet?.path).toBe(route(HealthController.prototype.readyz));
    expect(c.livenessProbe?.httpGet?.path).toBe(LIVENESS_PATH);
    expect([route(HealthController.prototype.readyz), LIVENESS_PATH]).toContain(c.startupProbe?.httpGet?.path);
  });

  it('ok dev: the emulator probes a route it serves', () => {
    const emulator = checks.find(rendered.dev, 'Deployment', 'entra-emulator') as K8sObject;
    const source = readFileSync(join(root, 'libs', 'entra-emulator', 'src', 'lib', 'emulator.ts'), 'utf8');
    for (const c of emulator.spec.template.spec.containers as Container[]) expect(source).toContain(`'${c.readinessProbe?.httpGet?.path}'`);
  });

  it.each(OVERLAYS)('ok %s: the API and its init step get every variable the config schema requires, none it would ignore', (overlay) => {
    const objects = rendered[overlay];
    // Variables the image or the SoftHSM init script read besides the API's schema.
    const runtime = new Set(['SOFTHSM2_CONF', 'KEYSERVER_HSM_DIR', 'PKCS11_SO_PIN']);
    const tokenDir = mkdtempSync(join(tmpdir(), 'ks-k8s-'));
    const token = join(tokenDir, 'token');
    // The dev overlay's demo token, or an example of the out-of-band one (the format the listener requires).
    const secret = (objects as { kind: string; metadata: { name: string }; stringData?: Record<string, string> }[]).find((o) => o.kind === 'Secret' && o.metadata.name === 'keyserver-metrics');
    writeFileSync(token, secret?.stringData?.['token'] ?? 'example-metrics-bearer-token-of-48-characters-xx');
    for (const c of checks.allContainers(apiDeployment(objects)).filter((x) => x.image.includes('keyserver-api') || x.image.includes('keyserver-seed'))) {
      if (c.name === 'entra-loopback') continue;
      const env = checks.containerEnv(objects, c);
      expect(Object.keys(env).filter((k) => !API_CONFIG_VARIABLES.includes(k) && !runtime.has(k))).toEqual([]);
      expect(env['PKCS11_MODULE']).toMatch(/^\/.+\.so$/);
      // The metrics token file is the Secret's, mounted read-only into this very container.
      const tokenAt = checks.volumeAt(apiDeployment(objects), c, env['METRICS_TOKEN_FILE']);
      expect({ secret: tokenAt?.volume.secret?.secretName, readOnly: tokenAt?.mount.readOnly }).toEqual({ secret: 'keyserver-metrics', readOnly: true });
      // Files exist in the pod, not here: the same schema checks the rest as the API boots.
      expect(() => loadApiConfig({ ...env, PKCS11_MODULE: process.execPath, METRICS_TOKEN_FILE: token })).not.toThrow();
    }
    rmSync(tokenDir, { recursive: true, force: true });
  });

  it.each(OVERLAYS)('ok %s: demo data only in the dev overlay (seed-demo runs with KEYSERVER_MODE=demo; prod runs in production mode)', (overlay) => {
    const objects = rendered[overlay];
    for (const c of checks.allContainers(apiDeployment(objects))) {
      if (c.name === 'entra-loopback') continue;
      const env = checks.containerEnv(objects, c);
      const seeds = JSON.stringify((c as unknown as { command?: string[] }).command ?? []).includes('seed-demo');
      if (seeds) expect({ overlay, mode: env['KEYSERVER_MODE'] }).toEqual({ overlay: 'dev', mode: 'demo' });
      if (overlay === 'prod') expect(env['KEYSERVER_MODE'] ?? 'production').toBe('production');
    }
  });

  it('ok prod: every image is the product version\'s tag (package.json, docs/operations.md §9), never latest', () => {
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    const ours = checks
      .workloads(rendered.prod)
      .flatMap((w) => checks.allContainers(w).map((c) => c.image))
      .filter((i) => i.startsWith('keyserver/'));
    expect(ours.length).toBeGreaterThanOrEqual(2);
    expect(ours.filter((i) => !i.endsWith(`:${version}`) && !/@sha256:[0-9a-f]{64}$/.test(i))).toEqual([]);
  });

  it('ok prod: three API replicas, a PodDisruptionBudget, rolling updates that never go below the wanted count', () => {
    const d = apiDeployment(rendered.prod);
    expect(d.spec.replicas).toBeGreaterThanOrEqual(3);
    expect(d.spec.strategy.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    const pdb = checks.find(rendered.prod, 'PodDisruptionBudget', 'keyserver-api') as K8sObject;
    expect(pdb.spec.maxUnavailable).toBe(1);
  });

  it('ok prod: the keyclient runs two replicas behind its own PodDisruptionBudget and rolls without going below them', () => {
    const d = checks.find(rendered.prod, 'Deployment', 'keyclient') as K8sObject;
    expect(d.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(d.spec.strategy.rollingUpdate).toEqual({ maxUnavailable: 0, maxSurge: 1 });
    const pdb = checks.find(rendered.prod, 'PodDisruptionBudget', 'keyclient') as K8sObject;
    expect({ maxUnavailable: pdb.spec.maxUnavailable, selects: pdb.spec.selector.matchLabels }).toEqual({
      maxUnavailable: 1,
      selects: { 'app.kubernetes.io/name': 'keyclient' },
    });
  });

  it('ok prod: no emulator, no SoftHSM, no demo Secret; the HSM is the network HSM module mounted read-only', () => {
    const objects = rendered.prod;
    expect(objects.filter((o) => /emulator|postgres/.test(o.metadata.name) || o.kind === 'Secret').map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
    const images = checks.workloads(objects).flatMap((w) => checks.allContainers(w).map((c) => c.image));
    expect(images.filter((i) => /emulator|seed|softhsm/.test(i))).toEqual([]);
    const env = checks.containerEnv(objects, apiContainer(objects));
    expect(env['PKCS11_MODULE']).toBe('/opt/hsm/lib/libpkcs11.so');
    const mounts = (apiContainer(objects) as unknown as { volumeMounts: { mountPath: string; readOnly?: boolean }[] }).volumeMounts;
    expect(mounts.find((m) => m.mountPath === '/opt/hsm')?.readOnly).toBe(true);
    expect(env['OPENID_CONNECT_METADATA_DOCUMENT']).toMatch(/^https:\/\//);
  });

  const api = { 'app.kubernetes.io/name': 'keyserver-api', 'app.kubernetes.io/part-of': 'keyserver' };
  const keyclient = { 'app.kubernetes.io/name': 'keyclient', 'app.kubernetes.io/part-of': 'keyserver' };
  const cnpg = { labels: { 'cnpg.io/cluster': 'keyserver-db' }, namespace: 'keyserver-db' };
  const other = { 'app.kubernetes.io/name': 'something-else' };
  const ENTRA = { ip: '20.190.128.1' };
  const HSM = { ip: '10.20.30.10' };
  it.each([
    ['ok keyclient -> API', keyclient, { labels: api }, 3000, true],
    ['ok keyclient -> Entra ID (https)', keyclient, ENTRA, 443, true],
    ['ok keyclient -> its session database', keyclient, cnpg, 5432, true],
    ['fail keyclient -> the HSM', keyclient, HSM, 1792, false],
    ['fail keyclient -> Entra ID over plain http', keyclient, ENTRA, 80, false],
    ['fail keyclient -> another pod', keyclient, { labels: other }, 8080, false],
    ['ok API -> database', api, cnpg, 5432, true],
    ['ok API -> the HSM', api, HSM, 1792, true],
    ['ok API -> Entra ID (https)', api, ENTRA, 443, true],
    ['fail API -> the HSM subnet on another port', api, HSM, 22, false],
    ['fail API -> the cloud metadata endpoint', api, { ip: '169.254.169.254' }, 80, false],
    ['fail API -> a private address on 443', api, { ip: '10.1.2.3' }, 443, false],
    ['fail API -> the keyclient', api, { labels: keyclient }, 8080, false],
    ['fail another pod -> API', other, { labels: api }, 3000, false],
    ['fail another pod -> keyclient', other, { labels: keyclient }, 8080, false],
    ['fail another pod -> API metrics', other, { labels: api }, 9464, false],
    ['fail keyclient -> API metrics', keyclient, { labels: api }, 9464, false],
  ] as const)('%s (prod NetworkPolicies)', (_name, from, to, port, expected) => {
    expect(checks.allowed(rendered.prod, 'keyserver', from, to, port)).toBe(expected);
  });

  it('ok the ingress controller reaches the API and the keyclient, Prometheus only their metrics ports; nothing else from other namespaces', () => {
    const ingress = { labels: {}, namespace: 'ingress-nginx' };
    // Ingress side only: what the API and keyclient pods accept from a pod of another namespace.
    const objects = rendered.prod.filter((o) => o.kind === 'NetworkPolicy');
    const accepts = (to: Record<string, string>, fromNs: string, port: number) =>
      objects
        .filter((p) => p.spec.policyTypes.includes('Ingress') && (Object.keys(p.spec.podSelector).length === 0 || Object.entries(p.spec.podSelector.matchLabels ?? {}).every(([k, v]) => to[k] === v)))
        .flatMap((p) => p.spec.ingress ?? [])
        .some((r: { from?: { namespaceSelector?: { matchLabels: Record<string, string> } }[]; ports?: { port: number }[] }) =>
          (r.ports ?? []).some((x) => x.port === port) && (r.from ?? []).some((f) => f.namespaceSelector?.matchLabels['kubernetes.io/metadata.name'] === fromNs),
        );
    expect(accepts(api, ingress.namespace, 3000)).toBe(true);
    expect(accepts(keyclient, ingress.namespace, 8080)).toBe(true);
    expect(accepts(api, 'monitoring', 9464)).toBe(true);
    expect(accepts(keyclient, 'monitoring', 9465)).toBe(true);
    expect(accepts(api, 'monitoring', 3000)).toBe(false);
    expect(accepts(api, 'ingress-nginx', 9464)).toBe(false);
    expect(accepts(api, 'default', 3000)).toBe(false);
    expect(accepts(keyclient, 'default', 8080)).toBe(false);
  });

  it.each([
    ['ok API -> the dev PostgreSQL', api, { labels: { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/part-of': 'keyserver' } }, 5432, true],
    ['ok API -> the emulator', api, { labels: { 'app.kubernetes.io/name': 'entra-emulator', 'app.kubernetes.io/part-of': 'keyserver' } }, 4011, true],
    ['ok keyclient -> the emulator', keyclient, { labels: { 'app.kubernetes.io/name': 'entra-emulator', 'app.kubernetes.io/part-of': 'keyserver' } }, 4011, true],
    ['fail the emulator -> API', { 'app.kubernetes.io/name': 'entra-emulator', 'app.kubernetes.io/part-of': 'keyserver' }, { labels: api }, 3000, false],
    ['fail the emulator -> PostgreSQL', { 'app.kubernetes.io/name': 'entra-emulator', 'app.kubernetes.io/part-of': 'keyserver' }, { labels: { 'app.kubernetes.io/name': 'postgres', 'app.kubernetes.io/part-of': 'keyserver' } }, 5432, false],
  ] as const)('%s (dev NetworkPolicies)', (_name, from, to, port, expected) => {
    expect(checks.allowed(rendered.dev, 'keyserver-dev', from, to, port)).toBe(expected);
  });
});
