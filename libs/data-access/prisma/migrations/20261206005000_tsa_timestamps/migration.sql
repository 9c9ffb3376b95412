-- RFC 3161 time-stamping (docs/adr/0024-rfc3161-tsa-and-ca-signing.md): a TSA key type and the register of issued tokens.
ALTER TYPE "KeyType" ADD VALUE IF NOT EXISTS 'TSA';

CREATE TABLE "timestamp_token" (
    "serialHex" TEXT NOT NULL,
    "keyId" UUID NOT NULL,
    "genTime" TIMESTAMPTZ(3) NOT NULL,
    "policy" TEXT NOT NULL,
    "hashAlgorithm" TEXT NOT NULL,
    "messageImprint" TEXT NOT NULL,
    "nonceHex" TEXT,
    "source" TEXT NOT NULL,
    "requestId" TEXT,

    CONSTRAINT "timestamp_token_pkey" PRIMARY KEY ("serialHex")
);

CREATE INDEX "timestamp_token_keyId_genTime_idx" ON "timestamp_token"("keyId", "genTime");

ALTER TABLE "timestamp_token" ADD CONSTRAINT "timestamp_token_keyId_fkey" FOREIGN KEY ("keyId") REFERENCES "key"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- The application role (see 20261129000200_audit_append_only) adds tokens and reads them; the register is append-only.
GRANT SELECT, INSERT ON "timestamp_token" TO "keyserver_app";
