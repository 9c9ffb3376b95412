-- Cancelling an external ceremony or an external ROOT's pending rotation (docs/adr/0042-pending-hsm-keys.md): the
-- cancellation marks the pending row first (an import is refused from that commit on), destroys the key pair in the
-- HSM, then deletes the row with its audit event; a mark left by an interrupted cancellation is finished by repeating it.
ALTER TABLE "pending_key" ADD COLUMN "cancelledAt" TIMESTAMPTZ(3);
ALTER TABLE "pending_key_version" ADD COLUMN "cancelledAt" TIMESTAMPTZ(3);
