-- Signed checkpoints of the audit chain (docs/adr/0048-signed-audit-checkpoints.md): the Keyserver's own TSA seals
-- the chain head (RFC 3161 token over (sha256, entry hash of audit entry seq)). One checkpoint per sealed seq across
-- replicas (primary key; the sealer inserts ON CONFLICT DO NOTHING). Append-only like audit_event.
CREATE TABLE "audit_checkpoint" (
    "seq" BIGINT NOT NULL,
    "entryHash" TEXT NOT NULL,
    "tokenDer" BYTEA NOT NULL,
    "genTime" TIMESTAMPTZ(3) NOT NULL,
    "tsaKeyId" UUID NOT NULL,
    "tsaKeyVersion" INTEGER NOT NULL,
    "serialHex" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "audit_checkpoint_pkey" PRIMARY KEY ("seq"),
    CONSTRAINT "audit_checkpoint_entryHash_format" CHECK ("entryHash" ~ '^[0-9a-f]{64}$')
);

CREATE UNIQUE INDEX "audit_checkpoint_serialHex_key" ON "audit_checkpoint"("serialHex");

ALTER TABLE "audit_checkpoint" ADD CONSTRAINT "audit_checkpoint_tsaKeyId_fkey" FOREIGN KEY ("tsaKeyId") REFERENCES "key"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

CREATE OR REPLACE FUNCTION "audit_checkpoint_append_only"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_checkpoint is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;
REVOKE EXECUTE ON FUNCTION "audit_checkpoint_append_only"() FROM PUBLIC;

CREATE TRIGGER "audit_checkpoint_no_update_delete"
  BEFORE UPDATE OR DELETE ON "audit_checkpoint"
  FOR EACH ROW EXECUTE FUNCTION "audit_checkpoint_append_only"();

CREATE TRIGGER "audit_checkpoint_no_truncate"
  BEFORE TRUNCATE ON "audit_checkpoint"
  FOR EACH STATEMENT EXECUTE FUNCTION "audit_checkpoint_append_only"();

-- The application role adds and reads checkpoints, never changes them (as for timestamp_token and audit_event).
GRANT SELECT, INSERT ON "audit_checkpoint" TO "keyserver_app";
