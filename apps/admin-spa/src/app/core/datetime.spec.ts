import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { formatDate, formatDateTime, formatRelative, formatSpan, isoInstant, localZoneLabel } from './datetime';

describe('datetime policy', () => {
  const END_OF_2099 = '2099-12-31T22:59:00.000Z';

  it.each([
    ['ok en-US in New York: month name, four-digit year, zone named', 'en-US', 'America/New_York', 'Dec 31, 2099, 05:59 PM EST'],
    ['ok de-DE in Berlin: German order and names', 'de-DE', 'Europe/Berlin', '31. Dez. 2099, 23:59 MEZ'],
    ['ok en-GB in UTC', 'en-GB', 'UTC', '31 Dec 2099, 22:59 UTC'],
  ])('%s', (_name, locale, timeZone, expected) => {
    expect(formatDateTime(END_OF_2099, { locale, timeZone })).toBe(expected);
  });

  it('never shows a two-digit year', () => {
    for (const locale of ['en-US', 'de-DE', 'fr-FR', 'ja-JP', 'en-GB']) {
      expect(formatDateTime(END_OF_2099, { locale, timeZone: 'UTC' })).toContain('2099');
      expect(formatDate(END_OF_2099, { locale, timeZone: 'UTC' })).toContain('2099');
    }
  });

  it('gives the ISO 8601 instant in UTC for hover and copy', () => {
    expect(isoInstant('2026-12-05T14:03:00+01:00')).toBe('2026-12-05T13:03:00.000Z');
  });

  it.each([
    ['fail empty', ''],
    ['fail null', null],
    ['fail not a date', 'yesterday'],
  ])('%s: shows nothing rather than "Invalid Date"', (_name, value) => {
    expect(formatDateTime(value)).toBe('');
    expect(isoInstant(value)).toBe('');
    expect(formatRelative(value)).toBe('');
  });

  it.each([
    ['in 3 hours', '2026-12-05T15:00:00Z', 'in 3 hours'],
    ['5 minutes ago', '2026-12-05T11:55:00Z', '5 minutes ago'],
    ['tomorrow', '2026-12-06T12:00:00Z', 'tomorrow'],
    ['now', '2026-12-05T12:00:20Z', 'this minute'],
  ])('says %s relative to now', (_name, at, expected) => {
    expect(formatRelative(at, new Date('2026-12-05T12:00:00Z'), { locale: 'en-US' })).toBe(expected);
  });

  it.each([
    [7 * 86_400_000, '7 days'],
    [30 * 3_600_000, '1 day 6 hours'],
    [45 * 60_000, '45 minutes'],
    [20_000, 'less than a minute'],
  ])('reads a span of %d ms as "%s"', (ms, expected) => {
    expect(formatSpan(ms)).toBe(expected);
  });

  it('names the zone and its offset next to date inputs', () => {
    expect(localZoneLabel(new Date('2026-12-05T12:00:00Z'), { timeZone: 'Europe/Berlin' })).toBe('Europe/Berlin (UTC+01:00)');
    expect(localZoneLabel(new Date('2026-07-05T12:00:00Z'), { timeZone: 'America/New_York' })).toBe('America/New_York (UTC−04:00)');
    expect(localZoneLabel(new Date('2026-07-05T12:00:00Z'), { timeZone: 'Asia/Kolkata' })).toBe('Asia/Kolkata (UTC+05:30)');
  });

  it('is the only way a screen formats a date: no Angular date pipe, no toLocale*String in the console\'s code', () => {
    const app = join(__dirname, '..');
    const files = (readdirSync(app, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts'));
    expect(files.length).toBeGreaterThan(20);
    const offenders = files.filter((f) => /\bDatePipe\b|\|\s*date\b|\.toLocale(?:Date|Time)?String\(/.test(readFileSync(join(app, f), 'utf8')));
    expect(offenders).toEqual([]);
  });
});
