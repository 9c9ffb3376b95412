-- Appends one audit event in ONE statement: takes the append lock, reads the chain head and finishes the hash
-- the application started (sha256 over prefix || prevHash || suffix, the canonical JSON split around the
-- prevHash value by @keyserver/audit-chain auditHashParts). A sign order stores its result and its audit event
-- in a single round trip this way. VOLATILE: each statement inside sees rows committed before it ran, so the
-- head read after the lock is the newest one.
CREATE OR REPLACE FUNCTION "keyserver_append_audit"(
  p_lock bigint, p_prefix text, p_suffix text,
  p_id uuid, p_at timestamptz, p_action text, p_outcome text, p_error_code text,
  p_actor_tid text, p_actor_oid text, p_actor_name text, p_actor_client text, p_actor_subject_id uuid,
  p_keyid text, p_operation_id uuid, p_admin_session_id uuid, p_digest text, p_request_id text, p_details jsonb
) RETURNS text[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_prev text;
  v_hash text;
  v_seq bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(p_lock);
  SELECT a."hash" INTO v_prev FROM "audit_event" a ORDER BY a."seq" DESC LIMIT 1;
  v_prev := COALESCE(v_prev, repeat('0', 64));
  v_hash := encode(sha256(convert_to(p_prefix || v_prev || p_suffix, 'UTF8')), 'hex');
  INSERT INTO "audit_event" ("id", "at", "action", "outcome", "errorCode", "actorTid", "actorOid", "actorName", "actorClient",
    "actorSubjectId", "keyid", "operationId", "adminSessionId", "digest", "requestId", "details", "prevHash", "hash")
  VALUES (p_id, p_at, p_action, p_outcome::"AuditOutcome", p_error_code, p_actor_tid, p_actor_oid, p_actor_name, p_actor_client,
    p_actor_subject_id, p_keyid, p_operation_id, p_admin_session_id, p_digest, p_request_id, p_details, v_prev, v_hash)
  RETURNING "seq" INTO v_seq;
  RETURN ARRAY[v_seq::text, v_prev, v_hash];
END;
$$;
