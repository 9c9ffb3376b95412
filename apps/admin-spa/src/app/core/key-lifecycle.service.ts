import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { Observable } from 'rxjs';
import type { z } from 'zod';
import type { ExternalChainRequest, KeyVersionList } from '@keyserver/api-contract';
import type { KeyDetailView } from './api-types';

export type KeyVersionListView = z.infer<typeof KeyVersionList>;
export type ExternalChainBody = z.infer<typeof ExternalChainRequest>;
export type KeyLifecycleAction = 'renewal' | 'rotation' | 'retirement' | 'destruction';

/**
 * A key's versions (`GET /api/v1/keys/{keyid}/versions`) and its lifecycle changes (renewal, rotation, retirement,
 * destruction; docs/adr/0020-bootstrap-and-key-lifecycle.md) and the renewed external chain of an imported ROOT (ADR
 * 0020 addendum "the renewed external chain"). Changes need an ACTIVE admin session (header added by
 * adminSessionInterceptor).
 */
@Injectable({ providedIn: 'root' })
export class KeyLifecycleService {
  private readonly http = inject(HttpClient);

  versions(keyid: string): Observable<KeyVersionListView> {
    return this.http.get<KeyVersionListView>(`/api/v1/keys/${encodeURIComponent(keyid)}/versions`);
  }

  /** Renewal and rotation take the new certificate's validity; retirement and destruction nothing. */
  change(keyid: string, action: KeyLifecycleAction, validityDays?: number): Observable<KeyDetailView> {
    const body = action === 'renewal' || action === 'rotation' ? { validityDays } : {};
    return this.http.post<KeyDetailView>(`/api/v1/keys/${encodeURIComponent(keyid)}/${action}`, body);
  }

  /** The renewed chain above an imported ROOT, and the certificate the external CA re-issued for it if any (two administrators in the session). */
  replaceExternalChain(keyid: string, body: ExternalChainBody): Observable<KeyDetailView> {
    return this.http.post<KeyDetailView>(`/api/v1/keys/${encodeURIComponent(keyid)}/external-chain`, body);
  }
}
