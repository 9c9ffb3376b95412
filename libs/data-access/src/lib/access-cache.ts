import { Client } from 'pg';

// The per-request lookups of the hot path (who is the caller and what may they do; which key is this keyid)
// cached in the API process, invalidated on every change (docs/adr/0028-access-cache.md):
// - changes committed by ANY process reach every replica through LISTEN/NOTIFY: statement triggers on the tables
//   the lookups read (ACCESS_TABLES, migration 20261206008100) notify ACCESS_CHANNEL on commit;
// - changes committed through this process's own Db.transaction flush the cache before the caller sees the commit,
//   so a replica reads its own writes at once;
// - the cache is used only while the listener connection is up and LISTEN was confirmed; it is flushed when the
//   listener (re)connects or fails, and a load that overlapped a flush is not stored;
// - misses (unknown subject, unknown key) are never stored; a TTL bounds an entry's age if a notification were
//   lost on a connection that still looks alive.
// Every decision that matters is re-checked by the database anyway: the key's state, the operation, the window and
// the usage count by the reservation statement (usage.ts).

/** The NOTIFY channel of access changes. */
export const ACCESS_CHANNEL = 'keyserver_access';

/** Tables whose rows the cached lookups read: each has the notify trigger (a test checks it). */
export const ACCESS_TABLES = ['subject', 'subject_role', 'role', 'role_key_permission', 'key'] as const;

export interface AccessCacheStats {
  listening: boolean;
  hits: number;
  misses: number;
  flushes: number;
  entries: number;
}

interface Entry<T> {
  at: number;
  value: T;
}

export interface AccessCacheOptions {
  /** Longest age of an entry in ms; 0 disables the cache (every lookup goes to the database). */
  ttlMs: number;
  /** Most entries per kind (default 10,000); the oldest go first. */
  maxEntries?: number;
  /** Delay before the listener reconnects after an error (default 1 s). */
  reconnectMs?: number;
  now?: () => number;
  onError?: (err: Error) => void;
}

/** See the comment at the top of this file. Created by createDb; inactive until {@link AccessCache.listen}. */
export class AccessCache {
  private readonly maps = { subject: new Map<string, Entry<unknown>>(), key: new Map<string, Entry<unknown>>() };
  private generation = 0;
  private listening = false;
  private client: Client | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly stats = { hits: 0, misses: 0, flushes: 0 };
  private options: Required<Omit<AccessCacheOptions, 'onError'>> & Pick<AccessCacheOptions, 'onError'> = {
    ttlMs: 0,
    maxEntries: 10_000,
    reconnectMs: 1_000,
    now: () => Date.now(),
  };

  /** Starts listening for changes with a connection of its own; the cache serves hits once LISTEN is confirmed. */
  async listen(connectionString: string, options: AccessCacheOptions): Promise<void> {
    this.options = { ...this.options, ...options };
    this.stopped = false;
    if (this.options.ttlMs <= 0) return;
    await this.connect(connectionString);
  }

  private async connect(connectionString: string): Promise<void> {
    const client = new Client({ connectionString, keepAlive: true });
    const lost = (err?: Error) => {
      if (this.client !== client) return;
      this.client = null;
      this.listening = false;
      this.flush();
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (err) this.options.onError?.(err);
      if (!this.stopped) this.timer = setTimeout(() => void this.connect(connectionString), this.options.reconnectMs);
    };
    this.client = client;
    client.on('error', (err) => lost(err));
    client.on('end', () => lost(new Error('access cache listener connection ended')));
    client.on('notification', (n) => {
      if (n.channel === ACCESS_CHANNEL) this.flush();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${ACCESS_CHANNEL}`);
      if (this.client !== client) return;
      // Whatever changed while nobody listened is unknown: start empty.
      this.flush();
      this.listening = true;
    } catch (err) {
      lost(err as Error);
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const c = this.client;
    this.client = null;
    this.listening = false;
    this.flush();
    await c?.end().catch(() => undefined);
  }

  /** Forgets every entry; a load in flight is not stored. */
  flush(): void {
    this.generation++;
    this.stats.flushes++;
    this.maps.subject.clear();
    this.maps.key.clear();
  }

  /** True while entries are served (listener up, TTL > 0). */
  get active(): boolean {
    return this.listening && this.options.ttlMs > 0;
  }

  snapshot(): AccessCacheStats {
    return { listening: this.listening, ...this.stats, entries: this.maps.subject.size + this.maps.key.size };
  }

  /** The cached value of `kind`/`id`, or `load()` (stored when not null and nothing changed meanwhile). */
  async through<T>(kind: 'subject' | 'key', id: string, load: () => Promise<T | null>): Promise<T | null> {
    if (!this.active) return load();
    const map = this.maps[kind];
    const now = this.options.now();
    const hit = map.get(id);
    if (hit && now - hit.at < this.options.ttlMs) {
      this.stats.hits++;
      return hit.value as T;
    }
    this.stats.misses++;
    const generation = this.generation;
    const value = await load();
    if (value !== null && this.active && generation === this.generation) {
      map.delete(id);
      map.set(id, { at: now, value });
      if (map.size > this.options.maxEntries) map.delete(map.keys().next().value as string);
    }
    return value;
  }
}
