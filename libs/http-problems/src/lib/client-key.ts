import { isIPv4, isIPv6 } from 'node:net';

/** The eight 16-bit groups of a valid IPv6 text (zone id already dropped): `::` expanded, a dotted tail as two groups. */
function ipv6Groups(text: string): number[] {
  let a = text;
  const dot = a.lastIndexOf(':') + 1;
  if (a.includes('.', dot)) {
    const [b0, b1, b2, b3] = a.slice(dot).split('.').map(Number);
    a = `${a.slice(0, dot)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const part = (s: string) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const gap = a.indexOf('::');
  if (gap < 0) return part(a);
  const head = part(a.slice(0, gap));
  const tail = part(a.slice(gap + 2));
  return [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/**
 * What counts as one client, everywhere the API keys by caller address (the connection limits, the refusal rate
 * limits, the bounded refusal audit; ADR 0011 addendum "one client"): an IPv4 address; an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, however written: a dual-stack listener) is the IPv4 address; any other IPv6 address is its /64
 * (one subscriber, one host, holds a whole /64 and picks any address in it: counting single addresses would count
 * nothing). Every spelling of an address (zero compression, leading zeros, case, a zone id, a dotted tail) is one
 * key. Text that is no address (never a socket's) is `unknown`, one client, not a key per spelling.
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  if (isIPv4(address)) return address;
  const zone = address.indexOf('%');
  const a = (zone < 0 ? address : address.slice(0, zone)).toLowerCase();
  if (!isIPv6(a)) return 'unknown';
  const g = ipv6Groups(a);
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `${g[6] >> 8}.${g[6] & 0xff}.${g[7] >> 8}.${g[7] & 0xff}`;
  }
  return `${g[0].toString(16)}:${g[1].toString(16)}:${g[2].toString(16)}:${g[3].toString(16)}::/64`;
}
