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
  natures: z.array(NatureName),
  keyPermissions: z.record(z.string(), z.array(KeyGrant)),
  /** Route permissions the guard grants from the natures (after channel restrictions). */
  permissions: z.array(z.string()),
});
export type MeView = z.infer<typeof MeView>;
