import { Inject, Injectable, Optional } from '@nestjs/common';
import type { Logger } from 'pino';
import { buildTimeStampQuery, checkTimeStampReply, TsaError, TsaErrorCode, type HashName, type TsaTrust } from '@keyserver/pki';
import { API_CONFIG, LOGGER } from '../app/tokens';
import type { ApiConfig } from '../config/api-config';
import { TsaCrlFile } from './tsa-crl-file';
import { TsaService } from './tsa.service';

/** Largest TimeStampResp read from an external TSA (a token with a certificate chain is a few KiB). */
const MAX_REPLY_BYTES = 64 * 1024;

/** What a signature timestamp adds to the firmware audit event. */
export interface StampedFacts {
  serial: string;
  genTime: string;
  tsa: string;
}

/** Makes the `timestamp` hook of a CMS signature (libs/pki SignedDataOptions), or says there is none. */
export type SignatureStamper = (signatureValue: Uint8Array) => Promise<Uint8Array>;

/**
 * Signature timestamps of CMS firmware signatures (RFC 3161 appendix A), docs/adr/0024:
 * - CMS_TIMESTAMP=off: none;
 * - CMS_TSA_URL set: that TSA over HTTP (query with a nonce and certReq; the reply's status, imprint, nonce and
 *   signature and ESS signing-certificate checked, its signer trusted by CMS_TSA_CA_CERT / CMS_TSA_CERT_SHA256
 *   (ADR 0043), not revoked on a CMS_TSA_CRL CRL, and its genTime within CMS_TSA_MAX_SKEW_MS of our clock (ADR 0046),
 *   before it is embedded); when it is down or answers wrongly the signature fails (503 timestamp_unavailable / 502
 *   timestamp_reply_invalid, timestamp_tsa_untrusted, timestamp_tsa_revoked, timestamp_tsa_crl_stale,
 *   timestamp_clock_skew) and its usage is given back: a firmware signature
 *   that silently lacks its timestamp would stop verifying the day its FW certificate expires;
 * - otherwise this Keyserver's own TSA when a TSA key exists (none: the signature goes without, as before).
 */
@Injectable()
export class SignatureTimestamps {
  /** CMS_TSA_CRL, read again when it changes (ADR 0046 addendum). */
  private readonly crlFile?: TsaCrlFile;

  constructor(
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    private readonly tsa: TsaService,
    @Optional() @Inject(LOGGER) logger?: Logger,
  ) {
    const c = config.cmsTimestamp;
    if (c.crlFile && c.trust?.crls) {
      this.crlFile = new TsaCrlFile(c.crlFile, c.trust.anchors, c.trust.crls, (facts, message) => logger?.warn(facts, message));
    }
  }

  /** The trust in the external TSA now: the configured one, with the CRLs as the file holds them. */
  private trust(): TsaTrust {
    // The config requires a trust with the URL; without one nobody is trusted (deny by default).
    const trust = this.config.cmsTimestamp.trust ?? { anchors: [], pins: [] };
    return this.crlFile ? { ...trust, crls: this.crlFile.current() } : trust;
  }

  /** The stamper for one signature (decided before any usage is reserved); `facts` collects what it stamped. */
  async stamper(hash: HashName, requestId: string, facts: (f: StampedFacts) => void): Promise<SignatureStamper | undefined> {
    const c = this.config.cmsTimestamp;
    if (c.mode === 'off') return undefined;
    if (c.url) {
      const url = c.url;
      return async (signature) => {
        const sent = buildTimeStampQuery(hash, signature);
        const reply = await post(url, sent.der, c.timeoutMs);
        const { token, info } = await checkTimeStampReply(reply, sent, this.trust(), { maxSkewMs: c.maxSkewMs });
        facts({ serial: info.serialHex, genTime: info.genTime.toISOString(), tsa: new URL(url).host });
        return token;
      };
    }
    const own = await this.tsa.forSignature();
    if (!own) return undefined;
    return async (signature) => {
      const q = buildTimeStampQuery(hash, signature);
      const issued = await own({ hash, messageImprintDer: q.messageImprintDer, nonceDer: q.nonceDer, certReq: true }, requestId);
      facts({ serial: issued.serialHex, genTime: issued.genTime.toISOString(), tsa: 'self' });
      return issued.token;
    };
  }
}

/** POSTs a query; any transport failure, timeout, non-200 or oversize answer is `timestamp_unavailable`. */
async function post(url: string, der: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
  const down = (why: string) => new TsaError(TsaErrorCode.TimestampUnavailable, `the TSA at ${new URL(url).host} ${why}`);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/timestamp-query', accept: 'application/timestamp-reply' },
      body: Buffer.from(der),
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw down(`did not answer (${(err as Error).name === 'TimeoutError' ? `no answer in ${timeoutMs} ms` : 'connection failed'})`);
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => undefined);
    throw down(`answered HTTP ${res.status}`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of (res.body ?? []) as unknown as AsyncIterable<Uint8Array>) {
      size += chunk.length;
      if (size > MAX_REPLY_BYTES) throw down(`answered more than ${MAX_REPLY_BYTES} bytes`);
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof TsaError) throw err;
    throw down('broke off its answer');
  }
  return new Uint8Array(Buffer.concat(chunks));
}
