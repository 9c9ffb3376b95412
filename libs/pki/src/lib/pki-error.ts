import { KeyserverError } from '@keyserver/errors';

export const PKI_ERROR_CODES = [
  'digest_length_mismatch',
  'malformed_digestinfo',
  'digestinfo_hash_mismatch',
  'padding_not_supported_for_key',
  'signature_format_not_supported_for_key',
  'hash_not_supported',
  'invalid_name',
  'invalid_validity',
  'validity_exceeds_issuer',
  'issuer_not_ca',
  'invalid_certificate',
  'invalid_crl_input',
  'certificate_key_mismatch',
  'chain_invalid',
  'csr_too_large',
  'csr_pem_invalid',
  'csr_wrong_pem_label',
  'csr_multiple_pem_blocks',
  'csr_malformed',
  'csr_trailing_data',
  'csr_not_der',
  'csr_signature_invalid',
  'csr_signature_algorithm_not_allowed',
  'csr_key_not_allowed',
  'csr_explicit_ec_parameters',
  'csr_public_key_invalid',
  'csr_subject_invalid',
  'csr_subject_too_long',
  'csr_subject_attribute_not_allowed',
  'csr_attribute_not_allowed',
  'csr_duplicate_extension',
  'csr_ca_requested',
  'csr_key_cert_sign_requested',
  'csr_unknown_critical_extension',
  'csr_san_not_allowed',
  'csr_san_invalid',
  'csr_san_too_many',
  'csr_weak_key',
  'csr_subject_duplicate_attribute',
  'csr_subject_reserved',
] as const;

export type PkiErrorCode = (typeof PKI_ERROR_CODES)[number];

const STATUS: Record<PkiErrorCode, number> = {
  digest_length_mismatch: 400,
  malformed_digestinfo: 400,
  digestinfo_hash_mismatch: 400,
  padding_not_supported_for_key: 400,
  signature_format_not_supported_for_key: 400,
  hash_not_supported: 400,
  invalid_name: 400,
  invalid_validity: 400,
  validity_exceeds_issuer: 400,
  issuer_not_ca: 409,
  invalid_certificate: 400,
  invalid_crl_input: 400,
  // An imported certificate is not for the HSM key it should certify.
  certificate_key_mismatch: 400,
  // An imported certificate does not chain (signatures, CA flags, path lengths, validity) to the anchor given.
  chain_invalid: 400,
  csr_too_large: 413,
  csr_pem_invalid: 400,
  csr_wrong_pem_label: 400,
  csr_multiple_pem_blocks: 400,
  csr_malformed: 400,
  csr_trailing_data: 400,
  csr_not_der: 400,
  csr_signature_invalid: 400,
  csr_signature_algorithm_not_allowed: 400,
  csr_key_not_allowed: 400,
  csr_explicit_ec_parameters: 400,
  csr_public_key_invalid: 400,
  csr_subject_invalid: 400,
  csr_subject_too_long: 400,
  csr_subject_attribute_not_allowed: 400,
  csr_attribute_not_allowed: 400,
  csr_duplicate_extension: 400,
  csr_ca_requested: 400,
  csr_key_cert_sign_requested: 400,
  csr_unknown_critical_extension: 400,
  csr_san_not_allowed: 400,
  csr_san_invalid: 400,
  csr_san_too_many: 400,
  csr_weak_key: 400,
  csr_subject_duplicate_attribute: 400,
  csr_subject_reserved: 400,
};

/** Refusal of PKI input (digests, CSRs, certificate parameters). Every code maps to a 4xx. */
export class PkiError extends KeyserverError<PkiErrorCode> {
  readonly status: number;
  constructor(code: PkiErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(code, detail, options);
    this.status = STATUS[code];
  }
}
