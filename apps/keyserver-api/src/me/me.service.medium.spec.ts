// Medium tier: what the caller is told about himself, for a subject registered in a real PostgreSQL and resolved
// the way the guard resolves him (src/testing/medium.ts).
import { Permission, type KeyGrant } from '@keyserver/api-contract';
import { mediumActor, mediumDatabase, MEDIUM_TENANT, seedKey } from '../testing/medium';
import { MeService } from './me.service';

describe(`${MeService.name} (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_me');
  const service = new MeService();

  it('describes a registered user with the natures and per-key grants of his roles, everything sorted', async () => {
    const keyids = [await seedKey(pg.db, { prefix: 'fw-b' }), await seedKey(pg.db, { prefix: 'fw-a' })];
    const grants: KeyGrant[] = ['SIGN', 'ORDER'];
    const actor = await mediumActor(pg.db, { natures: ['SIGNER', 'ORDERER'], grants, keyids }, Permission.SelfRead);
    const me = service.me(actor);
    expect(me).toMatchObject({ subjectId: actor.subjectId, kind: 'USER', tid: MEDIUM_TENANT, oid: actor.oid, channel: 'provisioning', natures: ['ORDERER', 'SIGNER'] });
    expect(Object.entries(me.keyPermissions)).toEqual([...keyids].sort().map((k) => [k, ['ORDER', 'SIGN']]));
    expect(me.permissions).toEqual([...me.permissions].sort());
    expect(me.permissions).toEqual(expect.arrayContaining([Permission.SelfRead, Permission.SignOrdersCreate, Permission.OperationsCreate]));
  });

  // ADR 0040: what a B2B guest effectively holds, and why (the token's account).
  it.each([
    ['fail guest (acct 1): no administrator or approver nature, no APPROVE grant', 'guest', ['ORDERER'], ['ORDER'], 'guest'],
    ['fail no acct claim: the same, account null', 'none', ['ORDERER'], ['ORDER'], null],
    ['ok member (acct 0): everything the roles give', 'member', ['ADMINISTRATOR', 'APPROVER', 'ORDERER'], ['APPROVE', 'ORDER'], 'member'],
  ] as const)('%s', async (_n, account, natures, grants, shown) => {
    const keyid = await seedKey(pg.db, { prefix: 'fw-g' });
    const actor = await mediumActor(pg.db, { natures: ['ADMINISTRATOR', 'APPROVER', 'ORDERER'], grants: ['APPROVE', 'ORDER'], keyids: [keyid] }, Permission.SelfRead, 'bff', account);
    const me = service.me(actor);
    expect(me).toMatchObject({ account: shown, natures, keyPermissions: { [keyid]: grants } });
    const humanOnly = [Permission.OperationsApprove, Permission.AdminSessionsManage, Permission.SubjectsAdmin, Permission.KeysAdmin, Permission.RolesAdmin];
    expect(me.permissions.some((p) => (humanOnly as string[]).includes(p))).toBe(shown === 'member');
  });

  it.each([
    ['ok the channel the token came through (bff)', 'bff'],
    ['ok the channel the token came through (provisioning)', 'provisioning'],
  ] as const)('%s', async (_n, channel) => {
    const actor = await mediumActor(pg.db, { natures: ['AUDITOR'] }, Permission.SelfRead, channel);
    expect(service.me(actor)).toMatchObject({ channel, natures: ['AUDITOR'], keyPermissions: {} });
  });
});
