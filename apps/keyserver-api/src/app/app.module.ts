import { DynamicModule, Module } from '@nestjs/common';
import { AuthzModule } from '@keyserver/authz';
import { EDGE, EdgeRefusalObserver, edgeProviders, PrincipalLimitGate } from '../edge/edge';
import { AuditAuthEventSink, DbSubjectResolver } from '../auth/subject-resolver';
import { HealthController } from '../health/health.controller';
import { KeysController } from '../keys/keys.controller';
import { KeysService } from '../keys/keys.service';
import { OperationsController } from '../operations/operations.controller';
import { OperationsService } from '../operations/operations.service';
import { SignOrdersController } from '../signorders/sign-orders.controller';
import { SignOrderService } from '../signorders/sign-order.service';
import { CertificatesController } from '../certificates/certificates.controller';
import { CertificatesService } from '../certificates/certificates.service';
import { DeviceProfileController } from '../certificates/device-profile.controller';
import { DeviceProfileService } from '../certificates/device-profile.service';
import { CrlController } from '../crl/crl.controller';
import { CrlService } from '../crl/crl.service';
import { FirmwareController } from '../firmware/firmware.controller';
import { FirmwareService } from '../firmware/firmware.service';
import { OpenApiController } from './openapi.controller';
import { TsaController } from '../tsa/tsa.controller';
import { TsaService } from '../tsa/tsa.service';
import { SignatureTimestamps } from '../tsa/signature-timestamps';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { AdminSessionsController } from '../admin-sessions/admin-sessions.controller';
import { AdminSessionsService } from '../admin-sessions/admin-sessions.service';
import { SubjectsController } from '../subjects/subjects.controller';
import { SubjectsService } from '../subjects/subjects.service';
import { KeyAdminController } from '../key-admin/key-admin.controller';
import { KeyAdminService } from '../key-admin/key-admin.service';
import { KeyLifecycleController } from '../key-admin/key-lifecycle.controller';
import { KeyLifecycleService } from '../key-admin/key-lifecycle.service';
import { KeyLimitsController } from '../key-limits/key-limits.controller';
import { KeyLimitsService } from '../key-limits/key-limits.service';
import { AuditController } from '../audit/audit.controller';
import { AuditService } from '../audit/audit.service';
import { AuditSeals } from '../audit/audit-seal';
import { MeController } from '../me/me.controller';
import { MeService } from '../me/me.service';
import { NotificationsController } from '../notifications/notifications.controller';
import { NotificationsService } from '../notifications/notifications.service';
import { OPENAPI_DOCUMENT } from './openapi';
import { PUBLIC_ROUTES } from './public-routes';
import { DEPS, type ApiDeps } from './tokens';
import { Audited } from '../common/audited';
import { dependencyProviders, repositoryProviders } from './repositories';

@Module({})
class DepsModule {
  static register(deps: ApiDeps): DynamicModule {
    return {
      module: DepsModule,
      global: true,
      providers: [{ provide: DEPS, useValue: deps }, { provide: OPENAPI_DOCUMENT, useValue: { current: null } }, ...edgeProviders, ...dependencyProviders, ...repositoryProviders],
      exports: [DEPS, OPENAPI_DOCUMENT, EDGE, ...[...dependencyProviders, ...repositoryProviders].map((p) => p.provide)],
    };
  }
}

/** The composition root: dependencies are built in main.ts (config, DB, HSM, token validator) and injected here. */
@Module({})
export class AppModule {
  static register(deps: ApiDeps): DynamicModule {
    return {
      module: AppModule,
      imports: [
        DepsModule.register(deps),
        AuthzModule.forRoot({
          publicRoutes: PUBLIC_ROUTES,
          validator: { useValue: deps.validator },
          subjectResolver: { useClass: DbSubjectResolver },
          eventSink: { useClass: AuditAuthEventSink },
          refusalObserver: { useClass: EdgeRefusalObserver },
          principalGate: { useClass: PrincipalLimitGate },
        }),
      ],
      controllers: [
        HealthController,
        OpenApiController,
        KeysController,
        SignOrdersController,
        OperationsController,
        CertificatesController,
        CrlController,
        FirmwareController,
        TsaController,
        AdminSessionsController,
        SubjectsController,
        KeyAdminController,
        KeyLifecycleController,
        DeviceProfileController,
        KeyLimitsController,
        AuditController,
        MeController,
        NotificationsController,
      ],
      providers: [KeysService, SignOrderService, OperationsService, CertificatesService, DeviceProfileService, CrlService, FirmwareService,
        AdminSessionGate, AdminSessionsService, SubjectsService, KeyAdminService, AuditService, AuditSeals, MeService,
        KeyLimitsService, Audited, TsaService, SignatureTimestamps,
        NotificationsService,
        KeyLifecycleService,
      ],
    };
  }
}
