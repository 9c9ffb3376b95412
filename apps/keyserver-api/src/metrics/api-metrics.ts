import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MetricsRepository, NotificationRepository, type AuditAppendPath, type AuditInput, type AwaitingApproval, type Db } from '@keyserver/data-access';
import { BoundedLabel, collectProcessMetrics } from '@keyserver/observability';
import type { HsmSigner } from '@keyserver/pki';
import type { Pkcs11PoolStats } from '@keyserver/pkcs11-signer';
import { PRODUCT_VERSION } from '@keyserver/api-contract/version';

/** Seconds; an audit append is ~1 ms alone, more while the append lock is contended. */
const AUDIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Seconds; SoftHSM signs EC in ~0.1 ms, RSA-4096 and key generation take up to seconds. */
const HSM_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The audited actions counted per key, and the metric each one feeds. */
const DECISIONS = {
  'signorder.create': 'keyserver_sign_orders_total',
  'firmware.sign': 'keyserver_firmware_signatures_total',
  'certificate.issue': 'keyserver_certificates_total',
} as const;
type DecisionAction = keyof typeof DECISIONS;

const OUTCOMES: Record<string, string> = { SUCCESS: 'success', DENIED: 'denied', FAILED: 'failed' };

/** Options of {@link ApiMetrics}. */
export interface ApiMetricsOptions {
  /** At most this many distinct `key` label values (the key table is read at each scrape). */
  maxKeyLabels?: number;
}

/** What the scrape-time gauges read: the database handle and the signer's pool. */
export interface ApiMetricsSources {
  db: Db;
  hsmPool?: () => Pkcs11PoolStats;
  logger: Logger;
}

/**
 * The API's metrics (docs/adr/0022-metrics-endpoint.md, docs/monitoring/). Sign orders, firmware signatures and
 * certificates are counted from the audit events as they are appended (`observeAuditAppends`), so the metrics say
 * what the audit log says: per key and outcome, with the error code of a refusal. Pools, approvals waiting and
 * the key list are read at scrape time; nothing on the request path waits for metrics.
 */
export class ApiMetrics {
  readonly registry = new Registry();
  /** `key` values: the key table (read per scrape) and keys that just signed; a caller's unknown keyid is _other. */
  readonly keys: BoundedLabel;
  private readonly codes = new BoundedLabel(300, '_other', /^[a-z][a-z0-9_]{0,63}$/);
  private readonly actions = new BoundedLabel(200, '_other', /^[a-z][a-z0-9_.]{0,63}$/);
  private readonly hsmOutcomes = new BoundedLabel(50, 'error', /^[a-z][a-z0-9_]{0,63}$/);
  private readonly decisions: Record<DecisionAction, Counter<'key' | 'outcome' | 'code'>>;
  private readonly auditEvents: Counter<'action' | 'outcome'>;
  private readonly auditAppend: Histogram<'path'>;
  private readonly auditAppendFailures: Counter<'path'>;
  private readonly hsmDuration: Histogram<'operation' | 'outcome'>;
  private readonly reservation: Histogram<'kind' | 'outcome'>;
  private readonly collectErrors: Counter<'source'>;
  private sources?: ApiMetricsSources;
  /** The repositories the scrape reads, made once when the metrics are attached to the process's database. */
  private repos?: { metrics: MetricsRepository; notifications: NotificationRepository };
  private inflight?: Promise<AwaitingApproval | undefined>;

  constructor(options: ApiMetricsOptions = {}) {
    this.keys = new BoundedLabel(options.maxKeyLabels ?? 1000);
    const r = [this.registry];
    collectProcessMetrics(this.registry);
    const decision = (name: string, what: string) =>
      new Counter({ name, help: `${what} by key, outcome (success, denied, failed) and error code, as audited.`, labelNames: ['key', 'outcome', 'code'] as const, registers: r });
    this.decisions = {
      'signorder.create': decision(DECISIONS['signorder.create'], 'Sign orders (POST /api/signorders)'),
      'firmware.sign': decision(DECISIONS['firmware.sign'], 'CMS firmware signatures'),
      'certificate.issue': decision(DECISIONS['certificate.issue'], 'Certificates issued from CSRs (key = the issuing CA)'),
    };
    this.auditEvents = new Counter({ name: 'keyserver_audit_events_total', help: 'Audit events appended, by action and outcome.', labelNames: ['action', 'outcome'] as const, registers: r });
    this.auditAppend = new Histogram({
      name: 'keyserver_audit_append_duration_seconds',
      help: 'Audit append statements (chain lock, hash, insert) by path: statement, transaction, with_result (the statement storing a signature or certificate with its event).',
      labelNames: ['path'] as const,
      buckets: AUDIT_BUCKETS,
      registers: r,
    });
    this.auditAppendFailures = new Counter({ name: 'keyserver_audit_append_failures_total', help: 'Audit appends that failed or wrote nothing.', labelNames: ['path'] as const, registers: r });
    this.hsmDuration = new Histogram({
      name: 'keyserver_hsm_operation_duration_seconds',
      help: 'HSM calls (sign, get_key, generate_key, destroy_key, health) by outcome (ok or the HSM error code), including the wait for a pooled session.',
      labelNames: ['operation', 'outcome'] as const,
      buckets: HSM_BUCKETS,
      registers: r,
    });
    this.reservation = new Histogram({
      name: 'keyserver_usage_reservation_duration_seconds',
      help: 'Usage reservations (one usage of an operation key taken before the HSM signs) by kind (signorder, certificate) and outcome (reserved or the refusal code), including the wait for the group commit ahead.',
      labelNames: ['kind', 'outcome'] as const,
      buckets: AUDIT_BUCKETS,
      registers: r,
    });
    this.collectErrors = new Counter({ name: 'keyserver_metrics_collect_errors_total', help: 'Scrape-time reads that failed (the gauge has no sample in that scrape).', labelNames: ['source'] as const, registers: r });
    new Gauge({ name: 'keyserver_info', help: 'Always 1; the labels name the Keyserver release and the runtime.', labelNames: ['version', 'node'] as const, registers: r }).set({ version: PRODUCT_VERSION, node: process.versions.node }, 1);
    this.scrapeGauges();
  }

  /** Connects the scrape-time gauges to the running process's database and HSM pool. */
  attach(sources: ApiMetricsSources): void {
    this.sources = sources;
    this.repos = { metrics: new MetricsRepository(sources.db), notifications: new NotificationRepository(sources.db) };
  }

  /** The audit append observer (data-access `observeAuditAppends`): times appends and counts decisions. */
  readonly onAuditAppend = (input: AuditInput, seconds: number, path: AuditAppendPath, written: boolean): void => {
    this.auditAppend.observe({ path }, seconds);
    if (!written) {
      this.auditAppendFailures.inc({ path });
      return;
    }
    const outcome = OUTCOMES[input.outcome] ?? 'other';
    this.auditEvents.inc({ action: this.actions.admit(input.action), outcome });
    const counter = this.decisions[input.action as DecisionAction];
    if (!counter) return;
    // A key that signed or issued exists: it may name a series even before the next scrape reads the key table.
    if (outcome === 'success') this.keys.learn(input.keyid);
    counter.inc({ key: this.keys.of(input.keyid), outcome, code: input.errorCode ? this.codes.admit(input.errorCode) : 'none' });
  };

  /** The reservation observer (data-access `observeReservations`): the stage before the HSM, as the audit append is the one after it. */
  readonly onReservation = (kind: string, seconds: number, outcome: string): void => {
    this.reservation.observe({ kind: this.actions.admit(kind), outcome: this.codes.admit(outcome) }, seconds);
  };

  /** Wraps the signer so every HSM call is timed by operation and outcome (two clock reads per call). */
  instrumentSigner(inner: HsmSigner): HsmSigner {
    const timed = <T>(operation: string, run: () => Promise<T>): Promise<T> => {
      const start = performance.now();
      return run().then(
        (v) => {
          this.hsmDuration.observe({ operation, outcome: 'ok' }, (performance.now() - start) / 1000);
          return v;
        },
        (err: unknown) => {
          const code = (err as { code?: unknown } | null)?.code;
          this.hsmDuration.observe({ operation, outcome: this.hsmOutcomes.admit(typeof code === 'string' ? code : undefined) }, (performance.now() - start) / 1000);
          throw err;
        },
      );
    };
    return {
      generateKey: (spec) => timed('generate_key', () => inner.generateKey(spec)),
      getKey: (id) => timed('get_key', () => inner.getKey(id)),
      sign: (id, mechanism, data) => timed('sign', () => inner.sign(id, mechanism, data)),
      destroyKey: (id) => timed('destroy_key', () => inner.destroyKey(id)),
      health: () => timed('health', () => inner.health()),
      close: () => inner.close(),
    };
  }

  /** Reads the key table so its keyids may label series (called at boot and on every scrape). */
  async refreshKeys(): Promise<void> {
    if (!this.repos) return;
    this.keys.learnAll(await this.repos.metrics.keyids(this.keys.max));
  }

  private failed(source: string, err: unknown): void {
    this.collectErrors.inc({ source });
    this.sources?.logger.warn({ event: 'metrics_collect_failed', source, err: err instanceof Error ? err.message : String(err) }, 'a metrics source could not be read');
  }

  /** One database read per scrape, shared by the gauges that need it (a scrape starts all collects at once). */
  private awaiting(): Promise<AwaitingApproval | undefined> {
    if (this.inflight) return this.inflight;
    const repos = this.repos;
    if (!repos) return Promise.resolve(undefined);
    const read = Promise.all([repos.metrics.awaitingApproval(), this.refreshKeys()]).then(
      ([a]) => a,
      (err: unknown) => {
        this.failed('database', err);
        return undefined;
      },
    );
    this.inflight = read.finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private scrapeGauges(): void {
    const r = [this.registry];
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    const pool = () => this.sources?.hsmPool?.();
    new Gauge({
      name: 'keyserver_operations_awaiting_approval',
      help: 'Operations waiting for approvals (REQUESTED, in their window, with a key that needs approvers). The same on every replica.',
      registers: r,
      async collect() {
        const a = await self.awaiting();
        this.reset();
        if (a) this.set(a.count);
      },
    });
    new Gauge({
      name: 'keyserver_operations_awaiting_approval_oldest_seconds',
      help: 'Age of the oldest operation waiting for approvals (0 when none).',
      registers: r,
      async collect() {
        const a = await self.awaiting();
        this.reset();
        if (a) this.set(a.oldestSeconds);
      },
    });
    // Approver notifications (docs/notifications.md): one statement per scrape, on the notification tables only.
    let backlog: Promise<{ pending: number; dead: number; oldestPendingSeconds: number; heldLastHour: number; webhookHeldLastHour: number } | undefined> | undefined;
    const notificationBacklog = () => {
      const repos = self.repos;
      if (!repos) return Promise.resolve(undefined);
      backlog ??= repos.notifications
        .backlog()
        .catch((err: unknown) => {
          self.failed('notifications', err);
          return undefined;
        })
        .finally(() => setImmediate(() => (backlog = undefined)));
      return backlog;
    };
    new Gauge({
      name: 'keyserver_notification_deliveries',
      help: 'Notification deliveries by state: pending (due or being retried) and dead (gave up; alert on an increase). The same on every replica.',
      labelNames: ['state'] as const,
      registers: r,
      async collect() {
        const b = await notificationBacklog();
        this.reset();
        if (!b) return;
        this.set({ state: 'pending' }, b.pending);
        this.set({ state: 'dead' }, b.dead);
      },
    });
    new Gauge({
      name: 'keyserver_notification_oldest_pending_seconds',
      help: 'Age of the oldest notification delivery not yet sent (0 when none).',
      registers: r,
      async collect() {
        const b = await notificationBacklog();
        this.reset();
        if (b) this.set(b.oldestPendingSeconds);
      },
    });
    new Gauge({
      name: 'keyserver_notification_held_last_hour',
      help: "Approval-request emails held back in the last hour because their recipient had NOTIFY_RECIPIENT_HOURLY_MAX already (SKIPPED recipient_hourly_limit; an orderer's flood). The same on every replica.",
      registers: r,
      async collect() {
        const b = await notificationBacklog();
        this.reset();
        if (b) this.set(b.heldLastHour);
      },
    });
    new Gauge({
      name: 'keyserver_notification_webhook_held_last_hour',
      help: "Approval-request webhook calls held back in the last hour because their endpoint had NOTIFY_WEBHOOK_HOURLY_MAX already (SKIPPED endpoint_hourly_limit; an orderer's flood). The same on every replica.",
      registers: r,
      async collect() {
        const b = await notificationBacklog();
        this.reset();
        if (b) this.set(b.webhookHeldLastHour);
      },
    });
    new Gauge({
      name: 'keyserver_db_pool_connections',
      help: "The API's PostgreSQL pool: connections by state (idle, in_use).",
      labelNames: ['state'] as const,
      registers: r,
      collect() {
        const p = self.sources?.db.pool;
        this.reset();
        if (!p) return;
        this.set({ state: 'idle' }, p.idleCount);
        this.set({ state: 'in_use' }, p.totalCount - p.idleCount);
      },
    });
    new Gauge({
      name: 'keyserver_db_pool_max',
      help: 'Size limit of the PostgreSQL pool (DATABASE_POOL_SIZE).',
      registers: r,
      collect() {
        const max = self.sources?.db.pool.options.max;
        this.reset();
        if (typeof max === 'number') this.set(max);
      },
    });
    new Gauge({
      name: 'keyserver_db_pool_waiting',
      help: 'Queries waiting for a pooled PostgreSQL connection.',
      registers: r,
      collect() {
        const p = self.sources?.db.pool;
        this.reset();
        if (p) this.set(p.waitingCount);
      },
    });
    new Gauge({
      name: 'keyserver_hsm_sessions',
      help: 'PKCS#11 session pool: sessions by state (idle, in_use).',
      labelNames: ['state'] as const,
      registers: r,
      collect() {
        const s = pool();
        this.reset();
        if (!s) return;
        this.set({ state: 'in_use' }, s.inUse);
        this.set({ state: 'idle' }, Math.max(0, s.sessions - s.inUse));
      },
    });
    const poolGauge = (name: string, help: string, read: (s: Pkcs11PoolStats) => number) =>
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          const s = pool();
          this.reset();
          if (s) this.set(read(s));
        },
      });
    poolGauge('keyserver_hsm_sessions_max', 'Sessions in the PKCS#11 pool (PKCS11_POOL_SIZE).', (s) => s.sessions);
    poolGauge('keyserver_hsm_session_waiters', 'HSM calls waiting for a free session.', (s) => s.waiting);
    poolGauge('keyserver_hsm_sign_queue', 'Signatures waiting for a worker lane.', (s) => s.queued);
    poolGauge('keyserver_hsm_sign_lanes', 'Worker lanes signing (0: the libuv pool signs).', (s) => s.lanes);
    poolGauge('keyserver_hsm_recoveries', 'Re-initialisations of the PKCS#11 module after a lost session, login or module since start.', (s) => s.recoveries);
  }
}
