import { BoundedLabel, methodLabel, statusLabel } from './bounded-label';

describe(BoundedLabel.name, () => {
  it('labels only values learned from a trusted source; a caller-supplied value is _other', () => {
    const keys = new BoundedLabel(10);
    keys.learnAll(['fw-2026', 'ca-device']);
    expect(keys.of('fw-2026')).toBe('fw-2026');
    expect(keys.of('../../etc/passwd')).toBe('_other');
    expect(keys.of(null)).toBe('none');
    expect(keys.of('')).toBe('none');
  });

  it('never holds more than max values, whatever is offered', () => {
    const label = new BoundedLabel(3);
    for (let i = 0; i < 10_000; i++) label.admit(`code_${i}`);
    expect(label.size).toBe(3);
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) seen.add(label.of(`code_${i}`));
    expect([...seen].sort()).toEqual(['_other', 'code_0', 'code_1', 'code_2']);
  });

  it.each([
    ['fail a control character', 'fw\nkey'],
    ['fail a lone surrogate', 'fw\ud800'],
    ['fail longer than 128 characters', 'k'.repeat(129)],
    ['fail the overflow value itself', '_other'],
    ['fail outside a stricter pattern', 'Not_A_Code'],
  ])('%s: not learned', (_name, value) => {
    const label = new BoundedLabel(10, '_other', _name.includes('stricter') ? /^[a-z_]+$/ : undefined);
    expect(label.learn(value)).toBe(false);
    expect(label.of(value)).toBe('_other');
  });

  it.each([
    ['ok unicode', 'clé-firmware'],
    ['ok 128 characters', 'k'.repeat(128)],
  ])('%s: learned', (_name, value) => {
    expect(new BoundedLabel(1).admit(value)).toBe(value);
  });
});

describe(methodLabel.name, () => {
  it.each([
    ['GET', 'GET'],
    ['PATCH', 'PATCH'],
    ['get', 'other'],
    ['PROPFIND', 'other'],
    [undefined, 'other'],
  ])('%s -> %s', (method, label) => expect(methodLabel(method)).toBe(label));
});

describe(statusLabel.name, () => {
  it.each([
    [200, '200'],
    [599, '599'],
    [99, 'other'],
    [600, 'other'],
    [Number.NaN, 'other'],
  ])('%s -> %s', (status, label) => expect(statusLabel(status)).toBe(label));
});
