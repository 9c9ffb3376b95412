-- The hourly caps on approval requests count per "capKey" (ADR 0023, addendum "webhook endpoints capped too; one
-- mailbox, one cap"; docs/notifications.md): 'email:' || the canonical mailbox (case-folded: Ada@Example.com and
-- ada@example.com are one mailbox and share one cap), or 'webhook:' || the endpoint's configured name. It is set at
-- claim, together with "admittedAt" or "heldAt", under the per-key advisory lock.
ALTER TABLE "notification_delivery" ADD COLUMN "capKey" TEXT;

-- Requests already counted (or held) under the per-address cap keep counting in their hour under their mailbox's
-- key. Stored addresses are plain ASCII (NotificationEmail), so lower() folds them as the dispatcher does.
UPDATE "notification_delivery" SET "capKey" = 'email:' || lower(btrim("address"))
 WHERE "channel" = 'EMAIL' AND "address" IS NOT NULL AND ("admittedAt" IS NOT NULL OR "heldAt" IS NOT NULL);

-- The claim counts one key's requests admitted in the last hour, and looks for its notice in that hour; the exact
-- address no longer identifies a mailbox for the cap.
DROP INDEX "notification_delivery_address_admittedAt_idx";
DROP INDEX "notification_delivery_address_heldAt_idx";
CREATE INDEX "notification_delivery_capKey_admittedAt_idx" ON "notification_delivery"("capKey", "admittedAt");
CREATE INDEX "notification_delivery_capKey_heldAt_idx" ON "notification_delivery"("capKey", "heldAt");
