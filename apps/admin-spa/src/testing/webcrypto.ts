import { webcrypto } from 'node:crypto';

/** jsdom has no `crypto.subtle` (browsers have it in a secure context): Node's Web Crypto stands in for it. */
export function provideWebCrypto(): void {
  if (!globalThis.crypto?.subtle) Object.defineProperty(globalThis, 'crypto', { value: webcrypto, configurable: true });
}
