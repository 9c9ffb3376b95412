import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { Observable } from 'rxjs';
import type { CertificatePage, CertificateView, RevocationReasonName } from './api-types';
import { PAGE_SIZE, queryParams } from './query';

export interface CertificateFilter {
  serial?: string;
  subject?: string;
  issuer?: string;
}

/** `/api/v1/certificates`: search (cursor pages) and revoke. */
@Injectable({ providedIn: 'root' })
export class CertificatesService {
  private readonly http = inject(HttpClient);

  search(filter: CertificateFilter, cursor?: string | null, limit = PAGE_SIZE): Observable<CertificatePage> {
    const params = queryParams({
      serial: filter.serial?.trim(),
      subject: filter.subject?.trim(),
      issuer: filter.issuer?.trim(),
      cursor,
      limit,
    });
    return this.http.get<CertificatePage>('/api/v1/certificates', { params });
  }

  revoke(id: string, reason: RevocationReasonName): Observable<CertificateView> {
    return this.http.post<CertificateView>(`/api/v1/certificates/${encodeURIComponent(id)}/revocation`, { reason });
  }
}
