import { KeyserverError } from '@keyserver/errors';

/** Refusals of certificate issuance and revocation that are not CSR problems (those are PkiError codes). */
export enum CertificateErrorCode {
  CertificateNotFound = 'certificate_not_found',
  RevocationNotAllowed = 'revocation_not_allowed',
}

const STATUS: Record<CertificateErrorCode, number> = {
  [CertificateErrorCode.CertificateNotFound]: 404,
  [CertificateErrorCode.RevocationNotAllowed]: 403,
};

export class CertificateError extends KeyserverError<CertificateErrorCode> {
  get status(): number {
    return STATUS[this.code];
  }
}
