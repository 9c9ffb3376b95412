import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { essAttribute, type OpensslPki, testTsas, timestampToken } from '@keyserver/timestamp-token/testing';
import { expectInvalid } from '../testing/expect-cli-error';
import { verifySignatureTimestamp } from './timestamp';

// ksctl's use of the one token verifier (@keyserver/timestamp-token, whose spec holds the token-level table: ESS
// attribute, issuerSerial, TSA certificate profile): its codes, the TSA certificate from --chain, the TSA chain
// to --ca at the stated time, and no time after the verification time. Tokens of TSAs that are not the Keyserver.

let dir: string;
let pki: OpensslPki;
const f = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const pem = (name: string) => pki.pem(name);

interface TokenSpec {
  signer: string;
  /** What the imprint is over. */
  over: Buffer;
  genTime?: Date;
  /** The certificate the ESS signing-certificate-v2 attribute names (default: the signer's). */
  essCert?: string;
  embed?: boolean;
}

/** A TimeStampToken signed with `signer`'s key, ESSCertIDv2 naming `essCert`. */
async function token(t: TokenSpec): Promise<Buffer> {
  const signer = { cert: pem(t.signer), key: pki.key(t.signer) };
  return Buffer.from(timestampToken({ signer, over: t.over, genTime: t.genTime, ess: [essAttribute(pem(t.essCert ?? t.signer))], certificates: t.embed === false ? [] : undefined }));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ksctl-ts-'));
  pki = testTsas(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe(verifySignatureTimestamp.name, () => {
  const signature = Buffer.from('the signature value of a SignerInfo');
  const anchors = () => [pem('root')];

  it('ok a token of another TSA (pkijs-made, openssl ts -verify agrees): time, serial, policy, accuracy and the TSA chain', async () => {
    const t = await token({ signer: 'tsa', over: signature });
    writeFileSync(f('t.der'), t);
    writeFileSync(f('sig.bin'), signature);
    expect(openssl('ts', '-verify', '-token_in', '-in', 't.der', '-data', 'sig.bin', '-CAfile', 'root.pem')).toContain('Verification: OK');
    const v = verifySignatureTimestamp(t, signature, anchors(), []);
    expect(v).toMatchObject({ serial: '1092', policy: '1.2.3.4', accuracyMs: 1000 });
    expect(v.chain.map((c) => c.subject)).toEqual(['CN=tsa', 'CN=root']);
  });

  it('ok a token without its certificate when --chain holds it', async () => {
    const t = await token({ signer: 'tsa', over: signature, embed: false });
    expectInvalid(() => verifySignatureTimestamp(t, signature, anchors(), []), 'timestamp_invalid');
    expect(verifySignatureTimestamp(t, signature, anchors(), [pem('tsa')]).tsa.subject).toBe('CN=tsa');
  });

  it.each([
    ['fail a token over another signature', { signer: 'tsa', over: Buffer.from('another signature') }, 'timestamp_imprint_mismatch'],
    ['fail a code-signing certificate as TSA', { signer: 'fw', over: signature }, 'not_timestamping'],
    ['fail an ESS certificate id naming another TSA certificate', { signer: 'tsa', over: signature, essCert: 'tsa2' }, 'timestamp_invalid'],
    ['fail a TSA under another root', { signer: 'foreign-tsa', over: signature }, 'chain_invalid'],
    ['fail a time before the TSA certificate', { signer: 'tsa', over: signature, genTime: new Date(Date.now() - 40 * 86_400_000) }, 'certificate_not_yet_valid'],
    ['fail a time after the verification time', { signer: 'tsa', over: signature, genTime: new Date(Date.now() + 3_600_000) }, 'timestamp_invalid'],
  ] as const)('%s', async (_n, spec, code) => {
    const t = await token(spec);
    expectInvalid(() => verifySignatureTimestamp(t, signature, anchors(), []), code);
  });

  it.each([
    ['fail bytes that are not a CMS', Buffer.from('not a token')],
    ['fail a token whose TSTInfo was changed after signing', 'flip'],
  ])('%s', async (_n, what) => {
    let t: Buffer;
    if (what === 'flip') {
      t = await token({ signer: 'tsa', over: signature });
      const at = t.indexOf(Buffer.from([0x02, 0x02, 0x10, 0x92])); // serialNumber 4242 inside the TSTInfo
      t[at + 3] ^= 1;
    } else t = what as Buffer;
    expectInvalid(() => verifySignatureTimestamp(t, signature, anchors(), []), 'timestamp_invalid');
  });
});
