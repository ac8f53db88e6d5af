-- X-Total-Count up to 10,000, and offset pages that count as they read
-- (bench/README.md "One million tasks", session 9; docs/indexes.md):
-- tm_api.task_find restated (0015's, three changes).
--
-- On the bench's 1,000,000-task tenant, the only pages over 50 ms at p99
-- were offset pages 9,950 rows deep through a label (~118,000 matches),
-- a common word (~258,000) or status and a label (~45,000): 54-136 ms.
-- Each read the rows up to the offset (the page's ids) and, for
-- X-Total-Count, counted up to offset + 10,000 (19,951 matches) in a
-- second pass that started again from the first row.
--
-- 1. X-Total-Count is exact up to 10,000 matches, or up to the end of the
--    page where that is deeper; past that it is a lower bound and says so
--    (X-Total-Count-Capped: true), as before.  It was exact up to offset
--    + 10,000: the count of a page 9,950 rows deep read twice the rows
--    its page did.  Ten thousand is where Elasticsearch stops counting by
--    default (track_total_hits); a client that needs more walks the
--    cursor.
-- 2. An offset page whose ids' pass reads more than half the rows the
--    count would (from offset ~5,000 on) counts in that pass, whatever its
--    filters: the rows from the offset on, up to the cap, are counted and
--    the page's ids are the first of them (0015 did so for the whole list
--    and a label read in the sort's order only).  From offset 9,950 on the
--    pass reads no row more than the page needs.  A page within the first
--    10,000 reads them from the first row and slices its ids out, so a
--    page past the last row is counted by that pass too.
-- 3. A split sort's offset page that ends at the cap (offset + page >=
--    10,000) counts nothing more: the branches before its own are counted
--    whole to find where it starts, so X-Total-Count is the offset plus
--    its rows, or "offset + page" and capped when the row after the page
--    exists.  Its rows are kept until then, since the count row comes
--    first.  And each branch an offset page passes is read once: its ids,
--    up to the offset left plus the page, counted and the page's taken
--    from them (0013 counted the branch where the page starts up to the
--    offset, then read it again for the ids).

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
  -- X-Total-Count: exact up to 10,000, or to the end of the page past that
  -- (see above)
  v_cap    bigint := greatest(c_count_max, p_offset + p_limit);
  -- an offset page whose ids' pass reads more than half the rows the count
  -- would: it counts too (see above)
  v_deep   boolean := p_offset > 0
                      AND 2 * (p_offset + p_limit + 1) > v_cap + 1;
  -- a split sort's offset page that ends at the count's cap: the count is
  -- the offset plus its rows, known once they are read (see above)
  v_late   boolean := p_count AND p_split IS NOT NULL
                      AND p_offset + p_limit >= c_count_max;
  v_row    tm_api.task_row;
  v_rows   tm_api.task_row[] := '{}';
  v_got    bigint := 0;
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
  -- an offset page's ids and X-Total-Count in one pass (see above): done,
  -- and the rows from the offset on that an OFFSET pass counted
  v_folded boolean := false;
  v_rest   bigint;
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

  IF p_count AND NOT v_late THEN
    IF p_offset > 0 AND p_split IS NULL AND NOT p_ranked AND NOT v_recent
       AND NOT v_first AND p_after IS NULL
       AND (v_deep
            OR (NOT v_deleted AND v_filters = ''
                AND (p_gin IS NULL
                     OR (coalesce(p_q, '') = '' AND v_found > v_n))))
    THEN
      -- a deep offset page, or one of the whole list or of a label in the
      -- sort's order: the rows from the offset on, up to the count's cap,
      -- hold the page's ids first (see above; the aggregate reads the ids
      -- in the subquery's order: no join, no grouping at its level)
      IF v_cap = c_count_max THEN
        -- a page within the first 10,000: the same rows read from the
        -- first one, all counted, the page's ids sliced from them, so a
        -- page past the last row has its count too (an OFFSET hides how
        -- many rows it skipped; deeper pages keep it: aggregating ~100,000
        -- ids took 29 ms where the OFFSET took 18)
        EXECUTE 'SELECT count(*), (array_agg(s.id))[' || (p_offset + 1)
                || ':' || (p_offset + p_limit + 1) || ']::text'
                ' FROM (SELECT t.id ' || v_from || ' ORDER BY ' || p_order
                || ' LIMIT ' || (v_cap + 1) || ') s'
           INTO v_total, v_ids
          USING p_ws, p_args, p_q;
      ELSE
        EXECUTE 'SELECT count(*), (array_agg(s.id))[1:' || (p_limit + 1)
                || ']::text FROM (SELECT t.id ' || v_from
                || ' ORDER BY ' || p_order || ' LIMIT '
                || (v_cap - p_offset + 1) || ' OFFSET ' || p_offset || ') s'
           INTO v_rest, v_ids
          USING p_ws, p_args, p_q;
        -- none after the offset: counted from the first row below
        v_total := CASE WHEN v_rest > 0 THEN p_offset + v_rest END;
      END IF;
      IF v_total IS NOT NULL THEN
        -- the page: those rows (none past the last row), still matching
        -- (the next statement has a snapshot of its own; a row changed
        -- meanwhile drops out, as from any offset page)
        v_folded := true;
        v_from := v_from || ' AND t.id = ANY('
                  || quote_literal(coalesce(v_ids, '{}')) || '::uuid[])';
        v_offset := 0;
      END IF;
    END IF;
    IF NOT v_folded THEN
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
    IF p_offset > 0 AND NOT p_ranked AND NOT v_folded THEN
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
  -- full; its rows are kept until X-Total-Count is known (v_late)
  v_need := p_limit + 1;
  FOR v_i IN 1 .. cardinality(p_split) / 2 LOOP
    v_bfrom := v_from || ' AND ' || p_split[2 * v_i - 1];
    IF v_skip > 0 THEN
      -- an offset page: one pass over the branch's ids, up to the offset
      -- left plus the rows wanted, counts them and holds the page's ids
      -- after the offset (0013 counted up to the offset, then read the
      -- branch where the page starts again from its first row); a branch
      -- that ends before the offset is skipped whole
      EXECUTE 'SELECT count(*), (array_agg(s.id))[' || (v_skip + 1) || ':'
              || (v_skip + v_need) || ']::text FROM (SELECT t.id ' || v_bfrom
              || ' ORDER BY ' || p_split[2 * v_i] || ' LIMIT '
              || (v_skip + v_need) || ') s'
         INTO v_n, v_ids
        USING p_ws, p_args, p_q;
      IF v_n <= v_skip THEN
        v_skip := v_skip - v_n;
        CONTINUE;
      END IF;
      v_bfrom := v_bfrom || ' AND t.id = ANY(' || quote_literal(v_ids)
                 || '::uuid[])';
    END IF;
    v_n := 0;
    FOR v_row IN EXECUTE
      'SELECT 200, NULL::text' || c_cols || ' ' || v_bfrom
      || ' ORDER BY ' || p_split[2 * v_i] || ' LIMIT ' || v_need
      USING p_ws, p_args, p_q
    LOOP
      v_rows := v_rows || v_row;
      v_n := v_n + 1;
    END LOOP;
    v_skip := 0;
    v_got := v_got + v_n;
    v_need := v_need - v_n;
    EXIT WHEN v_need <= 0;
  END LOOP;

  IF v_late THEN
    -- every branch before the page's was counted whole, and the page's
    -- rows (with the one after it) follow the offset: the count is exact
    -- unless that row exists; past the last row, the branches' sizes
    RETURN NEXT tm.task_err(200, CASE WHEN v_got > p_limit
                                      THEN v_cap::text || '+'
                                      WHEN v_got > 0
                                      THEN (p_offset + v_got)::text
                                      ELSE (p_offset - v_skip)::text END);
  END IF;
  FOREACH v_row IN ARRAY v_rows LOOP
    RETURN NEXT v_row;
  END LOOP;
END
$$;

GRANT EXECUTE ON FUNCTION tm_api.task_find(uuid, uuid, uuid, text, text, text,
                                           int, int, boolean, text, boolean,
                                           text, text[], text[])
  TO taskmgr_app;

