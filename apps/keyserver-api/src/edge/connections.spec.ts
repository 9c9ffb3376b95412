import fc from 'fast-check';
import { clientKey, descriptorWarning } from './connections';

describe(clientKey.name, () => {
  it.each([
    ['ok an IPv4 address is itself', '203.0.113.7', '203.0.113.7'],
    ['ok an IPv4-mapped IPv6 address is the IPv4 address (a dual-stack listener)', '::ffff:203.0.113.7', '203.0.113.7'],
    ['ok an IPv6 address is its /64', '2001:db8:1:2:a:b:c:d', '2001:db8:1:2::/64'],
    ['ok a compressed IPv6 address is expanded first', '2001:db8::1', '2001:db8:0:0::/64'],
    ['ok leading zeros and case do not make another client', '2001:0DB8:0001:0002::ff', '2001:db8:1:2::/64'],
    ['ok a zone id is dropped', 'fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['ok IPv6 loopback', '::1', '0:0:0:0::/64'],
    ['ok no address (a socket already gone) is one client', undefined, 'unknown'],
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
});

describe(descriptorWarning.name, () => {
  const limits = (soft: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax processes             62987                62987                processes\nMax open files            ${soft}              1048576              files\n`;
  it.each([
    ['ok a container default far above the limit', limits('1048576'), 4096, false],
    ['ok unlimited', limits('unlimited'), 4096, false],
    ['ok no such line (not Linux)', 'nothing here', 4096, false],
    ['fail the classic 1024 under the default limit', limits('1024'), 4096, true],
    ['fail room for the connections but not for the rest', limits('4200'), 4096, true],
  ])('%s', (_n, text, max, warned) => {
    expect(descriptorWarning(max, text) !== undefined).toBe(warned);
  });
});
