-- Phrases from an index of adjacent words (bench/README.md "One million
-- tasks", session 5; docs/indexes.md "A phrase from its adjacent words").
--
-- A phrase of common words with few matches was slow every way 0010 had:
-- each way finds the tasks that have all its words and tests the phrase on
-- the heap row by row.  On the bench's tenant ("login report bill", 41
-- tasks; its words together in ~6% of the tasks): ranked 64 ms p50, by
-- created_at 183 ms, under a negation ("invoice payment" -login) 105 ms,
-- with deleted=include 1.2 s.
--
-- tasks_search_pairs_idx is a GIN index of each task's pairs of adjacent
-- lexemes ('login report', 'report bill'), taken from the positions of
-- search itself.  A task with the phrase a <-> b has a at some position p
-- and b at p + 1, so it has the pair 'a b': the pairs of a phrase are a
-- necessary condition, and the exact test t.search @@ q stays.  Where the
-- probe finds few matches (the ways that read an order would read a lot),
-- a query whose every match must contain a phrase reads the tasks with its
-- pairs instead of those with its words: 41 tasks, 5 ms.  It holds every
-- task (deleted ones too).
--
-- Costs: 145 MB for 1,000,000 tasks (the table is 666 MB); building it
-- took 124 s here, under a SHARE lock (task writes wait); each insert, and
-- each update (tm.tasks has no HOT updates: updated_at is indexed),
-- computes the pairs of the task's search vector (~40 us in SQL) and adds
-- ~24 GIN entries to the pending list.  Needs a superuser (LEAKPROOF), as
-- every migration here (scripts/migrate.sh).

SET client_min_messages = warning;

-- The distinct pairs 'a b' of lexemes a at a position p and b at p + 1 of
-- v.  Positions are those @@ tests a phrase with (at most 256 a lexeme, up
-- to 16383), so a vector matching a <-> b has the pair.  Lexemes of the
-- english configuration hold no space.  LEAKPROOF: it only reads its
-- argument and raises no error that depends on a value, so under row-level
-- security the index condition can use it (see 0003).
CREATE FUNCTION tm.search_pairs(v tsvector)
RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF AS $$
  SELECT coalesce(array_agg(DISTINCT a.lexeme || ' ' || b.lexeme), '{}')
  FROM (SELECT u.lexeme, p FROM unnest(v) u, unnest(u.positions) p) a
  JOIN (SELECT u.lexeme, p FROM unnest(v) u, unnest(u.positions) p) b
    ON b.p = a.p + 1
$$;

-- The pairs every task matching q must have: those of a lexeme directly
-- followed (<->) by another, neither under a negation (!'a', !( ... )), in
-- a query without OR.  NULL when there is none, or when q has an OR.
-- Reads the text of q (websearch_to_tsquery's: lexemes in quotes, spaces
-- around operators).  A lexeme with a quote or backslash in it (escaped in
-- that text), a weight or a prefix mark takes part in no pair: fewer pairs
-- are still a necessary condition.
CREATE FUNCTION tm.query_pairs(q tsquery)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
  v_tok    text;
  v_prev   text;              -- the lexeme just before, if it can pair
  v_adj    boolean := false;  -- v_prev <-> this token
  v_not    boolean := false;  -- this token follows a !
  v_depth  int := 0;
  v_neg    int := 0;          -- depth of the negated group we are in, or 0
  v_lex    text;              -- this token's lexeme, if it can pair
  v_pairs  text[] := '{}';
BEGIN
  FOR v_tok IN
    SELECT m[1]
      FROM regexp_matches(q::text,
             $re$('(?:[^']|'')*'(?::[*A-D]+)?|<->|<[0-9]+>|[&|!()])$re$,
             'g') m
  LOOP
    CASE
      WHEN v_tok = '|' THEN
        RETURN NULL;
      WHEN v_tok = '!' THEN
        v_not := true;
        v_prev := NULL;
        v_adj := false;
      WHEN v_tok = '(' THEN
        v_depth := v_depth + 1;
        IF v_not AND v_neg = 0 THEN
          v_neg := v_depth;
        END IF;
        v_not := false;
        v_prev := NULL;
        v_adj := false;
      WHEN v_tok = ')' THEN
        IF v_neg = v_depth THEN
          v_neg := 0;
        END IF;
        v_depth := v_depth - 1;
        v_prev := NULL;
        v_adj := false;
      WHEN v_tok = '<->' THEN
        v_adj := v_prev IS NOT NULL;
      WHEN left(v_tok, 1) = '''' THEN
        v_lex := CASE WHEN v_tok ~ $re$^'[^'\\]*'\Z$re$ AND NOT v_not
                            AND v_neg = 0
                       THEN substr(v_tok, 2, length(v_tok) - 2) END;
        IF v_lex IS NOT NULL AND v_adj THEN
          v_pairs := v_pairs || (v_prev || ' ' || v_lex);
        END IF;
        v_prev := v_lex;
        v_adj := false;
        v_not := false;
      ELSE -- & and <N>
        v_prev := NULL;
        v_adj := false;
    END CASE;
  END LOOP;
  RETURN CASE WHEN cardinality(v_pairs) > 0 THEN v_pairs END;
END
$fn$;

GRANT EXECUTE ON FUNCTION tm.search_pairs(tsvector) TO taskmgr_app;
GRANT EXECUTE ON FUNCTION tm.query_pairs(tsquery) TO taskmgr_app;

CREATE INDEX tasks_search_pairs_idx
  ON tm.tasks USING gin (tm.search_pairs(search));

-- 0010's tm_api.task_find; changed: v_pairs, v_deleted, v_filters and
-- v_seen, the offset page.  A query with pairs (above)
-- reads tasks_search_pairs_idx where the probe finds few matches: a sorted
-- or split search, and a rank, instead of the GIN bitmap of its words or
-- tasks_search_recent_idx (whose way reads 1/selectivity of the phrase's
-- entries).  A rank of such a query asks tasks_search_recent_idx only when
-- 1% of the newest 2000 tasks match: the pairs of a phrase in 0.4% of the
-- bench's tasks find its 3,700 tasks in 8 ms, 0010's way took 18.
--
-- Also, a probe for lists with other filters (no search, no label): the
-- planner reads a sort's index in order and tests the filters on each row
-- when it believes they match often; when they match seldom or never it
-- reads the whole tenant (filter[project_id] and filter[assignee_id] that
-- no task has together, sort=title: 4.6 s).  The first 500 rows of the
-- order tell; with few matches the bitmaps of the filters' indexes are
-- read instead.
--
-- Also: an offset page (not ranked, not split) reads the ids of its rows
-- first (index-only where the order's index holds the filters: 0012
-- includes status and priority), then those rows: the page at offset
-- 99,950 fetched 100,000 rows, 251 ms; now 29.
--
-- Also: a search or label filter with deleted=only skips the probe and
-- reads no index in the sort's order: it reads the GIN indexes of deleted
-- tasks that 0012 adds (or a phrase's pairs).  Since 0012 the sorts'
-- indexes hold every task, and read in order they meet ~50 live tasks for
-- each deleted one on the bench's tenant (2% deleted): its probe of 1000
-- deleted tasks read 50,000 rows (70 ms), and "invoice payment" ranked
-- (7.7% of the tasks) 130,000 (53 ms).

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
  v_gist   boolean := p_split IS NULL AND coalesce(p_q, '') <> ''
                      AND left(p_where, 20) = 't.deleted_at IS NULL'
                      AND NOT (v_phrase AND position('!' IN v_tsq) > 0);
  -- the search is the only condition besides live tasks: the index tests
  -- all of it (other filters are tested on each row the index returns)
  v_only_q boolean := p_where = 't.deleted_at IS NULL'
                      AND p_gin = c_match;
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
    IF v_deleted THEN
      -- deleted=only: no probe, no order; the bitmaps of the GIN indexes
      -- of deleted tasks (0012), or of a phrase's pairs
      v_n := 0;
      v_found := 0;
    ELSIF p_split IS NULL AND NOT p_ranked THEN
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
    IF p_offset > 0 AND NOT p_ranked THEN
      -- an offset page: the ids of its rows first (an index-only scan of
      -- the order's index where the filters are in it), then those rows;
      -- the page at offset 99,950 fetched 100,000 rows: 251 ms
      v_from := 'FROM tm.tasks t WHERE t.workspace_id = $1 AND t.id IN'
                ' (SELECT t.id ' || v_from || coalesce(' AND ' || v_after, '')
                || ' ORDER BY ' || p_order || ' LIMIT ' || (p_limit + 1)
                || ' OFFSET ' || v_offset || ')';
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
