import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';
import { RouterLink } from '@angular/router';
import { AuthService } from '../../core/auth.service';
import { NAV_ITEMS } from '../../core/permissions';
import { NoAccessComponent } from './no-access.component';

/** `/forbidden`: the page asked for needs a permission the user does not hold; says where to go and whom to ask. */
@Component({
  selector: 'app-forbidden',
  imports: [RouterLink, NoAccessComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h1>Not allowed</h1>
    <p>Your roles do not give access to this page.</p>
    @if (hasAny()) {
      <p><a routerLink="/">Back to the start</a>, or pick a screen in the menu.</p>
    } @else {
      <app-no-access />
    }
  `,
})
export class ForbiddenComponent {
  private readonly auth = inject(AuthService);
  protected readonly hasAny = computed(() => {
    const perms = this.auth.me()?.permissions ?? [];
    return NAV_ITEMS.some((i) => i.anyOf.some((p) => perms.includes(p)));
  });
}
