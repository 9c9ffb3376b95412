-- Approval requests come in rounds (ADR 0023, addendum "a new round of approval requests"; docs/notifications.md):
-- round 1 when the operation is created, one more each time a withdrawal of approvals (approval-withdrawal.ts) sends
-- an APPROVED operation back to REQUESTED; "operation.approved" and "operation.rejected" carry the round they close.
-- Exactly once per round: the unique key now includes the round. Existing rows are round 1.
ALTER TABLE "notification_outbox" ADD COLUMN "round" INTEGER NOT NULL DEFAULT 1;
DROP INDEX "notification_outbox_operationId_event_key";
CREATE UNIQUE INDEX "notification_outbox_operationId_event_round_key" ON "notification_outbox"("operationId", "event", "round");
