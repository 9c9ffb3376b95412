import { SealedBox } from './sealed-box';

describe(SealedBox.name, () => {
  const key = Buffer.alloc(32, 1);

  it('round-trips a value under the same purpose and associated data', () => {
    const box = new SealedBox(key, 'p');
    expect(box.openJson(box.sealJson({ a: 1 }, 'sid-1'), 'sid-1')).toEqual({ a: 1 });
  });

  it('refuses a box moved to another session (associated data)', () => {
    const box = new SealedBox(key, 'p');
    expect(box.open(box.seal(Buffer.from('x'), 'sid-1'), 'sid-2')).toBeNull();
  });

  it('refuses a box sealed for another purpose', () => {
    const sealed = new SealedBox(key, 'tokens').seal(Buffer.from('x'), 'a');
    expect(new SealedBox(key, 'transaction').open(sealed, 'a')).toBeNull();
  });

  it('refuses a tampered box', () => {
    const box = new SealedBox(key, 'p');
    const sealed = box.seal(Buffer.from('hello'), 'a');
    sealed[sealed.length - 1] ^= 1;
    expect(box.open(sealed, 'a')).toBeNull();
  });

  it('does not leak the plaintext and uses a fresh IV each time', () => {
    const box = new SealedBox(key, 'p');
    const a = box.seal(Buffer.from('secret-token'), 'a');
    const b = box.seal(Buffer.from('secret-token'), 'a');
    expect(a.equals(b)).toBe(false);
    expect(a.includes(Buffer.from('secret-token'))).toBe(false);
  });
});
