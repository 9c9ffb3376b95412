// HA tests (issue 19, docs/scaling.md): the bed of `npm run ha:up` (etcd, 3 PostgreSQL nodes under Patroni with
// synchronous replication, HAProxy, 2 API replicas, the keyclient) started per suite on free loopback ports; kill -9
// of the primary node, switchover, API replica crash and rolling restart under load. About 2.5-3.5 minutes on 2 cores,
// so not part of `npm test`. Run: npm run test:ha  (after the build of keyserver-api keyclient entra-emulator admin-spa).
module.exports = {
  displayName: 'keyserver-ha',
  preset: '../../jest.preset.js',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/ha/**/*.ha.ts'],
  testTimeout: 300_000,
  coverageDirectory: '../../coverage/apps/keyserver-ha',
};
