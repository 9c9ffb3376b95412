import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { clientKey } from './client-key';

/** An IPv6 address as eight 16-bit groups (the oracle: WHATWG URL's serializer of the same text). */
const groupsOf = (text: string): number[] => {
  const host = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const gap = host.indexOf('::');
  const part = (s: string) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  if (gap < 0) return part(host);
  const head = part(host.slice(0, gap));
  const tail = part(host.slice(gap + 2));
  return [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
};
const hex = (g: number) => g.toString(16);
/** Textual variants of one address: zero compression of any run of zero groups, leading zeros, case, a zone id. */
const variants = (groups: number[]): fc.Arbitrary<string> =>
  fc
    .record({
      pad: fc.boolean(),
      upper: fc.boolean(),
      zone: fc.constantFrom('', '%eth0', '%1', '%lo'),
      from: fc.nat(7),
      len: fc.integer({ min: 0, max: 8 }),
    })
    .map(({ pad, upper, zone, from, len }) => {
      const text = groups.map((g) => (pad ? g.toString(16).padStart(4, '0') : hex(g)));
      const run = groups.slice(from, from + len);
      let out = text.join(':');
      if (len > 0 && run.length === len && run.every((g) => g === 0)) {
        out = `${text.slice(0, from).join(':')}::${text.slice(from + len).join(':')}`;
      }
      return `${upper ? out.toUpperCase() : out}${zone}`;
    });

describe(clientKey.name, () => {
  it.each([
    ['ok an IPv4 address is itself', '203.0.113.7', '203.0.113.7'],
    ['ok an IPv4-mapped IPv6 address is the IPv4 address (a dual-stack listener)', '::ffff:203.0.113.7', '203.0.113.7'],
    ['ok an IPv4-mapped address in upper case', '::FFFF:203.0.113.7', '203.0.113.7'],
    ['ok an IPv4-mapped address written in full', '0:0:0:0:0:ffff:203.0.113.7', '203.0.113.7'],
    ['ok an IPv4-mapped address written in hex groups', '::ffff:cb00:7107', '203.0.113.7'],
    ['ok an IPv6 address is its /64', '2001:db8:1:2:a:b:c:d', '2001:db8:1:2::/64'],
    ['ok a compressed IPv6 address is expanded first', '2001:db8::1', '2001:db8:0:0::/64'],
    ['ok leading zeros and case do not make another client', '2001:0DB8:0001:0002::ff', '2001:db8:1:2::/64'],
    ['ok a zone id is dropped', 'fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['ok IPv6 loopback', '::1', '0:0:0:0::/64'],
    ['ok an embedded IPv4 tail counts as two groups', '1::2:3:4:5.6.7.8', '1:0:0:2::/64'],
    ['ok a NAT64 address is its /64 (the IPv4 host behind it is not trusted apart)', '64:ff9b::203.0.113.7', '64:ff9b:0:0::/64'],
    ['ok no address (a socket already gone) is one client', undefined, 'unknown'],
    ['fail text that is no address is one client, not a key of its own per spelling', 'not an address', 'unknown'],
  ])('%s', (_n, address, key) => {
    expect(clientKey(address)).toBe(key);
  });

  it('ok every address of one /64 is the same client, addresses of another /64 are not (property)', () => {
    const hextet = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
    const half = fc.tuple(hextet, hextet, hextet, hextet);
    fc.assert(
      fc.property(half, half, half, (prefix, a, b) => {
        const key = clientKey([...prefix, ...a].join(':'));
        expect(clientKey([...prefix, ...b].join(':'))).toBe(key);
        const other = [...prefix];
        other[3] = ((parseInt(other[3], 16) + 1) % 0x10000).toString(16);
        expect(clientKey([...other, ...a].join(':'))).not.toBe(key);
      }),
      { seed: 20261207, numRuns: 500 },
    );
  });

  it('ok every spelling of one address is one client: the key of any IPv6 text is the key of its canonical form (property)', () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        expect(isIPv6(text)).toBe(true);
        const g = groupsOf(text);
        const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
        const expected = mapped ? [g[6] >> 8, g[6] & 0xff, g[7] >> 8, g[7] & 0xff].join('.') : `${g.slice(0, 4).map(hex).join(':')}::/64`;
        expect(clientKey(text)).toBe(expected);
      }),
      { seed: 20261208, numRuns: 2_000 },
    );
  });

  it('ok compression, leading zeros, case and a zone id never make another client (property)', () => {
    const groups = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 });
    fc.assert(
      fc.property(
        groups.chain((g) => fc.tuple(fc.constant(g), variants(g), variants(g))),
        ([g, a, b]) => {
          expect(clientKey(a)).toBe(clientKey(b));
          expect(clientKey(a)).toBe(clientKey(g.map(hex).join(':')));
        },
      ),
      { seed: 20261209, numRuns: 2_000 },
    );
  });

  it('ok an IPv4 caller is one client whether a dual-stack socket shows it mapped or not (property)', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.constantFrom('::ffff:', '::FFFF:', '0:0:0:0:0:ffff:', '0000:0000:0000:0000:0000:FFFF:'), (v4, prefix) => {
        expect(clientKey(`${prefix}${v4}`)).toBe(clientKey(v4));
        expect(clientKey(v4)).toBe(v4);
      }),
      { seed: 20261210, numRuns: 500 },
    );
  });
});
