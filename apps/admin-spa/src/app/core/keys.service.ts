import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { map, type Observable } from 'rxjs';
import type { CreateKeyBody, KeyDetailView, KeyListView, KeyRevocationReasonName, KeyRevocationView, KeyStateName, KeySummaryView, KeyTypeName, LegacyKeyView, UpdateKeyBody } from './api-types';
import { queryParams } from './query';

export interface KeyFilter {
  state?: KeyStateName;
  type?: KeyTypeName;
}

/**
 * Keys: the list with every fact and state (`GET /api/v1/keys`), the legacy list of usable keys (`GET /api/keys`),
 * one key with its chain (`GET /api/v1/keys/{keyid}`) and their administration. Changes need an ACTIVE admin
 * session (header added by adminSessionInterceptor).
 */
@Injectable({ providedIn: 'root' })
export class KeysService {
  private readonly http = inject(HttpClient);

  /** The keys I may see, ROOT first, then CAs, then FW keys; every state unless `filter.state` is given. */
  summaries(filter: KeyFilter = {}): Observable<KeySummaryView[]> {
    const params = queryParams({ state: filter.state, type: filter.type });
    return this.http.get<KeyListView>('/api/v1/keys', { params }).pipe(map((r) => r.items));
  }

  /** The ACTIVE keys I may use, in the legacy shape (the new operation's key picker reads only their ids). */
  list(): Observable<LegacyKeyView[]> {
    return this.http.get<LegacyKeyView[]>('/api/keys');
  }

  get(keyid: string): Observable<KeyDetailView> {
    return this.http.get<KeyDetailView>(`/api/v1/keys/${encodeURIComponent(keyid)}`);
  }

  /** `POST /api/v1/keys`: 201 with the new key, its certificate and chain. */
  create(body: CreateKeyBody): Observable<KeyDetailView> {
    return this.http.post<KeyDetailView>('/api/v1/keys', body);
  }

  /** `PATCH /api/v1/keys/{keyid}`: the number of approvals an operation on the key needs. */
  setRequiredApprovers(keyid: string, requiredApprovers: number): Observable<KeyDetailView> {
    const body: UpdateKeyBody = { requiredApprovers };
    return this.http.patch<KeyDetailView>(`/api/v1/keys/${encodeURIComponent(keyid)}`, body);
  }

  /** `POST /api/v1/keys/{keyid}/revocation`: the key and every key below it become REVOKED (409 for the ROOT or a revoked key). */
  revoke(keyid: string, reason: KeyRevocationReasonName): Observable<KeyRevocationView> {
    return this.http.post<KeyRevocationView>(`/api/v1/keys/${encodeURIComponent(keyid)}/revocation`, { reason });
  }
}
