-- The task listing query language (API.md "Listing"): full-text search,
-- the indexes of the common filters and sorts, and tm_api.task_find, the
-- gate around the query nginx builds from allow-listed fragments.
--
-- Adding the stored generated column rewrites tm.tasks under an ACCESS
-- EXCLUSIVE lock: on a large table apply this in a maintenance window.

SET client_min_messages = warning;

-- ---------------------------------------------------------------------------
-- full-text search over title (weight A) and description (weight B)
-- ---------------------------------------------------------------------------

ALTER TABLE tm.tasks ADD COLUMN search tsvector
  GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, title), 'A')
    || setweight(to_tsvector('english'::regconfig, description), 'B'))
  STORED;

CREATE INDEX tasks_search_idx ON tm.tasks USING gin (search);

-- ---------------------------------------------------------------------------
-- list indexes (docs/indexes.md says which query uses which).  Live rows
-- only, like the default list; deleted=include|only falls back to the
-- primary key and tasks_deleted_idx.
-- ---------------------------------------------------------------------------

-- filter[status] with the default order, and sort=status
CREATE INDEX tasks_status_idx
  ON tm.tasks (workspace_id, status, created_at DESC, id DESC)
  WHERE deleted_at IS NULL;

-- filter[assignee_id] with the default order
CREATE INDEX tasks_assignee_list_idx
  ON tm.tasks (workspace_id, assignee_id, created_at DESC, id DESC)
  WHERE deleted_at IS NULL;

-- sort=due_at / -due_at and filter[due_at][lt|gte|...]
CREATE INDEX tasks_due_idx ON tm.tasks (workspace_id, due_at, id)
  WHERE deleted_at IS NULL;

-- sort=-priority,due_at (and its reverse), filter[priority] by due date
CREATE INDEX tasks_priority_idx
  ON tm.tasks (workspace_id, priority DESC, due_at, id)
  WHERE deleted_at IS NULL;

-- sort=-updated_at (clients that sync)
CREATE INDEX tasks_updated_idx
  ON tm.tasks (workspace_id, updated_at DESC, id DESC)
  WHERE deleted_at IS NULL;

-- sort=title / -title
CREATE INDEX tasks_title_idx ON tm.tasks (workspace_id, title, id)
  WHERE deleted_at IS NULL;

-- filter[label]: @> and && on the array
CREATE INDEX tasks_labels_idx ON tm.tasks USING gin (labels);

-- deleted=only
CREATE INDEX tasks_deleted_idx
  ON tm.tasks (workspace_id, deleted_at DESC, id DESC)
  WHERE deleted_at IS NOT NULL;

-- ---------------------------------------------------------------------------
-- tm_api.task_find
-- ---------------------------------------------------------------------------

-- The general list.  nginx parses the query string against allow-lists of
-- fields, operators and sort keys and sends p_where and p_order built only
-- from fixed fragments of its own; every value the client gave travels in
-- p_args (text[]) or p_q and is referenced as $2[n] / $3, never spliced.
-- Inside the fragments $1 is the workspace, $2 the argument array and $3
-- the search text.
--
-- The gate is the one of tm_api.task_list: the session must be live and the
-- caller a member (tm.enter, which also sets the row-level-security context
-- for the dynamic query); else a single 401 or 404 row.
--
-- Answers rows of tm_api.task_row, up to p_limit + 1 (the extra one tells
-- that there is a next page).  With p_ranked the detail column holds
-- ts_rank (the sort key of a ranked page, for the cursor).  With p_count a
-- first row (http_status 200, id NULL) carries the number of matching rows
-- in detail (X-Total-Count of offset pages).
--
-- p_gin: the tests a GIN index serves (label eq/in, q) when the order is one
-- a btree gives; they are then not in p_where.  The planner's guess for a
-- rare or absent label or word can be far too high, and the ordered index
-- scan it then picks reads the whole tenant to find nothing (5.6 s for an
-- absent label on 1,000,000 tasks); forcing the GIN index instead costs
-- ~40 ms for a label on 10% of them, where the ordered scan needs 1 ms.  So
-- the first 5000 rows in the order (what p_where lets through) are read
-- and the matches among them counted, stopping as soon as the page is
-- full: enough, and the planner chooses freely (the order's index); too
-- few (under 1% match), and the page is read through bitmap scans only
-- (GIN) and sorted.
CREATE FUNCTION tm_api.task_find(p_uid uuid, p_sid uuid, p_ws uuid,
                                 p_where text, p_order text, p_limit int,
                                 p_offset int, p_count boolean, p_q text,
                                 p_ranked boolean, p_gin text,
                                 p_args text[])
RETURNS SETOF tm_api.task_row
LANGUAGE plpgsql AS $$
DECLARE
  v_role  text;
  v_total bigint;
  v_found bigint;
  v_where text := p_where || coalesce(' AND ' || p_gin, '');
BEGIN
  IF p_limit < 1 OR p_limit > 200 OR p_offset < 0 OR p_offset > 100000
     OR coalesce(cardinality(p_args), 0) > 512
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
    EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM (SELECT t.labels, t.search'
            ' FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || p_where
            || ' ORDER BY ' || p_order || ' LIMIT 5000) t WHERE ' || p_gin
            || ' LIMIT ' || (p_offset + p_limit + 1) || ') s'
       INTO v_found
      USING p_ws, p_args, p_q;
    IF v_found <= p_offset + p_limit THEN
      PERFORM set_config('enable_indexscan', 'off', true),
              set_config('enable_seqscan', 'off', true);
    END IF;
  END IF;

  IF p_count THEN
    EXECUTE 'SELECT count(*) FROM tm.tasks t WHERE t.workspace_id = $1 AND '
            || v_where
       INTO v_total
      USING p_ws, p_args, p_q;
    RETURN NEXT tm.task_err(200, v_total::text);
  END IF;

  RETURN QUERY EXECUTE
    'SELECT 200, '
    || CASE WHEN p_ranked
            THEN 'ts_rank(t.search, websearch_to_tsquery(''english'', $3))'
                 '::text'
            ELSE 'NULL::text' END
    || ', t.id, t.workspace_id, t.project_id, t.parent_id, t.title,'
       ' t.description, t.status, t.priority, t.due_at, t.assignee_id,'
       ' array_to_json(t.labels)::text, t.created_by, t.created_at,'
       ' t.updated_at, t.completed_at, t.deleted_at, t.version'
       ' FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || v_where
    || ' ORDER BY ' || p_order
    || ' LIMIT ' || (p_limit + 1) || ' OFFSET ' || p_offset
    USING p_ws, p_args, p_q;
END
$$;

GRANT EXECUTE ON FUNCTION tm_api.task_find(uuid, uuid, uuid, text, text, int,
                                           int, boolean, text, boolean,
                                           text, text[]) TO taskmgr_app;

-- ---------------------------------------------------------------------------
-- row-level security and the GIN indexes
-- ---------------------------------------------------------------------------

-- With row-level security on, PostgreSQL evaluates the policy before any
-- condition whose function is not LEAKPROOF, and such a condition then cannot
-- be an index condition.  search @@ q, labels @> … and labels && … could not
-- use their GIN indexes: on a 1,000,000-task tenant a rare word took a 0.5 s
-- sequential scan instead of 1 ms (docs/indexes.md).  These three functions
-- only compare their two arguments and raise no error that depends on a
-- value, which is what LEAKPROOF states.  The policy (and the explicit
-- workspace_id = $1 of every list query) still applies to every row returned.
-- Needs a superuser, as every migration here (scripts/migrate.sh).
ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
ALTER FUNCTION pg_catalog.arraycontains(anyarray, anyarray) LEAKPROOF;
ALTER FUNCTION pg_catalog.arrayoverlap(anyarray, anyarray) LEAKPROOF;
