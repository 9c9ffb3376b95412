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

function documented() {
  const base = new Set<Permission>();
  const natures = new Map<Nature, Set<Permission>>();
  const grants = new Map<KeyGrant, Permission>();
  const channels = new Map<Channel, { ignored: Set<Nature>; refused: Set<Permission>; code: string | undefined }>();
  for (const [first, second, third] of rows()) {
    if (first === '(every enabled subject)') ticked(second).filter(isPermission).forEach((p) => base.add(p));
    else if (isNature(first)) natures.set(first, new Set(ticked(second).filter(isPermission)));
    else if (isKeyGrant(first)) grants.set(first, ticked(second).filter(isPermission)[0]);
    else if ((CHANNELS as readonly string[]).includes(ticked(first)[0] ?? '')) {
      channels.set(ticked(first)[0] as Channel, {
        ignored: new Set(second.split(/[\s,]+/).filter(isNature)),
        refused: new Set(ticked(third).filter(isPermission)),
        code: ticked(third).find((t) => !isPermission(t)),
      });
    }
  }
  return { base, natures, grants, channels };
}

const principal = (channel: Channel): Principal => ({
  kind: channel === 'app' ? 'app' : 'user',
  channel,
  tid: 't',
  oid: 'o',
  sub: 's',
  azp: 'a',
  scopes: channel === 'app' ? [] : ['keyserver'],
  roles: [],
  expiresAt: 0,
});
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

  it('documents every nature, every key grant and every channel', () => {
    expect([...doc.natures.keys()].sort()).toEqual([...NATURES].sort());
    expect([...doc.grants.keys()].sort()).toEqual([...KEY_GRANTS].sort());
    expect([...doc.channels.keys()].sort()).toEqual([...CHANNELS].sort());
  });

  const natureCases = NATURES.flatMap((n) => PERMISSIONS.flatMap((p) => CHANNELS.map((c) => [n, p, c] as const)));
  it.each(natureCases)('nature %s asking for %s on channel %s answers as documented', (nature, permission, channel) => {
    const rules = doc.channels.get(channel);
    const opened = doc.base.has(permission) || (!rules?.ignored.has(nature) && doc.natures.get(nature)?.has(permission));
    const expected = rules?.refused.has(permission) ? rules.code : opened ? 'ok' : 'permission_denied';
    expect(outcome(() => authorize(principal(channel), subject(channel, { natures: [nature] }), permission))).toBe(expected);
  });

  const grantCases = KEY_GRANTS.flatMap((g) => CHANNELS.map((c) => [g, c] as const));
  it.each(grantCases)('key grant %s on channel %s opens its route and acts on its key only', (grant, channel) => {
    const permission = doc.grants.get(grant) as Permission;
    const rules = doc.channels.get(channel);
    const s = subject(channel, { keyGrants: { 'key-a': [grant] } });
    if (rules?.refused.has(permission)) {
      expect(outcome(() => authorize(principal(channel), s, permission))).toBe(rules.code);
      return;
    }
    const actor = authorize(principal(channel), s, permission);
    expect(outcome(() => requireAccess(actor, grant, 'key-a'))).toBe('ok');
    expect(outcome(() => requireAccess(actor, grant, 'key-b'))).toBe('key_permission_denied');
    for (const other of KEY_GRANTS.filter((g) => g !== grant)) expect(outcome(() => requireAccess(actor, other, 'key-a'))).toBe('key_permission_denied');
  });

  it.each(NATURES.flatMap((n) => KEY_GRANTS.map((g) => [n, g] as const)))('nature %s alone gives no %s grant on any key', (nature, grant) => {
    const actor = authorize(principal('provisioning'), subject('provisioning', { natures: [nature] }), 'self:read' as Permission);
    expect(outcome(() => requireAccess(actor, grant, 'any-key'))).toBe('key_permission_denied');
  });
});
