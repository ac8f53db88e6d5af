-- A split sort's branches of common words read in their order, and the
-- count of common words through one filter's B-tree index (bench/README.md
-- "One million tasks", session 19; docs/indexes.md "Branches in their
-- order, the count through one filter's index (0028)").
--
-- After 0027 the slowest searches of the 1M bench were offset pages 3 of two
-- common words (invoice payment, 7.9% of the tasks) under split sorts:
-- - the branch that holds the page asked its first 151 matches in its
--   order; the planner ANDed the words' GIN bitmap (79,000 entries, 25-50
--   ms) to the branch's value and to the filters' (a label list's: 222,000
--   entries, 47 ms), fetched every match and sorted them: label in
--   (perf,infra) by status, archived's branch (842 matches), 80 ms;
--   priority in (0,4) by -priority, priority 4's (3,845), 80 ms;
--   status=in_progress by -priority,due_at, priority 4's (800), 46 ms.
--   Read in the branch's order from its index (status, id; priority,
--   due_at, id; ...), the words and labels tested on each task, the 151
--   came after 2,000-10,000 tasks: 5-17 ms;
-- - X-Total-Count of those words with status=in_progress (200,000 tasks)
--   or todo, or priority in (0,4) (400,000): the planner read the table in
--   its order, the words tested on each of 35,000-68,000 rows (60-100 ms),
--   0027's walk of the filters' tasks being for at most 60,000.  Through
--   the status's or the priority's index, 15,000 rows: 26 ms.
--
-- tm_api.task_find (0027's, restated) and tm.task_facets_cond (0026's):
-- - a branch of common words takes 0027's test on each task (no GIN
--   condition, nor a label's) also where the planner expects the rows the
--   branch reads for its page (its offset left plus the rows wanted, over
--   the share of its filtered tasks that match) to be at most 15,000 and
--   its filtered tasks at most 60,000 (0027: at most 3,000 filtered tasks);
-- - the count of an offset page of common words, where one filter is a
--   status, a priority, a project or an assignee (one value or a list)
--   whose tasks the planner expects to hold the count's 1,001 matches in at
--   most 15,000: the words tested on each, sequential scans off for the
--   count (before 0027's walk of the filters' tasks, which stays for the
--   others);
-- - a label list's facet keys (the count of plain words with a label list,
--   and a split sort's branch of it): one "@>" of the other keys and one
--   "&&" of the labels' keys, one scan of tasks_facets_idx (0026: one "@>"
--   a label, ORed: a scan each, the words' posting lists read once a
--   label).  Two words with label in (perf,infra), 1,001 counted: 35 -> 31
--   ms (the statement alone, median of 8; session 20).
--
-- 0027's tm_api.task_find; changed: the declarations after v_dconds, the
-- count's walk and the branches' words' test.  tm.task_facets_cond
-- (0026's) restated.

-- (0026) the condition of tasks_facets_idx for candidates with every key
-- of p_keys and one of p_label_keys (none: p_keys alone), for
-- tm_api.task_find; (0028) a list of labels: "@>" p_keys AND "&&" the
-- labels (one label: "@>" p_keys with it, as 0026)
CREATE OR REPLACE FUNCTION tm.task_facets_cond(p_keys text[], p_label_keys text[])
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN cardinality(p_label_keys) > 1
              THEN '(' || CASE WHEN cardinality(p_keys) > 0
                               THEN c.f || ' @> ' || quote_literal(p_keys::text)
                                    || '::text[] AND '
                               ELSE '' END
                   || c.f || ' && ' || quote_literal(p_label_keys::text)
                   || '::text[])'
              ELSE c.f || ' @> '
                   || quote_literal((p_keys || coalesce(p_label_keys, '{}'))::text)
                   || '::text[]' END
    FROM (SELECT 'tm.task_facets(t.workspace_id, t.search, t.priority,'
                 ' t.labels, t.project_id, t.assignee_id)'::text AS f) c
$$;

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
  -- (0024) with q: exact up to 1,000, the deepest a search's offset page
  -- reaches by default (taskmgr_search_offset_max), or to the end of the
  -- page where that is deeper; the cursor pages on
  c_qcount_max constant int := 1000;
  -- (0021) the most matches the planner may expect of words on the bitmap
  -- way with other filters (see below): each is fetched, ~1.5 us
  c_rare_max  constant int := 10000;
  -- the search test nginx writes into p_gin
  c_match constant text :=
    't.search @@ websearch_to_tsquery(''english'', $3)';
  -- (0023) the same test, no index condition (the function of @@)
  c_test constant text :=
    'ts_match_vq(t.search, websearch_to_tsquery(''english'', $3))';
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
  v_cmax   int := CASE WHEN coalesce(p_q, '') <> '' THEN c_qcount_max
                       ELSE c_count_max END;
  v_cap    bigint := greatest(v_cmax, p_offset + p_limit);
  -- an offset page whose ids' pass reads more than half the rows the count
  -- would: it counts too (see above)
  v_deep   boolean := p_offset > 0
                      AND 2 * (p_offset + p_limit + 1) > v_cap + 1;
  -- a split sort's offset page that ends at the count's cap: the count is
  -- the offset plus its rows, known once they are read (see above)
  v_late   boolean := p_count AND p_split IS NOT NULL
                      AND p_offset + p_limit >= v_cmax;
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
  -- (0027) for the planner's expectations of a search: the filters alone
  -- (the search's test made true: a label's stays), and with the search
  v_fonly  text := v_filters || ' AND '
                   || replace(coalesce(p_gin, 'true'), c_match, 'true');
  v_fall   text := v_filters || ' AND ' || coalesce(p_gin, 'true');
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
  -- (0023) their condition on tasks_search_pairs_idx
  v_pcond  text := CASE WHEN v_pairs IS NOT NULL
                        THEN 'tm.search_pairs(t.search) @> '
                             || quote_literal(v_pairs::text) || '::text[]' END;
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
  -- (0024) the search's lexemes when it is one or more plain words
  v_lex    text[] := CASE WHEN v_tsq ~ '^''[^''\\]+''( & ''[^''\\]+'')*$'
                          THEN ARRAY(SELECT m[1] FROM regexp_matches(
                                       v_tsq, '''([^'']+)''', 'g') m)
                     END;
  v_words  text[] := CASE WHEN cardinality(v_lex) >= 2 THEN v_lex END;
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
  -- (0021) words (v_words) with other filters in fewer than 10 of the
  -- newest 2000 tasks, and at most c_rare_max matches expected (see below);
  -- v_kw: those of the newest 2000 with the words (up to 50); v_pf, v_m:
  -- the share of the tasks the filters pass, and the matches that makes
  v_rare   boolean := false;
  -- the planner's expectation of the live tasks (v_live), in all
  v_live   float8;
  v_kw     int;
  v_pf     float8;
  v_m      float8;
  -- (0021) commoner words, ranked, with rarer filters (see below)
  v_bitmap boolean := false;
  -- (0021) the words' conditions, one a word, on the bitmap way
  v_wconds text;
  -- (0022) the facet way (see above): the share of the live tasks the
  -- facet filters may pass at most, and at most with words in 50 of the
  -- newest 2000 (each match is fetched and sorted: ~1.5 us)
  c_facet_max  constant float8 := 0.15;
  c_facet_common constant float8 := 0.06;
  -- the filters tasks_facets_idx has ("eq" of priority, label, project,
  -- assignee, as nginx writes them), their conditions alone, the keys of
  -- the words and of their values, and whether the way is taken
  v_fhay   text := v_filters || ' AND ' || coalesce(p_gin, '');
  v_fconds text;
  v_fkeys  text[];
  v_fshare float8;
  v_facet  boolean := false;
  -- (0022) a rank with a status filter (the month path until 0022): it
  -- takes the rare words' bitmap where that way would (see below)
  v_st     boolean := v_months AND v_status IS NOT NULL;
  -- the share of the live tasks the planner expects of that status
  v_sshare float8;
  -- (0023) the live tasks the planner expects the search (v_wexp) and the
  -- filters (v_fexp) to pass, and whether either is that few: no probe,
  -- the bitmaps (see above)
  c_few_max constant float8 := 10000;
  c_few_share constant float8 := 0.01;
  -- (0023) and at most this many the filters: each is fetched, and the
  -- order's index may read more of them for less where the words are
  -- common (the filters' columns are in it: a label and priority=4, 0.6%
  -- of the tasks, with a word in a quarter of them)
  c_fewf_max constant float8 := 3000;
  -- (0023) the share of the live tasks filters may pass at most for
  -- rare-together words to take the bitmap (see below)
  c_few_filters constant float8 := 0.05;
  v_wexp   float8;
  v_fexp   float8;
  v_few    boolean := false;
  -- few by the filters (not by the words): the words' test is then no
  -- index condition (the planner ANDed the GIN bitmap of a word in a
  -- quarter of the tasks, ~40 ms, to a project's 1,700 archived tasks)
  v_fewf   boolean := false;
  -- (0023) a split sort is read in one query, through bitmaps (or the
  -- few filtered tasks' index: v_fewf)
  v_bmway  boolean := false;
  -- (0024) an offset page of a search (X-Total-Count) read in one pass
  -- (see above): the most candidates it reads (and 1% of the live tasks),
  -- and the rows of the order's first ones that must hold its rows for
  -- the order to serve it instead
  c_fold_max constant float8 := 10000;
  c_fold_rows constant float8 := 5000;
  -- (0024) the orders that have an index of a project's, an assignee's or
  -- a status's tasks (0003, 0015, 0019), and such a filter (0020's filter
  -- probe reads its tasks alone)
  c_own_order constant text := '^t\.(created_at|updated_at|due_at|title) ';
  c_own constant text :=
    '(?:^| AND )(t\.(?:project_id|assignee_id) = \(\$2\[[0-9]+\]\)::uuid'
    '|t\.status = \(\$2\[[0-9]+\]\)::text)(?: AND |$)';
  v_cand   float8;
  -- the planner's expectations: the matches (v_mexp), and the tasks the
  -- order reads (v_stream: all, or those of the filter its index starts
  -- with, v_sf)
  v_mexp   float8;
  v_stream float8;
  v_sf     text;
  -- one pass: as the bitmaps would read it (v_fold alone), or of the
  -- candidates of the words (v_foldw), the filters (v_fewf) or the facet
  -- keys (v_foldk: v_kcond); v_wcond the candidates' condition, v_pfrom the
  -- page's rows by their keys
  v_fold   boolean := false;
  -- deleted=include (not the facet keys: tasks_facets_idx has live tasks)
  v_incl0  boolean := v_dcond = 'true';
  v_foldw  boolean := false;
  v_foldk  boolean := false;
  v_wcond  text;
  v_kcond  text;
  v_pfrom  text;
  -- (0025) few filtered tasks without a search (the filter probe): their
  -- keys and sort columns first, in a query of their own (see above)
  v_fenced boolean := false;
  -- (0025) a split sort's branches' conditions ORed, read in one query
  -- (a page by its cursor: the cursor's branch has its keyset condition)
  v_sor    text;
  -- (0025) the facet keys' candidates a split sort's keyset page reads
  -- whatever its filters (see below)
  c_keyset_few constant float8 := 2000;
  -- (0025) the filters' way of the one pass and of a split sort's keyset
  -- page where the words are common: up to 20,000 filtered tasks and 2% of
  -- the live tasks, each fetched and the words tested on it (a due range's
  -- 13,000 tasks: 21 ms, where the planner ANDed the bitmap of a word in a
  -- quarter of the tasks, 262,000 entries, 75 ms, for the count and again
  -- for the page)
  c_foldf_max constant float8 := 20000;
  c_foldf_share constant float8 := 0.02;
  v_foldf  boolean := false;
  -- (0025) a keyset page of a search read as the one pass reads its
  -- candidates, and whether the order's first rows would not hold a page
  -- (see below)
  v_keyset boolean := false;
  v_sparse boolean := false;
  -- (0026) the words alone for a keyset page where the filters pass at
  -- least this share of the live tasks (rarer ones: the bitmaps, which AND
  -- the filters' own)
  c_foldw_share constant float8 := 0.1;
  -- (0026) a keyset page by a sort whose first 5000 rows the planner
  -- expects to hold less than a fifth of it (the sort's probe's measure)
  v_thin   boolean := false;
  -- (0026) the count of an offset page through the facet keys, with a
  -- label list (label[in]) of at most c_flist_max labels among them (one
  -- "@>" and one "&&" the labels, 0028: v_kcondl, its filters' conditions
  -- v_fcondl), where
  -- the planner expects at most c_kcount_max candidates of those keys; a
  -- split sort's branch too where it expects at most c_kbranch_max (a
  -- priority's branch with its priority's key)
  c_flist_max constant int := 4;
  c_kcount_max constant float8 := 20000;
  c_kbranch_max constant float8 := 2000;
  v_flist  text[];
  v_flabels text[];
  v_kkeys  text[];
  v_fcondl text;
  v_kcondl text;
  v_cfrom  text;
  v_kbranch boolean := false;
  -- (0026) the candidates of the keys the planner expects (v_kcondl)
  v_kexp   float8;
  v_bexp   float8;
  v_bkey   text;
  v_wtest  text;
  -- (0027) the facet way of a rank of one word where its candidates are
  -- fewer than this share of the matches the time-ordered index would walk
  c_rfacet_share constant float8 := 0.5;
  -- (0027) the count through the keys of one "@>" (see below)
  c_kcount_one constant float8 := 40000;
  v_kone   boolean := false;
  -- (0027) the count of common words through their filters' tasks (see
  -- below): at most this many tasks, and this many read to count its cap
  c_cwalk_tasks constant float8 := 60000;
  c_cwalk_rows constant float8 := 15000;
  -- (0027) the conditions of deleted=include's deleted matches (see below)
  v_dconds text;
  -- (0028) a branch's filtered tasks and matches, as the planner expects
  -- them (see the branches below)
  v_bfexp  float8;
  v_bmexp  float8;
  -- (0028) the count of common words through one filter's index: a status,
  -- a priority, a project or an assignee, one value or a list (nginx writes
  -- them so), and whether the count turns sequential scans off for it
  c_cwalk_filter constant text :=
    '(?:^| AND )(t\.(?:status|priority|project_id|assignee_id) = '
    '(?:\(\$2\[[0-9]+\]\)::[a-z]+'
    '|ANY \(string_to_array\(\$2\[[0-9]+\], '',''\)::[a-z]+\[\]\)))'
    '(?: AND |$)';
  v_cwf    text;
  v_cseq   boolean := false;
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
    IF v_lex IS NOT NULL THEN
      -- (0024) plain words: the filters tasks_facets_idx has ("eq" of
      -- priority, label, project, assignee, as nginx writes them), their
      -- conditions alone, and the one condition of the index with the
      -- words' and their keys (v_kcond), for the words' block and the one
      -- pass below
      SELECT string_agg(' AND ' || f[1], ''),
             array_agg(right(p_ws::text, 12)
                       || CASE f[2]
                            WHEN 'priority'
                            THEN '=p' || (p_args[f[3]::int])::smallint
                            WHEN 'project_id'
                            THEN '=j' || (p_args[f[3]::int])::uuid
                            WHEN 'assignee_id'
                            THEN '=a' || (p_args[f[3]::int])::uuid
                            ELSE '=l' || p_args[f[3]::int] END)
        INTO v_fconds, v_fkeys
        FROM regexp_matches(v_fhay,
               ' AND (t\.(priority|project_id|assignee_id|labels)'
               ' (?:= \(|@> ARRAY\[)\$2\[([0-9]+)\](?:\)::smallint'
               '|\)::uuid|\]))(?= AND |$)', 'g') f;
      -- (0026) and for the count of an offset page (below), a label list
      -- ("t.labels && string_to_array($2[n], ',')") of up to 4 labels: its
      -- condition with theirs (v_fcondl), and the keys with each of its
      -- labels (0028: "&&" the labels' keys; v_kcondl)
      v_flist := regexp_match(v_fhay,
                   ' AND (t\.labels && string_to_array\(\$2\[([0-9]+)\], '',''\))'
                   '(?= AND |$)');
      IF v_flist IS NOT NULL
         AND cardinality(string_to_array(p_args[v_flist[2]::int], ','))
             BETWEEN 1 AND c_flist_max
      THEN
        v_fcondl := coalesce(v_fconds, '') || ' AND ' || v_flist[1];
        v_flabels := ARRAY(SELECT right(p_ws::text, 12) || '=l' || l
                             FROM unnest(string_to_array(p_args[v_flist[2]::int],
                                                         ',')) l);
      ELSE
        v_fcondl := v_fconds;
      END IF;
      IF v_fcondl IS NOT NULL THEN
        v_kkeys := ARRAY(SELECT right(p_ws::text, 12) || ':' || w
                           FROM unnest(v_lex) w)
                   || coalesce(v_fkeys, '{}');
        v_kcondl := tm.task_facets_cond(v_kkeys, v_flabels);
        IF v_fconds IS NOT NULL THEN
          v_kcond := tm.task_facets_cond(v_kkeys, NULL);
        END IF;
      END IF;
    END IF;
    IF v_gist AND NOT v_only_q
       AND coalesce(cardinality(v_words), 0) BETWEEN 2 AND 16
    THEN
      -- (0021) words and other filters.  How many of the newest 2000 tasks
      -- have the words (up to 50), and, where fewer than 10 do, how many
      -- matches in all the planner expects (its statistics of the lexemes:
      -- words absent from the newest but common before them would have
      -- the bitmap fetch every match)
      -- (0022) A rank with a status asks the planner first: common words
      -- keep the month path without the count of the newest (~2 ms)
      IF v_st THEN
        v_wexp := tm.live_expected(p_ws, ' AND ' || c_match, NULL, p_q);
        v_rare := v_wexp <= c_rare_max;
      END IF;
      v_kw := CASE WHEN v_st AND NOT v_rare THEN 50 ELSE (SELECT count(*)
                 FROM (SELECT 1
                         FROM (SELECT t.search FROM tm.tasks t
                                WHERE t.workspace_id = p_ws
                                  AND t.deleted_at IS NULL
                                ORDER BY t.created_at DESC, t.id DESC
                                LIMIT 2000) t
                        WHERE t.search @@ websearch_to_tsquery('english', p_q)
                        LIMIT 50) s) END;
      IF v_st THEN
        v_rare := v_rare AND v_kw <= 9;
      ELSIF v_kw <= 9 THEN
        v_wexp := tm.live_expected(p_ws, ' AND ' || c_match, NULL, p_q);
        v_rare := v_wexp <= c_rare_max;
      END IF;
      IF p_ranked AND (v_rare OR NOT v_st) THEN
        -- ranked: the share of the tenant's tasks the planner expects the
        -- filters to pass (v_pf), and the matches that makes (v_m)
        v_live := tm.live_expected(p_ws, '', NULL, NULL);
        v_pf := tm.live_expected(p_ws, v_fonly, p_args, p_q)
                / greatest(v_live, 1);
        v_m := v_kw / 2000.0 * v_live * v_pf;
        IF v_st THEN
          v_sshare := tm.live_expected(p_ws, ' AND t.status = ($2[1])::text',
                                       ARRAY[v_status], NULL)
                      / greatest(v_live, 1);
        END IF;
        -- the month path (0020), the filters tested on each month's
        -- matches: it fetches ~200 / v_pf of them, and a quarter more
        -- (priority=4, 5% of the tasks: 6,400 rows, 43-62 ms), and reads
        -- every month where the matches are fewer than 200.  For filters
        -- that pass 10% or more, unless rare words make fewer than 400
        -- matches (six words and a label: 134, every month read, 48 ms,
        -- against 30 for the bitmap); for 4% or more, with words common
        -- among the newest (30 of 2000) or expected common in all
        v_months := (v_pf >= 0.1 AND NOT (v_rare AND v_m < 400))
                    OR (v_pf >= 0.04 AND (v_kw >= 30 OR (v_kw <= 9 AND NOT v_rare)))
                    -- (0022) a rank with a status: the month path, unless
                    -- rare words make fewer than 400 matches and the
                    -- status is in 10% of the tasks or more (its keys then
                    -- narrow each month's words little).  Six words (~0.1%
                    -- of the tasks) ranked with status=in_progress (20%):
                    -- 56 ms, every month read, against 31 for the bitmap;
                    -- with status=archived (5%), 24 against 31
                    OR (v_st AND NOT (v_rare AND v_m < 400 AND v_sshare >= 0.1));
        -- else the words' bitmap, narrowed by the filters' indexes where
        -- the words are common (tasks_search_recent_idx walked 440,000
        -- entries for four words in 0.9% of the tasks and priority=4:
        -- 90 ms)
        v_rare := v_rare AND NOT v_months;
        v_bitmap := NOT v_months AND NOT v_rare;
      END IF;
      IF NOT v_rare AND NOT v_months THEN
        -- (0022) commoner words with filters tasks_facets_idx has, under a
        -- sort or ranked where the month path does not serve them: one
        -- "@>" of the words' and the filters' keys, when the planner
        -- expects those filters to pass at most 15% of the live tasks (6%
        -- with words in 50 of the newest 2000): no probe of the sort's
        -- first rows, no bitmap of each filter's index
        IF v_fconds IS NOT NULL THEN
          v_live := coalesce(v_live, tm.live_expected(p_ws, '', NULL, NULL));
          v_fshare := tm.live_expected(p_ws, v_fconds, p_args, p_q)
                      / greatest(v_live, 1);
          v_facet := v_fshare <= CASE WHEN v_kw >= 50 THEN c_facet_common
                                      ELSE c_facet_max END;
        END IF;
        IF v_facet THEN
          v_bitmap := true;
        END IF;
      END IF;
    END IF;
    IF NOT v_deleted AND NOT v_rare AND NOT v_bitmap
       AND NOT (v_months AND NOT v_only_q)
       AND (v_filters <> '' OR p_gin <> c_match OR p_split IS NOT NULL
            OR NOT p_ranked)
       -- (p_gin also holds the label filters, with or without words)
       AND coalesce(p_q, '') <> ''
    THEN
      -- (0023) a probe would read the first tasks in an order that pass
      -- the filters and test the search on each (see above; a sort's probe
      -- too without filters: a phrase's offset page 3 read 42,000 rows in
      -- the sort's order for its 151 first matches, 300-380 ms).  The planner's
      -- expectations, of the live tasks: the search's matches (a phrase:
      -- the tasks with its pairs), and, but where a filter is on the first
      -- column of the order the probe reads (its index reads the filter's
      -- tasks in that order; a rank and a split sort read the newest:
      -- created_at), the filters'
      v_live := coalesce(v_live, tm.live_expected(p_ws, '', NULL, NULL));
      -- (the words' block above may have asked it of the words already)
      v_wexp := coalesce(v_wexp, tm.live_expected(p_ws, ' AND '
                  || CASE WHEN cardinality(v_pairs) > 0 THEN v_pcond
                          ELSE c_match END,
                  NULL, p_q));
      IF (v_filters <> '' OR p_gin <> c_match)
         AND v_filters !~ ('t\.(' || CASE WHEN p_ranked OR p_split IS NOT NULL
                                          THEN 'created_at'
                                          ELSE substring(p_order FROM '^t\.([a-z_]+)')
                                          END || ') ')
      THEN
        v_fexp := tm.live_expected(p_ws, v_fonly, p_args, p_q);
      END IF;
      -- the words' bitmap: rare words (at most 10,000 matches and 1% of
      -- the tasks) of one GIN key (one word, a phrase's pairs, or words in
      -- other shapes than v_words), which GIN reads in a few entries; and
      -- several rare-together words (each common: GIN intersects their
      -- long posting lists, ~30 ms for four of the bench's words) with
      -- filters that pass at most 5% of the tasks (the probe then reads
      -- 20 tasks or more for each that passes them; with commoner filters
      -- it stops soon enough and the order serves the page)
      v_few := coalesce(v_wexp <= least(c_few_max, c_few_share * v_live)
                        AND (coalesce(cardinality(v_words), 0) < 2
                             OR v_fexp <= c_few_filters * v_live), false);
      -- or the filters' tasks: at most 3,000 and 1% (v_fewf, see above),
      -- the words tested on each
      v_fewf := NOT v_few
                AND coalesce(v_fexp <= least(c_fewf_max, c_few_share * v_live),
                             false);
      v_few := v_few OR v_fewf;
      -- (0027) one plain word (or more than 16), ranked, with facet
      -- filters: 0022's facet way (the candidates of the word's and the
      -- filters' keys, the newest 200 of them ranked) where the planner
      -- expects at most 10,000 candidates and fewer than a half of the
      -- matches tasks_search_recent_idx would walk for the newest 200 that
      -- pass the filters (200 / their share: invoice, in a quarter of the
      -- tasks, with a label and priority=4, 0.6%, walked 30,000 matches
      -- and fetched each, 60-90 ms; the keys' 1,500 candidates, 10 ms)
      IF p_ranked AND NOT v_few AND v_gist AND v_kcond IS NOT NULL
         AND NOT coalesce(cardinality(v_words), 0) BETWEEN 2 AND 16
      THEN
        v_kexp := tm.live_expected(p_ws, v_fconds || ' AND ' || c_match,
                                   p_args, p_q);
        v_fexp := coalesce(v_fexp, tm.live_expected(p_ws, v_fonly, p_args, p_q));
        v_facet := v_kexp <= c_fold_max
                   AND v_kexp < c_rfacet_share * c_rank_max * v_live
                                / greatest(v_fexp, 1);
        v_bitmap := v_facet;
      END IF;
      -- (0024) an offset page (X-Total-Count) of live tasks (or with
      -- deleted=include), by a sort: the
      -- count read every match up to its cap in a pass of its own, then
      -- the page read them again in its order (four words with
      -- status=in_progress by title, page 3: the planner ANDed the words'
      -- GIN bitmap to the status's 200,000 entries for each, 155 + 99 ms,
      -- after a probe of 36).  Where the planner expects few matches (up to
      -- 10,000 and 1%) and the order's first 5000 rows not to hold the
      -- page, or under a split sort, one pass reads the candidates once,
      -- sorts them, counts them and slices the page's ids (see the count
      -- below): the candidates of the facet keys (plain words and the
      -- filters tasks_facets_idx has: one GIN condition), or the bitmaps as
      -- chosen above (v_few), or of the words alone (their bitmap, the
      -- filters tested on each: no BitmapAnd of a common filter's entries),
      -- or of the filters alone (the words tested on each), whichever the
      -- planner expects at most 10,000 and 1% of
      -- (0025) a keyset page (no count) by a split sort, or by a sort
      -- whose index does not start at a filter (it reads the order from
      -- there), of live tasks or deleted=include: read as the one pass
      -- reads its candidates (below), unless the bitmaps took it (v_few)
      v_keyset := NOT p_count AND NOT p_ranked AND NOT v_few AND NOT v_first
                  AND v_dcond IN ('t.deleted_at IS NULL', 'true')
                  AND (p_split IS NOT NULL
                       OR v_filters !~ ('t\.' || substring(p_order
                                                           FROM '^t\.([a-z_]+)')
                                        || ' '));
      -- the expected matches (not where 0023 chose the bitmaps: they are
      -- read once anyway), and the tasks the order reads: a project's, an
      -- assignee's or a status's in an order their index has (0020's
      -- filter probe, c_own), or all; whether the order's first 5000 rows
      -- would not hold the page (v_sparse), or (0026) a fifth of it
      -- (v_thin, as the sort's probe below measures)
      v_cand := least(c_fold_max, c_few_share * v_live);
      IF NOT v_few AND NOT p_ranked
         AND v_dcond IN ('t.deleted_at IS NULL', 'true')
         AND ((p_count AND p_after IS NULL) OR (v_keyset AND p_split IS NULL))
      THEN
        v_mexp := tm.live_expected(p_ws, v_fall, p_args, p_q);
        v_stream := v_live;
        IF v_mexp <= v_cand AND p_split IS NULL AND p_order ~ c_own_order THEN
          v_sf := (regexp_match(v_filters, c_own))[1];
          IF v_sf IS NOT NULL THEN
            v_stream := tm.live_expected(p_ws, ' AND ' || v_sf, p_args, NULL);
          END IF;
        END IF;
        v_sparse := v_mexp <= v_cand
                    AND v_mexp / greatest(v_stream, 1) * c_fold_rows
                        < p_offset + p_limit + 1;
        v_thin := v_sparse
                  AND v_mexp / greatest(v_stream, 1) * c_fold_rows
                      < (p_offset + p_limit + 1) / 5.0;
      END IF;
      IF p_count AND NOT p_ranked AND p_after IS NULL
         AND v_dcond IN ('t.deleted_at IS NULL', 'true')
      THEN
        IF v_few OR (v_mexp <= v_cand AND p_split IS NOT NULL) OR v_sparse
        THEN
          -- (the facet keys' candidates: the words and those filters, by
          -- the planner's statistics of their columns; the index's own
          -- are of no use for a key)
          IF v_kcond IS NOT NULL AND NOT v_incl0
             AND tm.live_expected(p_ws, v_fconds || ' AND ' || c_match,
                                  p_args, p_q)
                 <= v_cand
          THEN
            v_foldk := true;
            v_fewf := false;
          ELSIF v_few THEN
            NULL;
          ELSIF v_wexp <= v_cand THEN
            v_foldw := true;
          ELSIF v_filters <> '' OR p_gin <> c_match THEN
            -- the filters' way, as 0023's few filtered tasks; (0025) up
            -- to 20,000 and 2% of the live tasks (see above)
            v_fexp := coalesce(v_fexp, tm.live_expected(p_ws, v_fonly, p_args, p_q));
            v_fewf := v_fexp <= least(c_foldf_max, c_foldf_share * v_live);
            v_foldf := v_fewf;
          END IF;
          -- no probe
          v_fold := v_few OR v_foldk OR v_foldw OR v_fewf;
          v_few := v_fold;
        END IF;
      END IF;
      IF v_keyset THEN
        -- (0025) a split sort's page by its cursor (no count; or a sort's
        -- where the planner expects its first rows not to hold the page:
        -- (0026) or where its probe below finds too few), plain words with
        -- filters tasks_facets_idx has: their facet keys' candidates in
        -- one query, sorted, where the planner expects few (up to 2,000),
        -- or up to 10,000 and 1% of the live tasks where those filters
        -- pass 5% or more (a label: each branch ANDed its bitmap, 118,000
        -- entries, 45 ms, to the words'; four words and a label by
        -- -priority: 2 x 75 ms after a probe of the newest 5000, 30-100
        -- ms; their keys: 20 ms).  A project's or an assignee's index
        -- narrows each branch to their tasks (3.5%): invoice with an
        -- assignee, 9,500 matches expected, 18 ms by the branches, 37 by
        -- the keys
        IF v_kcond IS NOT NULL AND NOT v_incl0 THEN
          v_mexp := tm.live_expected(p_ws, v_fconds || ' AND ' || c_match,
                                     p_args, p_q);
          v_foldk := v_mexp <= least(c_fold_max, c_few_share * v_live)
                     AND (v_mexp <= c_keyset_few
                          OR tm.live_expected(p_ws, v_fconds, p_args, p_q)
                             >= c_few_filters * v_live);
        END IF;
        -- or the filters' way (0023's few filtered tasks, the words tested
        -- on each) where the words are not few and the filters pass up to
        -- 20,000 and 2% of the live tasks (see above: a due range's
        -- 13,000 tasks, 21 ms, where each branch ANDed the bitmap of a
        -- word in a quarter of the tasks, 75 ms)
        IF NOT v_foldk AND (v_filters <> '' OR p_gin <> c_match)
           AND v_wexp > v_cand
        THEN
          v_fexp := coalesce(v_fexp, tm.live_expected(p_ws, v_fonly, p_args, p_q));
          v_fewf := v_fexp <= least(c_foldf_max, c_foldf_share * v_live);
          -- in a subquery of their own (below), but where the branches'
          -- order starts with a filter's column: the planner then reads
          -- the order's index from the filter on, in one query (a due
          -- range by -priority,due_at: 7 ms, 29 in the subquery)
          v_foldf := v_fewf
                     AND (p_split IS NULL
                          OR v_filters !~ ('t\.' || substring(p_split[2]
                                                      FROM '^t\.([a-z_]+)')
                                           || ' '));
        END IF;
        -- or the words alone, as the one pass reads them (their bitmap,
        -- the filters tested on each; with deleted=include their live and
        -- deleted candidates), where the planner expects them in at most
        -- 10,000 and 1% of the live tasks (four words with
        -- status=in_progress by status: 158 ms, a probe of the newest 5000
        -- and the branches; their offset page 3 in one pass: 53)
        -- (0026) where the filters pass 10% or more of the live tasks (or
        -- there are none): rarer ones' bitmaps, ANDed to the words', fetch
        -- only their matches (four words with priority=4 by status: 36 ms,
        -- 53 with the words alone, their 4,600 candidates each fetched)
        IF NOT v_foldk AND NOT v_fewf AND v_wexp <= v_cand THEN
          v_fexp := coalesce(v_fexp, tm.live_expected(p_ws, v_fonly, p_args, p_q));
          v_foldw := v_fexp >= c_foldw_share * v_live;
        END IF;
        -- (0026) a split sort's at once; a sort's where the planner expects
        -- its first 5000 rows not to hold the page, for the facet keys or
        -- the filters' tasks (few candidates), or to hold less than a fifth
        -- of it, for the words alone; else after its probe (below)
        IF p_split IS NOT NULL OR (v_sparse AND (v_foldk OR v_fewf))
           OR (v_thin AND v_foldw)
        THEN
          v_few := v_foldk OR v_fewf OR v_foldw;
        END IF;
      END IF;
    END IF;
    IF v_deleted THEN
      -- deleted=only: no probe, no order; the bitmaps of the GIN indexes
      -- of deleted tasks (0012), or of a phrase's pairs
      v_n := 0;
      v_found := 0;
    ELSIF v_few THEN
      -- (0023) rare words or few filtered tasks: the bitmaps (above)
      v_n := 0;
      v_found := 0;
    ELSIF v_rare OR v_bitmap THEN
      -- (0021) fewer than 10 of the newest 2000 tasks have the words: the
      -- words' bitmap (one condition a word, the filters tested on each
      -- row: below), without the probe of the filters' newest tasks or of
      -- the sort's first rows.  The filters' newest or the sort's first
      -- rows then hold about as few matches (the probe of six words with
      -- priority=4 found none in 15 ms; with a label by due date, in 17),
      -- and tasks_search_recent_idx or the sort's order would read most of
      -- the tenant for them.  Commoner words, ranked, with rarer filters
      -- (v_bitmap, above): the same bitmap, which the filters' indexes
      -- narrow
      v_n := 0;
      v_found := 0;
    ELSIF p_split IS NULL AND NOT p_ranked THEN
      -- the sort's order when its first 5000 rows hold a fifth of the rows
      -- wanted (it then reads at most ~25,000 rows: ~30 ms), else the GIN
      -- bitmap of every match (0009 asked for all of them: words in 0.9% of
      -- the tasks under a sort took 57 ms through the bitmap).  An offset
      -- page: a twentieth (up to ~100,000 rows in order), since the bitmap
      -- then fetches and sorts every match (see above)
      -- (0021) a search with filters in p_where: the ids first, then
      -- their rows (as the ranked probe below): priority=4 and a label by
      -- -updated_at fetched 26,000 rows to test the priority, 57 ms (a
      -- label alone keeps the rows: reading them by key too cost 3-13 ms)
      v_n := CASE WHEN p_offset > 0 THEN (p_offset + p_limit + 1) / 20
                  ELSE (p_offset + p_limit + 1 + 4) / 5 - 1 END;
      EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM (SELECT '
              || CASE WHEN v_filters = '' OR coalesce(p_q, '') = ''
                      THEN 't.labels, t.search'
                      ELSE 't.id' END
              || ' FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || p_where
              || coalesce(' AND ' || p_after, '')
              || ' ORDER BY ' || p_order || ' LIMIT 5000) '
              || CASE WHEN v_filters = '' OR coalesce(p_q, '') = '' THEN 't'
                      ELSE 'i, LATERAL (SELECT t.labels, t.search'
                           ' FROM tm.tasks t WHERE t.workspace_id = $1'
                           ' AND t.id = i.id OFFSET 0) t' END
              || ' WHERE ' || p_gin
              || ' LIMIT ' || (v_n + 1) || ') s'
         INTO v_found
        USING p_ws, p_args, p_q;
      -- (0026) a keyset page: the way chosen above where the sort's first
      -- 5000 rows hold too few matches (0025 took it where the planner
      -- expected them to: four words by due date, 18 ms by the order, 48
      -- with their 4,600 candidates, which the order's first rows held)
      v_few := v_keyset AND v_found <= v_n
               AND (v_foldk OR v_fewf OR v_foldw);
    ELSIF v_months AND NOT v_only_q THEN
      -- words and a status: the month path, whatever the newest hold; (0021)
      -- words common among the newest and other filters that pass 10%
      -- or more (above): the month path too
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
      -- (0021) with filters in p_where, the newest tasks' ids first (an
      -- index-only scan where the order's index has the filters' columns),
      -- then each one's row by its key (OFFSET 0: not joined otherwise;
      -- a hash join with the words' bitmap took 45 ms): a filter the index
      -- has but does not start with (priority=4, 5% of the tasks) was
      -- tested on each row fetched, and the newest 2000 of them took
      -- 41,000 rows: 75 ms
      EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM (SELECT '
              || CASE WHEN v_filters = '' THEN 't.labels, t.search'
                      ELSE 't.id' END
              || ' FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || p_where
              || ' ORDER BY t.created_at DESC, t.id DESC LIMIT '
              || CASE WHEN v_recent THEN 2000
                      WHEN p_ranked THEN 1000
                      ELSE 5000 END || ') '
              || CASE WHEN v_filters = '' THEN 't'
                      ELSE 'i, LATERAL (SELECT t.labels, t.search'
                           ' FROM tm.tasks t WHERE t.workspace_id = $1'
                           ' AND t.id = i.id OFFSET 0) t' END
              || ' WHERE ' || p_gin || ' LIMIT ' || (v_n + 1) || ') s'
         INTO v_found
        USING p_ws, p_args, p_q;
    END IF;
    IF v_keyset AND NOT v_few THEN
      -- (0026) the order serves a sort's keyset page (or another way above)
      v_foldk := false;
      v_fewf := false;
      v_foldf := false;
      v_foldw := false;
    END IF;
    -- tasks_search_recent_idx for a rank with matches among the newest,
    -- and for a created_at page with too few in the sort's first rows
    v_months := v_months AND v_found <= v_n;
    v_recent := v_recent AND v_found > v_n;
    v_first := v_first AND v_found <= v_n AND v_pairs IS NULL;
    IF v_recent AND v_incl THEN
      -- the newest deleted matches, by their GIN index (bitmaps are
      -- allowed for this query only)
      -- (0027) every one of them, then the newest (OFFSET 0: no order of
      -- an index asked), where the planner expects at most 10,000: it
      -- walked tasks_list_idx newest first and fetched every task to test
      -- deleted_at (invoice: 37,000 rows for 200 of its 5,400 deleted
      -- matches, 40-60 ms; their bitmap, 14)
      v_dconds := ' AND t.deleted_at IS NOT NULL' || v_fall;
      EXECUTE 'SELECT array_agg(s.id)::text FROM (SELECT t.id '
              || CASE WHEN tm.tasks_expected(p_ws, v_dconds, p_args, p_q)
                           <= c_fold_max
                      THEN 'FROM (SELECT t.id, t.created_at'
                           ' FROM tm.tasks t WHERE t.workspace_id = $1'
                           || v_dconds || ' OFFSET 0) t'
                      ELSE 'FROM tm.tasks t WHERE t.workspace_id = $1'
                           || v_dconds END
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
    ELSIF v_fewf THEN
      -- (0023) few filtered tasks: the search tested on each (no index
      -- condition), their index chosen by the planner (an index-only scan
      -- of an assignee's 37,000 tasks for the 1,800 with priority=4, where
      -- the bitmap of that index fetched them all: 37,500 rows, 75 ms)
      v_bmway := true;
      v_where := replace(v_where, c_match, c_test);
    ELSIF v_found <= v_n THEN
      PERFORM set_config('enable_indexscan', 'off', true),
              set_config('enable_seqscan', 'off', true);
      -- (0023) a split sort of rare words in one query (below); with
      -- commoner words a branch a value ANDs the value's index to their
      -- bitmap and fetches only its own matches (four words by -priority:
      -- 40 ms for the first branch's, 73 for all of them sorted)
      v_bmway := v_few;
      IF v_pairs IS NOT NULL THEN
        -- the tasks with the pairs, not those with the words; the words'
        -- test is written so that it is no index condition (ts_match_vq is
        -- @@), or the planner may AND both bitmaps (GIN intersecting the
        -- posting lists of common words: 50-75 ms)
        v_where := replace(v_where, c_match, v_pcond || ' AND ' || c_test);
        IF v_few AND NOT v_fewf THEN
          -- (0024) rare pairs: a label tested on each of their tasks, as
          -- rare words' (the planner ANDed the bitmap of a label on 12% of
          -- the tasks, 118,000 entries, 45 ms, to the phrase's 3,700)
          v_where := tm.label_tests_unindexed(v_where);
        END IF;
      ELSIF v_facet THEN
        -- (0022) the words' and the facet filters' keys in one condition
        -- of tasks_facets_idx (exact for required words: their lexemes
        -- are keys), a label tested on each match (no bitmap of its own)
        v_wconds := v_kcond;
        v_where := tm.label_tests_unindexed(replace(v_where, c_match,
                                                    v_wconds));
      ELSIF coalesce(cardinality(v_words), 0) BETWEEN 2 AND 16 THEN
        -- (0021) required words: one condition per word, the same test
        -- (v_words are the query's only lexemes, ANDed): GIN then
        -- intersects the words' posting lists key by key instead of
        -- testing the whole query on each task that has any of them (six
        -- words in ~26% of the tasks each: 44 -> 35 ms)
        v_wconds := (SELECT string_agg('t.search @@ '
                                       || quote_literal(quote_literal(w))
                                       || '::tsquery', ' AND ')
                       FROM unnest(v_words) w);
        v_where := replace(v_where, c_match, v_wconds);
        IF v_rare OR v_few THEN
          -- and a label's test is no index condition (the functions of @>
          -- and &&): the planner ANDed the bitmap of a label on 12% of the
          -- tasks (118,000 entries, 15 ms) to the words' 1,000 matches
          v_where := tm.label_tests_unindexed(v_where);
        END IF;
      ELSIF v_few THEN
        -- (0023) rare words: a label tested on each match, as above
        v_where := tm.label_tests_unindexed(v_where);
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
                       AND p_order ~ c_own_order
                      THEN coalesce(' AND ' || (regexp_match(v_filters,
                                                             c_own))[1], '')
                      ELSE '' END
              || CASE WHEN p_split IS NULL THEN ' ORDER BY ' || p_order
                      ELSE ' AND ' || p_split[1] || ' ORDER BY ' || p_split[2]
                      END
              || ' LIMIT 500) t'
         INTO v_found, v_seen
        USING p_ws, p_args, p_q;
      IF v_seen = 500 AND v_found <= v_n THEN
        -- (0025) their keys and sort columns in a query of their own,
        -- which asks no order: an index's bitmap, or an index-only scan
        -- where an index has the filters' columns (a project's or an
        -- assignee's list indexes INCLUDE status and priority: their
        -- bitmap fetched 35,000-37,500 rows for 1,700-1,800 matches,
        -- 75-560 ms, once for the count and once for the page)
        PERFORM set_config('enable_seqscan', 'off', true);
        v_bmway := true;
        v_fenced := true;
        -- an offset page counts them and slices its keys in one pass
        v_fold := p_count AND p_after IS NULL;
      END IF;
    END IF;
  END IF;

  IF v_bmway AND p_split IS NOT NULL THEN
    -- (0023) a split sort through the bitmaps: one query in the whole
    -- order (p_order), the branches' conditions ORed (their rows in
    -- sequence are that order; each branch read the bitmaps again: four
    -- words and a due range by -priority, 3 x 36 ms); no split below
    v_sor := '(' || array_to_string(ARRAY(
                      SELECT '(' || p_split[2 * i - 1] || ')'
                        FROM generate_series(1, cardinality(p_split) / 2) i
                       ORDER BY i), ' OR ')
             || ')';
    v_where := v_where || ' AND ' || v_sor;
    p_split := NULL;
    v_late := false;
  END IF;

  v_from := 'FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || v_where;
  IF v_fenced THEN
    -- (0025) the matches' keys and the order's columns (OFFSET 0: no order
    -- of an index asked); the page's rows later by their keys
    v_pfrom := v_from;
    v_from := 'FROM (SELECT '
              || (SELECT string_agg(DISTINCT 't.' || m[1], ', ')
                    FROM regexp_matches(p_order, 't\.([a-z_]+)', 'g') m)
              || ' ' || v_from || ' OFFSET 0) t WHERE true';
  ELSIF v_foldf OR v_foldw OR v_foldk THEN
    -- the candidates alone in a subquery (OFFSET 0: the other conditions
    -- are no index conditions of theirs, and no order of an index is
    -- asked), the others tested on each; the page's rows later by their
    -- keys, every condition tested
    IF v_foldf THEN
      -- (0025) the filters' tasks, the words tested on each (the planner
      -- walked tasks_priority_id_idx backwards, testing 45,000 rows for a
      -- keyset page of a due range's)
      v_from := 'FROM (SELECT t.* FROM tm.tasks t WHERE t.workspace_id = $1'
                ' AND ' || replace(p_where || ' AND ' || p_gin, c_match, 'true')
                || ' OFFSET 0) t WHERE ' || c_test;
    ELSE
      -- (0024) the words' or the facet keys' candidates
      v_wcond := CASE WHEN v_foldk THEN v_kcond
                      WHEN cardinality(v_pairs) > 0
                      THEN v_pcond || ' AND ' || c_test
                      ELSE coalesce(v_wconds, c_match) END;
      -- (deleted=include: the live and the deleted candidates, each from
      -- its own index: the words' GIN indexes are partial)
      v_from := 'FROM (SELECT t.* FROM tm.tasks t WHERE t.workspace_id = $1'
                ' AND t.deleted_at IS NULL AND ' || v_wcond
                || CASE WHEN v_incl0
                        THEN ' UNION ALL SELECT t.* FROM tm.tasks t'
                             ' WHERE t.workspace_id = $1'
                             ' AND t.deleted_at IS NOT NULL AND ' || v_wcond
                        ELSE '' END
                || ' OFFSET 0) t'
                ' WHERE ' || replace(p_where || ' AND ' || p_gin, c_match, 'true');
    END IF;
    -- (0025) a split sort's branches, the cursor's keyset condition in its
    v_from := v_from || coalesce(' AND ' || v_sor, '');
    v_pfrom := 'FROM tm.tasks t WHERE t.workspace_id = $1 AND '
               || replace(p_where || ' AND ' || p_gin, c_match, c_test)
               || coalesce(' AND ' || v_sor, '');
  END IF;
  IF v_recent AND v_incl THEN
    -- the candidates: the 200 newest of the 200 newest live matches and
    -- the 200 newest deleted ones (each exact in the same order)
    v_from := 'FROM (SELECT u.* FROM (SELECT t.* '
              || tm.task_recent_from('FROM tm.tasks t WHERE t.workspace_id = $1'
                                     ' AND t.deleted_at IS NULL' || v_fall,
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
    -- (0021) a label tested on each (tm.label_tests_unindexed)
    v_from := tm.label_tests_unindexed(replace(v_from, c_match, c_test));
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
    IF (p_offset > 0 OR v_rare OR v_facet OR v_fold) AND p_split IS NULL
       AND NOT p_ranked
       AND NOT v_recent AND NOT v_first AND p_after IS NULL
       -- (0021) rare words: their bitmap read once for the count and the
       -- page (twice it took 2 x 25 ms for six words with a label); (0024)
       -- and the one pass above
       AND (v_deep OR v_rare OR v_facet OR v_fold
            OR (NOT v_deleted AND v_filters = ''
                AND (p_gin IS NULL
                     OR (coalesce(p_q, '') = '' AND v_found > v_n))))
    THEN
      -- a deep offset page, or one of the whole list or of a label in the
      -- sort's order: the rows from the offset on, up to the count's cap,
      -- hold the page's ids first (see above; the aggregate reads the ids
      -- in the subquery's order: no join, no grouping at its level)
      IF v_cap = v_cmax THEN
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
        -- (0024) by their keys, not the candidates' subquery, nor a
        -- phrase's pairs (its test stays)
        v_from := CASE WHEN v_foldw OR v_foldk OR v_fenced OR v_foldf
                       THEN v_pfrom
                       WHEN v_pcond IS NOT NULL
                       THEN replace(v_from, v_pcond, 'true')
                       ELSE v_from END || ' AND t.id = ANY('
                  || quote_literal(coalesce(v_ids, '{}')) || '::uuid[])';
        v_offset := 0;
        IF v_wconds IS NOT NULL THEN
          -- (0021) the page's rows by their keys: the words' test no
          -- index condition (the planner ANDed the words' bitmap again to
          -- the keys', 25 ms)
          v_from := replace(v_from, v_wconds, c_test);
        END IF;
      END IF;
    END IF;
    IF NOT v_folded AND p_ranked AND NOT v_months THEN
      -- (0021) a ranked offset page from the words' bitmap: the candidates
      -- once, counted, then ranked by their keys (the count and the page
      -- each read the bitmap: 2 x 40 ms for two common words and an
      -- assignee)
      -- (0027) any rank's (at most 200: the newest matches; the month
      -- path's are read by their keys already): tasks_search_recent_idx
      -- was walked for the count and again for the page (invoice with
      -- priority=4 and a label: 2 x 60-90 ms); the words' test, a phrase's
      -- pairs and a label's test no index condition of the rows by key
      EXECUTE 'SELECT array_agg(t.id)::text ' || v_from
         INTO v_ids
        USING p_ws, p_args, p_q;
      v_ids := coalesce(v_ids, '{}');
      v_total := cardinality(v_ids::uuid[]);
      v_folded := true;
      v_from := 'FROM tm.tasks t WHERE t.workspace_id = $1 AND '
                || tm.label_tests_unindexed(replace(replace(
                     CASE WHEN v_wconds IS NOT NULL
                          THEN replace(v_where, v_wconds, c_test)
                          ELSE v_where END,
                     coalesce(v_pcond || ' AND ', chr(1)), ''),
                     c_match, c_test))
                || ' AND t.id = ANY(' || quote_literal(v_ids) || '::uuid[])';
    END IF;
    IF NOT v_folded THEN
      -- (0026) plain words with facet filters (a label list too), counted
      -- in any order through their keys (v_kcondl; no other condition an
      -- index's) where the planner expects at most 20,000 candidates of
      -- those keys (two words and label in (perf,infra), ~16,000: 1,001
      -- counted in 32 ms, where the planner ANDed the words' bitmap, 79,000
      -- entries, and the labels', 222,000: 89; invoice and a project,
      -- ~9,000: 12 ms, where it ANDed the word's 262,000 to the project's;
      -- more, the count stops early in whatever order it reads)
      -- (the words' test, or their conditions one a word on the bitmaps'
      -- way: both exact for plain words, as the keys)
      v_wtest := CASE WHEN v_wconds IS DISTINCT FROM v_kcond
                      THEN coalesce(v_wconds, c_match) ELSE c_match END;
      IF v_kcondl IS NOT NULL AND NOT p_ranked
         AND v_dcond = 't.deleted_at IS NULL'
         AND v_from = 'FROM tm.tasks t WHERE t.workspace_id = $1 AND ' || v_where
         AND strpos(v_where, v_wtest) > 0
      THEN
        v_kexp := tm.live_expected(p_ws, v_fcondl || ' AND ' || c_match,
                                   p_args, p_q);
        -- (0027) or, the keys of one "@>" (no label list), up to 40,000
        -- where the planner expects a fifth of them or more to match (the
        -- count then fetches at most ~5,000 of them): invoice and a label
        -- (30,000 candidates) with status=todo, 28 ms, where the planner
        -- ANDed the word's bitmap (262,000 entries) and the label's: 130
        IF v_kexp > c_kcount_max AND v_kexp <= c_kcount_one
           AND v_flabels IS NULL
        THEN
          v_mexp := coalesce(v_mexp, tm.live_expected(p_ws, v_fall, p_args, p_q));
          v_kone := v_mexp >= v_kexp / 5;
        END IF;
        IF v_kexp <= c_kcount_max OR v_kone THEN
          v_cfrom := tm.label_tests_unindexed(replace(v_from, v_wtest,
                                                      v_kcondl));
          -- a split sort's branches too, each where its keys' candidates
          -- are few (below)
          v_kbranch := p_split IS NOT NULL;
        END IF;
      END IF;
      IF v_cfrom IS NULL AND v_wexp > v_cand AND NOT v_deleted
         AND strpos(v_from, c_match) > 0
         AND (v_filters <> '' OR p_gin <> c_match)
      THEN
        -- (0027) common words (more than 10,000 and 1% expected) with
        -- filters whose tasks the planner expects to be at most 60,000, of
        -- which at most 15,000 hold the count's 1,001 matches: those tasks
        -- from their index, the words tested on each (no index condition,
        -- nor a label's) until the count stops (two words, 7.9% of the
        -- tasks, with status=archived: 26 ms, where the planner ANDed the
        -- words' GIN bitmap, 79,000 entries, to the status's 50,000: 98)
        v_fexp := coalesce(v_fexp, tm.live_expected(p_ws, v_fonly, p_args, p_q));
        v_mexp := coalesce(v_mexp, tm.live_expected(p_ws, v_fall, p_args, p_q));
        -- (0028) first, where one filter has a B-tree index (a status, a
        -- priority, a project, an assignee: one value or a list) and the
        -- planner expects at most 15,000 of its tasks to hold the 1,001
        -- matches, any number of filtered tasks: the same, sequential
        -- scans off for the count.  Without an index condition the
        -- planner read the table in its order for a status's 200,000
        -- tasks or a priority list's 400,000, testing the words on each
        -- of 35,000-68,000 rows, 60-100 ms; the status's index read
        -- 15,000: 26 ms
        v_cwf := (regexp_match(v_filters, c_cwalk_filter))[1];
        IF v_cwf IS NOT NULL
           AND current_setting('enable_indexscan') = 'on'
           AND current_setting('enable_seqscan') = 'on'
           AND (v_cap + 1) * tm.live_expected(p_ws, ' AND ' || v_cwf,
                                              p_args, NULL)
               / greatest(v_mexp, 1) <= c_cwalk_rows
        THEN
          v_cfrom := tm.label_tests_unindexed(replace(v_from, c_match, c_test));
          v_cseq := true;
          PERFORM set_config('enable_seqscan', 'off', true);
        ELSIF v_fexp <= c_cwalk_tasks
              AND (v_cap + 1) * v_fexp / greatest(v_mexp, 1) <= c_cwalk_rows
        THEN
          v_cfrom := tm.label_tests_unindexed(replace(v_from, c_match, c_test));
        END IF;
      END IF;
      EXECUTE 'SELECT count(*) FROM (SELECT 1 ' || coalesce(v_cfrom, v_from)
              || ' LIMIT '
              || (v_cap + 1) || ') s'
         INTO v_total
        USING p_ws, p_args, p_q;
      IF v_cseq THEN
        PERFORM set_config('enable_seqscan', 'on', true);
      END IF;
    END IF;
    RETURN NEXT tm.task_err(200, CASE WHEN v_total > v_cap
                                      THEN v_cap::text || '+'
                                      ELSE v_total::text END);
  END IF;

  IF p_split IS NULL THEN
    IF (p_offset > 0 OR v_fenced) AND NOT p_ranked AND NOT v_folded THEN
      -- an offset page: the ids of its rows first (an index-only scan of
      -- the order's index where the filters are in it), then those rows;
      -- the page at offset 99,950 fetched 100,000 rows: 251 ms; (0025)
      -- any page of the fenced keys (above)
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
    v_bfrom := v_from;
    IF v_kbranch THEN
      -- (0026) the keys' candidates (see the count above), a priority's
      -- branch with that priority's key (nginx writes "t.priority = n"),
      -- where the planner expects at most 2,000 of them (two words and
      -- label in (perf,infra), priority=4: 18 ms, where the planner ANDed
      -- the words', the labels' and the priority's bitmaps: 94; invoice
      -- with priority=4, 12,500: 41 ms, read whole and sorted, where the
      -- branch's order read its first 151 in 13); a status's branch has
      -- no key: the count's candidates (v_kexp)
      v_bkey := (regexp_match(p_split[2 * v_i - 1],
                              '^t\.priority = ([0-9]+)(?: |$)'))[1];
      v_bexp := v_kexp;
      IF v_bkey IS NOT NULL THEN
        v_bexp := tm.live_expected(p_ws, v_fcondl || ' AND ' || c_match
                                         || ' AND t.priority = ' || v_bkey,
                                   p_args, p_q);
      END IF;
      IF v_bexp <= c_kbranch_max THEN
        v_bfrom := tm.label_tests_unindexed(replace(v_from, v_wtest,
                     tm.task_facets_cond(CASE WHEN v_bkey IS NULL THEN v_kkeys
                                              ELSE v_kkeys || (right(p_ws::text, 12)
                                                               || '=p' || v_bkey)
                                              END,
                                         v_flabels)));
      END IF;
    END IF;
    IF v_wexp > v_cand AND strpos(v_bfrom, c_match) > 0 THEN
      v_bfexp := tm.live_expected(p_ws, v_fonly || ' AND '
                                        || p_split[2 * v_i - 1], p_args, p_q);
      -- (0028) or where they are at most 60,000 and the planner expects
      -- the branch to read at most 15,000 of them for its page: its offset
      -- left and the rows wanted over the share of them that match (two
      -- words with label in (perf,infra) by status: archived's first 151
      -- matches by id after 9,300 tasks, 14 ms, where the planner ANDed
      -- the words' bitmap and the labels', 222,000 entries, 80 ms)
      v_bmexp := CASE WHEN v_bfexp > c_fewf_max AND v_bfexp <= c_cwalk_tasks
                      THEN tm.live_expected(p_ws, v_fall || ' AND '
                                                  || p_split[2 * v_i - 1],
                                            p_args, p_q) END;
      IF v_bfexp <= c_fewf_max
         OR (v_bmexp IS NOT NULL
             AND (v_skip + v_need) * v_bfexp / greatest(v_bmexp, 1)
                 <= c_cwalk_rows)
      THEN
        -- (0027) common words (more than 10,000 and 1% expected) in a
        -- branch whose filtered tasks the planner expects to be few (up to
        -- 3,000): those tasks from their index, the words tested on each
        -- (no index condition, nor a label's): the planner ANDed the words'
        -- GIN bitmap (two words in 7.9% of the tasks: 79,000 entries, 45-70
        -- ms) to status=archived's tasks of priority 4 (2,500: 5 ms
        -- without it)
        v_bfrom := tm.label_tests_unindexed(replace(v_bfrom, c_match, c_test));
      END IF;
    END IF;
    v_bfrom := v_bfrom || ' AND ' || p_split[2 * v_i - 1];
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
