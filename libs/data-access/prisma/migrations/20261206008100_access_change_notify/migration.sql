-- Access cache invalidation (issue 20, docs/adr/0028-access-cache.md). The API caches the subject lookup of every
-- request and the key lookup of every sign order; every statement that changes a table those lookups read notifies
-- the channel keyserver_access. NOTIFY is transactional: listeners (every API replica) receive it when the change
-- commits and flush their cache. Statement-level triggers: one notification per statement, none per row, and
-- PostgreSQL folds identical notifications of one transaction into one.
CREATE OR REPLACE FUNCTION "keyserver_notify_access_change"() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('keyserver_access', TG_TABLE_NAME);
  RETURN NULL;
END;
$$;

CREATE TRIGGER "subject_access_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "subject"
  FOR EACH STATEMENT EXECUTE FUNCTION "keyserver_notify_access_change"();
CREATE TRIGGER "subject_role_access_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "subject_role"
  FOR EACH STATEMENT EXECUTE FUNCTION "keyserver_notify_access_change"();
CREATE TRIGGER "role_access_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "role"
  FOR EACH STATEMENT EXECUTE FUNCTION "keyserver_notify_access_change"();
CREATE TRIGGER "role_key_permission_access_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "role_key_permission"
  FOR EACH STATEMENT EXECUTE FUNCTION "keyserver_notify_access_change"();
CREATE TRIGGER "key_access_notify" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "key"
  FOR EACH STATEMENT EXECUTE FUNCTION "keyserver_notify_access_change"();
