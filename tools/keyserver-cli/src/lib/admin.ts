import { readFileSync } from 'node:fs';
import { answerShape } from './answer';
import { CliError, Exit } from './errors';
import { checkOutputPath, writeOutputFile } from './output-file';

/** The API calls ksctl admin makes (the connection's `api` bound), so the command logic stays testable. */
export type AdminApi = <T>(method: string, path: string, body?: unknown, headers?: Record<string, string>) => Promise<T>;

type Values = Record<string, string | boolean | string[] | undefined>;

export const ADMIN_HELP = `Usage: ksctl admin session open --description TEXT [--powers]
       ksctl admin session authorize|close|show SESSION_ID
       ksctl admin root-ceremony --session ID --keyid KEYID --algorithm ALG --cn NAME [--org O] [--ou OU]
                                 [--country CC] --days N [--path-len N] [--approvers N] [--external] [--out FILE]
       ksctl admin key create --session ID --keyid KEYID --type CA|FW --algorithm ALG --cn NAME [--org O]
                              [--country CC] --days N --approvers N [--issuer KEYID] [--path-len N] [--product P]
       ksctl admin key import-cert KEYID --session ID --cert-file CERT.pem --chain CHAIN.pem [--key-version N]
       ksctl admin key replace-chain KEYID --session ID --chain CHAIN.pem [--cert-file CERT.pem]
       ksctl admin key csr KEYID [--out FILE.csr]
       ksctl admin key cancel-csr KEYID --session ID [--key-version N]
       ksctl admin key renew|rotate KEYID --session ID --days N [--out FILE.csr]
       ksctl admin key retire|destroy KEYID --session ID
       ksctl admin key revoke KEYID --session ID --reason keyCompromise|superseded|...
       ksctl admin key versions KEYID
       ksctl admin role create --session ID --name NAME --natures SIGNER,ORDERER,... [--grant KEYID=SIGN+ORDER]...
       ksctl admin subject create --session ID --kind USER|CLIENT --tid TENANT_ID --oid OBJECT_ID --display-name NAME
                                  [--roles ROLE,ROLE]

Administrators sign in with --pkce (or give a token in KEYSERVER_TOKEN). Every change runs in an ACTIVE
administrative session (--session): one administrator opens it, another authorizes it. Only a session opened
with --powers may make or unmake administrators and approvers (register, enable, disable them, or change the
roles that carry those natures) and lower a key's required approvers.
root-ceremony: a ROOT key pair in the HSM, self-signed (--out writes its certificate), or with --external a
CSR for your offline root (--out writes the CSR; then key import-cert). Rotating an externally certified ROOT
makes a pending version: --out writes its CSR, key import-cert [--key-version N] activates it. key cancel-csr ends an
external ceremony or a pending rotation that will not get its certificate: its HSM key pair is destroyed. key
replace-chain installs the renewed chain above an externally certified ROOT (the offline CA renewed, same key pair)
and, with --cert-file, the ROOT's certificate the offline CA re-issued (same key pair and subject: a new version). ALG: EC_P256, EC_P384, EC_P521,
RSA_2048, RSA_3072, RSA_4096, ED25519. See docs/operations.md.`;

export const ADMIN_OPTIONS = ['--name', '--natures', '--grant', '--kind', '--tid', '--oid', '--display-name', '--roles', '--session', '--keyid', '--algorithm', '--cn', '--org', '--ou', '--country', '--days', '--path-len', '--approvers', '--external', '--type', '--issuer', '--product', '--cert-file', '--chain', '--out', '--reason', '--description', '--key-version', '--powers'];

function need(v: Values, name: string): string {
  const x = v[name];
  if (typeof x !== 'string' || x === '') throw new CliError(`--${name} is required`, Exit.Usage);
  return x;
}

function int(v: Values, name: string, required: boolean): number | undefined {
  const x = v[name];
  if (x === undefined) {
    if (required) throw new CliError(`--${name} is required`, Exit.Usage);
    return undefined;
  }
  if (typeof x !== 'string' || !/^\d{1,6}$/.test(x)) throw new CliError(`--${name} must be a whole number`, Exit.Usage);
  return Number(x);
}

const seg = (s: string) => encodeURIComponent(s);

/** `ksctl admin ...`: `pos` are the positionals after "admin". */
export async function adminCommand(api: AdminApi, pos: string[], v: Values): Promise<unknown> {
  const [area, action, arg] = pos;
  const session = () => ({ 'x-admin-session': need(v, 'session') });
  // --out is checked before the request: a ceremony or a rotation is never done only to be refused at writing.
  const out = typeof v['out'] === 'string' ? v['out'] : undefined;
  if (out) checkOutputPath(out, '--out');
  if (area === 'session') {
    if (action === 'open') return api('POST', '/api/v1/admin-sessions', { description: need(v, 'description'), powers: v['powers'] === true });
    if (action === 'show' && arg) return api('GET', `/api/v1/admin-sessions/${seg(arg)}`);
    if (action === 'authorize' && arg) return api('POST', `/api/v1/admin-sessions/${seg(arg)}/authorizations`);
    if (action === 'close' && arg) return api('POST', `/api/v1/admin-sessions/${seg(arg)}/closure`);
  }
  if (area === 'role' && action === 'create') {
    const keys = ((v['grant'] as string[] | undefined) ?? []).map((g) => {
      const m = /^([^=]+)=([A-Z+]+)$/.exec(g);
      if (!m) throw new CliError(`--grant must be KEYID=PERM[+PERM], got ${g}`, Exit.Usage);
      return { keyid: m[1], permissions: m[2].split('+') };
    });
    const natures = need(v, 'natures').split(',').map((n) => n.trim().toUpperCase()).filter(Boolean);
    return api('POST', '/api/v1/roles', { name: need(v, 'name'), natures, keys }, session());
  }
  if (area === 'subject' && action === 'create') {
    const roles = typeof v['roles'] === 'string' ? v['roles'].split(',').map((r) => r.trim()).filter(Boolean) : [];
    return api('POST', '/api/v1/subjects', { kind: need(v, 'kind').toUpperCase(), tid: need(v, 'tid'), oid: need(v, 'oid'), displayName: need(v, 'display-name'), roles }, session());
  }
  if (area === 'root-ceremony') {
    const subject = { commonName: need(v, 'cn'), ...(v['org'] ? { organization: String(v['org']) } : {}), ...(v['ou'] ? { organizationalUnit: String(v['ou']) } : {}), ...(v['country'] ? { country: String(v['country']) } : {}) };
    const pathLen = int(v, 'path-len', false);
    const approvers = int(v, 'approvers', false);
    const r = await api<{ certificate: string | null; csr: string | null }>(
      'POST',
      '/api/v1/keys/root-ceremony',
      {
        keyid: need(v, 'keyid'),
        algorithm: need(v, 'algorithm'),
        subject,
        validityDays: int(v, 'days', true),
        ...(pathLen !== undefined ? { pathLen } : {}),
        ...(approvers !== undefined ? { requiredApprovers: approvers } : {}),
        mode: v['external'] ? 'external' : 'self-signed',
      },
      session(),
    );
    if (out) writeOutputFile(out, typeof r?.certificate === 'string' ? answerShape.pem(r.certificate, 'certificate') : answerShape.pem(r?.csr, 'CSR', 'CERTIFICATE REQUEST'), '--out');
    return r;
  }
  if (area === 'key') {
    if (action === 'create') {
      const pathLen = int(v, 'path-len', false);
      return api(
        'POST',
        '/api/v1/keys',
        {
          keyid: need(v, 'keyid'),
          type: need(v, 'type'),
          algorithm: need(v, 'algorithm'),
          commonName: need(v, 'cn'),
          ...(v['org'] ? { organization: String(v['org']) } : {}),
          ...(v['country'] ? { country: String(v['country']) } : {}),
          validityDays: int(v, 'days', true),
          requiredApprovers: int(v, 'approvers', true),
          ...(v['issuer'] ? { issuer: String(v['issuer']) } : {}),
          ...(pathLen !== undefined ? { pathLen } : {}),
          ...(v['product'] ? { product: String(v['product']) } : {}),
        },
        session(),
      );
    }
    if (!arg) throw new CliError('give the KEYID (see ksctl admin --help)', Exit.Usage);
    const k = `/api/v1/keys/${seg(arg)}`;
    switch (action) {
      case 'versions':
        return api('GET', `${k}/versions`);
      case 'csr': {
        const r = await api<{ csr: string }>('GET', `${k}/csr`);
        if (out) writeOutputFile(out, answerShape.pem(r?.csr, 'CSR', 'CERTIFICATE REQUEST'), '--out');
        return r;
      }
      case 'import-cert': {
        const chainText = readFileSync(need(v, 'chain'), 'utf8');
        const chain = chainText.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
        const version = int(v, 'key-version', false);
        return api('POST', `${k}/certificate`, { certificate: readFileSync(need(v, 'cert-file'), 'utf8'), chain, ...(version !== undefined ? { version } : {}) }, session());
      }
      case 'replace-chain': {
        const chainFile = need(v, 'chain');
        session();
        const chain = readFileSync(chainFile, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
        if (chain.length === 0) throw new CliError(`--chain ${chainFile} holds no PEM certificate`, Exit.Usage);
        const certificate = typeof v['cert-file'] === 'string' ? readFileSync(v['cert-file'], 'utf8') : undefined;
        return api('POST', `${k}/external-chain`, { ...(certificate !== undefined ? { certificate } : {}), chain }, session());
      }
      case 'cancel-csr': {
        const version = int(v, 'key-version', false);
        return api('POST', `${k}/csr/cancellation`, version !== undefined ? { version } : {}, session());
      }
      case 'renew':
        return api('POST', `${k}/renewal`, { validityDays: int(v, 'days', true) }, session());
      case 'rotate': {
        const r = await api('POST', `${k}/rotation`, { validityDays: int(v, 'days', true) }, session());
        // An externally certified key now waits for its root's certificate: the CSR of the pending version.
        const versions = await api<{ pendingVersion: number | null }>('GET', `${k}/versions`);
        if (!versions.pendingVersion) return r;
        const pending = await api<{ csr: string; version: number }>('GET', `${k}/csr`);
        if (out) writeOutputFile(out, answerShape.pem(pending?.csr, 'CSR', 'CERTIFICATE REQUEST'), '--out');
        return { ...(r as object), pendingVersion: pending.version, csr: pending.csr };
      }
      case 'retire':
        return api('POST', `${k}/retirement`, {}, session());
      case 'destroy':
        return api('POST', `${k}/destruction`, {}, session());
      case 'revoke':
        return api('POST', `${k}/revocation`, { reason: need(v, 'reason') }, session());
    }
  }
  throw new CliError(`unknown command: admin ${pos.join(' ')} (see ksctl admin --help)`, Exit.Usage);
}
