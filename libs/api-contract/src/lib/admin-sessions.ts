import { z } from 'zod';

export const AdminSessionState = z.enum(['PENDING', 'ACTIVE', 'CLOSED', 'EXPIRED']);

/** `POST /api/v1/admin-sessions`: what the session is for (shown to the administrators who authorize it). */
export const CreateAdminSessionRequest = z.strictObject({
  description: z.string().trim().min(8).max(500),
  powers: z
    .boolean()
    .default(false)
    .describe('The session may give or take the administrator and approver natures (register, enable or disable an administrator or approver, change the roles that carry them); shown to the administrators who authorize it (ADR 0044)'),
});
export type CreateAdminSessionRequest = z.infer<typeof CreateAdminSessionRequest>;

export const SubjectRef = z.object({ subjectId: z.string(), displayName: z.string() });

export const AdminSessionView = z.object({
  id: z.uuid(),
  description: z.string(),
  /** Opened to give or take the administrator and approver natures (ADR 0044). */
  powers: z.boolean(),
  state: AdminSessionState,
  creator: SubjectRef,
  /** Distinct administrators needed (the creator counts as one). */
  authorizationsRequired: z.number().int(),
  /** The administrators who authorized so far, the creator first. */
  authorizedBy: z.array(SubjectRef),
  expiresAt: z.string(),
  createdAt: z.string(),
  activatedAt: z.string().nullable(),
  closedAt: z.string().nullable(),
});
export type AdminSessionView = z.infer<typeof AdminSessionView>;

export const AdminSessionList = z.object({ items: z.array(AdminSessionView) });
export type AdminSessionList = z.infer<typeof AdminSessionList>;

/** `GET /api/v1/admin-sessions` query: `ended=recent` adds the sessions that ended (closed or expired) in the last 7 days, at most 20. */
export const AdminSessionListQuery = z.strictObject({
  ended: z.literal('recent').optional().describe('Also list the sessions closed or expired in the last 7 days (at most 20, newest first)'),
});
export type AdminSessionListQuery = z.infer<typeof AdminSessionListQuery>;
