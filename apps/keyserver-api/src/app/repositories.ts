import type { FactoryProvider } from '@nestjs/common';
import { AuditRepository } from '@keyserver/data-access';
import { DEPS, type ApiDeps } from './tokens';

/**
 * The repositories as Nest providers, built once at the composition root from the database handle main.ts made:
 * services list the repositories they need in their constructors and never build one themselves.
 */
export const repositoryProviders: FactoryProvider[] = [
  { provide: AuditRepository, useFactory: (d: ApiDeps) => new AuditRepository(d.db), inject: [DEPS] },
];
