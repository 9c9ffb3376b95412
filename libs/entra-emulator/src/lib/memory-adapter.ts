/**
 * Per-emulator in-memory storage for oidc-provider models (sessions, grants, codes, tokens),
 * so several emulators in one process never share state.
 */
type Payload = Record<string, unknown> & { uid?: string; userCode?: string; grantId?: string; consumed?: number };

export class MemoryStore {
  private readonly entries = new Map<string, { payload: Payload; expiresAt?: number }>();

  adapterFor(model: string): MemoryAdapter {
    return new MemoryAdapter(model, this);
  }

  get(key: string): Payload | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(key: string, payload: Payload, expiresIn?: number): void {
    this.entries.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}

export class MemoryAdapter {
  constructor(
    private readonly model: string,
    private readonly store: MemoryStore,
  ) {}

  private key(id: string): string {
    return `${this.model}:${id}`;
  }

  async upsert(id: string, payload: Payload, expiresIn?: number): Promise<void> {
    this.store.set(this.key(id), payload, expiresIn);
    if (payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      const list = (this.store.get(grantKey)?.['keys'] as string[] | undefined) ?? [];
      list.push(this.key(id));
      this.store.set(grantKey, { keys: list }, expiresIn);
    }
    if (payload.uid) this.store.set(`uid:${this.model}:${payload.uid}`, { id }, expiresIn);
    if (payload.userCode) this.store.set(`userCode:${this.model}:${payload.userCode}`, { id }, expiresIn);
  }

  async find(id: string): Promise<Payload | undefined> {
    return this.store.get(this.key(id));
  }

  async findByUid(uid: string): Promise<Payload | undefined> {
    const ref = this.store.get(`uid:${this.model}:${uid}`);
    return ref ? this.find(ref['id'] as string) : undefined;
  }

  async findByUserCode(userCode: string): Promise<Payload | undefined> {
    const ref = this.store.get(`userCode:${this.model}:${userCode}`);
    return ref ? this.find(ref['id'] as string) : undefined;
  }

  async consume(id: string): Promise<void> {
    const payload = this.store.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    this.store.delete(this.key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    const grantKey = `grant:${grantId}`;
    const list = (this.store.get(grantKey)?.['keys'] as string[] | undefined) ?? [];
    for (const k of list) this.store.delete(k);
    this.store.delete(grantKey);
  }
}
