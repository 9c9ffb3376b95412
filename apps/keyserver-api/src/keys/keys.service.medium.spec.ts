// Medium tier: the service with its real repositories on a real PostgreSQL (src/testing/medium.ts).
import { Permission, type KeyGrant, type Nature } from '@keyserver/api-contract';
import { KeyLifecycleRepository, KeyLimitsRepository, KeyRepository, type Db } from '@keyserver/data-access';
import { codeOf, mediumActor, mediumDatabase, seedKey } from '../testing/medium';
import { KeysService } from './keys.service';

describe(`${KeysService.name} (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_keys');
  let db: Db;
  let service: KeysService;
  let fw1: string;
  let fw2: string;
  let ca: string;

  beforeAll(async () => {
    db = pg.db;
    service = new KeysService(new KeyRepository(db), new KeyLimitsRepository(db), new KeyLifecycleRepository(db));
    fw1 = await seedKey(db);
    fw2 = await seedKey(db);
    ca = await seedKey(db, { type: 'CA', prefix: 'ca' });
  });

  // The visibility policy (docs/auth.md §5): administrators and auditors see every key, others the keys they hold
  // any grant on; a nature alone shows nothing.
  it.each([
    ['ok an administrator sees every key', ['ADMINISTRATOR'], [], () => [], () => [fw1, fw2, ca]],
    ['ok an auditor sees every key', ['AUDITOR'], [], () => [], () => [fw1, fw2, ca]],
    ['ok a signer sees the key it holds SIGN on', ['SIGNER'], ['SIGN'], () => [fw1], () => [fw1]],
    ['ok a provisioner sees the CA it holds ISSUE on', ['PROVISIONER'], ['ISSUE'], () => [ca], () => [ca]],
    ['ok an approver sees the keys it holds APPROVE on', ['APPROVER'], ['APPROVE'], () => [fw1, fw2], () => [fw1, fw2]],
    ['fail an orderer without grants sees nothing', ['ORDERER'], [], () => [], () => []],
  ] as [string, Nature[], KeyGrant[], () => string[], () => string[]][])('%s', async (_n, natures, grants, on, expected) => {
    const actor = await mediumActor(db, { natures, grants, keyids: on() }, Permission.KeysRead);
    const want = [...expected()].sort();
    expect((await service.list(actor, {})).items.map((k) => k.keyid).sort()).toEqual(want);
    expect((await service.listUsable(actor)).map((k) => k.keyid).sort()).toEqual(want);
    for (const keyid of [fw1, fw2, ca].filter((k) => !want.includes(k))) {
      expect(await codeOf(service.detail(actor, keyid))).toBe('key_not_found');
    }
  });

  it('fail the details of an unknown key: the same 404 as an invisible one', async () => {
    const actor = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.KeysRead);
    expect(await codeOf(service.detail(actor, 'no-such-key'))).toBe('key_not_found');
  });
});
