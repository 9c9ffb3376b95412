import { Injectable } from '@nestjs/common';
import type { MeView } from '@keyserver/api-contract';
import type { Actor } from '../common/actor';

/** The caller as the guard sees it, for the SPA (through the keyclient) and the CLI. */
@Injectable()
export class MeService {
  me(actor: Actor): MeView {
    return {
      subjectId: actor.subjectId,
      kind: actor.kind,
      displayName: actor.displayName,
      tid: actor.tid,
      oid: actor.oid,
      client: actor.client,
      channel: actor.channel,
      natures: [...actor.natures].sort(),
      keyPermissions: Object.fromEntries([...actor.keyGrants].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, [...v].sort()])),
      permissions: [...actor.permissions].sort(),
    };
  }
}
