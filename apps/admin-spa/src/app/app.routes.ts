import { Route } from '@angular/router';
import { permissionGuard, signedInGuard } from './core/guards';
import { Perm } from './core/permissions';

/** Every screen is lazy: the first load only carries the shell and the landing page. */
export const appRoutes: Route[] = [
  { path: '', pathMatch: 'full', loadComponent: () => import('./features/landing/landing.component').then((m) => m.LandingComponent), title: 'Sign in · Keyserver' },
  {
    path: 'approvals',
    canActivate: [permissionGuard(Perm.OperationsApprove)],
    loadComponent: () => import('./features/approvals/approvals.component').then((m) => m.ApprovalsComponent),
    title: 'My approvals · Keyserver',
  },
  {
    path: 'operations',
    canActivate: [permissionGuard(Perm.OperationsRead)],
    loadComponent: () => import('./features/operations/operations-list.component').then((m) => m.OperationsListComponent),
    title: 'Operations · Keyserver',
  },
  {
    path: 'operations/new',
    canActivate: [permissionGuard(Perm.OperationsCreate)],
    loadComponent: () => import('./features/operations/operation-form.component').then((m) => m.OperationFormComponent),
    title: 'New operation · Keyserver',
  },
  {
    path: 'operations/:id',
    canActivate: [permissionGuard(Perm.OperationsRead)],
    loadComponent: () => import('./features/operations/operation-detail.component').then((m) => m.OperationDetailComponent),
    title: 'Operation · Keyserver',
  },
  {
    path: 'keys',
    canActivate: [permissionGuard(Perm.KeysRead)],
    loadComponent: () => import('./features/keys/keys.component').then((m) => m.KeysComponent),
    title: 'Keys · Keyserver',
  },
  {
    path: 'root-ceremony',
    canActivate: [permissionGuard(Perm.KeysAdmin)],
    loadComponent: () => import('./features/root-ceremony/root-ceremony.component').then((m) => m.RootCeremonyComponent),
    title: 'ROOT key ceremony · Keyserver',
  },
  {
    path: 'certificates',
    canActivate: [permissionGuard(Perm.OperationsRead)],
    loadComponent: () => import('./features/certificates/certificates.component').then((m) => m.CertificatesComponent),
    title: 'Device certificates · Keyserver',
  },
  {
    path: 'admin-sessions',
    canActivate: [permissionGuard(Perm.AdminSessionsManage)],
    loadComponent: () => import('./features/admin-sessions/admin-sessions.component').then((m) => m.AdminSessionsComponent),
    title: 'Administrative sessions · Keyserver',
  },
  {
    path: 'subjects',
    canActivate: [permissionGuard(Perm.SubjectsRead, Perm.RolesRead)],
    loadComponent: () => import('./features/subjects/subjects.component').then((m) => m.SubjectsComponent),
    title: 'Subjects and roles · Keyserver',
  },
  {
    path: 'audit',
    canActivate: [permissionGuard(Perm.AuditRead)],
    loadComponent: () => import('./features/audit/audit.component').then((m) => m.AuditComponent),
    title: 'Audit log · Keyserver',
  },
  {
    path: 'forbidden',
    canActivate: [signedInGuard],
    loadComponent: () => import('./features/landing/forbidden.component').then((m) => m.ForbiddenComponent),
    title: 'Not allowed · Keyserver',
  },
  { path: '**', redirectTo: '' },
];
