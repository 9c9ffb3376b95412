-- POST /api/v1/certificates honours an Idempotency-Key like POST /api/signorders (ADR 0012 addendum "idempotency,
-- session 25"): the key is scoped to the requester, the row is the stored answer (no expiry), a retry replays it.
-- Existing rows carry no key; the unique index ignores NULL keys.
ALTER TABLE "certificate" ADD COLUMN "idempotencyKey" TEXT,
ADD COLUMN "requestHash" TEXT,
ADD COLUMN "requestId" TEXT,
ADD COLUMN "replayChain" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN "replayIgnored" TEXT[] DEFAULT ARRAY[]::TEXT[];

CREATE UNIQUE INDEX "certificate_requesterId_idempotencyKey_key" ON "certificate"("requesterId", "idempotencyKey");
