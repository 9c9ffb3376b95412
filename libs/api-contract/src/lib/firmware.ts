import { z } from 'zod';
import { Uuid } from './contract';

/** `POST /api/v1/firmware/signatures` query; the body is the image itself (application/octet-stream). */
export const FirmwareSignatureQuery = z.strictObject({
  operationid: Uuid,
  keyid: z.string().min(1).max(128),
  description: z.string().trim().min(8).max(1000),
});
export type FirmwareSignatureQuery = z.infer<typeof FirmwareSignatureQuery>;
