import { HttpClient } from '@angular/common/http';
import { Injectable, inject } from '@angular/core';
import { map, type Observable } from 'rxjs';
import type {
  CreateRoleBody,
  CreateSubjectBody,
  RoleView,
  SubjectView,
  UnknownPrincipalView,
  UpdateRoleBody,
  UpdateSubjectRequest,
} from './api-types';

/** Subjects, roles and unknown principals. Changes need an ACTIVE admin session (header added by adminSessionInterceptor). */
@Injectable({ providedIn: 'root' })
export class SubjectsService {
  private readonly http = inject(HttpClient);

  subjects(): Observable<SubjectView[]> {
    return this.http.get<{ items: SubjectView[] }>('/api/v1/subjects').pipe(map((r) => r.items));
  }

  createSubject(body: CreateSubjectBody): Observable<SubjectView> {
    return this.http.post<SubjectView>('/api/v1/subjects', body);
  }

  updateSubject(id: string, body: UpdateSubjectRequest): Observable<SubjectView> {
    return this.http.patch<SubjectView>(`/api/v1/subjects/${encodeURIComponent(id)}`, body);
  }

  roles(): Observable<RoleView[]> {
    return this.http.get<{ items: RoleView[] }>('/api/v1/roles').pipe(map((r) => r.items));
  }

  createRole(body: CreateRoleBody): Observable<RoleView> {
    return this.http.post<RoleView>('/api/v1/roles', body);
  }

  updateRole(name: string, body: UpdateRoleBody): Observable<RoleView> {
    return this.http.patch<RoleView>(`/api/v1/roles/${encodeURIComponent(name)}`, body);
  }

  unknownPrincipals(): Observable<UnknownPrincipalView[]> {
    return this.http.get<{ items: UnknownPrincipalView[] }>('/api/v1/unknown-principals').pipe(map((r) => r.items));
  }
}
