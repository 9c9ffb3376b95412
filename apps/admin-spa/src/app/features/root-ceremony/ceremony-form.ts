import { FormControl, FormGroup, Validators } from '@angular/forms';
import type { HashAlgorithmName, KeyAlgorithmName } from '../../core/api-types';
import type { RootCeremonyBody } from '../../core/root-ceremony.service';
import { KEYID, MAX_APPROVERS, MAX_VALIDITY_DAYS, countryValidator, nameText, wholeNumber } from '../keys/key-form';

// The rules of RootCeremonyRequest (libs/api-contract key-lifecycle.ts), checked before sending.
export const MAX_PATH_LEN = 8;

export type CeremonyForm = FormGroup<{
  mode: FormControl<'self-signed' | 'external'>;
  keyid: FormControl<string>;
  algorithm: FormControl<KeyAlgorithmName>;
  /** '' = the server's default for the algorithm. */
  hash: FormControl<HashAlgorithmName | ''>;
  commonName: FormControl<string>;
  organization: FormControl<string>;
  organizationalUnit: FormControl<string>;
  country: FormControl<string>;
  validityDays: FormControl<number | null>;
  /** null = no path length constraint. */
  pathLen: FormControl<number | null>;
  requiredApprovers: FormControl<number | null>;
}>;

export function ceremonyForm(): CeremonyForm {
  return new FormGroup({
    mode: new FormControl<'self-signed' | 'external'>('self-signed', { nonNullable: true }),
    keyid: new FormControl('', { nonNullable: true, validators: [Validators.required, Validators.pattern(KEYID)] }),
    algorithm: new FormControl<KeyAlgorithmName>('EC_P384', { nonNullable: true, validators: [Validators.required] }),
    hash: new FormControl<HashAlgorithmName | ''>('', { nonNullable: true }),
    commonName: new FormControl('', { nonNullable: true, validators: [nameText(true)] }),
    organization: new FormControl('', { nonNullable: true, validators: [nameText(false)] }),
    organizationalUnit: new FormControl('', { nonNullable: true, validators: [nameText(false)] }),
    country: new FormControl('', { nonNullable: true, validators: [countryValidator] }),
    validityDays: new FormControl<number | null>(7300, wholeNumber(1, MAX_VALIDITY_DAYS)),
    pathLen: new FormControl<number | null>(null, [Validators.min(0), Validators.max(MAX_PATH_LEN), Validators.pattern(/^\d+$/)]),
    requiredApprovers: new FormControl<number | null>(2, wholeNumber(0, MAX_APPROVERS)),
  });
}

/** The request body of a valid form: trimmed texts, empty optional fields left out, the country upper-cased. */
export function toCeremonyRequest(form: CeremonyForm): RootCeremonyBody {
  const v = form.getRawValue();
  const subject: RootCeremonyBody['subject'] = { commonName: v.commonName.trim() };
  if (v.organization.trim()) subject.organization = v.organization.trim();
  if (v.organizationalUnit.trim()) subject.organizationalUnit = v.organizationalUnit.trim();
  if (v.country.trim()) subject.country = v.country.trim().toUpperCase();
  const body: RootCeremonyBody = {
    keyid: v.keyid,
    algorithm: v.algorithm,
    subject,
    validityDays: Number(v.validityDays),
    requiredApprovers: Number(v.requiredApprovers),
    mode: v.mode,
  };
  if (v.hash) body.hash = v.hash;
  if (v.pathLen !== null && String(v.pathLen) !== '') body.pathLen = Number(v.pathLen);
  return body;
}

/** The subject DN as the confirmation restates it (`CN=…, O=…, OU=…, C=…`). */
export function subjectText(subject: RootCeremonyBody['subject']): string {
  return [
    ['CN', subject.commonName],
    ['O', subject.organization],
    ['OU', subject.organizationalUnit],
    ['C', subject.country],
  ]
    .filter(([, v]) => v)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

// The PEM helpers moved to core/pem.ts (one linear splitter for every form that takes pasted certificates).
export { colonHex, splitPemCertificates } from '../../core/pem';
