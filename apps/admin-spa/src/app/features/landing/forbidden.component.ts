import { ChangeDetectionStrategy, Component } from '@angular/core';
import { RouterLink } from '@angular/router';

@Component({
  selector: 'app-forbidden',
  imports: [RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <h1>Not allowed</h1>
    <p>Your roles do not give access to this page. <a routerLink="/">Back to the start</a>.</p>
  `,
})
export class ForbiddenComponent {}
