import { effectiveState } from './operations.service';

describe(effectiveState.name, () => {
  const now = new Date('2026-01-01T12:00:00Z');
  const past = new Date('2026-01-01T11:59:59Z');
  const future = new Date('2026-01-01T12:00:01Z');

  it.each([
    ['ok requested in window', 'REQUESTED', future, 'REQUESTED'],
    ['ok approved in window', 'APPROVED', future, 'APPROVED'],
    ['ok requested past window is EXPIRED', 'REQUESTED', past, 'EXPIRED'],
    ['ok approved past window is EXPIRED', 'APPROVED', past, 'EXPIRED'],
    ['ok window ending now is EXPIRED', 'APPROVED', now, 'EXPIRED'],
    ['ok exhausted stays EXHAUSTED', 'EXHAUSTED', past, 'EXHAUSTED'],
    ['ok rejected stays REJECTED', 'REJECTED', past, 'REJECTED'],
    ['ok cancelled stays CANCELLED', 'CANCELLED', past, 'CANCELLED'],
  ] as const)('%s', (_n, state, validTo, expected) => {
    expect(effectiveState({ state, validTo }, now)).toBe(expected);
  });
});
