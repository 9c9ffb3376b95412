import { Controller, Get, Inject } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { Public } from '@keyserver/authz';
import { OPENAPI_DOCUMENT } from './openapi';

@ApiExcludeController()
@Controller()
export class OpenApiController {
  constructor(@Inject(OPENAPI_DOCUMENT) private readonly document: { current: object | null }) {}

  @Public()
  @Get('api/docs')
  docs() {
    return this.document.current;
  }
}
