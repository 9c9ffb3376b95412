-- Audit hash rule v2 (issue 13; docs/adr/0009-audit-canonical-form.md). The v1 function stored the typed values it
-- was given and hashed the bytes the application sent, which could differ: a uuid column stores an upper-case UUID
-- lower-case, UTF-8 encoding turns a lone surrogate into U+FFFD, and text and jsonb refuse NUL. Such an entry never
-- verified again. v2 takes the uuid columns as text and refuses to append unless the hashed bytes are exactly the
-- canonical JSON (@keyserver/audit-chain) of the values it stores: it rebuilds every column's part of that JSON
-- itself (to_json of a text is JSON.stringify of a well-formed string) and stores details parsed from the hashed
-- text, so nothing is stored that the hash does not cover as stored. The chain and earlier entries are untouched:
-- verifiers accept rule v1 until the first v2 entry (and list the v1 entries the old defect affected).
DROP FUNCTION IF EXISTS "keyserver_append_audit"(bigint, text, text, uuid, timestamptz, text, text, text, text, text, text, text, uuid, text, uuid, uuid, text, text, jsonb);

CREATE FUNCTION "keyserver_append_audit"(
  p_lock bigint, p_prefix text, p_suffix text,
  p_id text, p_at timestamptz, p_action text, p_outcome text, p_error_code text,
  p_actor_tid text, p_actor_oid text, p_actor_name text, p_actor_client text, p_actor_subject_id text,
  p_keyid text, p_operation_id text, p_admin_session_id text, p_digest text, p_request_id text
) RETURNS text[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_head text;
  v_tail text;
  v_details jsonb;
  v_prev text;
  v_hash text;
  v_seq bigint;
BEGIN
  -- A uuid column reads back as uuid::text: accept only that form (an invalid UUID fails the cast itself).
  IF p_id IS NULL OR p_id IS DISTINCT FROM p_id::uuid::text
     OR p_actor_subject_id IS DISTINCT FROM p_actor_subject_id::uuid::text
     OR p_operation_id IS DISTINCT FROM p_operation_id::uuid::text
     OR p_admin_session_id IS DISTINCT FROM p_admin_session_id::uuid::text THEN
    RAISE EXCEPTION 'keyserver_append_audit: a UUID is not in its canonical (lower-case) form' USING ERRCODE = 'data_exception';
  END IF;
  -- The canonical JSON's members in key order; details sits between the head and the tail, prevHash is ours.
  v_head := '{"action":' || COALESCE(to_json(p_action)::text, 'null')
    || ',"actorClient":' || COALESCE(to_json(p_actor_client)::text, 'null')
    || ',"actorName":' || COALESCE(to_json(p_actor_name)::text, 'null')
    || ',"actorOid":' || COALESCE(to_json(p_actor_oid)::text, 'null')
    || ',"actorSubjectId":' || COALESCE(to_json(p_actor_subject_id)::text, 'null')
    || ',"actorTid":' || COALESCE(to_json(p_actor_tid)::text, 'null')
    || ',"adminSessionId":' || COALESCE(to_json(p_admin_session_id)::text, 'null')
    || ',"at":"' || to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
    || '","details":';
  v_tail := ',"digest":' || COALESCE(to_json(p_digest)::text, 'null')
    || ',"errorCode":' || COALESCE(to_json(p_error_code)::text, 'null')
    || ',"id":' || to_json(p_id)::text
    || ',"keyid":' || COALESCE(to_json(p_keyid)::text, 'null')
    || ',"operationId":' || COALESCE(to_json(p_operation_id)::text, 'null')
    || ',"outcome":' || COALESCE(to_json(p_outcome)::text, 'null')
    || ',"prevHash":"';
  IF length(p_prefix) < length(v_head) + length(v_tail)
     OR left(p_prefix, length(v_head)) IS DISTINCT FROM v_head
     OR right(p_prefix, length(v_tail)) IS DISTINCT FROM v_tail
     OR p_suffix IS DISTINCT FROM '","requestId":' || COALESCE(to_json(p_request_id)::text, 'null') || ',"v":2}' THEN
    RAISE EXCEPTION 'keyserver_append_audit: the hashed content is not the canonical form of the values to store' USING ERRCODE = 'data_exception';
  END IF;
  v_details := substr(p_prefix, length(v_head) + 1, length(p_prefix) - length(v_head) - length(v_tail))::jsonb;
  IF jsonb_typeof(v_details) <> 'object' THEN
    RAISE EXCEPTION 'keyserver_append_audit: details must be a JSON object' USING ERRCODE = 'data_exception';
  END IF;

  PERFORM pg_advisory_xact_lock(p_lock);
  SELECT a."hash" INTO v_prev FROM "audit_event" a ORDER BY a."seq" DESC LIMIT 1;
  v_prev := COALESCE(v_prev, repeat('0', 64));
  v_hash := encode(sha256(convert_to(p_prefix || v_prev || p_suffix, 'UTF8')), 'hex');
  INSERT INTO "audit_event" ("id", "at", "action", "outcome", "errorCode", "actorTid", "actorOid", "actorName", "actorClient",
    "actorSubjectId", "keyid", "operationId", "adminSessionId", "digest", "requestId", "details", "prevHash", "hash")
  VALUES (p_id::uuid, p_at, p_action, p_outcome::"AuditOutcome", p_error_code, p_actor_tid, p_actor_oid, p_actor_name, p_actor_client,
    p_actor_subject_id::uuid, p_keyid, p_operation_id::uuid, p_admin_session_id::uuid, p_digest, p_request_id, v_details, v_prev, v_hash)
  RETURNING "seq" INTO v_seq;
  RETURN ARRAY[v_seq::text, v_prev, v_hash];
END;
$$;
