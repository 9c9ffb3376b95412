import { keepIdleConnections, runOrExit } from '@keyserver/config';
import { createKeyclientApp } from './app/create-keyclient-app';
import { loadKeyclientConfig } from './config/keyclient-config';

void runOrExit('keyclient', async () => {
  const config = loadKeyclientConfig(process.env);
  const { app, context } = await createKeyclientApp(config);
  keepIdleConnections(app.getHttpServer());
  await app.listen(config.port, config.host);
  context.log.info({ event: 'listening', host: config.host, port: config.port, publicUrl: config.publicOrigin }, 'keyclient listening');
});
