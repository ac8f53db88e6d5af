-- Ranked searches of several words through a month-keyed index
-- (bench/README.md "One million tasks", session 10; docs/indexes.md).
--
-- A ranked search ranks the 200 newest matches (0010).  Where the newest
-- 2000 tasks hold few of them, tasks_search_recent_idx (GiST, read in
-- created_at order) walks every task that has the words' signature until
-- 200 match: for six common words together (0.1% of the bench's tasks) it
-- read ~200,000 entries, 30 ms; for three words and status=archived it
-- fetched 4,400 rows to keep 200, 36 ms.  The words' GIN index is no
-- better there: intersecting six posting lists of ~260,000 tasks each
-- takes 40 ms whatever the page.
--
-- tasks_search_months_idx keys each live task's lexemes and its status by
-- its workspace and its month (UTC): '<first 8 hex digits of the
-- workspace id><yyyymm>:<lexeme>' and '<...><yyyymm>=<status>'.  A month's
-- posting list of a word is a month of one tenant's tasks (~42,000 on the
-- bench), so the words of one month intersect in ~1.5 ms.
-- tm.task_month_ids asks for the newest 2 months first, then for as many
-- months before as the matches found per month say the rest needs (and a
-- quarter more; at most 24, four times as many when none was found), at
-- most four such queries (the months OR'ed in each), then for any older
-- match through the words' GIN index; it stops as soon as it has the 200
-- newest.  Other tenants' tasks share no key (or, on a clash of the 8
-- digits, are dropped by the workspace test).
--
-- tm_api.task_find (0018's, restated) takes this way for a rank of two or
-- more required words (no negation, no phrase, no "or") of live tasks:
-- - with no other filter, when the newest 2000 tasks hold fewer than 10
--   matches (they held at least one before; tasks_search_recent_idx still
--   serves denser words, where it reads few entries);
-- - with a filter of one status, always: the status is in the keys, so a
--   month yields only the tasks that have the words and the status, where
--   tasks_search_recent_idx fetched every task with the words to test the
--   status (3 words in 2.5% of the tasks, archived 4.7%: 4,400 rows).
--   Other filters keep the other ways.
-- The words (and the filters) are tested on every candidate (ts_match_vq,
-- no index condition).
--
-- Also: the filter probe (0009) of a list with a project, an assignee or a
-- status, in an order whose index starts with that value (created_at,
-- updated_at, due_at, title), reads the first 500 of that value's tasks in
-- the order, not of every task: a project's todo tasks by -updated_at went
-- to a bitmap of the project's 35,000 tasks (176 ms) when the first 500
-- of all tasks held only 4 of them; the project's index answers in ~2 ms.
--
-- Cost: ~75 MB on the bench's 1,000,000 tasks, ~22 s to build (task
-- writes wait); a task write computes its keys (~5 us) and updates one GIN
-- index more (its pending list).

-- LEAKPROOF: it only reads its arguments and raises no error that depends
-- on a value (an infinite time has no month: 'inf'), so under row-level
-- security the index condition can use it (see 0003; a superuser applies
-- it, as every migration here: scripts/migrate.sh).  PL/pgSQL: ~5 us a
-- task, where the same in SQL took ~12 (the SQL function executor runs
-- each call afresh).  COST 500: a plan that computes the keys of every
-- task of a tenant must look as dear as it is.  The
-- planner needs the table's statistics too: with none (a table filled in
-- bulk, never analyzed) it took the table for tiny, read the tenant's
-- tasks through another index and computed each one's keys (21,000 calls
-- for a page of a 15,000-task tenant); the migration ends with ANALYZE.
-- The keys' prefix of a workspace and a time: '<ws8><yyyymm>' (UTC), the
-- one spelling tm.search_months and tm.task_month_ids share.
CREATE FUNCTION tm.search_month(p_ws uuid, p_at timestamptz)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS $$
  SELECT left(p_ws::text, 8)
         || CASE WHEN isfinite(p_at)
                 THEN (extract(year FROM p_at AT TIME ZONE 'UTC')::int * 100
                       + extract(month FROM p_at AT TIME ZONE 'UTC')::int)::text
                 ELSE 'inf' END
$$;

CREATE FUNCTION tm.search_months(p_ws uuid, p_at timestamptz,
                                 p_search tsvector, p_status text)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF COST 500 AS $$
DECLARE
  v_prefix text := tm.search_month(p_ws, p_at);
BEGIN
  RETURN array_prepend(v_prefix || '=' || p_status,
                       ARRAY(SELECT v_prefix || ':' || l
                               FROM unnest(tsvector_to_array(p_search)) l));
END
$$;

CREATE INDEX tasks_search_months_idx ON tm.tasks
  USING gin (tm.search_months(workspace_id, created_at, search, status))
  WHERE deleted_at IS NULL;

GRANT EXECUTE ON FUNCTION tm.search_month(uuid, timestamptz),
                          tm.search_months(uuid, timestamptz, tsvector, text)
  TO taskmgr_app;

-- the planner's statistics of the new keys (autovacuum would gather them
-- only after a tenth of the tasks changed)
ANALYZE tm.tasks;

-- The ids (a uuid[] literal) of the p_n newest tasks of p_from ("FROM
-- tm.tasks t WHERE t.workspace_id = $1 AND t.deleted_at IS NULL ...", with
-- its parameters $1..$3) that have every one of p_words, by (created_at,
-- id) descending (and, when p_status is given, that status): months of
-- tasks_search_months_idx from the tenant's newest task's, at most four
-- queries (2 months, then as many as the rate found so far says), then one
-- through the words' GIN index for what is older.  Each query is a bitmap
-- of a month per arm: a task has the keys of its own month only, so the
-- arms need no created_at range (with one, the planner read the months'
-- tasks through created_at's index and computed their keys: 230 ms), and
-- index and sequential scans are off meanwhile (the planner would rather
-- walk created_at's index in the sort's order, or on a small table read
-- it whole, computing every task's keys).
CREATE FUNCTION tm.task_month_ids(p_from text, p_ws uuid, p_args text[],
                                  p_q text, p_words text[], p_status text,
                                  p_n int)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  -- what follows a month's prefix in the keys every match has
  v_sfx    text[] := ARRAY(SELECT ':' || w FROM unnest(p_words) w)
                     || CASE WHEN p_status IS NOT NULL THEN ARRAY['=' || p_status]
                             ELSE '{}'::text[] END;
  v_newest timestamptz;
  v_oldest timestamptz;
  v_month  timestamp;
  v_end    timestamptz := 'infinity';
  v_span   int := 2;
  v_rate   float8;
  v_arms   text;
  v_ids    uuid[] := '{}';
  v_got    uuid[];
  v_scan   text := current_setting('enable_indexscan');
  v_seq    text := current_setting('enable_seqscan');
  v_round  int;
  v_i      int;
BEGIN
  IF p_n < 1 OR p_n > 1000 OR cardinality(p_words) NOT BETWEEN 1 AND 64 THEN
    RAISE EXCEPTION 'task_month_ids: bounds' USING ERRCODE = '22023';
  END IF;
  SELECT t.created_at INTO v_newest
    FROM tm.tasks t
   WHERE t.workspace_id = p_ws AND t.deleted_at IS NULL
   ORDER BY t.created_at DESC, t.id DESC LIMIT 1;
  IF v_newest IS NULL THEN
    RETURN '{}';
  END IF;
  SELECT t.created_at INTO v_oldest
    FROM tm.tasks t
   WHERE t.workspace_id = p_ws AND t.deleted_at IS NULL
   ORDER BY t.created_at, t.id LIMIT 1;
  v_month := date_trunc('month', v_newest AT TIME ZONE 'UTC');
  PERFORM set_config('enable_indexscan', 'off', true),
          set_config('enable_seqscan', 'off', true);
  FOR v_round IN 1 .. 5 LOOP
    IF v_round < 5 THEN
      -- one arm per month, v_span months back from v_month
      v_arms := '';
      FOR v_i IN 0 .. v_span - 1 LOOP
        v_arms := v_arms || CASE WHEN v_i > 0 THEN ' OR ' ELSE '' END
                  || 'tm.search_months(t.workspace_id, t.created_at, t.search, t.status) @> '
                  || quote_literal(ARRAY(
                       SELECT tm.search_month(p_ws, (v_month - v_i * interval '1 month')
                                                    AT TIME ZONE 'UTC') || x
                         FROM unnest(v_sfx) x)::text)
                  || '::text[]';
      END LOOP;
      v_month := v_month - v_span * interval '1 month';
      v_end := (v_month + interval '1 month') AT TIME ZONE 'UTC';
      EXECUTE 'SELECT array_agg(s.id) FROM (SELECT t.id ' || p_from
              || ' AND (' || v_arms
              || ') ORDER BY t.created_at DESC, t.id DESC LIMIT '
              || (p_n - cardinality(v_ids)) || ') s'
         INTO v_got
        USING p_ws, p_args, p_q;
    ELSE
      -- older than the months read: the words' GIN index
      EXECUTE 'SELECT array_agg(s.id) FROM (SELECT t.id ' || p_from
              || ' AND t.created_at < $4'
                 ' AND t.search @@ websearch_to_tsquery(''english'', $3)'
                 ' ORDER BY t.created_at DESC, t.id DESC LIMIT '
              || (p_n - cardinality(v_ids)) || ') s'
         INTO v_got
        USING p_ws, p_args, p_q, v_end;
    END IF;
    v_ids := v_ids || coalesce(v_got, '{}');
    -- enough, or no task older than the months read
    EXIT WHEN cardinality(v_ids) >= p_n OR v_end <= v_oldest;
    -- the next months: as many as the matches so far per month say the
    -- rest needs, and a quarter more (a bitmap reads its months whole);
    -- none so far: four times as many
    v_rate := cardinality(v_ids)
              / greatest(extract(epoch FROM v_newest - v_end) / 2629746.0, 0.03);
    v_span := CASE WHEN cardinality(v_ids) = 0 THEN v_span * 4
                   ELSE ceil((p_n - cardinality(v_ids)) / v_rate * 1.25)::int END;
    v_span := least(greatest(v_span, 1), 24);
  END LOOP;
  PERFORM set_config('enable_indexscan', v_scan, true),
          set_config('enable_seqscan', v_seq, true);
  RETURN v_ids::text;
END
$$;

GRANT EXECUTE ON FUNCTION tm.task_month_ids(text, uuid, text[], text, text[],
                                            text, int)
  TO taskmgr_app;

-- 0018's tm_api.task_find; changed: v_words, v_status and v_months
-- (declared after v_incl), the probe's threshold for them, the candidates
-- from tm.task_month_ids, and the filter probe's rows with a project, an
-- assignee or a status (see it).
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
  -- a rank of 2 to 16 words, all required, none negated, no phrase: the
  -- month path when the newest 2000 hold few matches, or with a status
  -- filter (see above)
  -- (a lexeme with a quote or a backslash, escaped in the query's text,
  -- takes no part: its key would be spelled otherwise)
  v_words  text[] := CASE WHEN v_tsq ~ '^''[^''\\]+''( & ''[^''\\]+'')+$'
                          THEN ARRAY(SELECT m[1] FROM regexp_matches(
                                       v_tsq, '''([^'']+)''', 'g') m)
                     END;
  -- a filter of one status (nginx writes "t.status = ($2[n])::text"):
  -- its month's key narrows the month path too
  v_status text := p_args[(regexp_match(
                     v_filters, '(?:^| AND )t\.status = \(\$2\[([0-9]+)\]\)::text(?: AND |$)'
                   ))[1]::int];
  v_months boolean := p_ranked AND v_gist
                      AND coalesce(cardinality(v_words), 0) BETWEEN 2 AND 16
                      AND (v_only_q OR v_status IS NOT NULL);
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
    ELSIF v_months AND v_status IS NOT NULL THEN
      -- words and a status: the month path, whatever the newest hold
      v_n := 0;
      v_found := 0;
    ELSE
      -- a rank from tasks_search_recent_idx: one of the newest 2000, or
      -- three with other filters (the index then returns rows that only
      -- have the words; 0009's ways took 84 ms p50 for three words and
      -- status=archived, 0.25% of the bench's tasks, this index 33-42 ms);
      -- any other rank: 0.6% of the newest 1000 (the ordered scan then
      -- reads at most ~33,000 rows for its 200 candidates); a split: a page
      -- among the newest 5000
      v_n := CASE WHEN v_recent AND v_pairs IS NOT NULL THEN 19
                  WHEN v_months THEN 9
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
    v_months := v_months AND v_found <= v_n;
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
    IF v_months THEN
      -- the month path reads its candidates through bitmaps of its own
      NULL;
    ELSIF v_recent OR v_first THEN
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
      -- (0020) With a project, an assignee or a status, in an order that
      -- has an index of that value's tasks (created_at, updated_at, due_at,
      -- title: 0003, 0015, 0019), the first 500 rows of that value's tasks
      -- in the order: a scan of that index reads only them.  The first
      -- 500 of the whole order found 4 tasks of a project (3.5%) to do
      -- (40%) by -updated_at, and the bitmap of the project's 35,000 tasks
      -- took 176 ms; its index, 2 ms.
      v_n := (p_limit + 1 + 9) / 10 - 1;
      EXECUTE 'SELECT count(*) FILTER (WHERE true' || v_filters || '), count(*)'
              ' FROM (SELECT t.* FROM tm.tasks t WHERE t.workspace_id = $1 AND '
              || v_dcond || coalesce(' AND ' || p_after, '')
              || CASE WHEN p_split IS NULL
                       AND p_order ~ '^t\.(created_at|updated_at|due_at|title) '
                      THEN coalesce(' AND ' || (regexp_match(v_filters,
                             '(?:^| AND )(t\.(?:project_id|assignee_id) = \(\$2\[[0-9]+\]\)::uuid'
                             '|t\.status = \(\$2\[[0-9]+\]\)::text)(?: AND |$)'))[1], '')
                      ELSE '' END
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
  ELSIF v_months THEN
    -- the candidates: the 200 newest matches, month by month from
    -- tasks_search_months_idx (tm.task_month_ids), tested again here (a
    -- task changed since drops out); the words are no index condition
    v_from := replace(v_from, c_match,
                      'ts_match_vq(t.search, websearch_to_tsquery(''english'', $3))');
    v_ids := tm.task_month_ids(v_from, p_ws, p_args, p_q, v_words, v_status,
                               c_rank_max);
    v_from := v_from || ' AND t.id = ANY(' || quote_literal(v_ids) || '::uuid[])';
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
