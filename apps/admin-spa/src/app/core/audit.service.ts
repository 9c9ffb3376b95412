import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { Observable } from 'rxjs';
import type { AuditPage, AuditVerification } from './api-types';
import { PAGE_SIZE, queryParams } from './query';

export interface AuditFilter {
  action?: string;
  outcome?: 'SUCCESS' | 'DENIED' | 'FAILED' | '';
  actor?: string;
  keyid?: string;
  operationId?: string;
  /** ISO 8601 with offset. */
  from?: string;
  to?: string;
}

/** `/api/v1/audit`: filtered cursor pages and the hash-chain verification. */
@Injectable({ providedIn: 'root' })
export class AuditService {
  private readonly http = inject(HttpClient);

  list(filter: AuditFilter, cursor?: string | null, limit = PAGE_SIZE): Observable<AuditPage> {
    const params = queryParams({
      action: filter.action?.trim(),
      outcome: filter.outcome,
      actor: filter.actor?.trim(),
      keyid: filter.keyid?.trim(),
      operationId: filter.operationId?.trim(),
      from: filter.from,
      to: filter.to,
      cursor,
      limit,
    });
    return this.http.get<AuditPage>('/api/v1/audit', { params });
  }

  verify(): Observable<AuditVerification> {
    return this.http.get<AuditVerification>('/api/v1/audit/verify');
  }
}
