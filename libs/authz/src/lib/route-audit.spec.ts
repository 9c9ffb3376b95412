import { Controller, Get, INestApplication, Module, Post } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, NestFactory } from '@nestjs/core';
import { request as httpRequest } from 'node:http';
import type { EntraTokenValidator } from '@keyserver/entra-token';
import { EntraAuthGuard } from './auth.guard';
import { AuthzError } from './authz-error';
import { AuthzModule } from './authz.module';
import { Public, RequirePermission } from './decorators';
import { Permission } from './permissions';
import { ProblemDetailsFilter } from '@keyserver/http-problems';
import { definePublicRoutes, PublicRoute } from './public-routes';
import { auditRoutes, RouteAuthorizationAudit } from './route-audit';
import { SUBJECT_RESOLVER } from './subject';
import { ENTRA_TOKEN_VALIDATOR } from './tokens';

// The validator is never reached in these tests: boot fails first, or the route is refused before authentication.
const unreachableValidator: EntraTokenValidator = {
  authenticate: () => Promise.reject(new Error('validator must not be called')),
  validateToken: () => Promise.reject(new Error('validator must not be called')),
  refreshKeys: () => Promise.resolve(),
  keyStats: () => ({ fetches: 0, failures: 0, kids: [], fetchedAt: null }),
};
const noResolver = { resolve: () => Promise.reject(new Error('resolver must not be called')) };

@Controller('status')
class GoodController {
  @Public()
  @Get()
  status(): string {
    return 'ok';
  }
  @RequirePermission(Permission.KeysRead)
  @Get('keys')
  keys(): string {
    return 'keys';
  }
}

@Controller('naked')
class NakedController {
  @Get()
  naked(): string {
    return 'should never be served';
  }
}

@Controller('both')
class BothController {
  @Public()
  @RequirePermission(Permission.KeysRead)
  @Post()
  both(): string {
    return 'x';
  }
}

@Controller('bogus')
class BogusPermissionController {
  @RequirePermission('keys:everything' as Permission)
  @Get()
  bogus(): string {
    return 'x';
  }
}

async function boot(controllers: Array<new () => unknown>, publicRoutes: readonly PublicRoute[]): Promise<INestApplication> {
  @Module({
    imports: [AuthzModule.forRoot({ publicRoutes, validator: { useValue: unreachableValidator }, subjectResolver: { useValue: noResolver } })],
    controllers,
  })
  class M {}
  const app = await NestFactory.create(M, { logger: false, abortOnError: false });
  await app.init();
  return app;
}

async function bootError(controllers: Array<new () => unknown>, publicRoutes: readonly PublicRoute[]): Promise<AuthzError> {
  try {
    const app = await boot(controllers, publicRoutes);
    await app.close();
  } catch (e) {
    if (e instanceof AuthzError) return e;
    throw e;
  }
  throw new Error('boot succeeded');
}

const STATUS_PUBLIC = definePublicRoutes([{ method: 'GET', path: '/status', reason: 'status probe' }]);

describe(RouteAuthorizationAudit.name, () => {
  it('boots when every route is decorated and the registry matches', async () => {
    const app = await boot([GoodController], STATUS_PUBLIC);
    await app.close();
  });

  it('fails the boot for a route without a decorator', async () => {
    const e = await bootError([GoodController, NakedController], STATUS_PUBLIC);
    expect(e.code).toBe('route_authorization_misconfigured');
    expect(e.detail).toContain('NakedController.naked');
  });

  it('fails the boot for a @Public route missing from the registry', async () => {
    const e = await bootError([GoodController], []);
    expect(e.code).toBe('route_authorization_misconfigured');
    expect(e.detail).toContain('not in the public-route registry');
  });

  it('fails the boot for a registry entry without a @Public route', async () => {
    const e = await bootError([GoodController], [...STATUS_PUBLIC, { method: 'GET', path: '/metrics', reason: 'scrape' }]);
    expect(e.detail).toContain('GET /metrics');
  });

  it('fails the boot for a route that is both public and protected', async () => {
    const e = await bootError([GoodController, BothController], STATUS_PUBLIC);
    expect(e.detail).toContain('both @Public and @RequirePermission');
  });

  it('fails the boot for an unknown permission', async () => {
    const e = await bootError([GoodController, BogusPermissionController], STATUS_PUBLIC);
    expect(e.detail).toContain('unknown permission');
  });

  it('ok a registry entry served at the edge (no controller route)', () => {
    expect(auditRoutes([], [{ method: 'GET', path: '/healthz', reason: 'liveness', edge: true }])).toEqual([]);
  });

  it('fails an edge entry that a controller serves too', () => {
    const route = { controller: 'C', handler: 'h', method: 'GET', path: '/healthz', isPublic: true, permission: undefined };
    expect(auditRoutes([route], [{ method: 'GET', path: '/healthz', reason: 'liveness', edge: true }])).toEqual(
      expect.arrayContaining(['registry serves GET /healthz at the edge but a controller serves it too']),
    );
  });

  it('fails a registry entry without a reason', () => {
    expect(auditRoutes([], [{ method: 'GET', path: '/x', reason: ' ' }])).toEqual(
      expect.arrayContaining(['public route GET /x has no reason']),
    );
  });
});

describe('deny by default at runtime', () => {
  it('refuses an undecorated route with 403 even when the boot check is absent', async () => {
    @Module({
      controllers: [NakedController],
      providers: [
        { provide: ENTRA_TOKEN_VALIDATOR, useValue: unreachableValidator },
        { provide: SUBJECT_RESOLVER, useValue: noResolver },
        { provide: APP_GUARD, useClass: EntraAuthGuard },
        { provide: APP_FILTER, useClass: ProblemDetailsFilter },
      ],
    })
    class NoAuditModule {}
    const app = await NestFactory.create(NoAuditModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    try {
      const port = (app.getHttpServer().address() as { port: number }).port;
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        httpRequest(`http://127.0.0.1:${port}/naked`, (r) => {
          let body = '';
          r.on('data', (c: Buffer) => (body += c.toString()));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
        })
          .on('error', reject)
          .end();
      });
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body)).toMatchObject({ code: 'route_not_authorized' });
      expect(res.body).not.toContain('should never be served');
    } finally {
      await app.close();
    }
  });
});
