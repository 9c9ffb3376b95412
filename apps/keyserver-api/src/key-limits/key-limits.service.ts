import { Injectable } from '@nestjs/common';
import type { z } from 'zod';
import { SetKeyLimitsRequest, type KeyDetail } from '@keyserver/api-contract';
import { KeyLimitsRepository, KeyRepository } from '@keyserver/data-access';
import type { Actor } from '../common/actor';
import { Audited, auditEvent } from '../common/audited';

import { validateBody } from '../admin-sessions/admin-request';
import { AdminSessionGate, auditableSessionId } from '../admin-sessions/admin-session-gate';
import { KeysService } from '../keys/keys.service';
import { KeyAdminError, KeyAdminErrorCode } from '../key-admin/key-admin-error';

/** What a stored keyid can look like; anything else (NUL, bidi, zero-width, huge) is an unknown key, never a query. */
const KEYID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Per-key operation limits, set like every other key setting: gate (ACTIVE four-eyes session) -> validate ->
 * the repository locks the key, reads the limits in force and writes the new ones with a `key.limits` event
 * (before/after) in one transaction; refusals are audited too.
 */
@Injectable()
export class KeyLimitsService {

  constructor(
    private readonly keys: KeyRepository,
    private readonly limits: KeyLimitsRepository,
    private readonly gate: AdminSessionGate,
    private readonly audited: Audited,
    private readonly keyViews: KeysService,
  ) {}

  async set(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<z.infer<typeof KeyDetail>> {
    const wellFormed = KEYID.test(keyid);
    const event = auditEvent('key.limits', actor, requestId, {
      keyid: wellFormed ? keyid : null,
      adminSessionId: auditableSessionId(sessionId),
      ...(wellFormed ? {} : { details: { keyidMalformed: true, keyidLength: keyid.length } }),
    });
    return this.audited.run(event, async (a) => {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(SetKeyLimitsRequest, body);
      if (!wellFormed || !(await this.keys.findByKeyid(keyid))) throw new KeyAdminError(KeyAdminErrorCode.KeyNotFound, wellFormed ? `no key ${keyid}` : 'no such key');
      await this.limits.set(keyid, dto, { ...a.event, adminSessionId: session.id }, undefined, session);
      a.committed();
      return await this.keyViews.detail(actor, keyid);
    });
  }
}
