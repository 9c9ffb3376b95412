// Run by db.spec.ts in a process of its own (bundled with esbuild): queries through db.ts under load while
// v8.GCProfiler watches what the young-generation GCs (scavenges) move to the old generation. Alone in its process,
// nothing else (the test runner, coverage, other tests) adds to or disturbs what survives (ADR 0035).
// argv: database URL, transactions per lane. stdout: JSON { queries, promoted, scavenges }.
import { GCProfiler } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createDb, sqlQuery, sqlTransaction } from '../lib/db';

type Space = { spaceName: string; spaceUsedSize: number };
const oldSpace = (s: { heapSpaceStatistics: Space[] }) => s.heapSpaceStatistics.find((x) => x.spaceName === 'old_space')?.spaceUsedSize ?? 0;

async function main(): Promise<void> {
  const [url, perLaneArg] = process.argv.slice(2);
  const perLane = Number(perLaneArg);
  const db = createDb(url, { poolSize: 4 });
  const lane = async (n: number) => {
    for (let i = 0; i < n; i++) await sqlTransaction(db, (c) => sqlQuery(c, 'SELECT $1::text AS a, generate_series(1, 3) AS b', ['x'.repeat(100)]));
  };
  await Promise.all([1, 2, 3, 4].map(() => lane(200)));
  // What the warm-up left (modules, compiled code, the pool) goes to the old generation before counting.
  (runInNewContext('gc') as () => void)();
  const profiler = new GCProfiler();
  profiler.start();
  await Promise.all([1, 2, 3, 4].map(() => lane(perLane)));
  const scavenges = (profiler.stop()?.statistics ?? []).filter((s) => s.gcType === 'Scavenge');
  // The first scavenge after a full GC promotes nothing (a survivor is promoted at its second scavenge).
  const promoted = scavenges.slice(1).reduce((n, s) => n + Math.max(0, oldSpace(s.afterGC) - oldSpace(s.beforeGC)), 0);
  await db.close();
  process.stdout.write(JSON.stringify({ queries: 4 * perLane * 3, promoted, scavenges: scavenges.length }));
}

void main().catch((err: unknown) => {
  process.stderr.write(String(err instanceof Error ? err.stack : err));
  process.exit(1);
});
