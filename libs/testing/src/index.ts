export {
  clientCredentialsToken,
  composeCommand,
  createDatabase,
  type DemoFacts,
  demoTenant,
  type DemoTenant,
  freePort,
  platformEnv,
  type PlatformEnv,
  repoRoot,
  type RunningPlatform,
  runStep,
  type Service,
  startPlatform,
  startService,
  waitForOk,
} from './lib/platform';
export { createTestDatabase } from './lib/test-database';
