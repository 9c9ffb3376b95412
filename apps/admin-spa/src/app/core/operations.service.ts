import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import type { Observable } from 'rxjs';
import type { CreateOperationRequest, OperationPage, OperationView } from './api-types';
import { PAGE_SIZE, queryParams } from './query';

export interface OperationFilter {
  state?: OperationView['state'] | '';
  key?: string;
  mine?: boolean;
  awaitingMe?: boolean;
}

/** `/api/v1/operations`: list, read, create, approve, reject, cancel. */
@Injectable({ providedIn: 'root' })
export class OperationsService {
  private readonly http = inject(HttpClient);
  private readonly base = '/api/v1/operations';

  list(filter: OperationFilter, cursor?: string | null, limit = PAGE_SIZE): Observable<OperationPage> {
    const params = queryParams({
      state: filter.state,
      key: filter.key?.trim(),
      mine: filter.mine ? 'true' : undefined,
      awaiting: filter.awaitingMe ? 'me' : undefined,
      cursor,
      limit,
    });
    return this.http.get<OperationPage>(this.base, { params });
  }

  get(id: string): Observable<OperationView> {
    return this.http.get<OperationView>(`${this.base}/${encodeURIComponent(id)}`);
  }

  create(body: CreateOperationRequest): Observable<OperationView> {
    return this.http.post<OperationView>(this.base, body);
  }

  approve(id: string): Observable<OperationView> {
    return this.http.post<OperationView>(`${this.base}/${encodeURIComponent(id)}/approvals`, {});
  }

  reject(id: string, reason: string): Observable<OperationView> {
    return this.http.post<OperationView>(`${this.base}/${encodeURIComponent(id)}/rejection`, { reason });
  }

  cancel(id: string): Observable<OperationView> {
    return this.http.post<OperationView>(`${this.base}/${encodeURIComponent(id)}/cancellation`, {});
  }
}
