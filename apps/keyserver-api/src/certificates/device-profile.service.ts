import { Injectable } from '@nestjs/common';
import { DEFAULT_DEVICE_PROFILE, DeviceProfile, type DeviceProfileView } from '@keyserver/api-contract';
import { DataAccessError, DeviceProfileRepository, KeyRepository, type Key } from '@keyserver/data-access';
import { reservedNames } from '@keyserver/pki';
import type { Actor } from '../common/actor';
import { ApiError, ApiErrorCode } from '../common/api-error';

import { validateBody } from '../admin-sessions/admin-request';
import { Audited, auditEvent } from '../common/audited';
import { AdminSessionGate, auditableSessionId } from '../admin-sessions/admin-session-gate';
import { CertificateError, CertificateErrorCode } from './certificate-error';
import { visibility } from '@keyserver/authz';

/**
 * A CA key's stored device profile: the `profile` column parsed strictly over the defaults (a CA created before
 * profiles existed has `{}`). A value that does not parse was not written by the API: issuance is refused.
 */
export function storedDeviceProfile(key: Key): DeviceProfile {
  const stored = key.profile && typeof key.profile === 'object' && !Array.isArray(key.profile) ? key.profile : undefined;
  const parsed = stored ? DeviceProfile.partial().safeParse(stored) : undefined;
  if (!parsed?.success) throw new CertificateError(CertificateErrorCode.DeviceProfileInvalid, `the device profile of ${key.keyid} is not valid; set it again`);
  return { ...DEFAULT_DEVICE_PROFILE, ...parsed.data };
}

/**
 * GET/PUT /api/v1/keys/{keyid}/device-profile. Reading: whoever may see the key (administrators, auditors,
 * holders of a permission on it). Changing: an administrator inside an ACTIVE administrative session (four
 * eyes), gate -> validate -> lock the row, write and audit (before/after) in one transaction.
 */
@Injectable()
export class DeviceProfileService {

  constructor(
    private readonly keys: KeyRepository,
    private readonly profiles: DeviceProfileRepository,
    private readonly gate: AdminSessionGate,
    private readonly audited: Audited,
  ) {}

  async get(actor: Actor, keyid: string): Promise<DeviceProfileView> {
    const key = keyid.length <= 128 ? await this.keys.findByKeyid(keyid) : null;
    if (!key || !visibility.key(actor, key.keyid)) throw new ApiError(ApiErrorCode.KeyNotFound, `no key ${keyid.slice(0, 128)}`);
    if (key.type !== 'CA') throw new CertificateError(CertificateErrorCode.DeviceProfileNotApplicable, `${key.keyid} is a ${key.type} key; only CA keys have a device profile`);
    return { keyid: key.keyid, ...storedDeviceProfile(key) };
  }

  async set(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<DeviceProfileView> {
    return this.audited.run(auditEvent('key.device_profile', actor, requestId, { keyid: keyid.slice(0, 128), adminSessionId: auditableSessionId(sessionId) }), async (a) => {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(DeviceProfile, body);
      if (keyid.length > 128) throw new ApiError(ApiErrorCode.KeyNotFound, `no key ${keyid.slice(0, 128)}`);
      const key = await this.profiles.set(keyid, dto, { ...a.event, adminSessionId: session.id }, session).catch((err: unknown) => {
        if (err instanceof DataAccessError && err.code === 'not_found') throw new ApiError(ApiErrorCode.KeyNotFound, `no key ${keyid}`);
        if (err instanceof DataAccessError && err.code === 'invalid_state') throw new CertificateError(CertificateErrorCode.DeviceProfileNotApplicable, err.message);
        throw err;
      });
      a.committed();
      return { keyid: key.keyid, ...storedDeviceProfile(key) };
    });
  }
}

/**
 * The DNs no device certificate may carry: those of every key's certificate. The key list is asked on every
 * issuance (ids only); the certificates are parsed again only when it changed (key certificates never change).
 */
export class ReservedNames {
  private cached: { ids: string; names: ReadonlySet<string> } | undefined;

  constructor(private readonly profiles: DeviceProfileRepository) {}

  async current(): Promise<ReadonlySet<string>> {
    const ids = (await this.profiles.keyCertificateIds()).join('\n');
    if (this.cached?.ids !== ids) this.cached = { ids, names: reservedNames(await this.profiles.keyCertificates()) };
    return this.cached.names;
  }
}
