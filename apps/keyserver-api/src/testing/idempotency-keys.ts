/**
 * Idempotency-Key values every route that honours one refuses with `400 idempotency_key_invalid` (ADR 0012 addendum
 * "idempotency, session 25"): one canonical form, no normalisation. Shared by the sign-order and certificate specs.
 */
export const HOSTILE_IDEMPOTENCY_KEYS: ReadonlyArray<readonly [string, string]> = [
  ['fail empty', ''],
  ['fail 129 characters', 'k'.repeat(129)],
  ['fail NUL', 'build\u0000'],
  ['fail TAB inside', 'build\t1'],
  ['fail a space inside', 'build 1'],
  ['fail NFC e-acute', 'caf\u00e9'],
  ['fail NFD e + combining acute', 'cafe\u0301'],
  ['fail fullwidth letters', '\uff21\uff22\uff23'],
  ['fail Kelvin sign (lower-cases to k)', '\u212a1'],
  ['fail dotted capital I', '\u0130d'],
  ['fail zero-width space', 'a\u200bb'],
  ['fail right-to-left override', '\u202eabc'],
  ['fail a lone surrogate', 'a\ud800'],
  ['fail UTF-8 bytes read as latin1 (what Node hands on for raw non-ASCII)', 'caf\u00c3\u00a9'],
];
