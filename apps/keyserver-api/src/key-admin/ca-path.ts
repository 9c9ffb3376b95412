import type { Key } from '@keyserver/data-access';
import { KeyAdminError, KeyAdminErrorCode } from './key-admin-error';

/**
 * A CA whose certificate allows `pathLen` CA levels below it fits below `issuer` only when the issuer allows at least
 * one more (RFC 5280 4.2.1.9; the issuer's stored pathLen is the tightest its own chain leaves): else issuer_not_usable,
 * before anything is generated or signed.
 */
export function assertCaFitsBelow(issuer: Pick<Key, 'keyid' | 'pathLen'>, pathLen: number): void {
  if (issuer.pathLen !== null && issuer.pathLen < pathLen + 1) {
    throw new KeyAdminError(KeyAdminErrorCode.IssuerNotUsable, `${issuer.keyid} allows ${issuer.pathLen} CA level(s) below it: a CA with pathLen ${pathLen} does not fit`);
  }
}
