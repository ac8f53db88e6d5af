-- taskmgr schema, version 5: task writes under concurrency.
--
-- * If-Match on restore (PATCH and DELETE had it): the version check and
--   the write run in one function, under the row lock (FOR UPDATE).
-- * Idempotency-Key records: one row per (user, key).  A request first
--   claims the key (tm_api.idem_begin, its own transaction); its write then
--   runs as ONE statement that also completes the record
--   (tm.idem_done), so the write and the record commit together or not at
--   all.  A claim carries a random token: a claim older than 60 s is
--   abandoned and may be taken over, and the old claimant's write can then
--   never commit, because tm.idem_done no longer finds its token.
-- * Bulk task actions: one transaction, all or nothing.
-- * Permanent delete and the purge of long soft-deleted tasks.

SET client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- restore with If-Match
-- ---------------------------------------------------------------------------

DROP FUNCTION tm_api.task_restore(uuid, uuid, uuid, uuid);

CREATE FUNCTION tm_api.task_restore(p_uid uuid, p_sid uuid, p_ws uuid,
                                    p_id uuid, p_if_match int)
RETURNS SETOF tm_api.task_row
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
  t tm.tasks;
BEGIN
  v_role := tm.enter(p_uid, p_sid, p_ws);
  IF v_role IS NULL THEN
    RETURN NEXT tm.task_err(401, 'session has ended');
    RETURN;
  END IF;
  IF v_role = '' THEN
    RETURN NEXT tm.task_err(404, 'workspace not found');
    RETURN;
  END IF;
  SELECT * INTO t FROM tm.tasks
   WHERE workspace_id = p_ws AND id = p_id FOR UPDATE;
  IF t.id IS NULL THEN
    RETURN NEXT tm.task_err(404, 'task not found');
    RETURN;
  END IF;
  IF v_role = 'viewer' THEN
    RETURN NEXT tm.task_err(403, 'viewers cannot restore tasks');
    RETURN;
  END IF;
  IF p_if_match IS NOT NULL AND p_if_match <> t.version THEN
    RETURN NEXT tm.task_err(412, 'the task has changed since that version');
    RETURN;
  END IF;
  IF t.deleted_at IS NULL THEN
    RETURN NEXT tm.task_err(409, 'the task is not deleted');
    RETURN;
  END IF;
  UPDATE tm.tasks SET deleted_at = NULL, updated_at = tm.now_ms(),
                      version = version + 1
   WHERE workspace_id = p_ws AND id = p_id
  RETURNING * INTO t;
  RETURN NEXT tm.task_out(200, t);
END
$$;

-- ---------------------------------------------------------------------------
-- idempotency keys
-- ---------------------------------------------------------------------------

CREATE TABLE tm.idempotency_keys (
  user_id     uuid NOT NULL REFERENCES tm.users (id) ON DELETE CASCADE,
  key         text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
  fingerprint text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
  token       uuid NOT NULL,
  state       text NOT NULL CHECK (state IN ('in_flight', 'done')),
  status      int CHECK (status BETWEEN 200 AND 499),
  payload     jsonb,
  started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (user_id, key),
  CHECK (state = 'in_flight' OR (status IS NOT NULL AND payload IS NOT NULL))
);
CREATE INDEX idempotency_keys_expires_idx ON tm.idempotency_keys (expires_at);

-- Claims p_key for a request with fingerprint p_fp (SHA-256 hex of method,
-- path, If-Match and body).  outcome:
--   go       the caller owns the key (token) and runs its write
--   replay   the first request's answer (payload, as recorded)
--   busy     the first request is still in flight (409)
--   mismatch the key was used with another request (422)
CREATE FUNCTION tm_api.idem_begin(p_uid uuid, p_sid uuid, p_key text,
                                  p_fp text)
RETURNS TABLE (outcome text, token uuid, payload text)
LANGUAGE plpgsql AS $$
DECLARE
  k tm.idempotency_keys;
  v_token uuid := gen_random_uuid();
  i int;
BEGIN
  -- lazily, a bounded number of this user's expired records
  DELETE FROM tm.idempotency_keys d
   WHERE d.ctid IN (SELECT x.ctid FROM tm.idempotency_keys x
                     WHERE x.user_id = p_uid AND x.expires_at < now()
                     LIMIT 100);

  FOR i IN 1 .. 3 LOOP
    INSERT INTO tm.idempotency_keys (user_id, key, fingerprint, token, state,
                                     expires_at)
    VALUES (p_uid, p_key, p_fp, v_token, 'in_flight',
            now() + interval '24 hours')
    ON CONFLICT (user_id, key) DO NOTHING;
    IF FOUND THEN
      RETURN QUERY SELECT 'go'::text, v_token, NULL::text;
      RETURN;
    END IF;

    SELECT * INTO k FROM tm.idempotency_keys x
     WHERE x.user_id = p_uid AND x.key = p_key FOR UPDATE;
    IF NOT FOUND THEN
      -- released between the two statements: claim it again
      CONTINUE;
    END IF;

    IF k.expires_at <= now()
       OR (k.state = 'in_flight'
           AND k.started_at < clock_timestamp() - interval '60 seconds') THEN
      -- expired, or abandoned: its write can no longer commit
      UPDATE tm.idempotency_keys x
         SET fingerprint = p_fp, token = v_token, state = 'in_flight',
             status = NULL, payload = NULL, started_at = clock_timestamp(),
             expires_at = now() + interval '24 hours'
       WHERE x.user_id = p_uid AND x.key = p_key;
      RETURN QUERY SELECT 'go'::text, v_token, NULL::text;
      RETURN;
    END IF;

    IF k.fingerprint <> p_fp THEN
      RETURN QUERY SELECT 'mismatch'::text, NULL::uuid, NULL::text;
    ELSIF k.state = 'in_flight' THEN
      RETURN QUERY SELECT 'busy'::text, NULL::uuid, NULL::text;
    ELSE
      RETURN QUERY SELECT 'replay'::text, NULL::uuid, k.payload::text;
    END IF;
    RETURN;
  END LOOP;

  RETURN QUERY SELECT 'busy'::text, NULL::uuid, NULL::text;
END
$$;

-- Completes the claim of the write that runs in the same statement; raises
-- (and so rolls the write back) when the claim is no longer the caller's.
-- 5xx answers are not recorded: the claim is released instead.
CREATE FUNCTION tm.idem_done(p_uid uuid, p_key text, p_token uuid,
                             p_status int, p_payload jsonb)
RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
  IF p_status >= 500 THEN
    RETURN false;
  END IF;
  UPDATE tm.idempotency_keys
     SET state = 'done', status = p_status, payload = p_payload,
         expires_at = now() + interval '24 hours'
   WHERE user_id = p_uid AND key = p_key AND token = p_token
     AND state = 'in_flight';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the Idempotency-Key claim was lost'
      USING ERRCODE = '40001';
  END IF;
  RETURN true;
END
$$;

-- Releases a claim whose write failed (best effort, from nginx).
CREATE FUNCTION tm_api.idem_abort(p_uid uuid, p_sid uuid, p_key text,
                                  p_token uuid)
RETURNS int
LANGUAGE sql AS $$
  WITH d AS (DELETE FROM tm.idempotency_keys
              WHERE user_id = p_uid AND key = p_key AND token = p_token
                AND state = 'in_flight'
             RETURNING 1)
  SELECT count(*)::int FROM d
$$;

-- ---------------------------------------------------------------------------
-- bulk
-- ---------------------------------------------------------------------------

-- p_body: {"action": "update"|"delete"|"restore", "ids": [uuid, ...],
-- "patch": {...}} validated by nginx (at most 500 distinct ids).  Each id
-- goes through the single-task function, so roles, If-Match-free version
-- bumps and reference checks are the same; the first failing id rolls the
-- whole batch back.
CREATE FUNCTION tm_api.task_bulk(p_uid uuid, p_sid uuid, p_ws uuid,
                                 p_body jsonb)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
  v_action text := p_body->>'action';
  v_patch jsonb := coalesce(p_body->'patch', '{}');
  v_ids uuid[];
  v_id uuid;
  v_i int := 0;
  v_msg text;
  v_detail text;
  t tm_api.task_row;
BEGIN
  v_role := tm.enter(p_uid, p_sid, p_ws);
  IF v_role IS NULL THEN
    RETURN tm_api.err(401, 'unauthorized', 'session has ended');
  END IF;
  IF v_role = '' THEN
    RETURN tm_api.err(404, 'not_found', 'workspace not found');
  END IF;
  IF v_role = 'viewer' THEN
    RETURN tm_api.err(403, 'forbidden', 'viewers cannot change tasks');
  END IF;
  v_ids := ARRAY(SELECT x::uuid
                   FROM jsonb_array_elements_text(p_body->'ids') AS x);
  IF cardinality(v_ids) > 500 THEN
    RETURN tm_api.err(400, 'validation_failed', 'ids: at most 500');
  END IF;

  BEGIN
    FOREACH v_id IN ARRAY v_ids LOOP
      IF v_action = 'update' THEN
        SELECT * INTO t FROM tm_api.task_update(p_uid, p_sid, p_ws, v_id,
                                                v_patch, NULL);
      ELSIF v_action = 'delete' THEN
        SELECT * INTO t FROM tm_api.task_delete(p_uid, p_sid, p_ws, v_id,
                                                NULL);
      ELSE
        SELECT * INTO t FROM tm_api.task_restore(p_uid, p_sid, p_ws, v_id,
                                                 NULL);
      END IF;
      IF t.http_status >= 400 THEN
        RAISE EXCEPTION USING ERRCODE = 'TMB01',
          MESSAGE = t.http_status::text,
          DETAIL = format('ids[%s] %s: %s', v_i, v_id, t.detail);
      END IF;
      v_i := v_i + 1;
    END LOOP;
  EXCEPTION WHEN SQLSTATE 'TMB01' THEN
    -- everything this batch wrote is rolled back with the block
    GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_detail = PG_EXCEPTION_DETAIL;
    RETURN tm_api.err(v_msg::int,
                      CASE v_msg WHEN '404' THEN 'not_found'
                                 WHEN '403' THEN 'forbidden'
                                 WHEN '409' THEN 'conflict'
                                 WHEN '401' THEN 'unauthorized'
                                 ELSE 'validation_failed' END,
                      v_detail);
  END;

  RETURN (200, json_build_object('ids', to_json(v_ids))::text,
          cardinality(v_ids)::text)::tm_api.result;
END
$$;

-- ---------------------------------------------------------------------------
-- permanent delete and purge
-- ---------------------------------------------------------------------------

-- Deletes one task for good (owner or admin).  Its subtasks lose their
-- parent (and get a new version).
CREATE FUNCTION tm_api.task_purge(p_uid uuid, p_sid uuid, p_ws uuid,
                                  p_id uuid, p_if_match int)
RETURNS SETOF tm_api.task_row
LANGUAGE plpgsql AS $$
DECLARE
  v_role text;
  t tm.tasks;
BEGIN
  v_role := tm.enter(p_uid, p_sid, p_ws);
  IF v_role IS NULL THEN
    RETURN NEXT tm.task_err(401, 'session has ended');
    RETURN;
  END IF;
  IF v_role = '' THEN
    RETURN NEXT tm.task_err(404, 'workspace not found');
    RETURN;
  END IF;
  SELECT * INTO t FROM tm.tasks
   WHERE workspace_id = p_ws AND id = p_id FOR UPDATE;
  IF t.id IS NULL THEN
    RETURN NEXT tm.task_err(404, 'task not found');
    RETURN;
  END IF;
  IF v_role NOT IN ('owner', 'admin') THEN
    RETURN NEXT tm.task_err(403, 'only owners and admins delete tasks for good');
    RETURN;
  END IF;
  IF p_if_match IS NOT NULL AND p_if_match <> t.version THEN
    RETURN NEXT tm.task_err(412, 'the task has changed since that version');
    RETURN;
  END IF;
  UPDATE tm.tasks SET parent_id = NULL, updated_at = tm.now_ms(),
                      version = version + 1
   WHERE workspace_id = p_ws AND parent_id = p_id;
  DELETE FROM tm.tasks WHERE workspace_id = p_ws AND id = p_id;
  RETURN NEXT tm.task_out(204, t);
END
$$;

-- the purge scans across tenants, oldest first
CREATE INDEX tasks_purge_idx ON tm.tasks (deleted_at)
  WHERE deleted_at IS NOT NULL;

-- The background purge (one nginx worker, on a timer): at most p_limit
-- tasks soft-deleted more than p_after_s seconds ago, and at most p_limit
-- expired idempotency records.  Runs across tenants, so it is SECURITY
-- DEFINER (owned by the migration role) and takes no user input.  Answers
-- the number of tasks deleted.
CREATE FUNCTION tm_api.purge(p_after_s bigint, p_limit int)
RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_n int;
BEGIN
  WITH victims AS (
    SELECT t.workspace_id, t.id FROM tm.tasks t
     WHERE t.deleted_at IS NOT NULL
       AND t.deleted_at < now() - make_interval(secs => p_after_s)
     ORDER BY t.deleted_at
     LIMIT least(greatest(p_limit, 1), 10000)
     FOR UPDATE SKIP LOCKED),
  orphans AS (
    UPDATE tm.tasks c SET parent_id = NULL, updated_at = tm.now_ms(),
                          version = c.version + 1
      FROM victims v
     WHERE c.workspace_id = v.workspace_id AND c.parent_id = v.id
       AND (c.workspace_id, c.id) NOT IN (SELECT * FROM victims)),
  gone AS (
    DELETE FROM tm.tasks t USING victims v
     WHERE t.workspace_id = v.workspace_id AND t.id = v.id
    RETURNING 1)
  SELECT count(*) INTO v_n FROM gone;

  DELETE FROM tm.idempotency_keys d
   WHERE d.ctid IN (SELECT x.ctid FROM tm.idempotency_keys x
                     WHERE x.expires_at < now()
                     LIMIT least(greatest(p_limit, 1), 10000));
  RETURN v_n;
END
$$;

-- ---------------------------------------------------------------------------
-- privileges
-- ---------------------------------------------------------------------------

REVOKE ALL ON FUNCTION tm_api.purge(bigint, int) FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tm, tm_api TO taskmgr_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tm.idempotency_keys TO taskmgr_app;
GRANT DELETE ON tm.tasks TO taskmgr_app;
