import { connect } from 'node:net';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';

/** Resolves with 'connected' or the socket error code (ECONNREFUSED when nothing listens on that address). */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.setTimeout(3000, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('keyclient KEYCLIENT_HOST', () => {
  let p: RunningPlatform;

  beforeAll(async () => {
    p = await startPlatform({ keyclient: true });
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('listens only on the configured interface: 127.0.0.1 answers, another address of the loopback device is refused', async () => {
    // The whole of 127/8 reaches the loopback device on Linux, so a server bound to every interface
    // (the keyclient before it read KEYCLIENT_HOST) would accept on 127.0.0.2 as well.
    expect(p.env.keyclient['KEYCLIENT_HOST']).toBe('127.0.0.1');
    const port = Number(p.env.keyclient['KEYCLIENT_PORT']);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
    expect(await tryConnect('127.0.0.1', port)).toBe('connected');
    expect(await tryConnect('127.0.0.2', port)).toBe('ECONNREFUSED');
  });
});
