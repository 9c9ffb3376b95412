// The benchmark's fixed-arrival-rate client (the half-rate cell; wrk cannot send at a fixed rate): its own small
// process, raw keep-alive sockets and request bytes built once, so the client's own garbage collection and event loop
// stay out of the latencies it measures. In the bench process on node:http, its scavenges took 11-22 ms and promoted
// megabytes (issue 20, docs/benchmarks.md): slow answers that were the client's.
//
// stdin: JSON { host, port, path, token, bodies: [base64], rate, warmupSeconds, seconds }.
// stdout: one JSON line with, per request in due order,
// the latency from its due time (ms, NaN if it failed), its HTTP status (0 if none) and how late it was sent (ms);
// endMs: when the last answer came, from the first due time.
'use strict';
const net = require('node:net');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => run(JSON.parse(input)));

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:\s*(\d+)/i;

function run(o) {
  const requests = o.bodies.map((b) => {
    const body = Buffer.from(b, 'base64');
    const head = `POST ${o.path} HTTP/1.1\r\nHost: ${o.host}:${o.port}\r\nAuthorization: Bearer ${o.token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, 'latin1'), body]);
  });
  const warmup = Math.floor(o.rate * o.warmupSeconds);
  const total = warmup + Math.floor(o.rate * o.seconds);
  const latency = new Float64Array(total).fill(NaN);
  const lag = new Float64Array(total);
  const status = new Uint16Array(total);
  const interval = 1000 / o.rate;
  const start = performance.now() + 20;
  const idle = [];
  let answered = 0;
  let next = 0;

  // One connection: its socket, the request it waits for (-1: none) and the answer's bytes so far.
  const settle = (c, code) => {
    const i = c.slot;
    if (i < 0) return;
    c.slot = -1;
    status[i] = code;
    if (code > 0) latency[i] = performance.now() - (start + i * interval);
    if (++answered === total) finish();
  };
  const connect = () => {
    const c = { socket: net.connect(o.port, o.host), slot: -1, buf: null };
    c.socket.setNoDelay(true);
    c.socket.on('data', (chunk) => {
      c.buf = c.buf ? Buffer.concat([c.buf, chunk]) : chunk;
      const end = c.buf.indexOf(HEADER_END);
      if (end < 0) return;
      const m = CONTENT_LENGTH.exec(c.buf.latin1Slice(0, end));
      if (!m) return void c.socket.destroy();
      if (c.buf.length < end + 4 + Number(m[1])) return;
      const code = Number(c.buf.latin1Slice(9, 12));
      c.buf = null;
      settle(c, code);
      idle.push(c);
    });
    const broken = () => {
      settle(c, 0);
      const at = idle.indexOf(c);
      if (at >= 0) idle.splice(at, 1);
    };
    c.socket.on('error', broken);
    c.socket.on('close', broken);
    return c;
  };
  const tick = () => {
    const now = performance.now();
    for (; next < total && start + next * interval <= now + 0.5; next++) {
      const c = idle.pop() ?? connect();
      c.slot = next;
      lag[next] = performance.now() - (start + next * interval);
      c.socket.write(requests[next % requests.length]);
    }
    if (next < total) setTimeout(tick, Math.max(0, start + next * interval - performance.now() - 0.5));
  };
  function finish() {
    const wall = Date.now() - performance.now();
    process.stdout.write(
      `${JSON.stringify({ warmup, startWall: Math.round(wall + start), endMs: performance.now() - start, latency: Array.from(latency), status: Array.from(status), lag: Array.from(lag) })}\n`,
      () => process.exit(0),
    );
  }
  setTimeout(tick, 20);
}
