import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { CliError, Exit } from './errors';
import { certificateOutput, errorText, jsonOutput, outputMode, renderTable, table } from './output';

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

  it.each([
    ['fail zero-width space in a description', { description: 'u\u200bsages 5' }, 'description  u\\u{200b}sages 5'],
    ['fail Arabic letter mark and word joiner', { description: 'a\u061cb\u2060c' }, 'description  a\\u{61c}b\\u{2060}c'],
    ['fail a line separator', { description: 'one\u2028KEYID  other' }, 'description  one\\u{2028}KEYID  other'],
    ['fail a field name with a newline that forges a row', { 'x\nrequiredApprovers': 0 }, 'x\\u{a}requiredApprovers  0'],
    ['fail a nested field name with a CR', { provenance: { 'run\rcommit': 'x' } }, 'provenance.run\\u{d}commit  x'],
    ['fail tag characters', { displayName: 'Eve\u{E0041}' }, 'displayName  Eve\\u{e0041}'],
    ['ok plain text', { description: 'Release 1.2.3' }, 'description  Release 1.2.3'],
  ])('%s', (_n, record, line) => {
    const out = renderTable(record);
    expect(out.split('\n')[0]).toBe(line);
    expect(out.includes('hidden or control characters')).toBe(_n.startsWith('fail'));
  });

  it('shows a detail field whole: a description is not cut at a column width', () => {
    const description = `${'a'.repeat(100)} \u202e${'b'.repeat(20)}`;
    expect(renderTable({ description }).split('\n')[0]).toBe(`description  ${'a'.repeat(100)} \\u{202e}${'b'.repeat(20)}`);
    // A list row is cut, and the warning still tells that text it cut held a hidden character.
    const list = renderTable([{ description }, { description: 'x' }]);
    expect(list.split('\n')[1]).toHaveLength(72);
    expect(list).toContain('hidden or control characters');
  });

  it('headers a list by escaped column names', () => {
    expect(renderTable([{ 'a\u202eb': 1 }]).split('\n')[0]).toBe('A\\u{202e}B');
  });

  it('shows a certificate subject with a bidi override escaped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksctl-bidi-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-utf8', '-subj', '/CN=CA \u202egnp.exe\u202c \u200bx', '-days', '1'], { cwd: dir, stdio: 'ignore' });
      const pem = readFileSync(join(dir, 'c.pem'), 'utf8');
      const out = renderTable({ certificate: pem });
      expect(out).toContain('\\u{202e}gnp.exe\\u{202c} \\u{200b}x');
      expect(out).toContain('hidden or control characters');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never lets a value or a name write a control, bidi, zero-width or separator character (property)', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.integer(), fc.constant(null), fc.dictionary(fc.string({ unit: 'binary', maxLength: 4 }), fc.string({ unit: 'binary', maxLength: 20 })))),
        (record) => {
          const out = renderTable([record, record]) + '\n' + renderTable(record);
          for (const line of out.split('\n')) expect(line).not.toMatch(SHOWN_AS_ESCAPE);
        },
      ),
      { seed: 14, numRuns: 300 },
    );
  });
});

/** What ksctl never writes raw: C0 (a line break only between lines), DEL, C1, format characters, separators, surrogates. */
// eslint-disable-next-line no-control-regex
const SHOWN_AS_ESCAPE = /[\u0000-\u001f\u007f-\u009f\p{Cf}\u2028\u2029]|\p{Cs}/u;

describe(jsonOutput.name, () => {
  it('is one line of JSON with the same value and no raw control, bidi or separator character (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 100 })), (record) => {
        const text = jsonOutput(record);
        expect(text.endsWith('\n')).toBe(true);
        expect(text.slice(0, -1)).not.toMatch(SHOWN_AS_ESCAPE);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(record)));
      }),
      { seed: 14, numRuns: 300 },
    );
  });
});

describe(errorText.name, () => {
  it.each([
    ['fail a problem detail with an erase-line and CR', 'POST /api/v1/x failed: 400 bad (\u001b[2K\rall good)', 'ksctl: POST /api/v1/x failed: 400 bad (\\u{1b}[2K\\u{d}all good)\n'],
    ['fail a certificate subject with a bidi override', 'CN=\u202eAC is not a CA certificate', 'ksctl: CN=\\u{202e}AC is not a CA certificate\n'],
    ['ok a plain message', 'no such file: x', 'ksctl: no such file: x\n'],
  ])('%s', (_n, message, want) => {
    expect(errorText(new CliError(message, Exit.Failure))).toBe(want);
  });

  it('adds the code of a verification failure', () => {
    expect(errorText(new CliError('bad', Exit.Invalid, 'chain_invalid'))).toBe('ksctl: bad (chain_invalid)\n');
  });
});

describe(table.name, () => {
  it('pads every column but the last', () => {
    expect(table(['A', 'BB'], [['xxx', 'y'], ['z', '']])).toBe('A    BB\nxxx  y\nz');
  });
});
