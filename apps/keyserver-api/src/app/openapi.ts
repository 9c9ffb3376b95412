import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Problem } from '@keyserver/api-contract';
import { jsonSchema } from '../common/request';
import { documentProblems } from './openapi-problems';

export const OPENAPI_DOCUMENT = Symbol('OpenApiDocument');

/** The OpenAPI 3.1 document of the running app (also committed as docs/openapi.json). */
export function buildOpenApi(app: INestApplication): Record<string, unknown> {
  const config = new DocumentBuilder()
    .setTitle('Keyserver API')
    .setDescription(
      'Firmware signing and device certificates with keys that never leave the HSM. Every call carries a Microsoft Entra ID v2 access token. Errors are RFC 9457 problem+json with a stable `code`.',
    )
    .setVersion('1')
    .setLicense('MIT', 'https://opensource.org/license/mit')
    .addServer('/', 'this Keyserver (relative to where the document was fetched)')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
    .addSecurityRequirements('bearer')
    .build();
  const doc = SwaggerModule.createDocument(app, config) as unknown as Record<string, unknown> & { components: Record<string, Record<string, unknown>> };
  doc['openapi'] = '3.1.0';
  doc.components['schemas'] = { ...(doc.components['schemas'] ?? {}), Problem: jsonSchema(Problem) };
  documentProblems(app, doc as unknown as Parameters<typeof documentProblems>[1]);
  return doc;
}
