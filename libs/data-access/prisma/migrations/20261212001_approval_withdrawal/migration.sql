-- Approvals withdrawn because their approver lost the right to approve the key (disabled, a role change, a grant
-- taken from his role): ADR 0017 addendum 2026-12-07, docs/security.md §6a. The withdrawing transaction (the admin
-- change) moves the row here from "approval", with an `operation.approval_withdrawn` audit event, so "approval" keeps
-- meaning "the approvals that count" for every reader, and the evidence of who approved when stays.
CREATE TABLE "withdrawn_approval" (
    "id" UUID NOT NULL,
    "operationId" UUID NOT NULL,
    "keyId" UUID NOT NULL,
    "approverId" UUID NOT NULL,
    "approvedAt" TIMESTAMPTZ(3) NOT NULL,
    "withdrawnAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "reason" TEXT NOT NULL,

    CONSTRAINT "withdrawn_approval_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "withdrawn_approval_operationId_idx" ON "withdrawn_approval"("operationId");
CREATE INDEX "withdrawn_approval_approverId_idx" ON "withdrawn_approval"("approverId");

ALTER TABLE "withdrawn_approval" ADD CONSTRAINT "withdrawn_approval_operationId_fkey" FOREIGN KEY ("operationId") REFERENCES "operation"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "withdrawn_approval" ADD CONSTRAINT "withdrawn_approval_keyId_fkey" FOREIGN KEY ("keyId") REFERENCES "key"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "withdrawn_approval" ADD CONSTRAINT "withdrawn_approval_approverId_fkey" FOREIGN KEY ("approverId") REFERENCES "subject"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
