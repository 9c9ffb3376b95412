import { Registry } from 'prom-client';
import { connectionMetrics } from './connection-metrics';

describe(connectionMetrics.name, () => {
  it('ok every reason is exported from the start at 0, a refusal counts under its reason, open connections are read when scraped', async () => {
    const registry = new Registry();
    let open = 3;
    const refused = connectionMetrics(registry, () => open);
    expect(await registry.metrics()).toMatch(/^http_connections_refused_total\{reason="shutdown"\} 0$/m);
    refused('per_ip');
    refused('per_ip');
    refused('total');
    open = 7;
    const text = await registry.metrics();
    expect(text).toMatch(/^http_connections_refused_total\{reason="per_ip"\} 2$/m);
    expect(text).toMatch(/^http_connections_refused_total\{reason="total"\} 1$/m);
    expect(text).toMatch(/^http_connections_refused_total\{reason="shutdown"\} 0$/m);
    expect(text).toMatch(/^http_connections_open 7$/m);
  });
});
