-- POST /api/v1/operations honours an Idempotency-Key like sign orders and certificates (ADR 0007 addendum "operations
-- and Idempotency-Key"): the key is scoped to the orderer, the row keeps the first answer (no expiry), a retry replays
-- it. Existing rows carry no key; the unique index ignores NULL keys.
ALTER TABLE "operation" ADD COLUMN "idempotencyKey" TEXT,
ADD COLUMN "requestHash" TEXT,
ADD COLUMN "requestId" TEXT,
ADD COLUMN "replayAnswer" TEXT;

CREATE UNIQUE INDEX "operation_ordererId_idempotencyKey_key" ON "operation"("ordererId", "idempotencyKey");
