import { constants, createHash, createPrivateKey, createPublicKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { CliError, Exit } from './errors';

/** PS256 is what Entra's documentation asks for today (with `x5t#S256`); RS256 (with SHA-1 `x5t`) is the older form. */
export type AssertionAlgorithm = 'PS256' | 'RS256';

/** A certificate registered on an app registration and the private key that belongs to it. */
export interface CertificateCredential {
  certificate: X509Certificate;
  privateKey: KeyObject;
}

/** Assertions live 10 minutes at most (Entra: "5-10 minutes after nbf"); ksctl redeems them at once. */
const LIFETIME_SECONDS = 600;

function readFile(path: string, what: string): string {
  if (!existsSync(path)) throw new CliError(`${what} not found: ${path}`, Exit.Usage);
  return readFileSync(path, 'utf8');
}

/**
 * Reads the PEM certificate (the first CERTIFICATE block of `certificateFile`) and the PEM private key
 * (PKCS#8 or PKCS#1, encrypted when `passphrase` is given; it may sit in the same file), and checks that
 * they are an RSA pair.
 */
export function loadCertificateCredential(certificateFile: string, privateKeyFile: string, passphrase?: string): CertificateCredential {
  const certPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(readFile(certificateFile, 'certificate file'))?.[0];
  if (!certPem) throw new CliError(`${certificateFile} holds no PEM certificate`, Exit.Usage);
  let certificate: X509Certificate;
  let privateKey: KeyObject;
  try {
    certificate = new X509Certificate(certPem);
  } catch (err) {
    throw new CliError(`${certificateFile}: not a certificate (${(err as Error).message})`, Exit.Usage);
  }
  try {
    privateKey = createPrivateKey({ key: readFile(privateKeyFile, 'private key file'), format: 'pem', ...(passphrase ? { passphrase } : {}) });
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`${privateKeyFile}: no usable PEM private key (${(err as Error).message})`, Exit.Usage);
  }
  if (privateKey.asymmetricKeyType !== 'rsa') throw new CliError('certificate credentials need an RSA key (Entra signs and checks them with RS256/PS256)', Exit.Usage);
  const spki = (k: KeyObject): Buffer => k.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(privateKey)).equals(spki(certificate.publicKey))) {
    throw new CliError('the private key does not belong to the certificate', Exit.Usage);
  }
  return { certificate, privateKey };
}

/**
 * An RFC 7523 `private_key_jwt` client assertion as Entra documents certificate credentials: header
 * `alg` PS256 (or RS256), `typ` JWT and the base64url thumbprint of the DER certificate (`x5t#S256`
 * for PS256, SHA-1 `x5t` for RS256); claims `aud` = the token endpoint, `iss` = `sub` = the client id,
 * a fresh `jti`, `iat` = `nbf` = now and `exp` 10 minutes later.
 */
export function certificateAssertion(
  credential: CertificateCredential,
  o: { clientId: string; tokenEndpoint: string; algorithm?: AssertionAlgorithm; now?: number },
): string {
  const alg = o.algorithm ?? 'PS256';
  const der = credential.certificate.raw;
  const header =
    alg === 'PS256'
      ? { alg, typ: 'JWT', 'x5t#S256': createHash('sha256').update(der).digest('base64url') }
      : { alg, typ: 'JWT', x5t: createHash('sha1').update(der).digest('base64url') };
  const now = Math.floor((o.now ?? Date.now()) / 1000);
  const claims = { aud: o.tokenEndpoint, iss: o.clientId, sub: o.clientId, jti: randomUUID(), iat: now, nbf: now, exp: now + LIFETIME_SECONDS };
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature =
    alg === 'PS256'
      ? sign('sha256', Buffer.from(input), { key: credential.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
      : sign('sha256', Buffer.from(input), credential.privateKey);
  return `${input}.${signature.toString('base64url')}`;
}
