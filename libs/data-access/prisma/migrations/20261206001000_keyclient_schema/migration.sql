-- The keyclient (BFF) off the Keyserver's tables (docs/adr/0018-keyclient-off-the-keyserver-tables.md).
-- Its sessions move to their own schema, reachable by their own role, which gets no right on anything else:
-- a compromised keyclient can no longer write approvals, subjects or audit events straight into the database.

-- The role is cluster-wide: created once, idempotently (every database of the cluster migrates this file).
-- LOGIN without a password: with password authentication (production) an operator sets one
-- (ALTER ROLE keyserver_keyclient PASSWORD ...); the local trust setup of dev and tests logs in as is.
-- Two databases migrating at once may both try: the loser's error is the proof that the role exists.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'keyserver_keyclient') THEN
    CREATE ROLE keyserver_keyclient LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END
$$;

CREATE SCHEMA "keyclient";
REVOKE ALL ON SCHEMA "keyclient" FROM PUBLIC;

-- Sessions keep their rows (no one is logged out by the upgrade).
ALTER TABLE "public"."bff_session" SET SCHEMA "keyclient";

GRANT USAGE ON SCHEMA "keyclient" TO keyserver_keyclient;
GRANT SELECT, INSERT, UPDATE, DELETE ON "keyclient"."bff_session" TO keyserver_keyclient;
-- Nothing else is granted: the Keyserver's tables have no grant to PUBLIC. Functions are executable by PUBLIC by
-- default; the Keyserver's own (the audit writer) are not: only their owner (the role that migrates and that the API
-- connects as) runs them. A deployment whose API role is not the owner grants it EXECUTE with the table rights.
-- apps/keyclient/test/keyclient-db-role.spec.ts tries every one of these as the keyclient.
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' AND p.proname IN ('keyserver_append_audit', 'audit_event_append_only') LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END
$$;
