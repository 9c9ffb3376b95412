import { ChangeDetectionStrategy, Component, input } from '@angular/core';
import { DatePipe } from '@angular/common';
import type { OperationView } from '../../core/api-types';

/** Seconds as the largest whole unit an approver reads at a glance (7 d, 5 min, 90 s). */
export function duration(seconds: number): string {
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['min', 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size} ${unit}`;
  }
  return `${seconds} s`;
}

/** The facts an approver decides on: orderer, window, keys with usages, approvals and the key's limits, declared digests. */
@Component({
  selector: 'app-operation-summary',
  imports: [DatePipe],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @let op = operation();
    <dl class="facts">
      <dt>Orderer</dt>
      <dd>{{ op.orderer.displayName }}</dd>
      <dt>Window</dt>
      <dd>{{ op.validFrom | date: 'medium' }} – {{ op.validTo | date: 'medium' }}</dd>
      <dt>State</dt>
      <dd><span class="state" [attr.data-state]="op.state">{{ op.state }}</span></dd>
    </dl>
    <table class="simple-table">
      <caption class="visually-hidden">Keys of the operation</caption>
      <thead>
        <tr><th scope="col">Key</th><th scope="col">Usages used / allowed</th><th scope="col">Approvals / required</th><th scope="col">Key limits</th></tr>
      </thead>
      <tbody>
        @for (k of op.keys; track k.keyid) {
          <tr>
            <td><code>{{ k.keyid }}</code></td>
            <td>{{ k.usagesUsed }} / {{ k.usagesAllowed }}</td>
            <td>{{ k.approvals }} / {{ k.requiredApprovers }}</td>
            <td class="limits">
              @if (k.limits; as l) {
                window ≤ {{ duration(l.maxWindowSeconds) }}, ≤ {{ l.maxUsagesPerOperation }} usages, start from −{{ duration(l.maxBackdateSeconds) }} to +{{ duration(l.maxStartAheadSeconds) }}
                @if (l.source === 'default') { <span class="muted">(defaults)</span> }
              }
            </td>
          </tr>
        }
      </tbody>
    </table>
    @if (op.digests.length) {
      <details>
        <summary>{{ op.digests.length }} declared digest{{ op.digests.length === 1 ? '' : 's' }}</summary>
        <ul class="digests">
          @for (d of op.digests.slice(0, maxDigests); track $index) {
            <li><code>{{ d }}</code></li>
          }
        </ul>
        @if (op.digests.length > maxDigests) {
          <p class="muted">and {{ op.digests.length - maxDigests }} more.</p>
        }
      </details>
    } @else {
      <p class="muted">No declared digests: any input may be signed within the usages.</p>
    }
  `,
})
export class OperationSummaryComponent {
  readonly operation = input.required<OperationView>();
  protected readonly maxDigests = 100;
  protected readonly duration = duration;
}
