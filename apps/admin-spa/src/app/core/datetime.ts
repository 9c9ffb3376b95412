/**
 * The console's one date and time policy (docs: apps/admin-spa/README.md "Dates and times"):
 * - shown in the browser's locale and time zone, with the zone named, years always with four digits;
 * - the absolute ISO 8601 instant (UTC) on hover and when the text is copied;
 * - a relative hint ("in 3 hours", "5 minutes ago") where it helps a decision (windows, expiries).
 * `locale` and `timeZone` are parameters only so tests can pin them; the screens use the browser's.
 */
export interface DateTimeOptions {
  locale?: string;
  timeZone?: string;
}

const cache = new Map<string, Intl.DateTimeFormat>();

function formatter(kind: 'datetime' | 'date', o: DateTimeOptions): Intl.DateTimeFormat {
  const key = `${kind}|${o.locale ?? ''}|${o.timeZone ?? ''}`;
  let f = cache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(o.locale, {
      year: 'numeric',
      month: 'short',
      day: 'numeric',
      ...(kind === 'datetime' ? { hour: '2-digit', minute: '2-digit', timeZoneName: 'short' } : {}),
      timeZone: o.timeZone,
    } as Intl.DateTimeFormatOptions);
    cache.set(key, f);
  }
  return f;
}

function toDate(value: string | Date | null | undefined): Date | null {
  if (value === null || value === undefined || value === '') return null;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** "5 Dec 2026, 14:03 CET" (en-GB), "Dec 5, 2026, 02:03 PM EST" (en-US), "5. Dez. 2026, 14:03 MEZ" (de-DE). */
export function formatDateTime(value: string | Date | null | undefined, o: DateTimeOptions = {}): string {
  const d = toDate(value);
  return d ? formatter('datetime', o).format(d) : '';
}

/** A calendar date with a four-digit year ("31 Dec 2099"); for validity ends of certificates and keys. */
export function formatDate(value: string | Date | null | undefined, o: DateTimeOptions = {}): string {
  const d = toDate(value);
  return d ? formatter('date', o).format(d) : '';
}

/** The absolute instant, ISO 8601 in UTC ("2026-12-05T13:03:00.000Z"): the title and the copied text. */
export function isoInstant(value: string | Date | null | undefined): string {
  const d = toDate(value);
  return d ? d.toISOString() : '';
}

const UNITS: readonly [Intl.RelativeTimeFormatUnit, number][] = [
  ['year', 365 * 86_400_000],
  ['month', 30 * 86_400_000],
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
];

/** "in 3 hours", "5 minutes ago", "now": the largest whole unit, in the browser's language. */
export function formatRelative(value: string | Date | null | undefined, now: Date = new Date(), o: DateTimeOptions = {}): string {
  const d = toDate(value);
  if (!d) return '';
  const diff = d.getTime() - now.getTime();
  const rtf = new Intl.RelativeTimeFormat(o.locale, { numeric: 'auto' });
  for (const [unit, size] of UNITS) {
    if (Math.abs(diff) >= size) return rtf.format(Math.trunc(diff / size), unit);
  }
  return rtf.format(0, 'minute');
}

/** Milliseconds as the two largest units a person reads at a glance: "7 days", "1 day 6 hours", "45 minutes". */
export function formatSpan(ms: number): string {
  const parts: string[] = [];
  let rest = Math.max(0, Math.round(ms / 60_000));
  for (const [name, size] of [['day', 1440], ['hour', 60], ['minute', 1]] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 && parts.length < 2) parts.push(`${n} ${name}${n === 1 ? '' : 's'}`);
  }
  return parts.length ? parts.join(' ') : 'less than a minute';
}

/** The browser's time zone and its current UTC offset, e.g. "Europe/Berlin (UTC+01:00)"; shown next to date inputs. */
export function localZoneLabel(now: Date = new Date(), o: DateTimeOptions = {}): string {
  const zone = o.timeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  const offset = o.timeZone ? zoneOffsetMinutes(now, o.timeZone) : -now.getTimezoneOffset();
  const sign = offset < 0 ? '−' : '+';
  const abs = Math.abs(offset);
  return `${zone} (UTC${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')})`;
}

function zoneOffsetMinutes(at: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' }).formatToParts(at);
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'));
  return Math.round((asUtc - Math.floor(at.getTime() / 60_000) * 60_000) / 60_000);
}
