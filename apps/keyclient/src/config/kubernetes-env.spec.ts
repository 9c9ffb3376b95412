import 'reflect-metadata';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PATH_METADATA } from '@nestjs/common/constants';
import { HealthController } from '../app/health.controller';
import { KEYCLIENT_CONFIG_VARIABLES, loadKeyclientConfig } from './keyclient-config';

// The keyclient's Deployment in deploy/kubernetes (ADR 0025): the environment it really gets from ConfigMaps and
// Secrets satisfies the config schema, names nothing the schema would ignore, and its probes are real routes.
// (Schemas, selectors and NetworkPolicies: apps/keyserver-api/src/deploy/kubernetes-manifests.spec.ts.)

// eslint-disable-next-line @typescript-eslint/no-require-imports
const checks = require(join(__dirname, '..', '..', '..', '..', 'deploy', 'kubernetes', 'checks.cjs')) as {
  renderOverlay(name: string): { kind: string; metadata: { name: string }; spec?: { template: { spec: { containers: Container[] } } } }[];
  containerEnv(objects: unknown[], c: Container): Record<string, string>;
  volumeAt(w: unknown, c: Container, path: string): { mount: { readOnly?: boolean }; volume: { secret?: { secretName: string } } } | undefined;
};

interface Container {
  name: string;
  readinessProbe?: { httpGet?: { path: string } };
  livenessProbe?: { httpGet?: { path: string } };
}

const route = (handler: unknown) => `/${Reflect.getMetadata(PATH_METADATA, handler as object)}`;

describe('keyclient Deployment (deploy/kubernetes)', () => {
  it.each(['dev', 'prod'])('ok %s: the keyclient gets every variable its config schema requires, none it would ignore, and probes real routes', (overlay) => {
    const objects = checks.renderOverlay(overlay);
    const d = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'keyclient');
    const c = d?.spec?.template.spec.containers.find((x) => x.name === 'keyclient') as Container;
    const env = checks.containerEnv(objects, c);
    expect(Object.keys(env).filter((k) => !KEYCLIENT_CONFIG_VARIABLES.includes(k))).toEqual([]);
    // The metrics token file is the Secret's, mounted read-only; here a temp file stands in for it.
    const tokenAt = checks.volumeAt(d, c, env['METRICS_TOKEN_FILE']);
    expect({ secret: tokenAt?.volume.secret?.secretName, readOnly: tokenAt?.mount.readOnly }).toEqual({ secret: 'keyserver-metrics', readOnly: true });
    const tokenDir = mkdtempSync(join(tmpdir(), 'ks-k8s-'));
    const token = join(tokenDir, 'token');
    // The dev overlay's demo token, or an example of the out-of-band one (the format the listener requires).
    const secret = (objects as { kind: string; metadata: { name: string }; stringData?: Record<string, string> }[]).find((o) => o.kind === 'Secret' && o.metadata.name === 'keyserver-metrics');
    writeFileSync(token, secret?.stringData?.['token'] ?? 'example-metrics-bearer-token-of-48-characters-xx');
    const config = loadKeyclientConfig({ ...env, METRICS_TOKEN_FILE: token });
    rmSync(tokenDir, { recursive: true, force: true });
    expect(config.host).toBe('0.0.0.0');
    expect(new URL(config.keyserverApiUrl).hostname).toBe('keyserver-api');
    expect(c.readinessProbe?.httpGet?.path).toBe(route(HealthController.prototype.readyz));
    expect(c.livenessProbe?.httpGet?.path).toBe(route(HealthController.prototype.healthz));
  });
});
