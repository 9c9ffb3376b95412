-- A per-recipient hourly cap on approval-request emails (ADR 0023, addendum "a cap on approval requests per
-- recipient"; docs/notifications.md): an orderer creating operations in a loop no longer floods every approver's
-- mailbox. Counted at claim, across replicas, under a per-address advisory lock: "admittedAt" marks a request
-- counted under the cap, "heldAt" one held back over it, and "heldNotice" the one delivery per address and hour that
-- became the short notice instead.
ALTER TABLE "notification_delivery" ADD COLUMN "admittedAt" TIMESTAMPTZ(3),
ADD COLUMN "heldAt" TIMESTAMPTZ(3),
ADD COLUMN "heldNotice" BOOLEAN NOT NULL DEFAULT false;

-- The claim counts one address's requests admitted in the last hour, and looks for its notice in that hour.
CREATE INDEX "notification_delivery_address_admittedAt_idx" ON "notification_delivery"("address", "admittedAt");
CREATE INDEX "notification_delivery_address_heldAt_idx" ON "notification_delivery"("address", "heldAt");
-- The metric counts what was held back in the last hour, whatever the address.
CREATE INDEX "notification_delivery_heldAt_idx" ON "notification_delivery"("heldAt");
