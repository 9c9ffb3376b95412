import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { CliError, Exit } from './errors';
import { certificateOutput, outputMode, renderTable, table } from './output';

/** Two real certificates made by openssl (a root and a leaf it signed). */
function opensslChain(): { root: string; leaf: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ksctl-out-'));
  try {
    const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'root.key', '-out', 'root.pem', '-subj', '/CN=Output Root', '-days', '2');
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=Output Leaf');
    run('x509', '-req', '-in', 'leaf.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '1');
    return { root: readFileSync(join(dir, 'root.pem'), 'utf8'), leaf: readFileSync(join(dir, 'leaf.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const usage = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e instanceof CliError ? e.exit : 'other';
  }
  return 'none';
};

describe(outputMode.name, () => {
  it.each([
    ['ok nothing given: a table', undefined, undefined, 'table'],
    ['ok --json', undefined, true, 'json'],
    ['ok --output json', 'json', undefined, 'json'],
    ['ok --output PEM (case)', 'PEM', undefined, 'pem'],
    ['ok --output der', 'der', undefined, 'der'],
  ])('%s', (_n, output, json, want) => {
    expect(outputMode(output, json)).toBe(want);
  });

  it.each([
    ['fail an unknown mode', 'yaml', undefined],
    ['fail --json with --output pem', 'pem', true],
    ['fail an empty mode', '', undefined],
  ])('%s: usage (exit 2)', (_n, output, json) => {
    expect(usage(() => outputMode(output, json))).toBe(Exit.Usage);
  });
});

describe(certificateOutput.name, () => {
  const { root, leaf } = opensslChain();

  it('prints the certificate then its chain as PEM, each once, that openssl reads back', () => {
    const pem = certificateOutput({ id: 'x', certificate: leaf, chain: [root] }, 'pem').toString();
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
    expect(blocks).toHaveLength(2);
    expect(new X509Certificate(pem).subject).toBe('CN=Output Leaf');
    // keys show returns the chain with the key certificate first: it is not repeated.
    expect(certificateOutput({ certificate: leaf, chain: [leaf, root] }, 'pem').toString()).toBe(pem);
  });

  it('prints the certificate alone as DER, the bytes openssl converts the PEM to', () => {
    const der = certificateOutput({ certificate: leaf, chain: [root] }, 'der');
    const dir = mkdtempSync(join(tmpdir(), 'ksctl-der-'));
    try {
      const file = join(dir, 'leaf.pem');
      require('node:fs').writeFileSync(file, leaf);
      expect(der.equals(execFileSync('openssl', ['x509', '-in', file, '-outform', 'DER']))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['fail a result without a certificate', { verified: true }],
    ['fail nothing', undefined],
    ['fail a certificate field that is no PEM', { certificate: 'not a certificate' }],
  ])('%s: usage (exit 2)', (_n, result) => {
    expect(usage(() => certificateOutput(result, 'pem'))).toBe(Exit.Usage);
  });
});

describe(renderTable.name, () => {
  const { leaf } = opensslChain();

  it('renders a list as rows under upper-case headers, without PEM columns', () => {
    const out = renderTable([
      { keyid: 'demo-fw-dev', type: 'FW', requiredApprovers: 0, certificate: leaf },
      { keyid: 'demo-ca-dev', type: 'CA', requiredApprovers: 2, certificate: leaf },
    ]);
    expect(out.split('\n')).toEqual(['KEYID        TYPE  REQUIREDAPPROVERS', 'demo-fw-dev  FW    0', 'demo-ca-dev  CA    2']);
  });

  it('renders an object as fields; a PEM as its subject, never the PEM', () => {
    const out = renderTable({ id: 'c1', serial: '0a', certificate: leaf, chain: [leaf, leaf], state: { name: 'APPROVED' } });
    expect(out).toContain('certificate  certificate CN=Output Leaf');
    expect(out).toContain('chain        2 certificate(s)');
    expect(out).toContain('state.name   APPROVED');
    expect(out).not.toContain('-----BEGIN');
  });

  it('renders nested lists as their own table', () => {
    const out = renderTable({ id: 'op1', keys: [{ keyid: 'k1', usagesAllowed: 2 }] });
    expect(out).toBe('id  op1\n\nkeys:\nKEYID  USAGESALLOWED\nk1     2');
  });

  it('never lets a value write control characters or bidi overrides to the terminal (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.integer(), fc.constant(null))), (record) => {
        const out = renderTable([record, record]) + renderTable(record);
        // eslint-disable-next-line no-control-regex
        expect(out.replace(/\n/g, '')).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
      }),
      { seed: 14, numRuns: 300 },
    );
  });
});

describe(table.name, () => {
  it('pads every column but the last', () => {
    expect(table(['a', 'bb'], [['xxx', 'y'], ['z', '']])).toBe('A    BB\nxxx  y\nz');
  });
});
