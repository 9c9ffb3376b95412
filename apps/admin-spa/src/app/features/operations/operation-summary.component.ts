import { ChangeDetectionStrategy, Component, computed, input } from '@angular/core';
import type { OperationView } from '../../core/api-types';
import { formatSpan } from '../../core/datetime';
import { httpsUrl } from '../../core/safe-url';
import { CopyButtonComponent } from '../../shared/copy-button.component';
import { DateTimeComponent } from '../../shared/datetime.component';

/** Seconds as the largest whole unit an approver reads at a glance (7 d, 5 min, 90 s). */
export function duration(seconds: number): string {
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['min', 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size} ${unit}`;
  }
  return `${seconds} s`;
}

type OpKey = OperationView['keys'][number];

/** True when a production key may sign any input: the operation names no digest. */
export function unboundProduction(op: OperationView): boolean {
  return op.digests.length === 0 && op.keys.some((k) => k.environment === 'production');
}

/** The ksctl commands that use an operation once it is approved, one per key (what a CI pipeline runs next). */
export function nextCommands(op: OperationView): string[] {
  return op.keys.map((k) =>
    k.type === 'CA' ? `ksctl cert issue --operation ${op.id} --key ${k.keyid} --csr device.csr` : `ksctl sign --operation ${op.id} --key ${k.keyid} --file firmware.bin`,
  );
}

/**
 * What an approver decides on ("what exactly am I approving?"): orderer, window and its length, each key with its
 * environment, algorithm, product, usages, who approved and how many are still needed, its limits; the declared
 * digests (a warning when a production key may sign anything) and the CI run's provenance; what happens next.
 */
@Component({
  selector: 'app-operation-summary',
  imports: [DateTimeComponent, CopyButtonComponent],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @let op = operation();
    <dl class="facts">
      <dt>Orderer</dt>
      <dd>{{ op.orderer.displayName }}</dd>
      <dt>Window</dt>
      <dd>
        <app-datetime [value]="op.validFrom" /> – <app-datetime [value]="op.validTo" [relative]="open()" />
        <span class="muted"> · {{ windowLength() }}</span>
      </dd>
      <dt>State</dt>
      <dd><span class="state" [attr.data-state]="op.state">{{ op.state }}</span></dd>
      @if (op.rejectionReason) {
        <dt>Rejected because</dt>
        <dd>{{ op.rejectionReason }}</dd>
      }
      <dt>Operation id</dt>
      <dd class="id-line"><code>{{ op.id }}</code><app-copy-button [text]="op.id" label="operation id" /></dd>
      @if (op.provenance; as pv) {
        <dt>Ordered by CI run</dt>
        <dd class="provenance">
          @if (pv.project) { <span>project <strong>{{ pv.project }}</strong></span> }
          @if (pv.pipeline) { <span>pipeline <strong>{{ pv.pipeline }}</strong></span> }
          @if (pv.run) { <span>run <strong>{{ pv.run }}</strong></span> }
          @if (pv.commit) { <span>commit <code>{{ pv.commit }}</code></span> }
          <!-- Only an https URL becomes a link (core/safe-url.ts); any other is the orderer's text. -->
          @if (pv.url) {
            @if (link(pv.url); as href) { <a [href]="href" rel="noopener noreferrer" target="_blank">open the run</a> }
            @else { <span>link <code class="url">{{ pv.url }}</code></span> }
          }
          <span class="muted small">(declared by the orderer, not verified)</span>
        </dd>
      }
    </dl>

    <div class="keys-heading" role="heading" [attr.aria-level]="headingLevel()">Keys</div>
    <ul class="key-list">
      @for (k of op.keys; track k.keyid) {
        <li class="key-item" [attr.data-keyid]="k.keyid">
          <div class="key-head">
            <code class="keyid">{{ k.keyid }}</code>
            <span class="env" [attr.data-env]="k.environment">{{ k.environment === 'production' ? 'Production' : 'Development' }}</span>
            <span class="muted">{{ k.type }} · {{ k.algorithm }} / {{ k.hash }}@if (k.product) { · product {{ k.product }}}</span>
          </div>
          <dl class="facts compact">
            <dt>Usages</dt>
            <dd><span class="usages">{{ k.usagesUsed }} / {{ k.usagesAllowed }}</span><span class="muted">&nbsp;used / allowed</span></dd>
            <dt>Approvals</dt>
            <dd>
              <span class="approvals">{{ k.approvals }} / {{ k.requiredApprovers }}</span>
              @if (k.requiredApprovers === 0) {
                <span class="muted"> none needed (development key)</span>
              }
              @if (k.approvedBy.length) {
                <ul class="approved-by">
                  @for (a of k.approvedBy; track a.subjectId) {
                    <li>✓ {{ a.displayName }} <span class="muted small"><app-datetime [value]="a.approvedAt" [relative]="true" /></span></li>
                  }
                </ul>
              }
              @if (k.approvalsMissing > 0) {
                <p class="still-needed">Still needed: {{ k.approvalsMissing }} more approver{{ k.approvalsMissing === 1 ? '' : 's' }} of {{ k.keyid }} (not the orderer{{ k.approvedBy.length ? ', not ' + names(k) : '' }}).</p>
              }
            </dd>
            <dt>Key limits</dt>
            <dd class="limits">
              @if (k.limits; as l) {
                window ≤ {{ duration(l.maxWindowSeconds) }}, ≤ {{ l.maxUsagesPerOperation }} usages, start from −{{ duration(l.maxBackdateSeconds) }} to +{{ duration(l.maxStartAheadSeconds) }}
                @if (l.source === 'default') { <span class="muted">(defaults)</span> }
              } @else {
                <span class="muted">unknown</span>
              }
            </dd>
          </dl>
        </li>
      }
    </ul>

    @if (unbound()) {
      <div class="warning" role="note" aria-label="Warning">
        <strong>Production key, no declared digests:</strong> any input may be signed with
        {{ prodKeys() }}, up to the usages above. Ask the orderer to bind the operation to the digests of the build
        (<code>ksctl operations create … --digest HEX</code>) before approving a release.
      </div>
    }
    @if (op.digests.length) {
      <details class="digest-details">
        <summary>{{ op.digests.length }} declared digest{{ op.digests.length === 1 ? '' : 's' }}: only these inputs can be signed</summary>
        <ul class="digests" tabindex="0" aria-label="Declared digests">
          @for (d of op.digests.slice(0, maxDigests); track $index) {
            <li><code>{{ d }}</code></li>
          }
        </ul>
        @if (op.digests.length > maxDigests) {
          <p class="muted">and {{ op.digests.length - maxDigests }} more.</p>
        }
      </details>
    } @else if (!unbound()) {
      <p class="muted">No declared digests: any input may be signed within the usages.</p>
    }

    @if (showNext()) {
      <section class="next" aria-label="What happens next">
        <div class="next-heading" role="heading" [attr.aria-level]="headingLevel()">What happens next</div>
        @switch (op.state) {
          @case ('REQUESTED') {
            <p>The operation becomes usable when every key has its approvals. A pipeline can wait for that with:</p>
            <div class="command"><code>ksctl operations wait {{ op.id }}</code><app-copy-button [text]="'ksctl operations wait ' + op.id" label="wait command" /></div>
            <p>Once approved, the orderer's pipeline uses it, for example:</p>
          }
          @case ('APPROVED') {
            <p>Approved: until <app-datetime [value]="op.validTo" />, the orderer's pipeline can use it, for example:</p>
          }
        }
        @if (op.state === 'REQUESTED' || op.state === 'APPROVED') {
          @for (c of commands(); track c) {
            <div class="command"><code>{{ c }}</code><app-copy-button [text]="c" label="command" /></div>
          }
          <p class="muted small">A PKCS#11 tool (openssl, osslsigncode) uses it with <code>KEYSERVER_OPERATION_ID={{ op.id }}</code>.</p>
        }
      </section>
    }
  `,
})
export class OperationSummaryComponent {
  readonly operation = input.required<OperationView>();
  /** The provenance URL as a link target: https only (core/safe-url.ts). */
  protected readonly link = httpsUrl;
  /** The "what happens next" section (the detail page shows it; the approval cards link there). */
  readonly showNext = input(false);
  /** Level of the section headings: 3 under a card's h2, 2 on the detail page under its h1. */
  readonly headingLevel = input(3);
  protected readonly maxDigests = 100;
  protected readonly duration = duration;
  protected readonly open = computed(() => ['REQUESTED', 'APPROVED'].includes(this.operation().state));
  protected readonly windowLength = computed(() => formatSpan(Date.parse(this.operation().validTo) - Date.parse(this.operation().validFrom)));
  protected readonly unbound = computed(() => unboundProduction(this.operation()));
  protected readonly prodKeys = computed(() =>
    this.operation()
      .keys.filter((k) => k.environment === 'production')
      .map((k) => k.keyid)
      .join(', '),
  );
  protected readonly commands = computed(() => nextCommands(this.operation()));

  protected names(k: OpKey): string {
    return k.approvedBy.map((a) => a.displayName).join(', ');
  }
}
