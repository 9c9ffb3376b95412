-- Per-key operation limits set by administrators (issue 13, item 6) and the whole-request fingerprint of an
-- Idempotency-Key (item 5). Rows of sign_order written before this migration have no requestHash and are compared
-- field by field.

-- AlterTable
ALTER TABLE "sign_order" ADD COLUMN "requestHash" TEXT;

-- CreateTable
CREATE TABLE "key_operation_limit" (
    "keyId" UUID NOT NULL,
    "maxWindowSeconds" INTEGER NOT NULL,
    "maxUsagesPerOperation" INTEGER NOT NULL,
    "maxBackdateSeconds" INTEGER NOT NULL,
    "maxStartAheadSeconds" INTEGER NOT NULL,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "key_operation_limit_pkey" PRIMARY KEY ("keyId")
);

-- AddForeignKey
ALTER TABLE "key_operation_limit" ADD CONSTRAINT "key_operation_limit_keyId_fkey" FOREIGN KEY ("keyId") REFERENCES "key"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The application role (see 20261129000200_audit_append_only) reads and sets limits.
GRANT SELECT, INSERT, UPDATE ON "key_operation_limit" TO "keyserver_app";
