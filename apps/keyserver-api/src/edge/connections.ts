import { ConnectionGate as SharedConnectionGate, type ConnectionLimits } from '@keyserver/http-problems';
import { ApiErrorCode, markTransportRefusal } from '../common/api-error';

export { descriptorWarning, OTHER_DESCRIPTORS, responseInFlight, type ConnectionLimits, type ConnectionRefusal, type RefusalListener } from '@keyserver/http-problems';

/**
 * The API's connection gate (libs/http-problems, shared with the keyclient): its 503s carry the API's codes, and a
 * request cut off after the shutdown grace is marked so its handler audits `service_unavailable`.
 */
export class ConnectionGate extends SharedConnectionGate {
  constructor(limits: ConnectionLimits) {
    super(
      limits,
      {
        total: ApiErrorCode.ConnectionLimitReached,
        perIp: ApiErrorCode.ClientConnectionLimitReached,
        serviceUnavailable: ApiErrorCode.ServiceUnavailable,
        shuttingDown: ApiErrorCode.ShuttingDown,
      },
      (req, code) => markTransportRefusal(req, code as ApiErrorCode),
    );
  }
}
