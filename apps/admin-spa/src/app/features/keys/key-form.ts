import { AbstractControl, FormControl, FormGroup, ValidationErrors, ValidatorFn, Validators } from '@angular/forms';
import { readsAsItself } from '@keyserver/api-contract/name-text';
import type { CreateKeyBody, HashAlgorithmName, KeyAlgorithmName } from '../../core/api-types';

// The rules of CreateKeyRequest (libs/api-contract key-admin.ts), checked before sending.
export const KEYID = /^[a-z0-9][a-z0-9._-]{2,63}$/;
const COUNTRY = /^[A-Z]{2}$/;
const WHOLE = /^\d+$/;
export const MAX_APPROVERS = 10;
export const MAX_VALIDITY_DAYS = 36_500;

export type KeyForm = FormGroup<{
  keyid: FormControl<string>;
  type: FormControl<CreateKeyBody['type']>;
  algorithm: FormControl<KeyAlgorithmName>;
  /** '' = the server's default for the algorithm. */
  hash: FormControl<HashAlgorithmName | ''>;
  requiredApprovers: FormControl<number | null>;
  validityDays: FormControl<number | null>;
  product: FormControl<string>;
  commonName: FormControl<string>;
  organization: FormControl<string>;
  country: FormControl<string>;
}>;

/**
 * A certificate name attribute: 1..64 characters once trimmed that read as themselves (the API's rule, one function:
 * `@keyserver/api-contract/name-text`); '' passes when optional.
 */
export function nameText(required: boolean): ValidatorFn {
  return (c: AbstractControl<string>): ValidationErrors | null => {
    const v = (c.value ?? '').trim();
    if (!v) return required ? { required: true } : null;
    if (v.length > 64) return { maxlength: { requiredLength: 64, actualLength: v.length } };
    return readsAsItself(v) ? null : { nameText: true };
  };
}

/** ISO 3166 alpha-2, upper-cased before sending; '' passes (the field is optional). */
export const countryValidator: ValidatorFn = (c: AbstractControl<string>): ValidationErrors | null => {
  const v = (c.value ?? '').trim();
  return !v || COUNTRY.test(v.toUpperCase()) ? null : { country: true };
};

/** At most 128 characters once trimmed; '' passes (the field is optional). */
const productValidator: ValidatorFn = (c: AbstractControl<string>): ValidationErrors | null => {
  const v = (c.value ?? '').trim();
  return v.length > 128 ? { maxlength: { requiredLength: 128, actualLength: v.length } } : null;
};

/** A whole number in [min, max], as the contract's `z.number().int().min().max()`. */
export function wholeNumber(min: number, max: number): ValidatorFn[] {
  return [Validators.required, Validators.min(min), Validators.max(max), Validators.pattern(WHOLE)];
}

export function keyForm(): KeyForm {
  const form: KeyForm = new FormGroup({
    keyid: new FormControl('', { nonNullable: true, validators: [Validators.required, Validators.pattern(KEYID)] }),
    type: new FormControl<CreateKeyBody['type']>('FW', { nonNullable: true, validators: [Validators.required] }),
    algorithm: new FormControl<KeyAlgorithmName>('EC_P256', { nonNullable: true, validators: [Validators.required] }),
    hash: new FormControl<HashAlgorithmName | ''>('', { nonNullable: true }),
    requiredApprovers: new FormControl<number | null>(2, wholeNumber(0, MAX_APPROVERS)),
    validityDays: new FormControl<number | null>(365, wholeNumber(1, MAX_VALIDITY_DAYS)),
    product: new FormControl('', { nonNullable: true, validators: [productValidator] }),
    commonName: new FormControl('', { nonNullable: true, validators: [nameText(true)] }),
    organization: new FormControl('', { nonNullable: true, validators: [nameText(false)] }),
    country: new FormControl('', { nonNullable: true, validators: [countryValidator] }),
  });
  // Only FW keys name a product: for a CA the (hidden) field neither counts nor blocks.
  form.controls.type.valueChanges.subscribe((t) => (t === 'FW' ? form.controls.product.enable() : form.controls.product.disable()));
  return form;
}

/**
 * The request body of a valid form: trimmed texts, empty optional fields left out, the country upper-cased.
 * A product is only sent for FW keys (it names what the firmware key signs for).
 */
export function toCreateRequest(form: KeyForm): CreateKeyBody {
  const v = form.getRawValue();
  const body: CreateKeyBody = {
    keyid: v.keyid,
    type: v.type,
    algorithm: v.algorithm,
    requiredApprovers: Number(v.requiredApprovers),
    validityDays: Number(v.validityDays),
    commonName: v.commonName.trim(),
  };
  if (v.hash) body.hash = v.hash;
  if (v.type === 'FW' && v.product.trim()) body.product = v.product.trim();
  if (v.organization.trim()) body.organization = v.organization.trim();
  if (v.country.trim()) body.country = v.country.trim().toUpperCase();
  return body;
}
