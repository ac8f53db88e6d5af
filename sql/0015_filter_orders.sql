-- Offset pages through an assignee, a project or a label (bench/README.md
-- "One million tasks", session 7; docs/indexes.md).
--
-- An offset page reads the ids of its rows in the sort's index, then those
-- rows (0011, 0013).  Where a filter is in no index of the sort, that cost
-- rows in proportion to the offset (the sort's index, a heap fetch per row
-- skipped, to test the filter) or to the filter's matches (all of them
-- fetched and sorted), whichever is less.  On the bench's 1,000,000-task
-- tenant, where an assignee or a project has ~37,000 tasks and a label
-- ~118,000: offset 9,950 of filter[assignee_id] by title 79-107 ms p50,
-- by due date 52-72; of filter[project_id] by title 105-123, by
-- -updated_at 91; of filter[label] 235-298; offset 950 of a project or a
-- label by title 52-79.
--
-- 1. The usual views of a task manager, someone's tasks and a project's
--    tasks, in the sorts that are not split (created_at, updated_at,
--    due_at, title), get an index each that starts with the filter: an
--    offset page is then one range of it, whatever its depth.  Someone's
--    tasks newest first already have tasks_assignee_list_idx.  A task
--    without an assignee (a project) is not in that filter's indexes: the
--    filters test equality, which implies it has one.
-- 2. The indexes of those four sorts, those seven, the branches of the
--    split sorts (tasks_priority_id_idx, tasks_status_id_idx), and
--    filter[status]'s and filter[assignee_id]'s (tasks_status_idx,
--    tasks_assignee_list_idx) include the labels, so that the ids of an
--    offset page through a label filter, alone or with those (and the
--    count of X-Total-Count), are an index-only scan that tests the
--    labels of each entry, not a heap fetch: offset 950 of
--    filter[label] by -priority 82-118 ms p50 -> 28, with an assignee
--    by title 58-97 -> 15, with status=todo by -updated_at 64-97 -> 30.
--    Same names, rebuilt (the labels add ~25-40 MB to each on the
--    bench's tenant).
--
-- 3. An offset page of the whole list or of a label reads its ids and
--    counts X-Total-Count in one pass (tm_api.task_find restated, at the
--    end).
--
-- The sorts led by status or priority (a branch per value, ordered by id)
-- read the branch's index with the filter tested on the heap: offset 9,950
-- of an assignee with sort=-priority 26-33 ms p50, left so.
--
-- Builds seven indexes and rebuilds eight under an ACCESS EXCLUSIVE lock:
-- every task read and write waits (61 s for 1,000,000 tasks).  They make
-- each write of a task update seven more btree entries (+0.1 ms an insert
-- here, bench/README.md).

SET client_min_messages = warning;

CREATE INDEX tasks_assignee_title_idx
  ON tm.tasks (workspace_id, assignee_id, title, id)
  INCLUDE (deleted_at, status, priority, labels)
  WHERE assignee_id IS NOT NULL;

CREATE INDEX tasks_assignee_due_idx
  ON tm.tasks (workspace_id, assignee_id, due_at, id)
  INCLUDE (deleted_at, status, priority, labels)
  WHERE assignee_id IS NOT NULL;

CREATE INDEX tasks_assignee_updated_idx
  ON tm.tasks (workspace_id, assignee_id, updated_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority, labels)
  WHERE assignee_id IS NOT NULL;

CREATE INDEX tasks_project_list_idx
  ON tm.tasks (workspace_id, project_id, created_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority, labels)
  WHERE project_id IS NOT NULL;

CREATE INDEX tasks_project_title_idx
  ON tm.tasks (workspace_id, project_id, title, id)
  INCLUDE (deleted_at, status, priority, labels)
  WHERE project_id IS NOT NULL;

CREATE INDEX tasks_project_due_idx
  ON tm.tasks (workspace_id, project_id, due_at, id)
  INCLUDE (deleted_at, status, priority, labels)
  WHERE project_id IS NOT NULL;

CREATE INDEX tasks_project_updated_idx
  ON tm.tasks (workspace_id, project_id, updated_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority, labels)
  WHERE project_id IS NOT NULL;

DROP INDEX tm.tasks_list_idx;
CREATE INDEX tasks_list_idx
  ON tm.tasks (workspace_id, created_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority, labels);

DROP INDEX tm.tasks_due_idx;
CREATE INDEX tasks_due_idx
  ON tm.tasks (workspace_id, due_at, id)
  INCLUDE (deleted_at, status, priority, labels);

DROP INDEX tm.tasks_updated_idx;
CREATE INDEX tasks_updated_idx
  ON tm.tasks (workspace_id, updated_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority, labels);

DROP INDEX tm.tasks_title_idx;
CREATE INDEX tasks_title_idx
  ON tm.tasks (workspace_id, title, id)
  INCLUDE (deleted_at, status, priority, labels);

DROP INDEX tm.tasks_status_idx;
CREATE INDEX tasks_status_idx
  ON tm.tasks (workspace_id, status, created_at DESC, id DESC)
  INCLUDE (deleted_at, priority, labels);

DROP INDEX tm.tasks_assignee_list_idx;
CREATE INDEX tasks_assignee_list_idx
  ON tm.tasks (workspace_id, assignee_id, created_at DESC, id DESC)
  INCLUDE (deleted_at, status, priority, labels);

DROP INDEX tm.tasks_priority_id_idx;
CREATE INDEX tasks_priority_id_idx
  ON tm.tasks (workspace_id, priority, id) INCLUDE (deleted_at, status, labels);

DROP INDEX tm.tasks_status_id_idx;
CREATE INDEX tasks_status_id_idx
  ON tm.tasks (workspace_id, status, id) INCLUDE (deleted_at, priority, labels);

-- 3. tm_api.task_find restated (0013's, one change): an offset page of the
--    whole list, or of a label filter read in the sort's order, counted
--    X-Total-Count (up to offset + 10,000 rows) and then read its ids (up
--    to offset + page + 1 rows) in the same index: the second scan
--    repeated most of the first.  Now one query reads the rows from the
--    offset on, up to the count's cap, in the sort's order (ids only, an
--    index-only scan): how many there are, and the page's ids first.  The
--    page at offset 99,950: 26 + 19 ms -> 23 ms in psql; a label's offset
--    9,950: 38 + 20 -> 41 ms.  Not with other filters (the count may have
--    an index of its own, where the order's index would read many more
--    rows), nor for deleted=only, a search, a rank or a split sort; nor
--    past the last row (the count then starts from the first row).

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
  -- the search test nginx writes into p_gin
  c_match constant text :=
    't.search @@ websearch_to_tsquery(''english'', $3)';
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
  v_bfrom  text;
  v_i      int;
  -- the deleted_at condition p_where starts with (all of p_where if it
  -- starts otherwise), and the filters after it (each " AND ..."), for the
  -- filter probe
  v_dcond  text := CASE WHEN left(p_where, 24) = 't.deleted_at IS NOT NULL'
                        THEN 't.deleted_at IS NOT NULL'
                        WHEN left(p_where, 20) = 't.deleted_at IS NULL'
                        THEN 't.deleted_at IS NULL'
                        WHEN left(p_where, 4) = 'true' THEN 'true'
                        ELSE p_where END;
  v_filters text := substr(p_where, length(v_dcond) + 1);
  -- deleted=only (see above)
  v_deleted boolean := v_dcond = 't.deleted_at IS NOT NULL';
  -- an offset page's cursor and offset, until its ids' query takes them
  v_after  text := p_after;
  v_offset int := p_offset;
  v_seen   bigint;
  -- the newest matches from tasks_search_recent_idx (see above): live
  -- tasks, and a query without a phrase or without a negation
  v_tsq    text := CASE WHEN coalesce(p_q, '') <> ''
                         THEN websearch_to_tsquery('english', p_q)::text
                         ELSE '' END;
  v_phrase boolean := v_tsq ~ ' <[0-9-]+> ';
  -- the pairs of adjacent lexemes every match has (tm.query_pairs)
  v_pairs  text[] := CASE WHEN v_phrase
                          THEN tm.query_pairs(v_tsq::tsquery) END;
  -- a search the time-ordered index can ask (no split sort, no phrase
  -- under a negation), of live tasks (v_gist) or with deleted=include
  -- (v_incl, a rank only: see above)
  v_timed  boolean := p_split IS NULL AND coalesce(p_q, '') <> ''
                      AND NOT (v_phrase AND position('!' IN v_tsq) > 0);
  v_gist   boolean := v_timed AND v_dcond = 't.deleted_at IS NULL';
  -- the search is the only condition besides live tasks: the index tests
  -- all of it (other filters are tested on each row the index returns)
  v_only_q boolean := p_where = 't.deleted_at IS NULL'
                      AND p_gin = c_match;
  v_incl   boolean := p_ranked AND v_timed AND v_dcond = 'true';
  v_ids    text;
  -- an offset page's ids and X-Total-Count in one pass (see above): the
  -- rows from the offset on it counted (0: none, or not counted so)
  v_rest   bigint := 0;
  v_recent boolean := p_ranked AND (v_gist OR v_incl);
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
    IF v_deleted THEN
      -- deleted=only: no probe, no order; the bitmaps of the GIN indexes
      -- of deleted tasks (0012), or of a phrase's pairs
      v_n := 0;
      v_found := 0;
    ELSIF p_split IS NULL AND NOT p_ranked THEN
      -- the sort's order when its first 5000 rows hold a fifth of the rows
      -- wanted (it then reads at most ~25,000 rows: ~30 ms), else the GIN
      -- bitmap of every match (0009 asked for all of them: words in 0.9% of
      -- the tasks under a sort took 57 ms through the bitmap).  An offset
      -- page: a twentieth (up to ~100,000 rows in order), since the bitmap
      -- then fetches and sorts every match (see above)
      v_n := CASE WHEN p_offset > 0 THEN (p_offset + p_limit + 1) / 20
                  ELSE (p_offset + p_limit + 1 + 4) / 5 - 1 END;
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
      v_n := CASE WHEN v_recent AND v_pairs IS NOT NULL THEN 19
                  WHEN v_recent AND v_only_q THEN 0
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
    v_first := v_first AND v_found <= v_n AND v_pairs IS NULL;
    IF v_recent AND v_incl THEN
      -- the newest deleted matches, by their GIN index (bitmaps are
      -- allowed for this query only)
      EXECUTE 'SELECT array_agg(s.id)::text FROM (SELECT t.id FROM tm.tasks t'
              ' WHERE t.workspace_id = $1 AND t.deleted_at IS NOT NULL'
              || v_filters || ' AND ' || p_gin
              || ' ORDER BY t.created_at DESC, t.id DESC LIMIT ' || c_rank_max
              || ') s'
         INTO v_ids
        USING p_ws, p_args, p_q;
    END IF;
    IF v_recent OR v_first THEN
      -- the planner has no useful estimate of strip(search) @@ q and would
      -- rather read every match through a bitmap and sort them (3.6 s for
      -- words in 7.7% of the bench's tasks instead of 2 ms)
      PERFORM set_config('enable_bitmapscan', 'off', true);
    ELSIF v_found <= v_n THEN
      PERFORM set_config('enable_indexscan', 'off', true),
              set_config('enable_seqscan', 'off', true);
      IF v_pairs IS NOT NULL THEN
        -- the tasks with the pairs, not those with the words; the words'
        -- test is written so that it is no index condition (ts_match_vq is
        -- @@), or the planner may AND both bitmaps (GIN intersecting the
        -- posting lists of common words: 50-75 ms)
        v_where := replace(v_where, c_match,
                     'tm.search_pairs(t.search) @> '
                     || quote_literal(v_pairs::text) || '::text[]'
                     ' AND ts_match_vq(t.search,'
                     ' websearch_to_tsquery(''english'', $3))');
      END IF;
    END IF;
  ELSE
    v_recent := false;
    v_first := false;
    IF v_filters <> ''
       AND v_filters !~ ('t\.(' || substring(p_order FROM '^t\.([a-z_]+)')
                         || coalesce('|' || substring(p_split[2]
                                                      FROM '^t\.([a-z_]+)'), '')
                         || ') ')
    THEN
      -- the filter probe (see above): the first 500 rows of the order (of
      -- the first branch, for a split sort) after the cursor; with fewer
      -- matches than a tenth of a page (an offset page too), no index scan
      -- in any order: the bitmaps of the filters' indexes, then a sort.
      -- Not where the order ends within 500 rows (reading it is then
      -- cheap), nor when a filter is on the order's first column (its
      -- index starts where the filter does: filter[due_at][gte] with
      -- sort=due_at; a split sort skips the branches the filter leaves
      -- out)
      v_n := (p_limit + 1 + 9) / 10 - 1;
      EXECUTE 'SELECT count(*) FILTER (WHERE true' || v_filters || '), count(*)'
              ' FROM (SELECT t.* FROM tm.tasks t WHERE t.workspace_id = $1 AND '
              || v_dcond || coalesce(' AND ' || p_after, '')
              || CASE WHEN p_split IS NULL THEN ' ORDER BY ' || p_order
                      ELSE ' AND ' || p_split[1] || ' ORDER BY ' || p_split[2]
                      END
              || ' LIMIT 500) t'
         INTO v_found, v_seen
        USING p_ws, p_args, p_q;
      IF v_seen = 500 AND v_found <= v_n THEN
        PERFORM set_config('enable_indexscan', 'off', true),
                set_config('enable_seqscan', 'off', true);
      END IF;
    END IF;
  END IF;

  v_from := 'FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || v_where;
  IF v_recent AND v_incl THEN
    -- the candidates: the 200 newest of the 200 newest live matches and
    -- the 200 newest deleted ones (each exact in the same order)
    v_from := 'FROM (SELECT u.* FROM (SELECT t.* '
              || tm.task_recent_from('FROM tm.tasks t WHERE t.workspace_id = $1'
                                     ' AND t.deleted_at IS NULL' || v_filters
                                     || ' AND ' || p_gin,
                                     v_phrase, true, c_rank_max,
                                     't.created_at DESC, t.id DESC')
              || ' UNION ALL SELECT t.* FROM tm.tasks t'
                 ' WHERE t.workspace_id = $1 AND t.id = ANY('
              || quote_literal(coalesce(v_ids, '{}')) || '::uuid[])) u'
                 ' ORDER BY u.created_at DESC, u.id DESC LIMIT ' || c_rank_max
              || ') t WHERE true';
    v_cap := c_rank_max;
  ELSIF v_recent THEN
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
    IF p_offset > 0 AND p_split IS NULL AND NOT p_ranked AND NOT v_recent
       AND NOT v_first AND p_after IS NULL AND NOT v_deleted
       AND v_filters = ''
       AND (p_gin IS NULL OR (coalesce(p_q, '') = '' AND v_found > v_n))
    THEN
      -- an offset page of the whole list, or of a label in the sort's
      -- order: the rows from the offset on, up to the count's cap, hold
      -- the page's ids first (see above; the aggregate reads the ids in
      -- the subquery's order: no join, no grouping at its level)
      EXECUTE 'SELECT count(*), (array_agg(s.id))[1:' || (p_limit + 1)
              || ']::text FROM (SELECT t.id ' || v_from
              || ' ORDER BY ' || p_order || ' LIMIT ' || (c_count_max + 1)
              || ' OFFSET ' || p_offset || ') s'
         INTO v_rest, v_ids
        USING p_ws, p_args, p_q;
      IF v_rest > 0 THEN
        -- the page: those rows, still matching (the next statement has a
        -- snapshot of its own; a row changed meanwhile drops out, as from
        -- any offset page)
        v_total := p_offset + v_rest;
        v_from := v_from || ' AND t.id = ANY(' || quote_literal(v_ids)
                  || '::uuid[])';
        v_offset := 0;
      END IF;
    END IF;
    IF v_rest = 0 THEN
      EXECUTE 'SELECT count(*) FROM (SELECT 1 ' || v_from || ' LIMIT '
              || (v_cap + 1) || ') s'
         INTO v_total
        USING p_ws, p_args, p_q;
    END IF;
    RETURN NEXT tm.task_err(200, CASE WHEN v_total > v_cap
                                      THEN v_cap::text || '+'
                                      ELSE v_total::text END);
  END IF;

  IF p_split IS NULL THEN
    IF p_offset > 0 AND NOT p_ranked AND v_rest = 0 THEN
      -- an offset page: the ids of its rows first (an index-only scan of
      -- the order's index where the filters are in it), then those rows;
      -- the page at offset 99,950 fetched 100,000 rows: 251 ms
      v_from := tm.task_ids_from(v_from || coalesce(' AND ' || v_after, ''),
                                 p_order, p_limit + 1, v_offset);
      v_after := NULL;
      v_offset := 0;
    END IF;
    RETURN QUERY EXECUTE
      'SELECT 200, '
      || CASE WHEN p_ranked
              THEN 'ts_rank(t.search, websearch_to_tsquery(''english'', $3))'
                   '::text'
              ELSE 'NULL::text' END
      || c_cols || ' ' || v_from || coalesce(' AND ' || v_after, '')
      || ' ORDER BY ' || p_order
      || ' LIMIT ' || (p_limit + 1) || ' OFFSET ' || v_offset
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
    v_bfrom := v_from || ' AND ' || p_split[2 * v_i - 1];
    IF v_skip > 0 THEN
      -- the branch where an offset page starts: its ids first (see above)
      v_bfrom := tm.task_ids_from(v_bfrom, p_split[2 * v_i], v_need, v_skip);
    END IF;
    RETURN QUERY EXECUTE
      'SELECT 200, NULL::text' || c_cols || ' ' || v_bfrom
      || ' ORDER BY ' || p_split[2 * v_i] || ' LIMIT ' || v_need
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
