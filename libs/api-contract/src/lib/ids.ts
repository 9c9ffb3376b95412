import { z } from 'zod';

// One definition of the identifiers that requests name, for schemas (zod) and for code that checks a raw value.

/** A UUID in any version and case (ids the Keyserver generates; clients may upper-case them). */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** True for a UUID-shaped string (see {@link UUID_PATTERN}). */
export const isUuid = (v: unknown): v is string => typeof v === 'string' && UUID_PATTERN.test(v);

/** A reference to an existing key by its keyid (the stricter pattern for new keyids is in key-admin.ts). */
export const KeyIdRef = z.string().min(1).max(128);

/** The keyid of a new key: 3-64 characters [a-z0-9._-], starting with a letter or digit. */
export const NEW_KEYID_PATTERN = /^[a-z0-9][a-z0-9._-]{2,63}$/;
/** True for a string that can be the keyid of a key made by this Keyserver (see {@link NEW_KEYID_PATTERN}). */
export const isNewKeyId = (v: unknown): v is string => typeof v === 'string' && NEW_KEYID_PATTERN.test(v);
