import { errorClass } from '@keyserver/errors';

/** Refusals of the bootstrap command and of the gate that keeps an unbootstrapped installation closed. */
export enum BootstrapErrorCode {
  /** Every /api route of an installation without first administrators (run `keyserver-api bootstrap`). */
  NotBootstrapped = 'not_bootstrapped',
  AlreadyBootstrapped = 'already_bootstrapped',
  InstallationNotEmpty = 'installation_not_empty',
  TooFewAdministrators = 'too_few_administrators',
  InvalidAdministrator = 'invalid_administrator',
  DemoRefused = 'demo_refused',
}

const STATUS: Record<BootstrapErrorCode, number> = {
  [BootstrapErrorCode.NotBootstrapped]: 503,
  [BootstrapErrorCode.AlreadyBootstrapped]: 409,
  [BootstrapErrorCode.InstallationNotEmpty]: 409,
  [BootstrapErrorCode.TooFewAdministrators]: 400,
  [BootstrapErrorCode.InvalidAdministrator]: 400,
  [BootstrapErrorCode.DemoRefused]: 409,
};

export class BootstrapError extends errorClass(STATUS) {}
