import { z } from 'zod';
import { KEY_GRANTS, NATURES, SUBJECT_KINDS } from './access';
import { KeyIdRef } from './ids';

// Schemas of the access vocabulary (./access) for request and response bodies.
export const SubjectKindSchema = z.enum(SUBJECT_KINDS);
export const NatureSchema = z.enum(NATURES);
export const KeyGrantSchema = z.enum(KEY_GRANTS);
const SubjectKind = SubjectKindSchema;
const NatureName = NatureSchema;
const KeyGrant = KeyGrantSchema;
export const RoleName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'role names are 1-64 characters [A-Za-z0-9._-]');
const KeyId = KeyIdRef;
/**
 * A list of words from the vocabulary, each at most once: a nature, grant or role named twice is refused (as a key
 * named twice is), never stored twice nor folded silently into something other than the request an approver read.
 */
const distinct = <T extends z.ZodType<string>>(item: T, max: number, min = 0) =>
  (min > 0 ? z.array(item).min(min) : z.array(item))
    .max(max)
    .refine((xs) => new Set(xs).size === xs.length, { message: 'a value appears twice' })
    .meta({ uniqueItems: true });
const DisplayName = z.string().trim().min(1).max(200);
const Username = z.string().trim().min(1).max(256).nullable();

/**
 * A tenant or object id as Entra writes it in tokens: a lower-case GUID. Accepted in any case (RFC 4122: case-insensitive
 * on input) and stored lower-case, the one form a token's (tid, oid) is compared with: an upper-case pasted id would
 * otherwise register a subject no token can ever match.
 */
const EntraId = z.guid().transform((s) => s.toLowerCase());

/** `POST /api/v1/subjects`: registers a principal (often one from the unknown-principals list). */
export const CreateSubjectRequest = z.strictObject({
  kind: SubjectKind,
  tid: EntraId,
  oid: EntraId,
  displayName: DisplayName,
  username: Username.optional(),
  roles: distinct(RoleName, 32).default([]),
});
export type CreateSubjectRequest = z.infer<typeof CreateSubjectRequest>;

/** `PATCH /api/v1/subjects/{id}`: `roles` replaces the role set; `enabled: false` disables the subject. */
export const UpdateSubjectRequest = z
  .strictObject({
    displayName: DisplayName.optional(),
    username: Username.optional(),
    enabled: z.boolean().optional(),
    roles: distinct(RoleName, 32).optional(),
  })
  .refine((o) => Object.keys(o).length > 0, { message: 'nothing to change' });
export type UpdateSubjectRequest = z.infer<typeof UpdateSubjectRequest>;

export const SubjectView = z.object({
  id: z.uuid(),
  kind: SubjectKind,
  tid: z.string(),
  oid: z.string(),
  displayName: z.string(),
  username: z.string().nullable(),
  enabled: z.boolean(),
  roles: z.array(z.string()),
  natures: z.array(NatureName),
  keyPermissions: z.record(z.string(), z.array(KeyGrant)),
  account: z
    .enum(['member', 'guest', 'unknown'])
    .describe('The account kind its last sign-in proved (the token\'s `acct`): `guest` holds no administrator or approver nature and gets no approval or session notice; `unknown` until a token with `acct` was seen (ADR 0040)'),
  accountProvenAt: z.string().nullable().describe('When the token that proved `account` was issued (null while unknown)'),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type SubjectView = z.infer<typeof SubjectView>;
export const SubjectList = z.object({ items: z.array(SubjectView) });
export type SubjectList = z.infer<typeof SubjectList>;

export const RoleKeyGrant = z.strictObject({ keyid: KeyId, permissions: distinct(KeyGrant, 4, 1) });

const uniqueKeys = (keys: { keyid: string }[] | undefined) => !keys || new Set(keys.map((k) => k.keyid)).size === keys.length;

/** `POST /api/v1/roles`. */
export const CreateRoleRequest = z
  .strictObject({
    name: RoleName,
    description: z.string().trim().max(500).default(''),
    natures: distinct(NatureName, 6),
    keys: z.array(RoleKeyGrant).max(256).default([]),
  })
  .refine((o) => uniqueKeys(o.keys), { message: 'a key appears twice', path: ['keys'] });
export type CreateRoleRequest = z.infer<typeof CreateRoleRequest>;

/** `PATCH /api/v1/roles/{name}`: `keys` replaces every per-key grant of the role. */
export const UpdateRoleRequest = z
  .strictObject({
    description: z.string().trim().max(500).optional(),
    natures: distinct(NatureName, 6).optional(),
    keys: z.array(RoleKeyGrant).max(256).optional(),
  })
  .refine((o) => Object.keys(o).length > 0, { message: 'nothing to change' })
  .refine((o) => uniqueKeys(o.keys), { message: 'a key appears twice', path: ['keys'] });
export type UpdateRoleRequest = z.infer<typeof UpdateRoleRequest>;

export const RoleView = z.object({
  name: z.string(),
  description: z.string(),
  natures: z.array(NatureName),
  keys: z.array(z.object({ keyid: z.string(), permissions: z.array(KeyGrant) })),
});
export type RoleView = z.infer<typeof RoleView>;
export const RoleList = z.object({ items: z.array(RoleView) });
export type RoleList = z.infer<typeof RoleList>;

export const UnknownPrincipalView = z.object({
  tid: z.string(),
  oid: z.string(),
  kind: SubjectKind,
  displayName: z.string().nullable(),
  username: z.string().nullable(),
  azp: z.string().nullable(),
  firstSeenAt: z.string(),
  lastSeenAt: z.string(),
  attempts: z.number().int(),
});
export type UnknownPrincipalView = z.infer<typeof UnknownPrincipalView>;
export const UnknownPrincipalList = z.object({ items: z.array(UnknownPrincipalView) });
export type UnknownPrincipalList = z.infer<typeof UnknownPrincipalList>;
