import { CreateKeyRequest, HashAlgorithm, KeyAlgorithm, KeyRevocationReason } from '@keyserver/api-contract';
import { HASH_ALGORITHMS, KEY_ALGORITHMS, REVOCATION_REASONS } from '../../core/api-types';
import { keyForm, toCreateRequest } from './key-form';

type Values = Parameters<ReturnType<typeof keyForm>['patchValue']>[0];

// The form must accept exactly what the contract accepts: each case is checked against the form and the zod schema.
const BASE: Values = { keyid: 'fw-2026', type: 'FW', algorithm: 'EC_P256', hash: '', requiredApprovers: 2, validityDays: 365, commonName: 'Firmware 2026' };
const long = (n: number) => 'x'.repeat(n);

describe('key form', () => {
  function formWith(over: Values) {
    const form = keyForm();
    form.patchValue({ ...BASE, ...over });
    return form;
  }

  /** The body a client without the form's checks would send: values as typed, empty optionals left out. */
  function raw(over: Values): Record<string, unknown> {
    const v: Record<string, unknown> = { ...BASE, ...over };
    for (const k of ['hash', 'product', 'organization', 'country']) if (v[k] === '' || v[k] === undefined) delete v[k];
    return v;
  }

  it('offers exactly the contract algorithms, hashes and revocation reasons', () => {
    expect([...KEY_ALGORITHMS].sort()).toEqual([...KeyAlgorithm.options].sort());
    expect([...HASH_ALGORITHMS].sort()).toEqual([...HashAlgorithm.options].sort());
    expect([...REVOCATION_REASONS].sort()).toEqual([...KeyRevocationReason.options].sort());
  });

  it.each<[string, Values]>([
    ['ok defaults', {}],
    ['ok shortest keyid', { keyid: 'a.b' }],
    ['ok longest keyid', { keyid: `k${'-'.repeat(63)}` }],
    ['ok no approvers', { requiredApprovers: 0 }],
    ['ok ten approvers', { requiredApprovers: 10 }],
    ['ok one day', { validityDays: 1 }],
    ['ok a hundred years', { validityDays: 36_500 }],
    ['ok CA with an explicit hash', { type: 'CA', algorithm: 'RSA_3072', hash: 'SHA384' }],
    ['ok TSA (RFC 3161 time-stamping key)', { type: 'TSA', algorithm: 'EC_P384' }],
    ['ok every name attribute', { product: 'gadget-x', organization: long(64), country: 'DK', commonName: long(64) }],
    ['ok names with blanks around them', { commonName: '  Firmware  ', organization: ' Demo Ltd ' }],
    ['ok Unicode name', { commonName: 'Ærø Firmware – 2026' }],
    ['ok names in other scripts', { commonName: 'Москва', organization: '東京 서울' }],
    ['ok Danish, German, Arabic and Azerbaijani names', { commonName: 'Ærø Straße ə', organization: 'جهاز الرياض' }],
  ])('%s', (_name, over) => {
    const form = formWith(over);
    expect(form.valid).toBe(true);
    const body = toCreateRequest(form);
    expect(CreateKeyRequest.safeParse(body).success).toBe(true);
    expect(CreateKeyRequest.safeParse(raw(over)).success).toBe(true);
  });

  it.each<[string, Values, string]>([
    ['fail empty keyid', { keyid: '' }, 'keyid'],
    ['fail two-character keyid', { keyid: 'ab' }, 'keyid'],
    ['fail keyid of 65 characters', { keyid: `k${'a'.repeat(64)}` }, 'keyid'],
    ['fail upper-case keyid', { keyid: 'Fw-2026' }, 'keyid'],
    ['fail keyid starting with a dash', { keyid: '-fw2026' }, 'keyid'],
    ['fail keyid with a slash', { keyid: 'fw/2026' }, 'keyid'],
    ['fail negative approvers', { requiredApprovers: -1 }, 'requiredApprovers'],
    ['fail eleven approvers', { requiredApprovers: 11 }, 'requiredApprovers'],
    ['fail fractional approvers', { requiredApprovers: 1.5 }, 'requiredApprovers'],
    ['fail missing approvers', { requiredApprovers: null }, 'requiredApprovers'],
    ['fail zero days', { validityDays: 0 }, 'validityDays'],
    ['fail over a hundred years', { validityDays: 36_501 }, 'validityDays'],
    ['fail fractional days', { validityDays: 2.5 }, 'validityDays'],
    ['fail empty common name', { commonName: '' }, 'commonName'],
    ['fail blank common name', { commonName: '    ' }, 'commonName'],
    ['fail common name of 65 characters', { commonName: long(65) }, 'commonName'],
    ['fail control character in the common name', { commonName: 'Bad\u0007' }, 'commonName'],
    ['fail C1 control character in the organization', { organization: 'Bad\u0085Ltd' }, 'organization'],
    // The rule of a certificate subject value (api-contract name-text, ADR 0010), shared with the API.
    ['fail mathematical bold letters in the common name (𝐓𝐞𝐬𝐭)', { commonName: '\u{1d413}\u{1d41e}\u{1d42c}\u{1d42d} Root' }, 'commonName'],
    ['fail full-width letters in the common name', { commonName: '\uff34\uff45\uff53\uff54' }, 'commonName'],
    ['fail a ligature in the organization', { organization: '\ufb01rmware Ltd' }, 'organization'],
    ['fail a Cyrillic е in a Latin common name', { commonName: 'T\u0435st Root' }, 'commonName'],
    ['fail a right-to-left override in the common name', { commonName: 'Firmware \u202egpj.exe' }, 'commonName'],
    ['fail a zero-width space in the organization', { organization: 'Ac\u200bme' }, 'organization'],
    ['fail Latin small capitals in the common name (ᴅᴇᴠɪᴄᴇ)', { commonName: '\u1d05\u1d07\u1d20\u026a\u1d04\u1d07' }, 'commonName'],
    ['fail an IPA script a in the organization (ɑcme)', { organization: '\u0251cme Ltd' }, 'organization'],
    ['fail an estimated sign drawn as e in the common name (℮)', { commonName: 'D\u212emo' }, 'commonName'],
    ['fail organization of 65 characters', { organization: long(65) }, 'organization'],
    ['fail three-letter country', { country: 'DNK' }, 'country'],
    ['fail digit in the country', { country: 'D1' }, 'country'],
    ['fail FW product of 129 characters', { product: long(129) }, 'product'],
  ])('%s', (_name, over, field) => {
    const form = formWith(over);
    expect(form.valid).toBe(false);
    expect(Object.entries(form.controls).filter(([, c]) => c.invalid).map(([k]) => k)).toEqual([field]);
    expect(CreateKeyRequest.safeParse(raw(over)).success).toBe(false);
  });

  it('sends trimmed names, an upper-case country and leaves empty optionals out', () => {
    const form = formWith({ commonName: '  Firmware 2026 ', organization: '  ', country: 'dk', product: ' gadget ', hash: 'SHA512' });
    expect(form.valid).toBe(true);
    expect(toCreateRequest(form)).toEqual({
      keyid: 'fw-2026',
      type: 'FW',
      algorithm: 'EC_P256',
      hash: 'SHA512',
      requiredApprovers: 2,
      validityDays: 365,
      product: 'gadget',
      commonName: 'Firmware 2026',
      country: 'DK',
    });
  });

  it('ignores the product of a CA key, even an overlong one', () => {
    const form = formWith({ type: 'CA', product: long(129) });
    expect(form.valid).toBe(true);
    expect(toCreateRequest(form)).not.toHaveProperty('product');
    form.controls.type.setValue('FW');
    expect(form.valid).toBe(false);
  });
});
