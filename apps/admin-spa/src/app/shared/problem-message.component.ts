import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';
import { problemMessage, type Problem } from '../core/problem';

/** A problem in plain words, announced to screen readers; the code and request id help support. */
@Component({
  selector: 'app-problem-message',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (problem(); as p) {
      <div class="problem" role="alert" [attr.data-code]="p.code">
        <p class="problem-text">{{ message() }}</p>
        @if (p.detail) {
          <p class="problem-detail">{{ p.detail }}</p>
        }
        <p class="problem-meta">
          Code: <code>{{ p.code }}</code>
          @if (p.requestId) {
            · Request id: <code>{{ p.requestId }}</code>
          }
        </p>
      </div>
    }
  `,
})
export class ProblemMessageComponent {
  readonly problem = input<Problem | null>(null);
  protected readonly message = computed(() => {
    const p = this.problem();
    return p ? problemMessage(p) : '';
  });
}
