import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { Observable } from 'rxjs';
import type { KeyDetailView, LegacyKeyView } from './api-types';

/** Keys: the legacy list (`GET /api/keys`) and one key with its chain (`GET /api/v1/keys/{keyid}`). */
@Injectable({ providedIn: 'root' })
export class KeysService {
  private readonly http = inject(HttpClient);

  list(): Observable<LegacyKeyView[]> {
    return this.http.get<LegacyKeyView[]>('/api/keys');
  }

  get(keyid: string): Observable<KeyDetailView> {
    return this.http.get<KeyDetailView>(`/api/v1/keys/${encodeURIComponent(keyid)}`);
  }
}
