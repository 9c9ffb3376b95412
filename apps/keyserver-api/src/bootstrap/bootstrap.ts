import { hostname, userInfo } from 'node:os';
import { isUuid } from '@keyserver/api-contract';
import { AuditRepository, createDb, DataAccessError, InstallationRepository, type AuditInput, type BootstrapAdmin } from '@keyserver/data-access';
import { BootstrapError, BootstrapErrorCode } from './bootstrap-error';

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const NAME = /^[^\u0000-\u001f\u007f-\u009f]{1,128}$/;

export const BOOTSTRAP_USAGE =
  'usage: keyserver-api bootstrap --admin TENANT_ID:OBJECT_ID[:DISPLAY NAME] --admin TENANT_ID:OBJECT_ID[:DISPLAY NAME] [...] [--by NAME]\n' +
  '       (or BOOTSTRAP_ADMINS="TID:OID:Name,TID:OID:Name"); at least two distinct administrators of TENANT_ID\n';

/**
 * Parses `TID:OID[:NAME]` values into distinct administrators of the configured tenant (lower-case GUIDs, duplicates
 * dropped) and refuses fewer than `minimum` (the four-eyes rule needs that many to open any admin session).
 */
export function parseBootstrapAdmins(values: string[], tenantId: string, minimum: number): BootstrapAdmin[] {
  const seen = new Map<string, BootstrapAdmin>();
  for (const raw of values) {
    const [tidRaw = '', oidRaw = '', ...nameParts] = raw.split(':');
    const tid = tidRaw.trim().toLowerCase();
    const oid = oidRaw.trim().toLowerCase();
    const displayName = nameParts.join(':').trim() || `Administrator ${oid.slice(0, 8)}`;
    if (!isUuid(tid) || !isUuid(oid)) throw new BootstrapError(BootstrapErrorCode.InvalidAdministrator, `"${raw.slice(0, 100)}" is not TENANT_ID:OBJECT_ID[:NAME] with two GUIDs`);
    if (tid !== tenantId.toLowerCase()) throw new BootstrapError(BootstrapErrorCode.InvalidAdministrator, `administrator ${oid} is in tenant ${tid}, not in TENANT_ID ${tenantId}: such tokens are refused`);
    if (!NAME.test(displayName)) throw new BootstrapError(BootstrapErrorCode.InvalidAdministrator, `the display name of ${oid} must be 1-128 characters without control characters`);
    if (!seen.has(oid)) seen.set(oid, { tid, oid, displayName });
  }
  const admins = [...seen.values()];
  if (admins.length < minimum) {
    throw new BootstrapError(BootstrapErrorCode.TooFewAdministrators, `bootstrap needs at least ${minimum} distinct administrators (four-eyes: ADMIN_SESSION_APPROVALS=${minimum}), got ${admins.length}`);
  }
  return admins;
}

function opts(args: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) if (args[i] === name && args[i + 1] !== undefined) out.push(args[++i]);
  return out;
}

function operator(args: string[]): string {
  const by = opts(args, '--by')[0];
  if (by) return by.slice(0, 128);
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `operator@${hostname()}`;
  }
}

/**
 * `keyserver-api bootstrap`: registers the first administrators of an empty production installation and nothing
 * else. Exit 0 when done, 1 when refused by the installation's state (bootstrapped, not empty), 2 on bad input.
 * Every refusal that reaches the database is audited (`installation.bootstrap`, DENIED, its code).
 */
export async function bootstrapCommand(
  config: { databaseUrl: string; tenantId: string; adminSessionApprovals: number },
  args: string[],
  env: Record<string, string | undefined>,
  /** Whether the HSM token already holds keys (an installation is bootstrapped on an empty token). */
  tokenHoldsKeys: () => Promise<boolean>,
): Promise<number> {
  const values = [...opts(args, '--admin'), ...(env['BOOTSTRAP_ADMINS'] ?? '').split(',').map((s) => s.trim()).filter(Boolean)];
  const by = operator(args);
  const audit: AuditInput = { action: 'installation.bootstrap', outcome: 'SUCCESS', actorName: by, details: { tool: 'keyserver-api bootstrap' } };
  const db = createDb(config.databaseUrl, { poolSize: 1 });
  const refuse = async (err: BootstrapError): Promise<number> => {
    await new AuditRepository(db).append({ ...audit, outcome: 'DENIED', errorCode: err.code, details: { ...audit.details, reason: err.message } });
    process.stderr.write(`bootstrap: refused (${err.code}): ${err.message}\n`);
    return err.status === 409 ? 1 : 2;
  };
  try {
    let admins: BootstrapAdmin[];
    try {
      admins = parseBootstrapAdmins(values, config.tenantId, Math.max(2, config.adminSessionApprovals));
    } catch (err) {
      if (values.length === 0) process.stderr.write(BOOTSTRAP_USAGE);
      if (err instanceof BootstrapError) return await refuse(err);
      throw err;
    }
    const installation = new InstallationRepository(db);
    if (!(await installation.get()) && (await tokenHoldsKeys())) {
      return await refuse(new BootstrapError(BootstrapErrorCode.InstallationNotEmpty, 'the HSM token already holds key objects: bootstrap needs an empty token (or restore the database that belongs to it)'));
    }
    try {
      const done = await installation.bootstrap(admins, audit);
      process.stdout.write(`bootstrap: done at ${done.bootstrappedAt.toISOString()}; administrators: ${admins.map((a) => `${a.displayName} (${a.tid}/${a.oid})`).join(', ')}\n`);
      return 0;
    } catch (err) {
      if (err instanceof DataAccessError && err.code === 'invalid_state') {
        const already = /already bootstrapped/.test(err.message);
        return await refuse(new BootstrapError(already ? BootstrapErrorCode.AlreadyBootstrapped : BootstrapErrorCode.InstallationNotEmpty, err.message));
      }
      if (err instanceof DataAccessError && err.code === 'conflict') return await refuse(new BootstrapError(BootstrapErrorCode.AlreadyBootstrapped, 'the installation was already bootstrapped'));
      throw err;
    }
  } finally {
    await db.close();
  }
}
