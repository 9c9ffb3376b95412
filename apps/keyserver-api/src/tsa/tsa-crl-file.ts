import { statSync } from 'node:fs';
import type { X509Certificate } from 'node:crypto';
import type { TsaCrl } from '@keyserver/pki';
import { loadTsaCrls } from '../config/api-config';

/**
 * The CRLs of CMS_TSA_CRL as the file holds them now (ADR 0046 addendum): before each external timestamp the file
 * is looked at (one stat), and read and verified again when its inode, size or mtime changed, so a refreshed CRL
 * needs no restart. A file that no longer verifies is not taken (the CRLs read before stay, and go stale at their
 * nextUpdate: fail closed); a CRL is only ever replaced by a later one of the same CA (no rollback by the file).
 */
export class TsaCrlFile {
  private stamp: string | undefined;
  private crls: TsaCrl[];

  constructor(
    private readonly file: string,
    private readonly anchors: X509Certificate[],
    initial: TsaCrl[],
    private readonly warn: (facts: Record<string, unknown>, message: string) => void,
  ) {
    // The first call reads the file again: it may have changed since the boot read it.
    this.crls = initial;
  }

  current(): TsaCrl[] {
    let stamp: string;
    try {
      const s = statSync(this.file);
      stamp = `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch (err) {
      if (this.stamp !== 'missing') this.warn({ file: this.file, err: (err as Error).message }, 'CMS_TSA_CRL is not readable; the CRLs read before are used');
      this.stamp = 'missing';
      return this.crls;
    }
    if (stamp === this.stamp) return this.crls;
    this.stamp = stamp;
    let read: TsaCrl[];
    try {
      read = loadTsaCrls(this.file, this.anchors);
    } catch (err) {
      this.warn({ file: this.file, err: (err as Error).message }, 'CMS_TSA_CRL changed but does not verify; the CRLs read before are used');
      return this.crls;
    }
    const merged = new Map(this.crls.map((c) => [c.issuer, c]));
    for (const crl of read) {
      const before = merged.get(crl.issuer);
      if (before && before.thisUpdate > crl.thisUpdate) {
        this.warn({ file: this.file, issuer: crl.issuer.subject, kept: before.thisUpdate.toISOString(), offered: crl.thisUpdate.toISOString() }, 'CMS_TSA_CRL holds an older CRL than the one in use; the later one is kept');
        continue;
      }
      merged.set(crl.issuer, crl);
    }
    this.crls = [...merged.values()];
    return this.crls;
  }
}
