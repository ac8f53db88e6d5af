-- taskmgr schema, version 9: the subtask tree and the slow list pages of a
-- large tenant (issue #5).
--
-- * Subtasks nest at most tm.task_depth_max() levels (a top-level task is
--   level 1).  tm.task_refs_check refuses a parent that would make a cycle
--   or a tree deeper than that, on create, PATCH and bulk update.  Writes
--   that set a parent take a transaction-level advisory lock of the
--   workspace first, so two concurrent moves cannot build a cycle or a too
--   deep tree between them.
-- * A soft-deleted parent changes nothing for its subtasks: they keep
--   parent_id (a restore brings the tree back as it was) and still count
--   towards the depth.  A permanent delete clears their parent_id (0005).

SET client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- the subtask tree
-- ---------------------------------------------------------------------------

CREATE FUNCTION tm.task_depth_max() RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 10 $$;

-- The advisory lock key of a workspace's task tree (one bigint key space
-- with any other advisory lock: the text prefix keeps it apart).
CREATE FUNCTION tm.task_tree_key(p_ws uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT hashtextextended('tm.task_tree:' || p_ws::text, 0)
$$;

-- Checks the references a task body makes; NULL when fine, else the error.
-- p_id: the task being changed, NULL on create.
--
-- parent_id: a live task of the workspace, not the task itself nor one of
-- its descendants (a cycle), and depth(new parent) + height(the task's
-- subtree) <= tm.task_depth_max() (on create the height is 1).  Deleted
-- tasks count in both walks: they keep their place in the tree.  Both walks
-- stop one level past the limit, so a deeper tree (made before this limit)
-- or a cycle (made by concurrent moves before this lock) cannot make them
-- run on; such a parent is refused as too deep.
--
-- The workspace's tree lock is taken before the walks, so they see every
-- move committed before and none runs beside them.  task_update holds the
-- task's row lock already, and a concurrent move of the new parent (which
-- holds that row and waits for this lock) would deadlock with the foreign
-- key check of this write: so the wait is bounded by 500 ms (shorter than
-- the default deadlock_timeout of 1 s), after which the move gives way with
-- a 409 the client may retry.
CREATE OR REPLACE FUNCTION tm.task_refs_check(p_ws uuid, p_id uuid,
                                              p_body jsonb)
RETURNS tm_api.result
LANGUAGE plpgsql AS $$
DECLARE
  v_uuid    uuid;
  v_max     int := tm.task_depth_max();
  v_timeout text;
  v_depth   int;
  v_cycle   boolean;
BEGIN
  IF p_body ? 'assignee_id' AND jsonb_typeof(p_body->'assignee_id') = 'string' THEN
    v_uuid := (p_body->>'assignee_id')::uuid;
    IF NOT EXISTS (SELECT 1 FROM tm.workspace_members
                   WHERE workspace_id = p_ws AND user_id = v_uuid) THEN
      RETURN tm_api.err(422, 'validation_failed',
                        'assignee_id: not a member of this workspace');
    END IF;
  END IF;
  IF p_body ? 'project_id' AND jsonb_typeof(p_body->'project_id') = 'string' THEN
    v_uuid := (p_body->>'project_id')::uuid;
    IF NOT EXISTS (SELECT 1 FROM tm.projects
                   WHERE workspace_id = p_ws AND id = v_uuid) THEN
      RETURN tm_api.err(422, 'validation_failed',
                        'project_id: no such project in this workspace');
    END IF;
  END IF;
  IF NOT (p_body ? 'parent_id'
          AND jsonb_typeof(p_body->'parent_id') = 'string') THEN
    -- no parent, or none any more: no cycle, no deeper tree
    RETURN NULL;
  END IF;

  v_uuid := (p_body->>'parent_id')::uuid;
  IF v_uuid = p_id THEN
    RETURN tm_api.err(422, 'validation_failed',
                      'parent_id: a task cannot be its own parent');
  END IF;

  v_timeout := current_setting('lock_timeout');
  PERFORM set_config('lock_timeout', '500ms', true);
  BEGIN
    PERFORM pg_advisory_xact_lock(tm.task_tree_key(p_ws));
  EXCEPTION WHEN lock_not_available THEN
    PERFORM set_config('lock_timeout', v_timeout, true);
    RETURN tm_api.err(409, 'conflict',
                      'parent_id: other tasks of this workspace are being '
                      'moved; retry');
  END;
  PERFORM set_config('lock_timeout', v_timeout, true);

  IF NOT EXISTS (SELECT 1 FROM tm.tasks
                 WHERE workspace_id = p_ws AND id = v_uuid
                   AND deleted_at IS NULL) THEN
    RETURN tm_api.err(422, 'validation_failed',
                      'parent_id: no such task in this workspace');
  END IF;

  -- the new parent and its ancestors: depth(parent), and whether the task
  -- is one of them
  WITH RECURSIVE up(id, parent_id, n) AS (
    SELECT t.id, t.parent_id, 1 FROM tm.tasks t
     WHERE t.workspace_id = p_ws AND t.id = v_uuid
    UNION ALL
    SELECT t.id, t.parent_id, up.n + 1 FROM up
      JOIN tm.tasks t ON t.workspace_id = p_ws AND t.id = up.parent_id
     WHERE up.n <= v_max)
  SELECT max(up.n), coalesce(bool_or(up.id = p_id), false)
    INTO v_depth, v_cycle FROM up;

  IF v_cycle THEN
    RETURN tm_api.err(422, 'validation_failed',
                      'parent_id: that would make a cycle');
  END IF;

  IF v_depth >= v_max
     OR (p_id IS NOT NULL AND EXISTS (
           -- a descendant of the task more than (v_max - v_depth) levels
           -- below it, the task being level 1
           WITH RECURSIVE down(id, n) AS (
             SELECT p_id, 1
             UNION ALL
             SELECT t.id, down.n + 1 FROM down
               JOIN tm.tasks t ON t.workspace_id = p_ws
                              AND t.parent_id = down.id
              WHERE down.n <= v_max - v_depth)
           SELECT 1 FROM down WHERE down.n > v_max - v_depth))
  THEN
    RETURN tm_api.err(422, 'validation_failed',
                      format('parent_id: tasks nest at most %s levels deep '
                             '(a top-level task is level 1)', v_max));
  END IF;

  RETURN NULL;
END
$$;

-- Bulk update with a parent_id: as in 0005, each id goes through
-- tm_api.task_update (and so tm.task_refs_check, in the order of ids, each
-- seeing the moves before it).  The tree lock is taken once up front,
-- before any row lock of the batch: a batch then never holds a task's row
-- while it waits for the lock.
CREATE OR REPLACE FUNCTION tm_api.task_bulk(p_uid uuid, p_sid uuid, p_ws uuid,
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
  IF v_action = 'update' AND jsonb_typeof(v_patch->'parent_id') = 'string'
  THEN
    PERFORM pg_advisory_xact_lock(tm.task_tree_key(p_ws));
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
-- tm_api.task_find, second form: the slow pages of a large tenant
-- ---------------------------------------------------------------------------

-- As the first form (0003), with the keyset condition apart (p_after) and
-- three changes, each for a page that read a large part of a 1,000,000-task
-- tenant (bench/README.md "One million tasks", docs/indexes.md):
--
-- * p_split: a sort that starts with status and/or priority (4 and 5
--   values) has no index of its own, and an incremental sort of the largest
--   group took 200 ms to 1.5 s.  nginx then sends one branch per
--   combination of those leading values, in the order of the sort (from the
--   cursor's on, the cursor's own with the keyset condition of the other
--   keys, values the filters exclude left out), as pairs of a condition and
--   the order of the keys after them.  Likewise for due_at followed by more
--   keys: its NULLs (60% of the tasks in the bench) tie, and sorting them
--   by the next key took 18 s; they become a branch of their own (with the
--   keys after due_at as its order).  The branches run in turn, each served
--   by the index of its first order key (created_at, updated_at, due_at,
--   title, or the primary key for id), until the page is full.  Offset
--   pages skip whole branches by a count bounded by the offset.
-- * p_ranked: a ranked search ranks the 200 newest matches (created_at,
--   then id), not every match: ranking 77,000 matches of two common words
--   read 53,000 heap pages (200 ms to 1 s), and finding the 500 newest of
--   words in 2.5% of the tasks read 20,000 rows (36 ms p50, 190 ms p99 on
--   the 1M bench; 200: 12 / 26 ms).  A search with up to 200 matches is
--   ranked exactly; with more, the pages list the best of the 200 newest,
--   and a sort lists every match (docs/openapi.yaml says so).
-- * p_count: X-Total-Count counts at most p_offset + 10,000 matches; the
--   count row's detail then ends in '+' (nginx sends the number and
--   X-Total-Count-Capped: true).  Counting 390,000 rows took 55-100 ms.
--
-- The probe of p_gin (0003) reads the sort's first 5000 rows; with a split
-- it reads the newest 5000 (tasks_list_idx) instead, and for the
-- candidates of a rank the newest 1000, asking for 0.6% (6 of them;
-- below, the GIN index's bitmap of the matches is cheaper than the ordered
-- scan: at 0.9% the ordered scan took 44 ms p50, the bitmap 79 ms).
CREATE FUNCTION tm_api.task_find(p_uid uuid, p_sid uuid, p_ws uuid,
                                 p_where text, p_after text, p_order text,
                                 p_limit int, p_offset int, p_count boolean,
                                 p_q text, p_ranked boolean, p_gin text,
                                 p_args text[], p_split text[])
RETURNS SETOF tm_api.task_row
LANGUAGE plpgsql AS $$
DECLARE
  c_rank_max  constant int := 200;
  c_count_max constant int := 10000;
  c_cols constant text :=
    ', t.id, t.workspace_id, t.project_id, t.parent_id, t.title,'
    ' t.description, t.status, t.priority, t.due_at, t.assignee_id,'
    ' array_to_json(t.labels)::text, t.created_by, t.created_at,'
    ' t.updated_at, t.completed_at, t.deleted_at, t.version';
  v_role   text;
  v_total  bigint;
  v_found  bigint;
  v_need   bigint;
  v_skip   bigint := p_offset;
  v_cap    bigint := p_offset + c_count_max;
  v_n      bigint;
  v_where  text := p_where || coalesce(' AND ' || p_gin, '');
  v_from   text;
  v_i      int;
BEGIN
  IF p_limit < 1 OR p_limit > 200 OR p_offset < 0 OR p_offset > 100000
     OR coalesce(cardinality(p_args), 0) > 512
     OR coalesce(cardinality(p_split), 0) > 80
     OR coalesce(cardinality(p_split), 0) % 2 = 1
     OR (p_split IS NOT NULL AND p_ranked)
  THEN
    RAISE EXCEPTION 'task_find: bounds' USING ERRCODE = '22023';
  END IF;

  v_role := tm.enter(p_uid, p_sid, p_ws);
  IF v_role IS NULL THEN
    RETURN NEXT tm.task_err(401, 'session has ended');
    RETURN;
  ELSIF v_role = '' THEN
    RETURN NEXT tm.task_err(404, 'workspace not found');
    RETURN;
  END IF;

  IF p_gin IS NOT NULL THEN
    IF p_split IS NULL AND NOT p_ranked THEN
      EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM (SELECT t.labels, t.search'
              ' FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || p_where
              || coalesce(' AND ' || p_after, '')
              || ' ORDER BY ' || p_order || ' LIMIT 5000) t WHERE ' || p_gin
              || ' LIMIT ' || (p_offset + p_limit + 1) || ') s'
         INTO v_found
        USING p_ws, p_args, p_q;
      v_n := p_offset + p_limit;
    ELSE
      -- a rank: 0.6% of the newest 1000 (the ordered scan then reads at
      -- most ~33,000 rows for its 200 candidates); a split: a page among
      -- the newest 5000
      v_n := CASE WHEN p_ranked THEN 5 ELSE p_limit END;
      EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM (SELECT t.labels, t.search'
              ' FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || p_where
              || ' ORDER BY t.created_at DESC, t.id DESC LIMIT '
              || CASE WHEN p_ranked THEN 1000 ELSE 5000 END || ') t'
                 ' WHERE ' || p_gin || ' LIMIT ' || (v_n + 1) || ') s'
         INTO v_found
        USING p_ws, p_args, p_q;
    END IF;
    IF v_found <= v_n THEN
      PERFORM set_config('enable_indexscan', 'off', true),
              set_config('enable_seqscan', 'off', true);
    END IF;
  END IF;

  v_from := 'FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || v_where;
  IF p_ranked THEN
    -- the candidates: the newest matches
    v_from := 'FROM (SELECT t.* ' || v_from
              || ' ORDER BY t.created_at DESC, t.id DESC LIMIT '
              || c_rank_max || ') t WHERE true';
    v_cap := c_rank_max;
  END IF;

  IF p_count THEN
    EXECUTE 'SELECT count(*) FROM (SELECT 1 ' || v_from || ' LIMIT '
            || (v_cap + 1) || ') s'
       INTO v_total
      USING p_ws, p_args, p_q;
    RETURN NEXT tm.task_err(200, CASE WHEN v_total > v_cap
                                      THEN v_cap::text || '+'
                                      ELSE v_total::text END);
  END IF;

  IF p_split IS NULL THEN
    RETURN QUERY EXECUTE
      'SELECT 200, '
      || CASE WHEN p_ranked
              THEN 'ts_rank(t.search, websearch_to_tsquery(''english'', $3))'
                   '::text'
              ELSE 'NULL::text' END
      || c_cols || ' ' || v_from || coalesce(' AND ' || p_after, '')
      || ' ORDER BY ' || p_order
      || ' LIMIT ' || (p_limit + 1) || ' OFFSET ' || p_offset
      USING p_ws, p_args, p_q;
    RETURN;
  END IF;

  -- one branch per leading value, in the sort's order, until the page is
  -- full
  v_need := p_limit + 1;
  FOR v_i IN 1 .. cardinality(p_split) / 2 LOOP
    IF v_skip > 0 THEN
      EXECUTE 'SELECT count(*) FROM (SELECT 1 ' || v_from || ' AND '
              || p_split[2 * v_i - 1] || ' LIMIT ' || v_skip || ') s'
         INTO v_n
        USING p_ws, p_args, p_q;
      IF v_n < v_skip THEN
        v_skip := v_skip - v_n;
        CONTINUE;
      END IF;
    END IF;
    RETURN QUERY EXECUTE
      'SELECT 200, NULL::text' || c_cols || ' ' || v_from || ' AND '
      || p_split[2 * v_i - 1] || ' ORDER BY ' || p_split[2 * v_i]
      || ' LIMIT ' || v_need || ' OFFSET ' || v_skip
      USING p_ws, p_args, p_q;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_skip := 0;
    v_need := v_need - v_n;
    EXIT WHEN v_need <= 0;
  END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION tm_api.task_find(uuid, uuid, uuid, text, text, text,
                                           int, int, boolean, text, boolean,
                                           text, text[], text[])
  TO taskmgr_app;

-- The first form stays for nginx workers started before this migration
-- (tm_task_find of 12 parameters) until they are reloaded.

-- ---------------------------------------------------------------------------
-- an index that serves no query
-- ---------------------------------------------------------------------------

-- tasks_assignee_idx (assignee_id) of 0001 crosses tenants: no API query
-- reads tasks by assignee without the workspace (tasks_assignee_list_idx
-- serves filter[assignee_id]).  It would only serve the foreign key check
-- of a DELETE FROM tm.users, which no API call makes (users are never
-- deleted; an operator who does it pays a scan of tm.tasks).  Every task
-- write maintained it.
DROP INDEX tm.tasks_assignee_idx;

-- ---------------------------------------------------------------------------
-- sorts led by status and priority together
-- ---------------------------------------------------------------------------

-- sort=status,-priority (and -priority,status, either direction) is read
-- one (status, priority) combination at a time (tm_api.task_find); each
-- branch is an equality on both, ordered by id: this index answers a branch
-- of 0.25% of a tenant in under a millisecond instead of reading the
-- status's rows (47 ms on the 1M-task bench for the rarest one).  It takes
-- the write cost of tasks_assignee_idx, dropped above.
CREATE INDEX tasks_status_priority_idx
  ON tm.tasks (workspace_id, status, priority, id)
  WHERE deleted_at IS NULL;
