import { AbstractControl, FormArray, FormControl, FormGroup, ValidationErrors, ValidatorFn, Validators } from '@angular/forms';
import type { CreateOperationRequest } from '../../core/api-types';

const HEX = /^(?:[0-9a-fA-F]{2})+$/;
export const MAX_DIGESTS = 10_000;

export type KeyRow = FormGroup<{ keyid: FormControl<string>; usages: FormControl<number | null> }>;
export type OperationForm = FormGroup<{
  description: FormControl<string>;
  validFrom: FormControl<string>;
  validTo: FormControl<string>;
  keys: FormArray<KeyRow>;
  digests: FormControl<string>;
}>;

/** `yyyy-MM-ddTHH:mm` in local time, the value of an `<input type="datetime-local">`. */
export function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** The non-empty lines of the digests box. */
export function digestLines(text: string): string[] {
  return text
    .split(/[\s,;]+/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

const digestsValidator: ValidatorFn = (c: AbstractControl<string>): ValidationErrors | null => {
  const lines = digestLines(c.value ?? '');
  if (lines.length > MAX_DIGESTS) return { tooManyDigests: { max: MAX_DIGESTS } };
  const bad = lines.find((l) => !HEX.test(l) || l.length > 128);
  return bad ? { badDigest: { value: bad.length > 24 ? bad.slice(0, 24) + '…' : bad } } : null;
};

const windowValidator: ValidatorFn = (g: AbstractControl): ValidationErrors | null => {
  const from = Date.parse(g.get('validFrom')?.value ?? '');
  const to = Date.parse(g.get('validTo')?.value ?? '');
  if (Number.isNaN(from) || Number.isNaN(to)) return null;
  return to > from ? null : { windowOrder: true };
};

const uniqueKeysValidator: ValidatorFn = (a: AbstractControl): ValidationErrors | null => {
  const ids = (a as FormArray<KeyRow>).controls.map((r) => r.controls.keyid.value.trim()).filter((k) => k);
  return new Set(ids).size === ids.length ? null : { duplicateKey: true };
};

export function keyRow(keyid = '', usages: number | null = 1): KeyRow {
  return new FormGroup({
    keyid: new FormControl(keyid, { nonNullable: true, validators: [Validators.required, Validators.maxLength(128)] }),
    usages: new FormControl<number | null>(usages, [Validators.required, Validators.min(1), Validators.max(1_000_000), Validators.pattern(/^\d+$/)]),
  });
}

/** The create-operation form with the API's rules (CreateOperationRequest) checked before sending. */
export function operationForm(now = new Date()): OperationForm {
  return new FormGroup(
    {
      description: new FormControl('', { nonNullable: true, validators: [Validators.required, trimmedMin(8), Validators.maxLength(1000)] }),
      validFrom: new FormControl(toLocalInput(now), { nonNullable: true, validators: [Validators.required] }),
      validTo: new FormControl(toLocalInput(new Date(now.getTime() + 24 * 3600_000)), { nonNullable: true, validators: [Validators.required] }),
      keys: new FormArray<KeyRow>([keyRow()], [Validators.minLength(1), Validators.maxLength(32), uniqueKeysValidator]),
      digests: new FormControl('', { nonNullable: true, validators: [digestsValidator] }),
    },
    { validators: [windowValidator] },
  );
}

function trimmedMin(n: number): ValidatorFn {
  return (c) => ((c.value ?? '').trim().length >= n ? null : { minTrimmed: { min: n } });
}

/** The request body for a valid form (local datetimes become ISO 8601 with offset). */
export function toRequest(form: OperationForm): CreateOperationRequest {
  const v = form.getRawValue();
  const digests = digestLines(v.digests).map((d) => d.toLowerCase());
  return {
    description: v.description.trim(),
    validFrom: new Date(v.validFrom).toISOString(),
    validTo: new Date(v.validTo).toISOString(),
    keys: v.keys.map((k) => ({ keyid: k.keyid.trim(), usages: Number(k.usages) })),
    ...(digests.length ? { digests } : {}),
  };
}
