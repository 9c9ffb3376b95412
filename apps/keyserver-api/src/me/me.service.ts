import { Injectable } from '@nestjs/common';
import type { MeView } from '@keyserver/api-contract';
import type { Actor } from '../common/actor';

/** The caller as the guard sees it, for the SPA (through the keyclient) and the CLI. */
@Injectable()
export class MeService {
  // The sorted lists, once per subject snapshot: the guard hands every request of one snapshot the same sets.
  private readonly lists = new WeakMap<Actor['keyGrants'], { natures: Actor['natures']; permissions: Actor['permissions']; view: Pick<MeView, 'natures' | 'keyPermissions' | 'permissions'> }>();

  me(actor: Actor): MeView {
    return {
      subjectId: actor.subjectId,
      kind: actor.kind,
      displayName: actor.displayName,
      tid: actor.tid,
      oid: actor.oid,
      client: actor.client,
      channel: actor.channel,
      account: actor.principal.account ?? null,
      ...this.sorted(actor),
    };
  }

  private sorted(actor: Actor): Pick<MeView, 'natures' | 'keyPermissions' | 'permissions'> {
    const hit = this.lists.get(actor.keyGrants);
    if (hit && hit.natures === actor.natures && hit.permissions === actor.permissions) return hit.view;
    // Code-point order: the same on every host, whatever its locale.
    const view = {
      natures: [...actor.natures].sort(),
      keyPermissions: Object.fromEntries([...actor.keyGrants].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => [k, [...v].sort()])),
      permissions: [...actor.permissions].sort(),
    };
    this.lists.set(actor.keyGrants, { natures: actor.natures, permissions: actor.permissions, view });
    return view;
  }
}
