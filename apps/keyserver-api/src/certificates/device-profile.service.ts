import { Inject, Injectable } from '@nestjs/common';
import { DEFAULT_DEVICE_PROFILE, DeviceProfile, type DeviceProfileView } from '@keyserver/api-contract';
import { AuditRepository, DataAccessError, DeviceProfileRepository, KeyRepository, type AuditInput, type Key } from '@keyserver/data-access';
import { reservedNames } from '@keyserver/pki';
import { actorAudit, type Actor } from '../common/actor';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { DEPS, type ApiDeps } from '../app/tokens';
import { errorCodeOf, outcomeOf, validateBody } from '../admin-sessions/admin-request';
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
  private readonly keys: KeyRepository;
  private readonly profiles: DeviceProfileRepository;
  private readonly audit: AuditRepository;

  constructor(
    @Inject(DEPS) deps: ApiDeps,
    private readonly gate: AdminSessionGate,
  ) {
    this.keys = new KeyRepository(deps.db);
    this.profiles = new DeviceProfileRepository(deps.db);
    this.audit = new AuditRepository(deps.db);
  }

  async get(actor: Actor, keyid: string): Promise<DeviceProfileView> {
    const key = keyid.length <= 128 ? await this.keys.findByKeyid(keyid) : null;
    if (!key || !maySee(actor, key)) throw new ApiError(ApiErrorCode.KeyNotFound, `no key ${keyid.slice(0, 128)}`);
    if (key.type !== 'CA') throw new CertificateError(CertificateErrorCode.DeviceProfileNotApplicable, `${key.keyid} is a ${key.type} key; only CA keys have a device profile`);
    return { keyid: key.keyid, ...storedDeviceProfile(key) };
  }

  async set(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<DeviceProfileView> {
    const audit: AuditInput = { ...actorAudit(actor), action: 'key.device_profile', outcome: 'SUCCESS', requestId, keyid: keyid.slice(0, 128), adminSessionId: auditableSessionId(sessionId) };
    let committed = false;
    try {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(DeviceProfile, body);
      if (keyid.length > 128) throw new ApiError(ApiErrorCode.KeyNotFound, `no key ${keyid.slice(0, 128)}`);
      const key = await this.profiles.set(keyid, dto, { ...audit, adminSessionId: session.id }).catch((err: unknown) => {
        if (err instanceof DataAccessError && err.code === 'not_found') throw new ApiError(ApiErrorCode.KeyNotFound, `no key ${keyid}`);
        if (err instanceof DataAccessError && err.code === 'invalid_state') throw new CertificateError(CertificateErrorCode.DeviceProfileNotApplicable, err.message);
        throw err;
      });
      committed = true;
      return { keyid: key.keyid, ...storedDeviceProfile(key) };
    } catch (err) {
      if (!committed) await this.audit.append({ ...audit, outcome: outcomeOf(err), errorCode: errorCodeOf(err) });
      throw err;
    }
  }
}

// Administrators and auditors see every key; others only keys they hold a permission on (as GET /keys/{keyid}).
function maySee(actor: Actor, key: Key): boolean {
  return visibility.key(actor, key.keyid);
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
