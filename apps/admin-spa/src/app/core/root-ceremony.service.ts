import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { Observable } from 'rxjs';
import type { z } from 'zod';
import type { ImportCertificateRequest, PendingCancellation, PendingKeyView, RootCeremonyRequest, RootCeremonyResult } from '@keyserver/api-contract';
import type { KeyDetailView } from './api-types';

export type RootCeremonyBody = z.input<typeof RootCeremonyRequest>;
export type RootCeremonyResultView = z.infer<typeof RootCeremonyResult>;
export type PendingKey = z.infer<typeof PendingKeyView>;
export type ImportCertificateBody = z.infer<typeof ImportCertificateRequest>;
export type PendingCancellationView = z.infer<typeof PendingCancellation>;

/**
 * The ROOT key ceremony (`POST /api/v1/keys/root-ceremony`), the CSR of a key awaiting its external certificate and
 * the import of that certificate, or its cancellation (ADR 0020, ADR 0042, docs/operations.md §4). Changes need an ACTIVE admin session with two
 * administrators (header added by adminSessionInterceptor).
 */
@Injectable({ providedIn: 'root' })
export class RootCeremonyService {
  private readonly http = inject(HttpClient);

  ceremony(body: RootCeremonyBody): Observable<RootCeremonyResultView> {
    return this.http.post<RootCeremonyResultView>('/api/v1/keys/root-ceremony', body);
  }

  pending(keyid: string): Observable<PendingKey> {
    return this.http.get<PendingKey>(`/api/v1/keys/${encodeURIComponent(keyid)}/csr`);
  }

  importCertificate(keyid: string, body: ImportCertificateBody): Observable<KeyDetailView> {
    return this.http.post<KeyDetailView>(`/api/v1/keys/${encodeURIComponent(keyid)}/certificate`, body);
  }

  /** Ends what waits for an external certificate (version 1: the ceremony; higher: a pending rotation); its key pair is destroyed. */
  cancel(keyid: string, version: number): Observable<PendingCancellationView> {
    return this.http.post<PendingCancellationView>(`/api/v1/keys/${encodeURIComponent(keyid)}/csr/cancellation`, { version });
  }
}
