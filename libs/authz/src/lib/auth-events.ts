import type { Principal } from '@keyserver/entra-token';

/** A refused request, with the detailed code (never shown to the caller for 401s). */
export interface AuthFailureEvent {
  status: number;
  code: string;
  method: string;
  path: string;
  ip?: string;
  principal?: Pick<Principal, 'tid' | 'oid' | 'azp' | 'kind' | 'channel' | 'tokenId' | 'account'>;
  subjectId?: string;
}

/** Optional audit hook (the API writes these to its audit log). Must not throw. */
export interface AuthEventSink {
  authFailed(event: AuthFailureEvent): void | Promise<void>;
}
