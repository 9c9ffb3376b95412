// In-process microbench of the device-certificate path of @keyserver/pki (no HTTP, database or HSM): parse,
// proof of possession, policy + profile + TBSCertificate, and the Certificate assembled around a signature.
// Run by scripts/bench-certificate.mjs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { derTlv, isStrictDer, parseCsr, prepareDeviceCertificate, toPem, verifyCsrPossession } from '@keyserver/pki';
import { createTestCa } from '../../libs/pki/src/testing/test-ca';

export async function runCertificatePath(o: { runs: number; rounds: number }, log: (m: string) => void): Promise<Record<string, number>> {
  const t = await createTestCa();
  const work = mkdtempSync(join(tmpdir(), 'ks-certpath-'));
  // The bench cell's CSR shape (openssl, P-256, CN + O, no extensions), plus one with a SAN.
  const csrs = [
    ...Array.from({ length: 8 }, (_, i) => openssl(work, i, [])),
    ...Array.from({ length: 8 }, (_, i) => openssl(work, 8 + i, ['-addext', `subjectAltName=DNS:d${i}.devices.example,URI:urn:dev:${i}`])),
  ];
  rmSync(work, { recursive: true, force: true });
  const profile = { ...t.profile, crlDistributionPointUrl: 'https://keyserver.example/api/v1/crl/demo-ca-dev', allowedSanTypes: ['dns' as const, 'uri' as const] };
  const fakeSignature = new Uint8Array(256).fill(0x5a);
  const stages = { parse: 0, pop: 0, prepare: 0, assemble: 0 };
  const best: Record<string, number> = {};
  for (let round = 0; round < o.rounds; round++) {
    for (const k of Object.keys(stages) as (keyof typeof stages)[]) stages[k] = 0;
    for (let i = 0; i < o.runs; i++) {
      const pem = csrs[i % csrs.length];
      let t0 = cpu();
      const parsed = parseCsr(pem);
      let t1 = cpu();
      stages.parse += t1 - t0;
      t0 = t1;
      const verified = verifyCsrPossession(parsed);
      t1 = cpu();
      stages.pop += t1 - t0;
      t0 = t1;
      const prepared = prepareDeviceCertificate(t.issuer, verified, profile);
      t1 = cpu();
      stages.prepare += t1 - t0;
      t0 = t1;
      const der = derTlv(0x30, prepared.tbs, prepared.signatureAlgorithm, derTlv(0x03, new Uint8Array([0]), fakeSignature));
      if (!isStrictDer(der)) throw new Error('not DER');
      toPem('CERTIFICATE', der);
      t1 = cpu();
      stages.assemble += t1 - t0;
    }
    const perRun = Object.fromEntries(Object.entries(stages).map(([k, us]) => [k, us / o.runs / 1e3]));
    const total = Object.values(perRun).reduce((a, b) => a + b, 0);
    log(`round ${round + 1}: ${Object.entries(perRun).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}, total ${total.toFixed(4)} ms/certificate`);
    for (const [k, v] of Object.entries({ ...perRun, total })) best[k] = Math.min(best[k] ?? Infinity, v);
  }
  return best;
}

/** CPU time of this process (user + system), microseconds: the machine is shared, wall time is not ours. */
function cpu(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function openssl(work: string, i: number, extra: string[]): string {
  return execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, `d${i}.key`), '-subj', `/CN=bench-device-${i}/O=Bench`, ...extra], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}
