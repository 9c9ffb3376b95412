export {
  certificateNames,
  checkEssSigningCertificate,
  checkTsaCertificateProfile,
  issuerSerialNames,
  objectIdentifierText,
  oidText,
  readTimeStampToken,
  TIMESTAMP_TOKEN_OID,
  type TimeStampTokenInfo,
  type TokenExpectations,
  type VerifiedTimeStampToken,
  verifyTimeStampToken,
} from './lib/timestamp-token';
export { TimestampTokenError, TimestampTokenErrorCode } from './lib/timestamp-token-error';
