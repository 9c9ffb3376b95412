import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

// ADR 0045 addenda (2026-12-13): a sign order's or certificate's finish holds the audit append lock while the
// foreign-key checks of its rows take FOR KEY SHARE on their operation, operation_key, key and subject rows. A
// transaction that holds one of those rows FOR UPDATE and then waits for the append lock closes a cycle. So no
// repository takes FOR UPDATE on them, except without waiting (NOWAIT, SKIP LOCKED). This guard keeps it so for code
// not yet written; row-locks.repository.spec.ts proves the cycles themselves.
const REFERENCED_BY_THE_SIGN_PATH = new Set(['operation', 'operation_key', 'key', 'subject']);

/** Each `FOR UPDATE` in a SQL text (a template literal) that waits, with the table of the nearest FROM before it. */
function waitingForUpdateLocks(source: string): { table: string; line: number }[] {
  const found: { table: string; line: number }[] = [];
  for (const m of source.matchAll(/`[^`]*`/g)) {
    const text = m[0];
    for (const lock of text.matchAll(/\bFOR UPDATE\b(?!\s+(?:NOWAIT|SKIP LOCKED))(?:\s+OF\s+(\w+))?/g)) {
      const before = text.slice(0, lock.index);
      const froms = [...before.matchAll(/\bFROM\s+"(\w+)"(?:\s+(?:AS\s+)?(\w+))?/g)];
      const alias = lock[1];
      const from = alias ? froms.filter((f) => f[2] === alias || f[1] === alias).pop() : froms.pop();
      if (!from) continue;
      found.push({ table: from[1], line: source.slice(0, (m.index ?? 0) + (lock.index ?? 0)).split('\n').length });
    }
  }
  return found;
}

describe('row lock modes of the repositories', () => {
  it.each([
    ['fail FOR UPDATE of an operation', 'await tx.$queryRaw`SELECT "id" FROM "operation" WHERE "id" = ${id}::uuid FOR UPDATE`;', ['operation']],
    ['fail FOR UPDATE OF the aliased operation', '`SELECT o."id" FROM "operation" o WHERE o."state" = 1 ORDER BY o."id" FOR UPDATE OF o`', ['operation']],
    ['ok FOR NO KEY UPDATE of a key', '`SELECT "id" FROM "key" WHERE "keyid" = ${k} FOR NO KEY UPDATE`', []],
    ['ok FOR UPDATE NOWAIT of a key', '`SELECT 1 FROM "key" WHERE "id" = ${id}::uuid FOR UPDATE NOWAIT`', []],
    ['ok FOR UPDATE SKIP LOCKED of reservations', '`SELECT "id" FROM "usage_reservation" WHERE true LIMIT 5 FOR UPDATE SKIP LOCKED`', []],
    ['ok FOR UPDATE of a role', '`SELECT "id" FROM "role" WHERE "name" = ${n} FOR UPDATE`', []],
  ])('%s', (_n, source, tables) => {
    expect(waitingForUpdateLocks(source).map((l) => l.table).filter((t) => REFERENCED_BY_THE_SIGN_PATH.has(t))).toEqual(tables);
  });

  it('no repository waits for FOR UPDATE on a row the sign path references', () => {
    const dir = __dirname;
    const offending = readdirSync(dir)
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts'))
      .flatMap((f) => waitingForUpdateLocks(readFileSync(join(dir, f), 'utf8')).map((l) => ({ file: f, ...l })))
      .filter((l) => REFERENCED_BY_THE_SIGN_PATH.has(l.table));
    expect(offending).toEqual([]);
  });
});
