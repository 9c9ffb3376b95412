import { z } from 'zod';

/** `GET|PUT /api/v1/me/notifications`: the caller's own notification settings (docs/notifications.md). */
export const NotificationSettingsView = z.object({
  /** The address administrators keep on file (never taken from a token claim); null: no email is sent. */
  email: z.string().nullable(),
  emailEnabled: z.boolean(),
  webhookEnabled: z.boolean(),
  updatedAt: z.string().nullable(),
});
export type NotificationSettingsView = z.infer<typeof NotificationSettingsView>;

/** `PUT /api/v1/me/notifications`: opt in or out per channel (the address itself is not the subject's to change). */
export const UpdateNotificationSettingsRequest = z.strictObject({
  emailEnabled: z.boolean(),
  webhookEnabled: z.boolean(),
});
export type UpdateNotificationSettingsRequest = z.infer<typeof UpdateNotificationSettingsRequest>;

/**
 * One mailbox address as RFC 5321 carries it: ASCII, no display name, no comments, no spaces or controls, at most
 * 254 characters. Internationalised addresses (SMTPUTF8) are refused rather than half-supported.
 */
export const NotificationEmail = z
  .string()
  .max(254)
  .regex(/^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/, 'must be one plain ASCII mailbox address (local@domain)');

/** `PUT /api/v1/subjects/{id}/notification-address` (administrators, in an ACTIVE admin session): null removes it. */
export const SetNotificationAddressRequest = z.strictObject({ email: NotificationEmail.nullable() });
export type SetNotificationAddressRequest = z.infer<typeof SetNotificationAddressRequest>;
