import * as asn1js from 'asn1js';
import * as fc from 'fast-check';
import { execFileSync, spawnSync } from 'node:child_process';
import { createPublicKey, verify as nodeVerify, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SIGNATURE_ALGORITHMS,
  algorithmDer,
  buildCsr,
  extensionDer,
  extensionRequest,
  generalName,
  generateTestKey,
  nameDer,
  sanExtension,
  type NameEntry,
  type TestKey,
  type TestKeyType,
} from '../testing/csr-builder';
import { createTestCa, tryIssue, type TestCa } from '../testing/test-ca';
import { OID, derTlv, parseStrictDer } from './der';
import { hasForbiddenCharacter } from './device-names';
import { PKI_ERROR_CODES } from './pki-error';
import { canonicalPublicKey } from './public-key';

/**
 * CSR fuzzing: valid requests of every key type, mutated (bytes, lengths, algorithms, key encodings, names,
 * extensions, re-signed or not). Every outcome must be a PkiError code, or a certificate whose key is our
 * canonical encoding of the request's key (Node's crypto re-exports it byte for byte) and whose request really
 * was signed by that key (Node's crypto and `openssl req -verify` both say so).
 *
 * FUZZ_RUNS (default 40) is the number of cases per property; FUZZ_SEED (default 1305) the fast-check seed.
 */
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 40);
const SEED = Number(process.env['FUZZ_SEED'] ?? 1305);
const TYPES: TestKeyType[] = ['RSA-2048', 'RSA-3072', 'EC-P256', 'EC-P384', 'EC-P521', 'Ed25519'];
const PKI_CODES = new Set<string>(PKI_ERROR_CODES);

interface Base {
  key: TestKey;
  subject: Uint8Array;
  attributes: Uint8Array[];
}

/** The subjectPublicKeyInfo bytes of a DER certificate or request, as encoded (not re-encoded by a parser). */
function rawSpki(der: Uint8Array, index: number): Uint8Array {
  const node = parseStrictDer(der) as asn1js.Sequence;
  const info = node.valueBlock.value[0] as asn1js.Sequence;
  return new Uint8Array(info.valueBlock.value[index].valueBeforeDecodeView);
}

function opensslVerifiesRequest(der: Uint8Array): boolean {
  // openssl 3.0 exits 0 either way: the verdict is in its message.
  const r = spawnSync('openssl', ['req', '-verify', '-noout', '-inform', 'DER'], { input: Buffer.from(der), encoding: 'utf8' });
  return /verify OK/.test(`${r.stdout}${r.stderr}`) && !/failure/.test(`${r.stdout}${r.stderr}`);
}

describe('CSR fuzzing (every key type, mutated)', () => {
  let t: TestCa;
  let work: string;
  const bases = new Map<TestKeyType, Base>();
  const openssls = new Map<TestKeyType, Uint8Array>();
  let outcomes: Record<string, number>;

  beforeAll(async () => {
    t = await createTestCa();
    work = mkdtempSync(join(tmpdir(), 'pki-fuzz-'));
    for (const type of TYPES) {
      const key = generateTestKey(type);
      const subject = nameDer([[OID.commonName, `device-${type.toLowerCase()}`], [OID.organization, 'Acme']]);
      const attributes = [extensionRequest(sanExtension(generalName(2, `${type.toLowerCase()}.devices.example`)))];
      bases.set(type, { key, subject, attributes });
      // The same key in a request made by openssl: the mutations also start from bytes we did not write.
      const file = join(work, `${type}.key`);
      writeFileSync(file, key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const digest = type === 'Ed25519' ? [] : ['-sha256'];
      openssls.set(type, new Uint8Array(execFileSync('openssl', ['req', '-new', '-key', file, '-subj', `/CN=o-${type}/O=Acme`, '-addext', `subjectAltName=DNS:o.devices.example`, '-outform', 'DER', ...digest])));
    }
    outcomes = {};
  });
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
    // Visible with --verbose: how the cases ended (a suite where everything is refused tests little).
    if (process.env['FUZZ_REPORT']) console.log(outcomes);
  });

  /** The invariant of every outcome. */
  async function check(csr: Uint8Array): Promise<void> {
    const out = await tryIssue(t, csr);
    if ('code' in out) {
      expect(PKI_CODES.has(out.code)).toBe(true);
      outcomes[out.code] = (outcomes[out.code] ?? 0) + 1;
      return;
    }
    outcomes['issued'] = (outcomes['issued'] ?? 0) + 1;
    const x = new X509Certificate(out.certificatePem);
    expect(x.verify(new X509Certificate(t.ca.certificatePem).publicKey)).toBe(true);
    const certDer = new Uint8Array(x.raw);
    const certSpki = rawSpki(certDer, 6);
    const requestSpki = rawSpki(csr, 2);
    // Canonical: Node (OpenSSL) re-exports exactly the bytes we wrote, and they are our re-encoding of the request's key.
    const nodeKey = createPublicKey({ key: Buffer.from(certSpki), format: 'der', type: 'spki' });
    expect(Buffer.from(nodeKey.export({ type: 'spki', format: 'der' })).equals(Buffer.from(certSpki))).toBe(true);
    expect(Buffer.from(canonicalPublicKey(requestSpki).spki).equals(Buffer.from(certSpki))).toBe(true);
    // The same key as the request's (OpenSSL's own reading of the request's bytes).
    expect(createPublicKey({ key: Buffer.from(requestSpki), format: 'der', type: 'spki' }).equals(nodeKey)).toBe(true);
    // Proof of possession, checked by implementations we did not write.
    const req = parseStrictDer(csr) as asn1js.Sequence;
    const [info, alg, sig] = req.valueBlock.value as [asn1js.Sequence, asn1js.Sequence, asn1js.BitString];
    const algOid = (alg.valueBlock.value[0] as asn1js.ObjectIdentifier).valueBlock.toString();
    const hash = { [OID.sha256WithRSA]: 'sha256', [OID.sha384WithRSA]: 'sha384', [OID.sha512WithRSA]: 'sha512', [OID.ecdsaSha256]: 'sha256', [OID.ecdsaSha384]: 'sha384', [OID.ecdsaSha512]: 'sha512' }[algOid] ?? null;
    const ok = nodeVerify(hash, new Uint8Array(info.valueBeforeDecodeView), nodeKey.asymmetricKeyType === 'ec' ? { key: nodeKey, dsaEncoding: 'der' } : nodeKey, new Uint8Array(sig.valueBlock.valueHexView));
    expect(ok).toBe(true);
    expect(opensslVerifiesRequest(csr)).toBe(true);
    // Names: nothing a viewer could misread.
    expect(x.subject.split('\n').some(hasForbiddenCharacter)).toBe(false);
    expect(hasForbiddenCharacter(x.subjectAltName ?? '')).toBe(false);
  }

  const typeArb = fc.constantFrom(...TYPES);
  /** Most cases change one or two fields, so a good share of them is issued and checked, not only refused. */
  const rarely = <T,>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: arb, weight: 1 });

  it('ok the unmutated requests (ours and openssl\'s) of every key type are issued', async () => {
    for (const type of TYPES) {
      const b = bases.get(type) as Base;
      const ours = buildCsr({ subject: b.subject, spki: b.key.spki, attributes: b.attributes, signatureAlgorithm: b.key.signatureAlgorithm, sign: b.key.sign });
      for (const csr of [ours, openssls.get(type) as Uint8Array]) {
        await check(csr);
        expect(await tryIssue(t, csr)).toHaveProperty('certificatePem');
      }
    }
  });

  it('byte mutations (bit flips, truncation, insertion, deletion, overwritten lengths) are refused with a code or issue a sound certificate', async () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0xff) }),
    );
    await fc.assert(
      fc.asyncProperty(typeArb, fc.boolean(), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (type, fromOpenssl, mutations) => {
        const b = bases.get(type) as Base;
        let csr = fromOpenssl ? (openssls.get(type) as Uint8Array) : buildCsr({ subject: b.subject, spki: b.key.spki, attributes: b.attributes, signatureAlgorithm: b.key.signatureAlgorithm, sign: b.key.sign });
        for (const m of mutations) {
          if (csr.length === 0) break;
          const at = m.at % csr.length;
          const c = Array.from(csr);
          if (m.kind === 'flip') c[at] ^= 1 << m.bit;
          if (m.kind === 'truncate') c.length = at;
          if (m.kind === 'insert') c.splice(at, 0, m.byte);
          if (m.kind === 'delete') c.splice(at, 1);
          if (m.kind === 'set') c[at] = m.byte;
          csr = new Uint8Array(c);
        }
        if (csr.length) await check(csr);
      }),
      { seed: SEED, numRuns: RUNS * 3 },
    );
  });

  /** Re-signed mutations: the request stays validly signed by its key, its fields change. */
  function spkiVariants(key: TestKey): fc.Arbitrary<Uint8Array> {
    const spki = key.spki;
    const node = parseStrictDer(spki) as asn1js.Sequence;
    const algDer = new Uint8Array(node.valueBlock.value[0].valueBeforeDecodeView);
    const bits = new Uint8Array((node.valueBlock.value[1] as asn1js.BitString).valueBlock.valueHexView);
    const withBits = (b: Uint8Array, alg: Uint8Array = algDer, unused = 0) => derTlv(0x30, alg, derTlv(0x03, new Uint8Array([unused]), b));
    const variants: Uint8Array[] = [spki, withBits(bits, algDer, 1), withBits(new Uint8Array([...bits, 0])), withBits(bits.subarray(0, bits.length - 1))];
    if (key.type.startsWith('RSA')) {
      const rsa = parseStrictDer(bits) as asn1js.Sequence;
      const [n, e] = rsa.valueBlock.value.map((v) => new Uint8Array((v as asn1js.Integer).valueBlock.valueHexView));
      const rsaKey = (nn: Uint8Array, ee = e, extra: Uint8Array[] = []) => derTlv(0x30, derTlv(0x02, nn), derTlv(0x02, ee), ...extra);
      variants.push(
        withBits(rsaKey(n.subarray(1))), // negative modulus
        withBits(rsaKey(new Uint8Array([0, ...n]))), // padded
        withBits(rsaKey(n, e, [derTlv(0x02, new Uint8Array([1]))])),
        withBits(new Uint8Array([...rsaKey(n), 0x05, 0x00])),
        withBits(rsaKey(n), algorithmDer(OID.rsaEncryption)), // no NULL
        withBits(rsaKey(n), algorithmDer(OID.rsaEncryption, derTlv(0x30))),
        withBits(rsaKey(n), algorithmDer(OID.rsassaPss)),
        withBits(rsaKey(n, new Uint8Array([3]))),
      );
    } else if (key.type.startsWith('EC')) {
      const size = (bits.length - 1) / 2;
      const odd = bits[2 * size] & 1;
      variants.push(
        withBits(new Uint8Array([2 + odd, ...bits.subarray(1, 1 + size)])), // compressed: expanded
        withBits(new Uint8Array([3 - odd, ...bits.subarray(1, 1 + size)])), // compressed, wrong sign: another key
        withBits(new Uint8Array([6 + odd, ...bits.subarray(1)])), // hybrid
        withBits(new Uint8Array([0])),
        withBits(bits, algorithmDer(OID.ecPublicKey, derTlv(0x06, new Uint8Array([0x2b, 0x81, 0x04, 0x00, 0x0a])))), // secp256k1
        withBits(bits, algorithmDer(OID.ecPublicKey)),
        withBits(bits, algorithmDer(OID.ed25519)),
      );
    } else {
      const y = BigInt(`0x${Buffer.from(bits).reverse().toString('hex')}`);
      const le = (v: bigint) => new Uint8Array(Buffer.from(v.toString(16).padStart(64, '0'), 'hex').reverse());
      variants.push(
        withBits(le(y + 2n ** 255n - 19n < 2n ** 256n ? y + 2n ** 255n - 19n : y)),
        withBits(le(y ^ (1n << 255n))), // the other sign of x: another key
        withBits(new Uint8Array([1, ...new Uint8Array(31)])), // identity
        withBits(bits, algorithmDer(OID.ed25519, new Uint8Array([5, 0]))),
      );
    }
    return fc.constantFrom(...variants);
  }

  const SIG_ALGS = [
    SIGNATURE_ALGORITHMS.rsaSha256,
    algorithmDer(OID.sha256WithRSA),
    algorithmDer(OID.sha384WithRSA, new Uint8Array([5, 0])),
    algorithmDer(OID.sha1WithRSA, new Uint8Array([5, 0])),
    SIGNATURE_ALGORITHMS.ecdsaSha256,
    SIGNATURE_ALGORITHMS.ecdsaSha384,
    SIGNATURE_ALGORITHMS.ecdsaSha512,
    algorithmDer(OID.ecdsaSha1),
    algorithmDer(OID.ecdsaSha256, new Uint8Array([5, 0])),
    SIGNATURE_ALGORITHMS.ed25519,
    algorithmDer(OID.rsassaPss),
  ];

  const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 70 }), fc.string({ unit: 'grapheme', maxLength: 70 }), fc.constantFrom('device', 'Test Root', 'test device ca', 'a\u202eb', 'x\u200by', '', ' d'));
  const subjectArb = fc.array(
    fc.tuple(fc.constantFrom(OID.commonName, OID.commonName, OID.organization, OID.organizationalUnit, OID.country, OID.serialNumber, '1.2.840.113549.1.9.1'), text, fc.constantFrom(0x0c, 0x0c, 0x13, 0x16, 0x14, 0x1e)),
    { minLength: 0, maxLength: 4 },
  );
  const sanArb = fc.array(
    fc.tuple(fc.integer({ min: 0, max: 8 }), fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.webUrl(), fc.domain(), fc.emailAddress(), fc.ipV4(), fc.constantFrom('*.a.example', '192.0.2.1', 'urn:x:y', 'https://u:p@a.example/'))),
    { minLength: 0, maxLength: 10 },
  );
  const extensionArb = fc.constantFrom<Uint8Array[]>(
    [],
    [extensionDer(OID.basicConstraints, derTlv(0x30, new Uint8Array([1, 1, 0xff])), true)],
    [extensionDer(OID.keyUsage, new Uint8Array([3, 2, 1, 6]), true)],
    [extensionDer('1.2.3.4', new Uint8Array([5, 0]), true)],
    [extensionDer('1.2.3.4', new Uint8Array([5, 0]))],
    [extensionDer(OID.extKeyUsage, derTlv(0x30, derTlv(0x06, new Uint8Array([0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01]))))],
  );

  it('re-signed field mutations (keys, algorithms, subjects, SANs, extensions) are refused with a code or issue a sound certificate', async () => {
    await fc.assert(
      fc.asyncProperty(
        typeArb.chain((type) => fc.tuple(fc.constant(type), rarely(spkiVariants((bases.get(type) as Base).key)))),
        rarely(fc.constantFrom(...SIG_ALGS)),
        rarely(subjectArb),
        rarely(sanArb),
        fc.oneof({ arbitrary: fc.constant([] as Uint8Array[]), weight: 3 }, { arbitrary: extensionArb, weight: 1 }),
        rarely(fc.nat()),
        async ([type, spki], sigAlg, subject, sans, extensions, flipInfoAt) => {
          const b = bases.get(type) as Base;
          const exts = [...(sans ? [sanExtension(...sans.map(([tag, v]) => generalName(tag, new Uint8Array(Buffer.from(v, 'utf8')))))] : []), ...extensions];
          const attributes = sans || extensions.length ? [extensionRequest(...exts)] : b.attributes;
          const subjectDer = subject ? nameDer(subject.map(([oid, v, tag]) => [oid, v, tag] as NameEntry)) : b.subject;
          const csr = buildCsr({
            subject: subjectDer,
            spki: spki ?? b.key.spki,
            attributes,
            signatureAlgorithm: sigAlg ?? b.key.signatureAlgorithm,
            sign: (info) => {
              // Optionally a structural flip inside the signed bytes: the signature stays valid over them.
              if (flipInfoAt !== null) {
                const i = flipInfoAt % info.length;
                const flipped = new Uint8Array(info);
                flipped[i] ^= 0x01;
                info = flipped;
              }
              return b.key.sign(info);
            },
          });
          await check(csr);
        },
      ),
      { seed: SEED, numRuns: RUNS * 4 },
    );
  });

  it('a request signed by another key (of any type) is always refused', async () => {
    await fc.assert(
      fc.asyncProperty(typeArb, typeArb, async (keyType, signerType) => {
        const b = bases.get(keyType) as Base;
        const other = bases.get(signerType) as Base;
        const impostor = keyType === signerType ? generateTestKey(signerType) : other.key;
        const csr = buildCsr({ subject: b.subject, spki: b.key.spki, attributes: b.attributes, signatureAlgorithm: impostor.signatureAlgorithm, sign: impostor.sign });
        const out = await tryIssue(t, csr);
        expect(out).toHaveProperty('code');
        await check(csr);
      }),
      { seed: SEED, numRuns: Math.max(12, RUNS / 2) },
    );
  });
});
