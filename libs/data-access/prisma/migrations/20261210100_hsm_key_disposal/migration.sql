-- Cancelling a pending key or version (docs/adr/0042-pending-hsm-keys.md, addendum): one transaction deletes the
-- pending row and records its key pair here with the audit event; the HSM objects are destroyed after the commit and
-- the row deleted then. A row left by an interrupted destruction is retried (idempotent) by later cancellations.
CREATE TABLE "hsm_key_disposal" (
    "id" UUID NOT NULL,
    "hsmKeyId" TEXT NOT NULL,
    "keyid" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "lastError" TEXT,

    CONSTRAINT "hsm_key_disposal_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "hsm_key_disposal_hsmKeyId_key" ON "hsm_key_disposal"("hsmKeyId");
