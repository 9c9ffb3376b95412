import { z } from 'zod';
import { KeyGrantSchema as KeyGrant, NatureSchema as NatureName, SubjectKindSchema as SubjectKind } from './subjects';

/** `GET /api/v1/me`: who the caller is to the Keyserver (never a token). */
export const MeView = z.object({
  subjectId: z.string(),
  kind: SubjectKind,
  displayName: z.string(),
  tid: z.string(),
  oid: z.string(),
  client: z.string(),
  channel: z.enum(['bff', 'provisioning', 'app']),
  /**
   * The token's account in the tenant (the `acct` claim of user tokens): `member` (0) or `guest` (1, Entra B2B); null
   * without `acct` and for app tokens. Only a member holds the administrator and approver natures (ADR 0040).
   */
  account: z.enum(['member', 'guest']).nullable(),
  /** The natures the caller may use (after the channel and account restrictions). */
  natures: z.array(NatureName),
  keyPermissions: z.record(z.string(), z.array(KeyGrant)),
  /** Route permissions the guard grants from the natures (after channel and account restrictions). */
  permissions: z.array(z.string()),
});
export type MeView = z.infer<typeof MeView>;
