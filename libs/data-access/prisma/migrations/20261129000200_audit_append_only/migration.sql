-- Audit log is append-only: a trigger refuses UPDATE/DELETE/TRUNCATE for every role (superusers
-- included, unless they disable the trigger on purpose), and the privileges are revoked as well.
CREATE OR REPLACE FUNCTION "audit_event_append_only"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_event is append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER "audit_event_no_update_delete"
  BEFORE UPDATE OR DELETE ON "audit_event"
  FOR EACH ROW EXECUTE FUNCTION "audit_event_append_only"();

CREATE TRIGGER "audit_event_no_truncate"
  BEFORE TRUNCATE ON "audit_event"
  FOR EACH STATEMENT EXECUTE FUNCTION "audit_event_append_only"();

REVOKE UPDATE, DELETE, TRUNCATE ON "audit_event" FROM PUBLIC;

-- Optional least-privilege application role (NOLOGIN: operators grant it to a login role and
-- point DATABASE_URL at that login; see libs/data-access/README.md).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'keyserver_app') THEN
    CREATE ROLE "keyserver_app" NOLOGIN;
  END IF;
-- Roles are cluster-wide: another database migrating at the same moment may have created it.
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END;
$$;
GRANT USAGE ON SCHEMA "public" TO "keyserver_app";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "public" TO "keyserver_app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA "public" TO "keyserver_app";
REVOKE UPDATE, DELETE, TRUNCATE ON "audit_event" FROM "keyserver_app";
REVOKE ALL ON "_prisma_migrations" FROM "keyserver_app";
