import { bootStep, runOrExit } from '@keyserver/config';
import { exitOnSignals, startMetricsServer } from '@keyserver/observability';
import { createKeyclientApp } from './app/create-keyclient-app';
import { loadKeyclientConfig } from './config/keyclient-config';

void runOrExit('keyclient', async () => {
  const config = loadKeyclientConfig(process.env);
  const keyclient = await createKeyclientApp(config);
  const { app, context } = keyclient;
  await app.listen(config.port, config.host);
  context.log.info({ event: 'listening', host: config.host, port: config.port, publicUrl: config.publicOrigin }, 'keyclient listening');
  const m = config.metrics;
  const registry = keyclient.metrics;
  const metricsServer =
    m && registry
      ? await bootStep(`cannot listen for metrics on METRICS_HOST ${m.host} METRICS_PORT ${m.port}`, () => startMetricsServer(m, registry, context.log))
      : undefined;
  exitOnSignals(context.log, async () => {
    await metricsServer?.close();
    await keyclient.close();
  });
});
