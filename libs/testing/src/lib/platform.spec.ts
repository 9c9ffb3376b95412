import { freePort } from './platform';

describe(freePort.name, () => {
  it('never hands out one port twice in a process, even when the kernel offers it again', async () => {
    const ports: number[] = [];
    for (let i = 0; i < 300; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
  });
});
