import { inject } from '@angular/core';
import { CanActivateFn, Router } from '@angular/router';
import { AuthService } from './auth.service';
import type { PermName } from './permissions';

/** Signed-in users only; others go to the landing page with the path to come back to. */
export const signedInGuard: CanActivateFn = async (_route, state) => {
  const auth = inject(AuthService);
  const router = inject(Router);
  await auth.ensureLoaded();
  if (auth.status() === 'signedIn') return true;
  return router.createUrlTree(['/'], { queryParams: { returnTo: state.url } });
};

/** Signed-in users holding one of `perms`; others see the "not allowed" page. */
export function permissionGuard(...perms: PermName[]): CanActivateFn {
  return async (_route, state) => {
    const auth = inject(AuthService);
    const router = inject(Router);
    await auth.ensureLoaded();
    if (auth.status() !== 'signedIn') return router.createUrlTree(['/'], { queryParams: { returnTo: state.url } });
    return auth.hasAny(perms) ? true : router.createUrlTree(['/forbidden']);
  };
}
