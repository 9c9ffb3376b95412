import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * AES-256-GCM with a purpose-bound key (HKDF-SHA256 from the master key) and caller-chosen
 * associated data, so a ciphertext made for one purpose or one session cannot be replayed in another.
 * Layout: version(1) | iv(12) | tag(16) | ciphertext.
 */
export class SealedBox {
  private readonly key: Buffer;

  constructor(masterKey: Buffer, purpose: string) {
    if (masterKey.length !== 32) throw new RangeError('master key must be 32 bytes');
    this.key = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), `keyserver-keyclient:${purpose}`, 32));
  }

  seal(plaintext: Buffer, aad: string): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
  }

  /** The plaintext, or null when the box is malformed, tampered with or sealed for other associated data. */
  open(box: Buffer, aad: string): Buffer | null {
    if (box.length < 1 + IV_BYTES + TAG_BYTES || box[0] !== VERSION) return null;
    const iv = box.subarray(1, 1 + IV_BYTES);
    const tag = box.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, iv);
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(box.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
    } catch {
      return null;
    }
  }

  sealJson(value: unknown, aad: string): Buffer {
    return this.seal(Buffer.from(JSON.stringify(value), 'utf8'), aad);
  }

  openJson<T>(box: Buffer, aad: string): T | null {
    const plain = this.open(box, aad);
    if (!plain) return null;
    try {
      return JSON.parse(plain.toString('utf8')) as T;
    } catch {
      return null;
    }
  }
}
