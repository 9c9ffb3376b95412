import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KEY_GRANTS, NATURES, PERMISSIONS, isKeyGrant, isNature, isPermission, type KeyGrant, type Nature, type Permission } from '@keyserver/api-contract';
import type { Principal } from '@keyserver/entra-token';
import { requireAccess } from './access';
import { AuthzError } from './authz-error';
import { authorize, type ResolvedSubject } from './subject';

// docs/auth.md §5 is the specification: its three tables are read here and every combination is checked against
// the code, so the document and the guard cannot disagree.
const DOC = readFileSync(join(__dirname, '../../../../docs/auth.md'), 'utf8');
const SECTION = DOC.slice(DOC.indexOf('## 5.'), DOC.indexOf('## 6.'));
const rows = (): string[][] =>
  SECTION.split('\n')
    .filter((l) => l.startsWith('|') && !l.startsWith('|---'))
    .map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
const ticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
const CHANNELS = ['app', 'bff', 'provisioning'] as const;
type Channel = (typeof CHANNELS)[number];
// A user token's account (the `acct` claim, ADR 0040); `none` is a user token without it. App tokens have none.
const ACCOUNTS = ['member', 'guest', 'none'] as const;
type Account = (typeof ACCOUNTS)[number];
interface Restriction {
  ignored: Set<Nature>;
  refused: Set<Permission>;
  code: string | undefined;
}
const restriction = (second: string, third: string): Restriction => ({
  ignored: new Set(second.split(/[\s,]+/).filter(isNature)),
  refused: new Set(ticked(third).filter(isPermission)),
  code: ticked(third).find((t) => !isPermission(t)),
});

function documented() {
  const base = new Set<Permission>();
  const natures = new Map<Nature, Set<Permission>>();
  const grants = new Map<KeyGrant, Permission>();
  const channels = new Map<Channel, Restriction>();
  const accounts = new Map<Account, Restriction>();
  for (const [first, second, third] of rows()) {
    if (first === '(every enabled subject)') ticked(second).filter(isPermission).forEach((p) => base.add(p));
    else if (isNature(first)) natures.set(first, new Set(ticked(second).filter(isPermission)));
    else if (isKeyGrant(first)) grants.set(first, ticked(second).filter(isPermission)[0]);
    else if ((CHANNELS as readonly string[]).includes(ticked(first)[0] ?? '')) channels.set(ticked(first)[0] as Channel, restriction(second, third));
    else if ((ACCOUNTS as readonly string[]).includes(ticked(first)[0] ?? '')) accounts.set(ticked(first)[0] as Account, restriction(second, third));
  }
  return { base, natures, grants, channels, accounts };
}

const principal = (channel: Channel, account: Account = 'member'): Principal => ({
  kind: channel === 'app' ? 'app' : 'user',
  channel,
  tid: 't',
  oid: 'o',
  sub: 's',
  azp: 'a',
  scopes: channel === 'app' ? [] : ['keyserver'],
  roles: [],
  expiresAt: 0,
  ...(channel !== 'app' && account !== 'none' ? { account } : {}),
});
/** Every principal shape: app tokens, and user tokens of each channel with each account. */
const PRINCIPALS: readonly (readonly [Channel, Account])[] = CHANNELS.flatMap((c) =>
  c === 'app' ? [[c, 'none'] as const] : ACCOUNTS.map((a): readonly [Channel, Account] => [c, a]),
);
const subject = (channel: Channel, o: Partial<ResolvedSubject>): ResolvedSubject => ({
  subjectId: 'sub-1',
  kind: channel === 'app' ? 'CLIENT' : 'USER',
  enabled: true,
  natures: [],
  keyGrants: {},
  ...o,
});
function outcome(run: () => unknown): string {
  try {
    run();
    return 'ok';
  } catch (e) {
    if (e instanceof AuthzError) return e.code;
    throw e;
  }
}

describe('docs/auth.md §5 access matrix', () => {
  const doc = documented();

  it('documents every nature, every key grant, every channel and every account', () => {
    expect([...doc.natures.keys()].sort()).toEqual([...NATURES].sort());
    expect([...doc.grants.keys()].sort()).toEqual([...KEY_GRANTS].sort());
    expect([...doc.channels.keys()].sort()).toEqual([...CHANNELS].sort());
    expect([...doc.accounts.keys()].sort()).toEqual([...ACCOUNTS].sort());
  });

  /** The documented refusal of `permission` for this principal shape, whatever the subject holds. */
  const refusal = (channel: Channel, account: Account, permission: Permission): string | undefined => {
    const c = doc.channels.get(channel);
    const a = channel === 'app' ? undefined : doc.accounts.get(account);
    return c?.refused.has(permission) ? c.code : a?.refused.has(permission) ? a.code : undefined;
  };

  const natureCases = NATURES.flatMap((n) => PERMISSIONS.flatMap((p) => PRINCIPALS.map(([c, a]) => [n, p, c, a] as const)));
  it.each(natureCases)('nature %s asking for %s on channel %s (account %s) answers as documented', (nature, permission, channel, account) => {
    const byChannel = doc.channels.get(channel);
    const byAccount = channel === 'app' ? undefined : doc.accounts.get(account);
    const gives = doc.natures.get(nature)?.has(permission) ?? false;
    const opened = doc.base.has(permission) || (gives && !byChannel?.ignored.has(nature) && !byAccount?.ignored.has(nature));
    // A permission only a nature the account ignores would give is refused with the account's code.
    const expected = refusal(channel, account, permission) ?? (opened ? 'ok' : gives && byAccount?.ignored.has(nature) ? byAccount.code : 'permission_denied');
    expect(outcome(() => authorize(principal(channel, account), subject(channel, { natures: [nature] }), permission))).toBe(expected);
  });

  const grantCases = KEY_GRANTS.flatMap((g) => PRINCIPALS.map(([c, a]) => [g, c, a] as const));
  it.each(grantCases)('key grant %s on channel %s (account %s) opens its route and acts on its key only', (grant, channel, account) => {
    const permission = doc.grants.get(grant) as Permission;
    const s = subject(channel, { keyGrants: { 'key-a': [grant] } });
    const refused = refusal(channel, account, permission);
    if (refused) {
      expect(outcome(() => authorize(principal(channel, account), s, permission))).toBe(refused);
      return;
    }
    const actor = authorize(principal(channel, account), s, permission);
    expect(outcome(() => requireAccess(actor, grant, 'key-a'))).toBe('ok');
    expect(outcome(() => requireAccess(actor, grant, 'key-b'))).toBe('key_permission_denied');
    for (const other of KEY_GRANTS.filter((g) => g !== grant)) expect(outcome(() => requireAccess(actor, other, 'key-a'))).toBe('key_permission_denied');
  });

  it.each(NATURES.flatMap((n) => KEY_GRANTS.map((g) => [n, g] as const)))('nature %s alone gives no %s grant on any key', (nature, grant) => {
    const actor = authorize(principal('provisioning'), subject('provisioning', { natures: [nature] }), 'self:read' as Permission);
    expect(outcome(() => requireAccess(actor, grant, 'any-key'))).toBe('key_permission_denied');
  });
});
