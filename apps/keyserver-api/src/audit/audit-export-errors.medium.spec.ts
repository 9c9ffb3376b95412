import type { AddressInfo } from 'node:net';
import { Module, type CanActivate, type ExecutionContext, type INestApplication } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Client } from 'pg';
import pino from 'pino';
import { Permission } from '@keyserver/api-contract';
import { ACTOR_KEY, type Actor } from '@keyserver/authz';
import { AuditRepository, createDb, type AuditEvent, type Db } from '@keyserver/data-access';
import { createTestDatabase, type TempDatabase } from '@keyserver/data-access/testing';
import { ProblemDetailsFilter } from '@keyserver/http-problems';
import { Audited } from '../common/audited';
import { ApiHttpAdapter } from '../edge/http-server';
import { mediumActor } from '../testing/medium';
import { AuditController } from './audit.controller';
import { AuditService } from './audit.service';

/** Lock wait of the API's pool here: a held table lock fails the statement fast (55P03, 503 database_unavailable). */
const LOCK_TIMEOUT_MS = 300;

/**
 * The real repository, whose first entry batch meets a real fault: another session holds `audit_event` in ACCESS
 * EXCLUSIVE mode while that one statement runs (after the snapshot, before any byte of the export), so PostgreSQL
 * refuses it at lock_timeout. The lock is released as soon as the statement failed.
 */
class FirstBatchLocked extends AuditRepository {
  constructor(db: Db, private readonly url: string) {
    super(db);
  }

  override async entriesBetween(after: string | null, through: string, limit: number): Promise<AuditEvent[]> {
    if (after !== null) return super.entriesBetween(after, through, limit);
    const holder = new Client({ connectionString: this.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE audit_event IN ACCESS EXCLUSIVE MODE');
      return await super.entriesBetween(after, through, limit);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  }
}

describe(`${AuditController.name} export before its first byte (medium: real PostgreSQL, real HTTP)`, () => {
  let tmp: TempDatabase;
  let db: Db;
  let app: INestApplication;
  let base: string;
  let auditor: Actor;

  beforeAll(async () => {
    tmp = await createTestDatabase('ks_api_medium_audit_export_errors');
    db = createDb(tmp.url, { lockTimeoutMs: LOCK_TIMEOUT_MS });
    auditor = await mediumActor(db, { natures: ['AUDITOR'] }, Permission.AuditRead);
    const audit = new FirstBatchLocked(db, tmp.url);
    for (let i = 0; i < 3; i++) await audit.append({ action: 'key.update', outcome: 'SUCCESS', requestId: `req-seed-${i}` });
    // The guard of the app (AuthzModule) resolves the caller from a token; here every request is the auditor's.
    const caller: CanActivate = {
      canActivate(ctx: ExecutionContext) {
        (ctx.switchToHttp().getRequest<Record<string, unknown>>())[ACTOR_KEY] = auditor;
        return true;
      },
    };
    @Module({
      controllers: [AuditController],
      providers: [
        { provide: AuditRepository, useValue: audit },
        { provide: Audited, useValue: new Audited(audit) },
        AuditService,
        { provide: APP_FILTER, useClass: ProblemDetailsFilter },
        { provide: APP_GUARD, useValue: caller },
      ],
    })
    class AuditExportTestModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AuditExportTestModule] }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(new ApiHttpAdapter({ logger: pino({ level: 'silent' }) }), { logger: false });
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await app?.close();
    await db?.close();
    await tmp?.drop();
  });

  it('fail the first batch refused by the database before any byte went out: problem+json 503 database_unavailable, audited FAILED', async () => {
    const res = await fetch(`${base}/api/v1/audit/export`, { headers: { 'x-request-id': 'req-export-first-batch' } });
    const body = await res.text();
    expect([res.status, res.headers.get('content-type'), (JSON.parse(body) as { code?: string }).code]).toEqual([
      503,
      'application/problem+json; charset=utf-8',
      'database_unavailable',
    ]);
    const events = (await new AuditRepository(db).list({ action: 'audit.export', actorOid: auditor.oid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['FAILED', 'database_unavailable']]);
  });
});
