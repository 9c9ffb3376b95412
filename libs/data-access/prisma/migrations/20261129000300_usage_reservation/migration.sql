-- CreateTable
CREATE TABLE "usage_reservation" (
    "id" UUID NOT NULL,
    "operationKeyId" UUID NOT NULL,
    "operationId" UUID NOT NULL,
    "keyId" UUID NOT NULL,
    "subjectId" UUID NOT NULL,
    "kind" TEXT NOT NULL,
    "idempotencyKey" TEXT,
    "requestId" TEXT,
    "leaseUntil" TIMESTAMPTZ(3) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "usage_reservation_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "usage_reservation_leaseUntil_idx" ON "usage_reservation"("leaseUntil");

-- CreateIndex
CREATE INDEX "usage_reservation_operationId_idx" ON "usage_reservation"("operationId");

-- CreateIndex
CREATE UNIQUE INDEX "usage_reservation_subjectId_idempotencyKey_key" ON "usage_reservation"("subjectId", "idempotencyKey");

-- AddForeignKey
ALTER TABLE "usage_reservation" ADD CONSTRAINT "usage_reservation_operationKeyId_fkey" FOREIGN KEY ("operationKeyId") REFERENCES "operation_key"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The application role (see 20261129000200_audit_append_only) takes, finishes and releases reservations.
GRANT SELECT, INSERT, UPDATE, DELETE ON "usage_reservation" TO "keyserver_app";
