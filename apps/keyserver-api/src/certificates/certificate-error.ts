import { errorClass } from '@keyserver/errors';

/** Refusals of certificate issuance and revocation that are not CSR problems (those are PkiError codes). */
export enum CertificateErrorCode {
  CertificateNotFound = 'certificate_not_found',
  RevocationNotAllowed = 'revocation_not_allowed',
  /** A device profile is set on a key that is not a CA key. */
  DeviceProfileNotApplicable = 'device_profile_not_applicable',
  /** The stored device profile of a CA key does not parse (written outside the API): nothing is issued with it. */
  DeviceProfileInvalid = 'device_profile_invalid',
  /** The certificate's issuer was destroyed: its final CRL cannot change (ADR 0029). */
  IssuerDestroyed = 'issuer_destroyed',
}

const STATUS: Record<CertificateErrorCode, number> = {
  [CertificateErrorCode.CertificateNotFound]: 404,
  [CertificateErrorCode.RevocationNotAllowed]: 403,
  [CertificateErrorCode.DeviceProfileNotApplicable]: 409,
  [CertificateErrorCode.DeviceProfileInvalid]: 409,
  [CertificateErrorCode.IssuerDestroyed]: 409,
};

export class CertificateError extends errorClass(STATUS) {}
