import { z } from 'zod';

const DAY = 86_400;

/** The range an administrator may set each per-key operation limit in (inclusive); the API enforces the same. */
export const KEY_LIMIT_BOUNDS = {
  maxWindowSeconds: { min: 60, max: 366 * DAY },
  maxUsagesPerOperation: { min: 1, max: 1_000_000 },
  maxBackdateSeconds: { min: 0, max: DAY },
  maxStartAheadSeconds: { min: 0, max: 366 * DAY },
} as const;

const bounded = (name: keyof typeof KEY_LIMIT_BOUNDS) => z.number().int().min(KEY_LIMIT_BOUNDS[name].min).max(KEY_LIMIT_BOUNDS[name].max);

/** What every operation on a key must stay within. */
export const KeyLimits = z.strictObject({
  maxWindowSeconds: bounded('maxWindowSeconds').describe('Longest validFrom..validTo of an operation, in seconds'),
  maxUsagesPerOperation: bounded('maxUsagesPerOperation').describe('Most usages one operation may ask for on this key'),
  maxBackdateSeconds: bounded('maxBackdateSeconds').describe('How far before the Keyserver\'s clock validFrom may lie (clock skew), in seconds'),
  maxStartAheadSeconds: bounded('maxStartAheadSeconds').describe('How far after the Keyserver\'s clock validFrom may lie, in seconds'),
});
export type KeyLimits = z.infer<typeof KeyLimits>;

/** `PUT /api/v1/keys/{keyid}/limits`: every limit, replacing the ones in force. */
export const SetKeyLimitsRequest = KeyLimits;
export type SetKeyLimitsRequest = z.infer<typeof SetKeyLimitsRequest>;

/** The limits in force for a key, on its detail and on every key of an operation (what approvers see). */
export const KeyLimitsView = z.object({
  ...KeyLimits.shape,
  source: z.enum(['default', 'set']).describe('default: the defaults of the key\'s class (production keys need approvers); set: set by administrators'),
  updatedAt: z.string().nullable().describe('When administrators last set them; null for defaults'),
});
export type KeyLimitsView = z.infer<typeof KeyLimitsView>;
