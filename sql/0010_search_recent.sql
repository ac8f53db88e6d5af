-- Ranked search from an index in time order (bench/README.md "One million
-- tasks", session 4; docs/indexes.md).
--
-- A ranked search (q= without sort) ranks the 200 newest matches (0009).
-- For words in 0.1-1% of a 1,000,000-task tenant both ways 0009 had of
-- finding them read a lot: the newest-first scan of tasks_list_idx fetched
-- every task from the heap to test its words (~24,000 rows for 0.9%: 31 ms
-- p50, 43 ms p99 warm; ~50,000 for 0.4%: 56 / 71 ms), and the GIN bitmap
-- intersects the posting lists of every word (each of the bench's words is
-- in a quarter of the tasks: 47-55 ms whatever the number of matches).
--
-- tasks_search_recent_idx is a GiST index of (workspace_id, created_at,
-- lexemes): read in created_at order (btree_gist's <-> distance to a
-- constant far in the future), it tests each task's words inside the index
-- and skips subtrees without a rare word, so the heap is read only for the
-- matches: 0.9% 4 ms, 0.4% 8 ms, 0.1% 32 ms, a single rare word 2 ms.
-- strip() keeps the lexemes without positions, and a phrase (a <-> b) is
-- false on a stripped vector: the index is asked for the query with each
-- phrase operator made an AND (every task with the phrase has its words;
-- tsquery's text puts spaces around operators, and a lexeme has none), and
-- the exact test t.search @@ q stays in the conditions.  Under a negation
-- that would not hold (!(a <-> b) is true of a task with a and b apart),
-- so a query with both a phrase and a negation keeps 0009's ways, as do
-- deleted=include|only (the index holds live tasks).
--
-- The probe of 0009 now reads the newest 2000 tasks (1000 before) for a
-- ranked search that can use this index, and sends it here when one or
-- more match (0.05%); with none, the GIN bitmap: rare words take ~1 ms,
-- and a conjunction of common words with few matches the cost of
-- intersecting their lists (seven or more of the bench's words, each in a
-- quarter of the tasks: 60-75 ms, where this index would read 70-160 ms).
--
-- The index is built under a SHARE lock: task writes wait for it (about
-- 20 s for 1,000,000 tasks, 240 MB).  Needs a superuser, as every migration
-- here (scripts/migrate.sh): btree_gist and the LEAKPROOF mark.

SET client_min_messages = warning;

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- strip() only copies the lexemes of its argument and raises no error that
-- depends on a value; LEAKPROOF lets strip(search) @@ q be an index
-- condition under row-level security (see 0003 for ts_match_vq).
ALTER FUNCTION pg_catalog.strip(tsvector) LEAKPROOF;

-- The index is read newest first: the entries of tasks deleted, rolled back
-- or updated since the last vacuum are read (and their rows fetched) before
-- the live ones.  30,000 rolled-back inserts slowed the 0.9% search of the
-- bench from ~10 to ~25 ms until a VACUUM; the default of 20% of the table
-- would wait for 200,000 dead rows on 1,000,000 tasks.
ALTER TABLE tm.tasks SET (autovacuum_vacuum_scale_factor = 0.02);

CREATE INDEX tasks_search_recent_idx
  ON tm.tasks USING gist (workspace_id, created_at, strip(search))
  WHERE deleted_at IS NULL;

-- The FROM of the first p_n tasks of p_from (a FROM ... WHERE ... of
-- tm.tasks t that holds t.deleted_at IS NULL and t.search @@ q, q being
-- websearch_to_tsquery('english', $3)) in p_order, which is created_at
-- newest (p_newest) or oldest first, then id: read from
-- tasks_search_recent_idx by the distance of created_at to a constant past
-- every task (or before every one), its lexemes tested inside the index.
-- That order has no id tiebreak, so the tasks on the last one's millisecond
-- are completed (by tasks_list_idx or the index itself) before the first
-- p_n in p_order are kept.  A phrase (p_phrase) is asked of the index with
-- its phrase operators made ANDs (tsquery's text puts spaces around an
-- operator; a lexeme has none); the exact test stays in p_from.
CREATE FUNCTION tm.task_recent_from(p_from text, p_phrase boolean,
                                    p_newest boolean, p_n int,
                                    p_order text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT 'FROM (WITH g AS MATERIALIZED (SELECT t.* ' || p_from
         || CASE WHEN p_phrase
                 THEN ' AND strip(t.search) @@ regexp_replace('
                      'websearch_to_tsquery(''english'', $3)::text,'
                      ' '' <[0-9-]+> '', '' & '', ''g'')::tsquery'
                 ELSE ' AND strip(t.search) @@'
                      ' websearch_to_tsquery(''english'', $3)' END
         || ' ORDER BY t.created_at <-> '
         || CASE WHEN p_newest THEN '''2500-01-01 00:00:00+00'''
                 ELSE '''1900-01-01 00:00:00+00''' END
         || '::timestamptz LIMIT ' || p_n || '),'
            ' e AS (SELECT '
         || CASE WHEN p_newest THEN 'min' ELSE 'max' END
         || '(g.created_at) AS at FROM g HAVING count(*) = ' || p_n || ')'
            ' SELECT t.* FROM (SELECT g.* FROM g UNION ALL SELECT t.* '
         || p_from || ' AND t.created_at = (SELECT e.at FROM e)'
            ' AND NOT EXISTS (SELECT 1 FROM g WHERE g.id = t.id)) t'
            ' ORDER BY ' || p_order || ' LIMIT ' || p_n || ') t WHERE true'
$$;

GRANT EXECUTE ON FUNCTION tm.task_recent_from(text, boolean, boolean, int,
                                              text)
  TO taskmgr_app;

-- 0009's tm_api.task_find; changed: v_gist, v_recent and v_first (which
-- searches tasks_search_recent_idx serves), the probe's threshold for a
-- ranked search, no bitmap scans for this index's way, the candidates of
-- those searches (tm.task_recent_from); and the probe of a sorted search
-- (below).
--
-- A search or label filter under a sort read the sort's order when the
-- probe found a whole page among its first 5000 rows (1% for a page of 50),
-- else the GIN bitmap of every match: for words in 0.9% of the bench's
-- tasks that was 9,000 matches, 57 ms p50 (a phrase of common words: 374
-- ms), where the sort's order would read ~5,700 rows.  The order now serves
-- when the probe finds a fifth of the rows wanted (0.2%: at most ~25,000
-- rows read, ~30 ms).
CREATE OR REPLACE FUNCTION tm_api.task_find(p_uid uuid, p_sid uuid, p_ws uuid,
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
  -- the newest matches from tasks_search_recent_idx (see above): live
  -- tasks, and a query without a phrase or without a negation
  v_tsq    text := CASE WHEN coalesce(p_q, '') <> ''
                         THEN websearch_to_tsquery('english', p_q)::text
                         ELSE '' END;
  v_phrase boolean := v_tsq ~ ' <[0-9-]+> ';
  v_gist   boolean := p_split IS NULL AND coalesce(p_q, '') <> ''
                      AND left(p_where, 20) = 't.deleted_at IS NULL'
                      AND NOT (v_phrase AND position('!' IN v_tsq) > 0);
  -- the search is the only condition besides live tasks: the index tests
  -- all of it (other filters are tested on each row the index returns)
  v_only_q boolean := p_where = 't.deleted_at IS NULL'
                      AND p_gin = 't.search @@ websearch_to_tsquery(''english'', $3)';
  v_recent boolean := p_ranked AND v_gist;
  -- a keyset page of a search in created_at order (either way) that the
  -- probe would send to the GIN bitmap: the first page_size + 1 matches in
  -- that order from tasks_search_recent_idx instead (see the notes below)
  v_first  boolean := NOT p_ranked AND v_gist AND v_only_q AND NOT p_count
                      AND p_offset = 0
                      AND p_order ~ '^t\.created_at (ASC|DESC), t\.id (ASC|DESC)$';
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
      -- the sort's order when its first 5000 rows hold a fifth of the rows
      -- wanted (it then reads at most ~25,000 rows: ~30 ms), else the GIN
      -- bitmap of every match (0009 asked for all of them: words in 0.9% of
      -- the tasks under a sort took 57 ms through the bitmap)
      v_n := (p_offset + p_limit + 1 + 4) / 5 - 1;
      EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM (SELECT t.labels, t.search'
              ' FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || p_where
              || coalesce(' AND ' || p_after, '')
              || ' ORDER BY ' || p_order || ' LIMIT 5000) t WHERE ' || p_gin
              || ' LIMIT ' || (v_n + 1) || ') s'
         INTO v_found
        USING p_ws, p_args, p_q;
    ELSE
      -- a rank from tasks_search_recent_idx: one of the newest 2000, or
      -- three with other filters (the index then returns rows that only
      -- have the words; 0009's ways took 84 ms p50 for three words and
      -- status=archived, 0.25% of the bench's tasks, this index 33-42 ms);
      -- any other rank: 0.6% of the newest 1000 (the ordered scan then
      -- reads at most ~33,000 rows for its 200 candidates); a split: a page
      -- among the newest 5000
      v_n := CASE WHEN v_recent AND v_only_q THEN 0
                  WHEN v_recent THEN 2
                  WHEN p_ranked THEN 5
                  ELSE p_limit END;
      EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM (SELECT t.labels, t.search'
              ' FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || p_where
              || ' ORDER BY t.created_at DESC, t.id DESC LIMIT '
              || CASE WHEN v_recent THEN 2000
                      WHEN p_ranked THEN 1000
                      ELSE 5000 END || ') t'
                 ' WHERE ' || p_gin || ' LIMIT ' || (v_n + 1) || ') s'
         INTO v_found
        USING p_ws, p_args, p_q;
    END IF;
    -- tasks_search_recent_idx for a rank with matches among the newest,
    -- and for a created_at page with too few in the sort's first rows
    v_recent := v_recent AND v_found > v_n;
    v_first := v_first AND v_found <= v_n;
    IF v_recent OR v_first THEN
      -- the planner has no useful estimate of strip(search) @@ q and would
      -- rather read every match through a bitmap and sort them (3.6 s for
      -- words in 7.7% of the bench's tasks instead of 2 ms)
      PERFORM set_config('enable_bitmapscan', 'off', true);
    ELSIF v_found <= v_n THEN
      PERFORM set_config('enable_indexscan', 'off', true),
              set_config('enable_seqscan', 'off', true);
    END IF;
  ELSE
    v_recent := false;
    v_first := false;
  END IF;

  v_from := 'FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || v_where;
  IF v_recent THEN
    -- the candidates: the 200 newest matches
    v_from := tm.task_recent_from(v_from, v_phrase, true, c_rank_max,
                                  't.created_at DESC, t.id DESC');
    v_cap := c_rank_max;
  ELSIF v_first THEN
    -- the page and the row after it: the first matches after the cursor
    v_from := tm.task_recent_from(v_from || coalesce(' AND ' || p_after, ''),
                                  v_phrase, p_order LIKE 't.created_at DESC%',
                                  p_limit + 1, p_order);
  ELSIF p_ranked THEN
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
