-- CRLs per issuing key version and rotation of externally certified ROOTs (issue 15, docs/adr/0029-crl-per-key-version.md).

-- The key version that signed each certificate. Certificates issued before this migration were signed by the version
-- that was current when they were stored: the newest version created before them.
ALTER TABLE "certificate" ADD COLUMN "issuerVersion" INTEGER;
UPDATE "certificate" c SET "issuerVersion" = COALESCE(
  (SELECT max(v."version") FROM "key_version" v WHERE v."keyId" = c."issuerKeyId" AND v."createdAt" <= c."createdAt"),
  (SELECT min(v."version") FROM "key_version" v WHERE v."keyId" = c."issuerKeyId"),
  1);
ALTER TABLE "certificate" ALTER COLUMN "issuerVersion" SET NOT NULL;
CREATE INDEX "certificate_issuerKeyId_issuerVersion_idx" ON "certificate"("issuerKeyId", "issuerVersion");

-- The newest CRL of each ROOT/CA key version.
CREATE TABLE "crl" (
    "keyVersionId" UUID NOT NULL,
    "crlNumber" BIGINT NOT NULL,
    "der" BYTEA NOT NULL,
    "entriesSha256" TEXT NOT NULL,
    "thisUpdate" TIMESTAMPTZ(3) NOT NULL,
    "nextUpdate" TIMESTAMPTZ(3) NOT NULL,
    "final" BOOLEAN NOT NULL DEFAULT false,

    CONSTRAINT "crl_pkey" PRIMARY KEY ("keyVersionId")
);
ALTER TABLE "crl" ADD CONSTRAINT "crl_keyVersionId_fkey" FOREIGN KEY ("keyVersionId") REFERENCES "key_version"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- A pending rotation of an externally certified ROOT: at most one per key.
CREATE TABLE "pending_key_version" (
    "id" UUID NOT NULL,
    "keyId" UUID NOT NULL,
    "version" INTEGER NOT NULL,
    "hsmKeyId" TEXT NOT NULL,
    "csrPem" TEXT NOT NULL,
    "adminSessionId" UUID NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "pending_key_version_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "pending_key_version_keyId_key" ON "pending_key_version"("keyId");
CREATE UNIQUE INDEX "pending_key_version_hsmKeyId_key" ON "pending_key_version"("hsmKeyId");
ALTER TABLE "pending_key_version" ADD CONSTRAINT "pending_key_version_keyId_fkey" FOREIGN KEY ("keyId") REFERENCES "key"("id") ON DELETE CASCADE ON UPDATE CASCADE;
