import { createPublicKey, generateKeyPair, KeyObject, sign as cryptoSign } from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { ExternalSigningKeyBase, OidcProviderModule } from './oidc-provider-module';

const generateRsa = promisify(generateKeyPair);

interface KeyMaterial {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
}

async function newKeyMaterial(): Promise<KeyMaterial> {
  const { privateKey } = await generateRsa('rsa', { modulusLength: 2048 });
  const publicKey = createPublicKey(privateKey);
  const jwk = publicKey.export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return { kid, privateKey, publicKey, publicJwk: { kty: 'RSA', n: jwk.n, e: jwk.e } };
}

/** Public JWK as Entra publishes it (plus the `issuer` member Entra adds to tenant keys). */
export interface PublishedJwk extends JWK {
  kid: string;
  use: 'sig';
  issuer: string;
}

export interface RotateOptions {
  /** Unpublish every previous key at once (an emergency roll-over) instead of keeping them. */
  dropPrevious?: boolean;
}

let placeholders: Promise<KeyMaterial[]> | undefined;

/** Slots registered in oidc-provider's keystore; their key material is swapped on rotation. */
const SLOT_COUNT = 3;

type Slot = ExternalSigningKeyBase & { material: KeyMaterial };

/**
 * The emulator's RS256 signing keys. oidc-provider's keystore is fixed at construction, so it
 * holds SLOT_COUNT external-signing slots whose material this ring replaces on rotation; the
 * current key is the only slot advertising `alg`, which makes oidc-provider prefer it for signing.
 */
export class SigningKeyRing {
  private readonly slots: Slot[];
  private current: Slot;
  /** Slots whose keys the JWKS endpoint publishes, newest first. */
  private published: Slot[];
  /** False until oidc-provider has registered the slots. */
  initialized = false;

  private constructor(slots: Slot[]) {
    this.slots = slots;
    this.current = slots[0];
    this.published = [slots[0]];
  }

  static async create(mod: OidcProviderModule): Promise<SigningKeyRing> {
    // Spare slots start with never-published placeholder keys shared by the process (key generation
    // is slow on a loaded machine); rotation always puts freshly generated material into a slot.
    placeholders ??= Promise.all(Array.from({ length: SLOT_COUNT - 1 }, () => newKeyMaterial()));
    const materials = [await newKeyMaterial(), ...(await placeholders)];
    const holder: { ring?: SigningKeyRing } = {};
    class RingSlot extends mod.ExternalSigningKey {
      constructor(public material: KeyMaterial) {
        super();
      }
      override get kid(): string {
        return this.material.kid;
      }
      override set kid(_value: string | undefined) {
        // The kid follows the key material.
      }
      override get alg(): string | undefined {
        // While oidc-provider registers the keys every slot must name its alg.
        return !holder.ring?.initialized || holder.ring.isCurrent(this) ? 'RS256' : undefined;
      }
      override set alg(_value: string | undefined) {
        // Only the current key advertises an alg.
      }
      get kty(): string {
        return 'RSA';
      }
      get n(): string | undefined {
        return this.material.publicJwk.n;
      }
      get e(): string | undefined {
        return this.material.publicJwk.e;
      }
      override keyObject(): KeyObject {
        return this.material.publicKey;
      }
      override sign(data: Buffer): Buffer {
        return cryptoSign('sha256', data, this.material.privateKey);
      }
    }
    holder.ring = new SigningKeyRing(materials.map((m) => new RingSlot(m) as unknown as Slot));
    return holder.ring;
  }

  /** Called once oidc-provider has registered the slots; from then on only the current key has an alg. */
  markInitialized(): void {
    this.initialized = true;
  }

  /** The objects to pass to oidc-provider as `jwks.keys`. */
  providerKeys(): unknown[] {
    return [...this.slots];
  }

  isCurrent(slot: unknown): boolean {
    return slot === this.current;
  }

  get currentKid(): string {
    return this.current.material.kid;
  }

  get publishedKids(): string[] {
    return this.published.map((s) => s.material.kid);
  }

  /** Signs a compact JWS with the current key (used for ID tokens re-issued with Entra's header). */
  signCurrent(data: Buffer): Buffer {
    return cryptoSign('sha256', data, this.current.material.privateKey);
  }

  /** Public key for a kid, whether still published or not (the emulator itself can still verify). */
  publicKeyFor(kid: string): KeyObject | undefined {
    return this.slots.find((s) => s.material.kid === kid)?.material.publicKey;
  }

  /** Adds a new key, makes it the signing key and keeps up to SLOT_COUNT - 1 previous keys published. */
  async rotate(options: RotateOptions = {}): Promise<void> {
    const material = await newKeyMaterial();
    // Reuse the slot holding the oldest key that is not the current one.
    const unpublished = this.slots.filter((s) => !this.published.includes(s));
    const target = unpublished[0] ?? this.published[this.published.length - 1];
    target.material = material;
    this.current = target;
    this.published = options.dropPrevious
      ? [target]
      : [target, ...this.published.filter((s) => s !== target)].slice(0, SLOT_COUNT);
  }

  jwks(issuer: string): { keys: PublishedJwk[] } {
    return {
      keys: this.published.map((s) => ({
        kty: 'RSA',
        use: 'sig',
        kid: s.material.kid,
        n: s.material.publicJwk.n,
        e: s.material.publicJwk.e,
        issuer,
      })),
    };
  }
}
