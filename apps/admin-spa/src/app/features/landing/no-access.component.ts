import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { AuthService } from '../../core/auth.service';
import { CopyButtonComponent } from '../../shared/copy-button.component';

/**
 * For a signed-in user the Keyserver gives no right: whom to ask and what to give them. An administrator registers
 * the account as a subject (Subjects and roles; it is listed there under "Unknown principals" after this sign-in)
 * by its tenant id and object id, inside an administrative session.
 */
@Component({
  selector: 'app-no-access',
  imports: [CopyButtonComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (auth.me(); as me) {
      <section class="hint no-access" aria-labelledby="no-access-title">
        <h2 id="no-access-title">No access yet</h2>
        <p>You are signed in as <strong>{{ me.displayName }}</strong>, but your account has no administration rights.</p>
        <p>
          Ask a Keyserver administrator (your security officer) to register your account with a role. They find it under
          <em>Subjects and roles → Unknown principals</em>, or can use these ids:
        </p>
        <dl class="facts">
          @if (me.username) {
            <dt>Account</dt>
            <dd>{{ me.username }}</dd>
          }
          <dt>Tenant id</dt>
          <dd class="id-line"><code>{{ me.tid }}</code><app-copy-button [text]="me.tid" label="tenant id" /></dd>
          <dt>Object id</dt>
          <dd class="id-line"><code>{{ me.oid }}</code><app-copy-button [text]="me.oid" label="object id" /></dd>
        </dl>
        <p class="muted small">After they add you, sign out and sign in again.</p>
      </section>
    }
  `,
})
export class NoAccessComponent {
  protected readonly auth = inject(AuthService);
}
