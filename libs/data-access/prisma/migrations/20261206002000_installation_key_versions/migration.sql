-- Issue 15: bootstrap of an empty installation, external ROOT certificates, key versions and the key lifecycle
-- (docs/adr/0020-bootstrap-and-key-lifecycle.md).

-- AlterEnum (the new value is not used in this transaction)
ALTER TYPE "KeyState" ADD VALUE 'RETIRED';

-- AlterTable
ALTER TABLE "key" ADD COLUMN "currentVersion" INTEGER NOT NULL DEFAULT 1,
ADD COLUMN "pathLen" INTEGER,
ADD COLUMN "issuerChainPem" TEXT,
ADD COLUMN "retiredAt" TIMESTAMPTZ(3),
ADD COLUMN "destroyedAt" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "key_version" (
    "id" UUID NOT NULL,
    "keyId" UUID NOT NULL,
    "version" INTEGER NOT NULL,
    "hsmKeyId" TEXT NOT NULL,
    "certificatePem" TEXT NOT NULL,
    "certificateSerial" TEXT NOT NULL,
    "notBefore" TIMESTAMPTZ(3) NOT NULL,
    "notAfter" TIMESTAMPTZ(3) NOT NULL,
    "issuerKeyid" TEXT,
    "issuerVersion" INTEGER,
    "state" "KeyState" NOT NULL DEFAULT 'ACTIVE',
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "retiredAt" TIMESTAMPTZ(3),
    "revokedAt" TIMESTAMPTZ(3),
    "revocationReason" TEXT,
    "destroyedAt" TIMESTAMPTZ(3),

    CONSTRAINT "key_version_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "pending_key" (
    "id" UUID NOT NULL,
    "keyid" TEXT NOT NULL,
    "type" "KeyType" NOT NULL,
    "algorithm" "KeyAlgorithm" NOT NULL,
    "hash" "HashAlgorithm" NOT NULL,
    "requiredApprovers" INTEGER NOT NULL DEFAULT 0,
    "hsmKeyId" TEXT NOT NULL,
    "csrPem" TEXT NOT NULL,
    "adminSessionId" UUID NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "pending_key_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "installation" (
    "id" INTEGER NOT NULL DEFAULT 1,
    "mode" TEXT NOT NULL,
    "bootstrappedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "administrators" JSONB NOT NULL DEFAULT '[]',

    CONSTRAINT "installation_pkey" PRIMARY KEY ("id"),
    -- One installation per database: the primary key and this check make a second bootstrap impossible.
    CONSTRAINT "installation_single_row" CHECK ("id" = 1),
    CONSTRAINT "installation_mode" CHECK ("mode" IN ('production', 'demo'))
);

-- CreateIndex
CREATE INDEX "key_version_hsmKeyId_idx" ON "key_version"("hsmKeyId");
CREATE UNIQUE INDEX "key_version_keyId_version_key" ON "key_version"("keyId", "version");
CREATE UNIQUE INDEX "pending_key_keyid_key" ON "pending_key"("keyid");
CREATE UNIQUE INDEX "pending_key_hsmKeyId_key" ON "pending_key"("hsmKeyId");

-- AddForeignKey
ALTER TABLE "key_version" ADD CONSTRAINT "key_version_keyId_fkey" FOREIGN KEY ("keyId") REFERENCES "key"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Existing keys become their version 1 (state copied as text: REVOKED or ACTIVE).
INSERT INTO "key_version" ("id", "keyId", "version", "hsmKeyId", "certificatePem", "certificateSerial", "notBefore", "notAfter",
                           "issuerKeyid", "issuerVersion", "state", "createdAt", "revokedAt", "revocationReason")
SELECT gen_random_uuid(), k."id", 1, k."hsmKeyId", k."certificatePem", k."certificateSerial", k."notBefore", k."notAfter",
       p."keyid", CASE WHEN p."id" IS NULL THEN NULL ELSE 1 END, k."state", k."createdAt", k."revokedAt", k."revocationReason"
FROM "key" k LEFT JOIN "key" p ON p."id" = k."parentId";

-- An installation that already has subjects (a seeded demo before this migration) counts as bootstrapped (demo).
INSERT INTO "installation" ("id", "mode", "administrators")
SELECT 1, 'demo', '[]'::jsonb WHERE EXISTS (SELECT 1 FROM "subject");

-- The application role (see 20261129000200_audit_append_only).
GRANT SELECT, INSERT, UPDATE, DELETE ON "key_version", "pending_key" TO "keyserver_app";
GRANT SELECT, INSERT ON "installation" TO "keyserver_app";

-- CA keys made before this migration carry pathLenConstraint 0.
UPDATE "key" SET "pathLen" = 0 WHERE "type" = 'CA';
