import { z } from 'zod';
import { OperationState, OperationView, Uuid } from './contract';

/** `?limit=` as text in the query string, 1..500. */
export const PageLimit = z
  .string()
  .regex(/^[1-9][0-9]{0,2}$/, 'limit must be an integer 1..500')
  .transform(Number)
  .pipe(z.number().int().min(1).max(500));

/** `GET /api/v1/operations` query: filters and cursor pagination. */
export const OperationListQuery = z.strictObject({
  state: OperationState.optional(),
  key: z.string().min(1).max(128).optional().describe('Only operations using this keyid'),
  mine: z.enum(['true', 'false']).optional().describe('Only operations I ordered'),
  awaiting: z.literal('me').optional().describe('Only REQUESTED operations still waiting for my approval'),
  cursor: Uuid.optional().describe('nextCursor of the previous page'),
  limit: PageLimit.optional(),
});
export type OperationListQuery = z.infer<typeof OperationListQuery>;

export const OperationPage = z.object({
  items: z.array(OperationView),
  nextCursor: Uuid.nullable(),
});
export type OperationPage = z.infer<typeof OperationPage>;

/** `POST /api/v1/operations/{id}/rejection`. */
export const RejectOperationRequest = z.strictObject({
  reason: z.string().trim().min(3).max(1000),
});
export type RejectOperationRequest = z.infer<typeof RejectOperationRequest>;

/** Body of the approval and cancellation routes: none, or an empty object. */
export const EmptyRequest = z.strictObject({}).optional();
export type EmptyRequest = z.infer<typeof EmptyRequest>;
