# The list pages of a large tenant (issue #5, sql/0009): sorts that start
# with status or priority run one branch per value (filters that exclude
# values, cursors inside a branch, offset pages across branches); a ranked
# search ranks the 200 newest matches; X-Total-Count stops at 10,000 (or at
# the end of a deeper page) and then says so with X-Total-Count-Capped: true.
#
# Every list is compared with an SQL oracle written here (psql), row for
# row, walking keyset pages or offset pages.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user);
use Taskmgr::List qw(list_walk psql_ids index_scans index_read_since);

my $t = Taskmgr::Test->new(name => 'list_bounds');
# the seed's soft-deleted tasks are older than the purge's 30 days: no purge
# here, or a slow run (AddressSanitizer) loses them after its first minute.
# A search's offset pages may go as deep as any (t/320 checks the default
# window of 1000)
$t->start(http_config => 'taskmgr_task_purge_after 0; taskmgr_search_offset_max 100000;');

my $u  = setup_user($t);
my $ws = $u->{ws};

# 10,100 tasks: status and priority spread unevenly (no archived task of
# priority 4, no done task of priority 0); the word "needle" in the titles
# of rows 1..620 and the description of every third row; rows 1..100 are
# the oldest and have two or three needles in their titles (they rank
# first among all matches, but are not among the newest 200); every 25th
# row is soft-deleted.
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, description, status, priority,
                      created_by, created_at, deleted_at)
SELECT $1::uuid,
       ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
       CASE WHEN i <= 20 THEN 'needle needle needle ' || i
            WHEN i <= 100 THEN 'needle needle ' || i
            WHEN i <= 620 THEN 'needle hay ' || (i % 7)
            ELSE 'hay ' || (i % 13) END,
       CASE WHEN i % 3 = 0 THEN 'a needle in the description' ELSE 'plain' END,
       CASE WHEN i % 10 < 4 THEN 'todo' WHEN i % 10 < 6 THEN 'in_progress'
            WHEN i % 10 < 9 THEN 'done' ELSE 'archived' END,
       CASE WHEN i % 10 = 9 THEN least(i % 4, 3)        -- archived: never 4
            WHEN i % 10 BETWEEN 6 AND 8 THEN 1 + i % 4  -- done: never 0
            ELSE i % 5 END,
       $2::uuid,
       CASE WHEN i <= 100 THEN '2025-01-01 00:00:00+00'::timestamptz + i * interval '1 second'
            ELSE '2026-01-01 00:00:00+00'::timestamptz - i * interval '1 second' END,
       CASE WHEN i % 25 = 0 THEN '2026-04-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 10100) i}, $ws, $u->{user_id});

# due dates on 60% of them, many tasks on the same one
$t->psql(q{UPDATE tm.tasks SET due_at = '2026-06-01 00:00:00+00'::timestamptz + (x % 37) * interval '1 hour'
             FROM generate_series(1, 10100) x
            WHERE workspace_id = $1 AND x % 5 < 3
              AND id = ('00000000-0000-7000-8000-' || lpad(to_hex(x), 12, '0'))::uuid}, $ws);

sub get {
    my ($q) = @_;
    return $t->request(GET => "/v1/workspaces/$ws/tasks?$q", token => $u->{token});
}

sub oracle {
    my ($sql) = @_;
    return psql_ids($t, $sql, $ws);
}

sub list_oracle {
    my ($where, $order, $limit) = @_;
    return oracle("SELECT id FROM tm.tasks t WHERE t.workspace_id = \$1 AND ($where) ORDER BY $order"
                  . (defined $limit ? " LIMIT $limit" : ''));
}

# every page of the list, following next_cursor
sub walk {
    my ($q, $max) = @_;
    return list_walk($t, $ws, $u->{token}, $q, $max);
}

my $LIVE = 't.deleted_at IS NULL';

is($t->psql('SELECT count(*) FROM tm.tasks WHERE workspace_id = $1', $ws), 10100, '10,100 tasks');

###########################################################################
# sorts that start with status or priority: the first pages and full walks

for my $c (
    [ 'sort=status', $LIVE, 't.status ASC, t.id ASC' ],
    [ 'sort=-priority', $LIVE, 't.priority DESC, t.id DESC' ],
    [ 'sort=status,-priority', $LIVE, 't.status ASC, t.priority DESC, t.id DESC' ],
    [ 'sort=-priority,status,title', $LIVE,
      't.priority DESC, t.status ASC, t.title ASC, t.id ASC' ],
    [ 'sort=-status,created_at', $LIVE, 't.status DESC, t.created_at ASC, t.id ASC' ],
    [ 'sort=priority,-due_at', $LIVE, 't.priority ASC, t.due_at DESC NULLS FIRST, t.id DESC' ],
) {
    my ($q, $where, $order) = @$c;
    my $want = list_oracle($where, $order, 300);
    my $r = get("$q&limit=200");
    is($r->{status}, 200, "$q: 200");
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[0 .. 199] ],
              "$q: the first 200 rows in order");
    my $next = get("$q&limit=100&cursor=$r->{json}{next_cursor}");
    is_deeply([ map { $_->{id} } @{ $next->{json}{data} } ], [ @$want[200 .. 299] ],
              "$q: the next 100 from the cursor");
}

# due_at followed by more keys: its NULLs are a branch of their own
for my $c (
    [ 'sort=-due_at,created_at', $LIVE, 't.due_at DESC NULLS FIRST, t.created_at ASC, t.id ASC' ],
    [ 'sort=due_at,-title', $LIVE, 't.due_at ASC NULLS LAST, t.title DESC, t.id DESC' ],
    [ 'sort=status,-due_at,title&filter[status][ne]=done', "$LIVE AND t.status <> 'done'",
      't.status ASC, t.due_at DESC NULLS FIRST, t.title ASC, t.id ASC' ],
    [ 'sort=-priority,due_at,-updated_at&filter[due_at][is]=notnull', "$LIVE AND t.due_at IS NOT NULL",
      't.priority DESC, t.due_at ASC NULLS LAST, t.updated_at DESC, t.id DESC' ],
) {
    my ($q, $where, $order) = @$c;
    my $want = list_oracle($where, $order);
    is_deeply(walk("$q&limit=200"), $want, "$q: every page in order (" . scalar(@$want) . ' rows)');
}
{
    my $want = list_oracle($LIVE, 't.due_at ASC NULLS LAST, t.title DESC, t.id DESC');
    my $dated = $t->psql(q{SELECT count(*) FROM tm.tasks WHERE workspace_id = $1
                           AND deleted_at IS NULL AND due_at IS NOT NULL}, $ws);
    my $r = get('sort=due_at,-title&offset=' . ($dated - 2) . '&limit=5');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[$dated - 2 .. $dated + 2] ],
              'sort=due_at,-title: the offset page across the last due date and the first NULL');
    # pages that end on the second to last due date
    my ($seen, $cursor) = (0, undef);
    while ($seen < $dated - 1) {
        my $lim = $dated - 1 - $seen > 200 ? 200 : $dated - 1 - $seen;
        $r = get("sort=due_at,-title&limit=$lim" . (defined $cursor ? "&cursor=$cursor" : ''));
        $seen += @{ $r->{json}{data} };
        $cursor = $r->{json}{next_cursor};
        last unless defined $cursor;
    }
    my $next = get("sort=due_at,-title&limit=3&cursor=$cursor");
    is_deeply([ map { $_->{id} } @{ $next->{json}{data} } ], [ @$want[$dated - 1 .. $dated + 1] ],
              'sort=due_at,-title: the cursor page across the last due date and the first NULL');
}

# whole walks, with filters that leave out some values of the split keys and
# branches that are empty (archived tasks of priority 4, done of priority 0)
for my $c (
    [ 'sort=status,-priority&filter[status][in]=archived,done&filter[priority][gte]=3',
      "$LIVE AND t.status IN ('archived', 'done') AND t.priority >= 3",
      't.status ASC, t.priority DESC, t.id DESC' ],
    [ 'sort=-status,priority&filter[status][nin]=todo,in_progress&filter[priority][lt]=2',
      "$LIVE AND t.status NOT IN ('todo', 'in_progress') AND t.priority < 2",
      't.status DESC, t.priority ASC, t.id ASC' ],
    [ 'sort=priority,status&filter[priority][ne]=2&filter[status]=archived',
      "$LIVE AND t.priority <> 2 AND t.status = 'archived'",
      't.priority ASC, t.status ASC, t.id ASC' ],
    [ 'sort=-priority&filter[priority][lte]=1&filter[priority][gt]=0&q=needle',
      "$LIVE AND t.priority = 1 AND t.search @@ websearch_to_tsquery('english', 'needle')",
      't.priority DESC, t.id DESC' ],
    [ 'sort=status&deleted=only', 't.deleted_at IS NOT NULL', 't.status ASC, t.id ASC' ],
) {
    my ($q, $where, $order) = @$c;
    my $want = list_oracle($where, $order);
    ok(@$want > 20, "$q: the oracle has rows (" . scalar(@$want) . ')');
    is_deeply(walk("$q&limit=200"), $want, "$q: every page in order");
}

for my $q ('sort=status&filter[status]=todo&filter[status][ne]=todo',
           'sort=-priority&filter[priority][is]=null',
           'sort=status,priority&filter[status]=archived&filter[priority]=4') {
    my $r = get($q);
    is($r->{status}, 200, "$q: 200");
    is_deeply($r->{json}{data}, [], "$q: empty");
    is($r->{json}{next_cursor}, undef, "$q: no next page");
}

# offset pages across branches: the page that straddles two of them
{
    my $want = list_oracle($LIVE, 't.status ASC, t.priority DESC, t.id DESC');
    my $archived = $t->psql(q{SELECT count(*) FROM tm.tasks WHERE workspace_id = $1
                              AND deleted_at IS NULL AND status = 'archived'}, $ws);
    for my $off ($archived - 3, $archived, $archived + 1, 0, 4000, $#$want - 2) {
        my $r = get("sort=status,-priority&offset=$off&limit=7");
        is($r->{status}, 200, "offset $off: 200");
        my $end = $off + 6 > $#$want ? $#$want : $off + 6;
        is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[$off .. $end] ],
                  "offset $off: the rows of the oracle");
        is($r->{headers}{'x-total-count'}, scalar @$want, "offset $off: X-Total-Count exact");
        ok(!exists $r->{headers}{'x-total-count-capped'}, "offset $off: not capped");
    }
}

###########################################################################
# a ranked search ranks the 200 newest matches

{
    my $match = "$LIVE AND t.search @@ websearch_to_tsquery('english', 'needle')";
    my $n = $t->psql("SELECT count(*) FROM tm.tasks t WHERE t.workspace_id = \$1 AND $match", $ws);
    cmp_ok($n, '>', 200, "more than 200 matches ($n)");
    my $want = oracle(qq{SELECT id FROM (SELECT * FROM tm.tasks t WHERE t.workspace_id = \$1 AND $match
                                         ORDER BY t.created_at DESC, t.id DESC LIMIT 200) t
                          ORDER BY ts_rank(t.search, websearch_to_tsquery('english', 'needle')) DESC,
                                   t.id DESC});
    is(scalar @$want, 200, 'the oracle ranks 200');
    my $got = walk('q=needle&limit=50');
    is_deeply($got, $want, 'q=needle: the 200 newest matches, best first, every page');
    my $oldest = list_oracle("$match AND t.created_at < '2025-06-01'", 't.id');
    ok(@$oldest > 50, 'the oldest matches rank higher (more needles)...');
    my %in = map { $_ => 1 } @$got;
    is(scalar(grep { $in{$_} } @$oldest), 0, '... but are not among the 200 newest');

    # with a sort, every match
    is(scalar @{ walk('q=needle&sort=-created_at&limit=200') }, $n, 'q=needle&sort=-created_at: every match');

    # a filter applies before the 200 are taken
    my $fw = "$match AND t.status = 'archived'";
    my $fwant = oracle(qq{SELECT id FROM (SELECT * FROM tm.tasks t WHERE t.workspace_id = \$1 AND $fw
                                          ORDER BY t.created_at DESC, t.id DESC LIMIT 200) t
                           ORDER BY ts_rank(t.search, websearch_to_tsquery('english', 'needle')) DESC,
                                    t.id DESC});
    is_deeply(walk('q=needle&filter[status]=archived&limit=50'), $fwant,
              'q=needle&filter[status]=archived: the 200 newest archived matches, ranked');

    my $r = get('q=needle&page=2&per_page=80');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[80 .. 159] ], 'ranked page 2 of 80');
    is($r->{headers}{'x-total-count'}, 200, 'ranked: X-Total-Count is the 200 ranked');
    ok(!exists $r->{headers}{'x-total-count-capped'}, '... not capped');
    $r = get('q=needle&page=3&per_page=80');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[160 .. 199] ], 'ranked page 3: the last 40');
    ok(!$r->{headers}{link}, '... and no next page');
}

###########################################################################
# X-Total-Count is exact up to 10,000, or up to the end of the page past that
# (sql/0018); beyond, it is that number and X-Total-Count-Capped: true

{
    my $live = $t->psql("SELECT count(*) FROM tm.tasks t WHERE t.workspace_id = \$1 AND $LIVE", $ws);
    cmp_ok($live, '>', 9000, "$live live tasks");
    cmp_ok($live, '<', 10000, '... fewer than 10,000');
    my $all = $t->psql('SELECT count(*) FROM tm.tasks WHERE workspace_id = $1', $ws);

    my $r = get('page=1&per_page=10&deleted=include');
    is($r->{status}, 200, 'page 1 of every task: 200');
    is($r->{headers}{'x-total-count'}, 10000, '... X-Total-Count: 10000 (10,100 match)');
    is($r->{headers}{'x-total-count-capped'}, 'true', '... X-Total-Count-Capped: true');
    is(scalar @{ $r->{json}{data} }, 10, '... the page is whole');

    $r = get('page=3&per_page=50&deleted=include');
    is($r->{headers}{'x-total-count'}, 10000, 'from offset 100 too: 10000');
    is($r->{headers}{'x-total-count-capped'}, 'true', '... capped');

    $r = get('page=1&per_page=10');
    is($r->{headers}{'x-total-count'}, $live, "live tasks only: exact ($live)");
    ok(!exists $r->{headers}{'x-total-count-capped'}, '... not capped');

    $r = get('offset=50&limit=10&deleted=include&sort=status');
    is($r->{headers}{'x-total-count'}, 10000, 'offset 50, a split sort: 10000');
    is($r->{headers}{'x-total-count-capped'}, 'true', '... capped');

    # an offset page of the whole list counts from its offset on, in the
    # same pass as its ids (0015)
    $r = get('offset=50&limit=10&deleted=include');
    is($r->{headers}{'x-total-count'}, 10000, 'offset 50, newest first: 10000');
    is($r->{headers}{'x-total-count-capped'}, 'true', '... capped');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ],
              [ @{ list_oracle('true', 't.created_at DESC, t.id DESC', 60) }[50 .. 59] ], '... the rows 51-60');
}

# pages that end past 10,000 count to their end: the count is the offset plus
# the rows read, plus "capped" when a row follows the page; a page past the
# last row counts from the first.  Each kind of page: the whole list (0015's
# pass), a filter and a search (their ids' pass counts from offset ~5,000 on)
# and a split sort (its branches are counted to find the offset)
{
    my $all = $t->psql('SELECT count(*) FROM tm.tasks WHERE workspace_id = $1', $ws);
    my $notarch = $t->psql(q{SELECT count(*) FROM tm.tasks WHERE workspace_id = $1
                              AND status <> 'archived'}, $ws);
    my $hay = $t->psql(q{SELECT count(*) FROM tm.tasks t WHERE t.workspace_id = $1
                          AND t.search @@ websearch_to_tsquery('english', 'hay')}, $ws);
    cmp_ok($notarch, '>', 5000, "$notarch tasks not archived");
    cmp_ok($notarch, '<', 10000, '... fewer than 10,000');
    cmp_ok($hay, '>', 9000, "$hay tasks with 'hay'");

    for my $c (
        [ 'deleted=include', 'true', 't.created_at DESC, t.id DESC', $all ],
        [ 'deleted=include&sort=title', 'true', 't.title ASC, t.id ASC', $all ],
        [ 'deleted=include&filter[priority][gte]=0&sort=-updated_at', 't.priority >= 0',
          't.updated_at DESC, t.id DESC', $all ],
        [ 'deleted=include&filter[status][ne]=archived&sort=title', "t.status <> 'archived'",
          't.title ASC, t.id ASC', $notarch ],
        [ 'deleted=include&q=hay&sort=title', "t.search @@ websearch_to_tsquery('english', 'hay')",
          't.title ASC, t.id ASC', $hay ],
        [ 'deleted=include&sort=status,-priority', 'true', 't.status ASC, t.priority DESC, t.id DESC',
          $all ],
        [ 'deleted=include&sort=-priority', 'true', 't.priority DESC, t.id DESC', $all ],
    ) {
        my ($q, $where, $order, $n) = @$c;
        my $want = list_oracle($where, $order);
        is(scalar @$want, $n, "$q: the oracle has $n rows");
        for my $page ([ 9995, 10 ], [ 6000, 10 ], [ $n - 7, 20 ], [ $n, 10 ], [ $n + 30, 10 ]) {
            my ($off, $lim) = @$page;
            my $r = get("$q&offset=$off&limit=$lim");
            is($r->{status}, 200, "$q offset $off: 200") or next;
            my $end = $off + $lim - 1 > $#$want ? $#$want : $off + $lim - 1;
            is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ],
                      [ $off <= $#$want ? @$want[$off .. $end] : () ], "... the rows of the oracle");
            # the count stops at 10,000 (1,000 with q: sql/0024) or at the
            # page's end, whichever is deeper
            my $max = $q =~ /(?:^|&)q=/ ? 1000 : 10000;
            my $cap = $off + $lim > $max ? $off + $lim : $max;
            my ($count, $capped) = $n > $cap ? ($cap, 'true') : ($n, undef);
            is($r->{headers}{'x-total-count'}, $count, "... X-Total-Count: $count");
            is($r->{headers}{'x-total-count-capped'}, $capped,
               '... ' . ($capped ? 'capped' : 'exact'));
            is(defined $r->{headers}{link}, $off + $lim < $n, '... ' . ($off + $lim < $n ? 'a' : 'no')
               . ' next page');
        }
    }
}

{
    my $r;
    $r = get('limit=10&deleted=include');
    ok(!exists $r->{headers}{'x-total-count'}, 'keyset pages: no count');
    ok(!exists $r->{headers}{'x-total-count-capped'}, '... and no cap header');
}

###########################################################################
# a ranked search takes its candidates from tasks_search_recent_idx (sql/0010,
# in created_at order without an id tiebreak): the tasks of the oldest
# candidate's millisecond are completed, so the 200 are exactly the newest by
# (created_at, id); a phrase, or deleted=include|only, keeps the other ways

sub rank_oracle {
    my ($where, $q) = @_;
    return oracle(qq{SELECT id FROM (SELECT * FROM tm.tasks t WHERE t.workspace_id = \$1 AND $where
                                     ORDER BY t.created_at DESC, t.id DESC LIMIT 200) t
                      ORDER BY ts_rank(t.search, websearch_to_tsquery('english', '$q')) DESC, t.id DESC});
}

sub recent_scans {
    my ($index) = @_;
    return index_scans($t, $index // 'tasks_search_recent_idx');
}

# did the index (tasks_search_recent_idx unless named) serve a scan since
# $before
sub recent_read {
    my ($before, $index) = @_;
    return index_read_since($t, $index // 'tasks_search_recent_idx', $before);
}

{
    # 150 tasks on one millisecond, 150 on the one before: the 200 newest
    # are the first 150 and the 50 highest ids of the second
    $t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, created_by, created_at)
SELECT $1::uuid, ('00000000-0000-7000-9000-' || lpad(to_hex(i), 12, '0'))::uuid,
       'tiebreak ' || (i % 3), $2::uuid,
       CASE WHEN i % 2 = 0 THEN '2027-01-01 00:00:00.001+00'::timestamptz
            ELSE '2027-01-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 300) i}, $ws, $u->{user_id});

    my $before = recent_scans();
    my $match = "$LIVE AND t.search @@ websearch_to_tsquery('english', 'tiebreak')";
    my $want = rank_oracle($match, 'tiebreak');
    is(scalar @$want, 200, 'tied: the oracle ranks 200 of 300');
    is_deeply(walk('q=tiebreak&limit=50'), $want, 'tied: the 200 newest by (created_at, id), ranked');
    my $r = get('q=tiebreak&page=1&per_page=10');
    is($r->{headers}{'x-total-count'}, 200, 'tied: X-Total-Count 200');

    ok(recent_read($before), 'tasks_search_recent_idx was read');

    # a negated word is answered from the index too (its lexemes are exact)
    $match = "$LIVE AND t.search @@ websearch_to_tsquery('english', 'needle -hay')";
    is_deeply(walk('q=needle+-hay&limit=50'), rank_oracle($match, 'needle -hay'),
              'q=needle -hay: the 200 newest matches, ranked');

    # a phrase: stripped lexemes have no positions; the index is asked for
    # both words, the phrase is tested on the row
    $before = recent_scans();
    $match = "$LIVE AND t.search @@ websearch_to_tsquery('english', '\"needle hay\"')";
    my $pw = rank_oracle($match, '"needle hay"');
    cmp_ok(scalar @$pw, '>', 50, 'the phrase matches (' . scalar(@$pw) . ')');
    is_deeply(walk('q=%22needle+hay%22&limit=50'), $pw, 'q="needle hay": the 200 newest phrase matches');
    ok(recent_read($before), '... read from tasks_search_recent_idx');
    # "hay needle" is in no task in that order, both words are in many
    my $loose = rank_oracle("$LIVE AND t.search @@ websearch_to_tsquery('english', 'hay needle')",
                            'hay needle');
    cmp_ok(scalar @$loose, '>', 50, 'both words in many tasks');
    is_deeply(walk('q=%22hay+needle%22&limit=50'), [], 'q="hay needle": the phrase in none');

    # a phrase under a negation (true of tasks with both words apart): the
    # other ways answer
    $match = "$LIVE AND t.search @@ websearch_to_tsquery('english', 'needle -\"needle hay\"')";
    my $nw = rank_oracle($match, 'needle -"needle hay"');
    cmp_ok(scalar @$nw, '>', 50, 'needle without the phrase (' . scalar(@$nw) . ')');
    is_deeply(walk('q=needle+-%22needle+hay%22&limit=50'), $nw,
              'q=needle -"needle hay": the 200 newest matches, ranked');

    # deleted tasks are not in the index: deleted=include ranks them too
    $match = "t.search @@ websearch_to_tsquery('english', 'tiebreak')";
    $t->psql(q{UPDATE tm.tasks SET deleted_at = now()
                WHERE workspace_id = $1 AND id = '00000000-0000-7000-9000-000000000064'}, $ws);
    my $dw = rank_oracle($match, 'tiebreak');
    ok((grep { $_ eq '00000000-0000-7000-9000-000000000064' } @$dw), 'the deleted tie is among the newest');
    is_deeply(walk('q=tiebreak&deleted=include&limit=50'), $dw,
              'q=tiebreak&deleted=include: deleted tasks ranked too');
    # (limit=40: the pages of limit=50 are in the response cache, and this
    # UPDATE went round the API)
    ok(!(grep { $_ eq '00000000-0000-7000-9000-000000000064' } @{ walk('q=tiebreak&limit=40') }),
       '... and left out by default');

    # deleted=include ranks the newest of the live matches (from
    # tasks_search_recent_idx) and of the deleted ones (their GIN index)
    # together (0013): deleted ties on both milliseconds, a deleted task
    # newer than every one, and with a filter
    $t->psql(q{UPDATE tm.tasks SET deleted_at = now()
                WHERE workspace_id = $1 AND id IN ('00000000-0000-7000-9000-000000000065',
                                                    '00000000-0000-7000-9000-000000000066',
                                                    '00000000-0000-7000-9000-00000000012c')}, $ws);
    $t->psql(q{INSERT INTO tm.tasks (workspace_id, id, title, status, created_by, created_at, deleted_at)
               VALUES ($1, '00000000-0000-7000-9000-000000000fff', 'tiebreak newest', 'done', $2,
                       '2027-01-01 00:00:01+00', now())}, $ws, $u->{user_id});
    $t->psql(q{UPDATE tm.tasks SET status = 'done'
                WHERE workspace_id = $1 AND id::text LIKE '00000000-0000-7000-9000-%'
                  AND right(id::text, 1) IN ('7', 'e')}, $ws);
    # the planner's choice for the deleted ones hangs on the statistics:
    # without this, on whether autovacuum analyzed the table meanwhile
    $t->psql('ANALYZE tm.tasks');
    $before = recent_scans();
    # the deleted ones come from an index of the deleted tasks alone: their
    # GIN index, or (0027's query of all of them, ~400 deleted here) the
    # planner may as well take tasks_purge_idx or tasks_deleted_idx and
    # test the words on each; it chose either way in full runs
    my @del_idx = qw(tasks_deleted_search_idx tasks_purge_idx tasks_deleted_idx);
    my $del_scans = sub { my $n = 0; $n += recent_scans($_) for @del_idx; $n };
    my $before_del = $del_scans->();
    $dw = rank_oracle($match, 'tiebreak');
    is($dw->[0] && scalar(grep { $_ eq '00000000-0000-7000-9000-000000000fff' } @$dw), 1,
       'the newest task (deleted) is a candidate');
    is_deeply(walk('q=tiebreak&deleted=include&limit=30'), $dw,
              'q=tiebreak&deleted=include: live and deleted ranked together, every page');
    ok(recent_read($before), '... the live ones from tasks_search_recent_idx');
    my $del_read = 0;
    for (1 .. 150) {   # statistics arrive within ~10 s (index_read_since)
        last if ($del_read = $del_scans->() > $before_del);
        select undef, undef, undef, 0.1;
    }
    ok($del_read, '... the deleted ones from an index of the deleted tasks');
    my $fw = rank_oracle("$match AND t.status = 'done'", 'tiebreak');
    cmp_ok(scalar @$fw, '>', 30, 'done tasks among them (' . scalar(@$fw) . ')');
    is_deeply(walk('q=tiebreak&deleted=include&filter[status]=done&limit=30'), $fw,
              'q=tiebreak&deleted=include&filter[status]=done: the same with a filter');
    $r = get('q=tiebreak&deleted=include&page=1&per_page=10');
    is($r->{headers}{'x-total-count'}, 200, '... X-Total-Count 200 (the candidates)');

    # as it was, for the tests below
    $t->psql(q{UPDATE tm.tasks SET deleted_at = NULL, status = 'todo'
                WHERE workspace_id = $1 AND id::text LIKE '00000000-0000-7000-9000-%'
                  AND id <> '00000000-0000-7000-9000-000000000064'}, $ws);
    $t->psql(q{DELETE FROM tm.tasks WHERE id = '00000000-0000-7000-9000-000000000fff'});
}

###########################################################################
# a search in created_at order whose words are rare in the sort's first 5000
# rows: its pages come from tasks_search_recent_idx too (sql/0010), ties on
# one millisecond completed, cursor after cursor

{
    # 120 tasks older than every other, on two milliseconds; one deleted
    $t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, created_by, created_at, deleted_at)
SELECT $1::uuid, ('00000000-0000-7000-a000-' || lpad(to_hex(i), 12, '0'))::uuid,
       'oldtie ' || (i % 5), $2::uuid,
       CASE WHEN i % 2 = 0 THEN '2024-06-01 00:00:00.001+00'::timestamptz
            ELSE '2024-06-01 00:00:00+00'::timestamptz END,
       CASE WHEN i = 7 THEN '2026-04-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 120) i}, $ws, $u->{user_id});

    my $match = "$LIVE AND t.search @@ websearch_to_tsquery('english', 'oldtie')";
    my $before = recent_scans();
    my $want = list_oracle($match, 't.created_at DESC, t.id DESC');
    is(scalar @$want, 119, '119 live oldtie tasks');
    is_deeply(walk('q=oldtie&sort=-created_at&limit=50'), $want,
              'q=oldtie&sort=-created_at: every match, newest first, across ties and pages');
    ok(recent_read($before), '... read from tasks_search_recent_idx');

    # oldest first: the 300 tiebreak tasks are the newest of all
    $match = "$LIVE AND t.search @@ websearch_to_tsquery('english', 'tiebreak')";
    $want = list_oracle($match, 't.created_at ASC, t.id ASC');
    cmp_ok(scalar @$want, '>=', 299, 'the live tiebreak tasks');
    is_deeply(walk('q=tiebreak&sort=created_at&limit=50'), $want,
              'q=tiebreak&sort=created_at: every match, oldest first, across ties and pages');

    # a phrase in that order, and the same under a negation (other ways)
    $match = "$LIVE AND t.search @@ websearch_to_tsquery('english', '\"oldtie 3\"')";
    $want = list_oracle($match, 't.created_at DESC, t.id DESC');
    cmp_ok(scalar @$want, '>', 20, 'the phrase "oldtie 3" (' . scalar(@$want) . ')');
    is_deeply(walk('q=%22oldtie+3%22&sort=-created_at&limit=10'), $want,
              'q="oldtie 3"&sort=-created_at: every phrase match, newest first');
    $match = "$LIVE AND t.search @@ websearch_to_tsquery('english', 'oldtie -\"oldtie 3\"')";
    $want = list_oracle($match, 't.created_at DESC, t.id DESC');
    is_deeply(walk('q=oldtie+-%22oldtie+3%22&sort=-created_at&limit=30'), $want,
              'q=oldtie -"oldtie 3"&sort=-created_at: every other match');

    # an offset page counts (X-Total-Count): the other ways
    my $r = get('q=oldtie&sort=-created_at&page=2&per_page=50');
    is($r->{headers}{'x-total-count'}, 119, 'offset page: X-Total-Count of every match');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ],
              [ @{ list_oracle("$LIVE AND t.search @@ websearch_to_tsquery('english', 'oldtie')",
                               't.created_at DESC, t.id DESC') }[50 .. 99] ], '... and the rows 51-100');
}

###########################################################################
# phrases from the pairs of adjacent lexemes (sql/0011): which pairs a query
# requires, which a vector has, and lists that read tasks_search_pairs_idx
# where the probe finds few matches, compared with the oracle

for my $c (
    [ '"login report bill"', '{"login report","report bill"}' ],
    [ '"invoice payment" -login', '{"invoic payment"}' ],
    [ '-"a b" "c d"', '{"c d"}' ],
    [ '"x y" -"y z" w', '{"x y"}' ],
    [ '"quick brown" "fox of the jumps"', '{"quick brown"}' ],    # <3>: no pair
    [ '"foo-bar baz"', '{"foo-bar foo","foo bar","bar baz"}' ],
    [ '"x y" or z', '' ],                                         # OR: none
    [ 'needle -"needle hay"', '' ],                               # negated only
    [ 'plain words', '' ],
    [ '"single"', '' ],
    ) {
    my ($q, $want) = @$c;
    is($t->psql(q{SELECT tm.query_pairs(websearch_to_tsquery('english', $1))}, $q), $want,
       "query_pairs($q) = " . ($want eq '' ? 'NULL' : $want));
}
is($t->psql(q{SELECT tm.search_pairs(to_tsvector('english', 'The quick brown fox, quick runs'))}),
   '{"brown fox","fox quick","quick brown","quick run"}', 'search_pairs: adjacent lexemes, once each');
is($t->psql(q{SELECT tm.search_pairs(setweight(to_tsvector('english', 'red car'), 'A')
                                     || setweight(to_tsvector('english', 'blue sky'), 'B'))}),
   '{"blue sky","car blue","red car"}', 'search_pairs: title and description join as @@ sees them');

{
    # 12 tasks with the phrase (1 deleted, 1 across title and description),
    # 30 with its words reversed or apart (1 deleted), one OR-only match
    $t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, description, created_by, created_at, deleted_at)
SELECT $1::uuid, ('00000000-0000-7000-b000-' || lpad(to_hex(i), 12, '0'))::uuid,
       CASE WHEN i <= 11 THEN 'zircon quartz basalt ' || i
            WHEN i = 12 THEN 'slate zircon'
            WHEN i <= 27 THEN 'basalt quartz zircon ' || i
            WHEN i <= 42 THEN 'zircon slate quartz basalt ' || i
            ELSE 'obsidian' END,
       CASE WHEN i = 12 THEN 'quartz basalt' ELSE 'plain' END,
       $2::uuid, '2026-03-01 00:00:00+00'::timestamptz + i * interval '1 minute',
       CASE WHEN i IN (3, 20) THEN '2026-04-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 43) i}, $ws, $u->{user_id});
    # statistics of the expression index, as autovacuum would gather them
    $t->psql('ANALYZE tm.tasks');

    my $ph = q{t.search @@ websearch_to_tsquery('english', '"zircon quartz basalt"')};
    is(scalar @{ list_oracle("$LIVE AND $ph", 't.id') }, 11, 'the phrase: 11 live tasks, one across fields');
    is(scalar @{ list_oracle("$LIVE AND t.search @@ websearch_to_tsquery('english', 'zircon quartz basalt')",
                             't.id') }, 40, 'its words: 40 live tasks');

    my $before = recent_scans('tasks_search_pairs_idx');
    is_deeply(walk('q=%22zircon+quartz+basalt%22&limit=4'), rank_oracle("$LIVE AND $ph", '"zircon quartz basalt"'),
              'ranked: the 11 phrase matches');
    ok(recent_read($before, 'tasks_search_pairs_idx'), '... read from tasks_search_pairs_idx');

    for my $c (
        [ 'sort=due_at', 't.due_at ASC NULLS LAST, t.id ASC' ],
        [ 'sort=-created_at', 't.created_at DESC, t.id DESC' ],
        [ 'sort=title', 't.title ASC, t.id ASC' ],
        [ 'sort=status,-priority', 't.status ASC, t.priority DESC, t.id DESC' ],
        ) {
        my ($q, $order) = @$c;
        is_deeply(walk("q=%22zircon+quartz+basalt%22&$q&limit=3"), list_oracle("$LIVE AND $ph", $order),
                  "$q: every phrase match, in order");
    }
    is_deeply(walk('q=%22zircon+quartz+basalt%22&deleted=include&sort=-created_at&limit=5'),
              list_oracle($ph, 't.created_at DESC, t.id DESC'), 'deleted=include: the deleted ones too');
    is_deeply(walk('q=%22zircon+quartz+basalt%22&deleted=only&limit=5'),
              rank_oracle("t.deleted_at IS NOT NULL AND $ph", '"zircon quartz basalt"'),
              'deleted=only, ranked: the deleted one');
    my $neg = q{t.search @@ websearch_to_tsquery('english', '"zircon quartz basalt" -slate')};
    is_deeply(walk('q=%22zircon+quartz+basalt%22+-slate&limit=5'),
              rank_oracle("$LIVE AND $neg", '"zircon quartz basalt" -slate'),
              'a phrase and a negated word: 10 matches');
    my $or = q{t.search @@ websearch_to_tsquery('english', '"zircon quartz basalt" or obsidian')};
    is_deeply(walk('q=%22zircon+quartz+basalt%22+or+obsidian&sort=-created_at&limit=5'),
              list_oracle("$LIVE AND $or", 't.created_at DESC, t.id DESC'), 'a phrase OR a word: 12 matches');
    is_deeply(walk('q=%22basalt+zircon+quartz%22&sort=-created_at&limit=5'), [],
              'the words in another order: none');
    my $r = get('q=%22zircon+quartz+basalt%22&sort=title&page=1&per_page=4');
    is($r->{headers}{'x-total-count'}, 11, 'offset page: X-Total-Count 11');
}

###########################################################################
# deleted=include|only under every sort (sql/0012: the list indexes hold every
# task): whole walks against the oracle, and the plans read those indexes in
# order instead of sorting the tenant

{
    my $DELETED = 't.deleted_at IS NOT NULL';
    for my $c (
        [ '', 't.created_at DESC, t.id DESC' ],
        [ 'sort=created_at', 't.created_at ASC, t.id ASC' ],
        [ 'sort=due_at', 't.due_at ASC NULLS LAST, t.id ASC' ],
        [ 'sort=-priority,due_at', 't.priority DESC, t.due_at ASC NULLS LAST, t.id ASC' ],
        [ 'sort=title', 't.title ASC, t.id ASC' ],
        [ 'sort=-updated_at', 't.updated_at DESC, t.id DESC' ],
        [ 'sort=status,-priority', 't.status ASC, t.priority DESC, t.id DESC' ],
        [ 'filter[status]=todo', 't.created_at DESC, t.id DESC', "t.status = 'todo'" ],
        ) {
        my ($q, $order, $where) = @$c;
        $where = defined $where ? " AND $where" : '';
        my $only = list_oracle("$DELETED$where", $order);
        cmp_ok(scalar @$only, '>', 10, "deleted=only $q: the oracle has rows (" . scalar(@$only) . ')');
        is_deeply(walk("deleted=only&$q&limit=37"), $only, "deleted=only $q: every deleted task, in order");
        my $all = list_oracle("true$where", $order, 260);
        is_deeply(walk("deleted=include&$q&limit=65", 4), $all, "deleted=include $q: the first 260, in order");
    }

    my $r = get('deleted=include&sort=title&page=2&per_page=50');
    cmp_ok($t->psql('SELECT count(*) FROM tm.tasks WHERE workspace_id = $1', $ws), '>', 10000, 'over 10,000 tasks');
    is($r->{headers}{'x-total-count'}, 10000, 'deleted=include offset page: X-Total-Count up to 10,000');
    is($r->{headers}{'x-total-count-capped'}, 'true', '... capped');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @{ list_oracle('true', 't.title ASC, t.id ASC', 100) }[50 .. 99] ],
              '... and the rows 51-100');

    # a search with deleted=only reads the GIN index of deleted tasks
    my $needle = "$DELETED AND t.search @@ websearch_to_tsquery('english', 'needle')";
    my $before = recent_scans('tasks_deleted_search_idx');
    my $dn = rank_oracle($needle, 'needle');
    cmp_ok(scalar @$dn, '>', 50, 'deleted needles (' . scalar(@$dn) . ')');
    is_deeply(walk('q=needle&deleted=only&limit=30'), $dn, 'q=needle&deleted=only: the 200 newest deleted, ranked');
    is_deeply(walk('q=needle&deleted=only&sort=title&limit=30'), list_oracle($needle, 't.title ASC, t.id ASC'),
              'q=needle&deleted=only&sort=title: every deleted match, in order');
    ok(recent_read($before, 'tasks_deleted_search_idx'), '... read from tasks_deleted_search_idx');

    # the plan of a deleted=include page reads an index in the sort's order
    for my $c ([ 't.created_at DESC, t.id DESC', 'tasks_list_idx' ],
               [ 't.due_at ASC NULLS LAST, t.id ASC', 'tasks_due_idx' ],
               [ 't.title ASC, t.id ASC', 'tasks_title_idx' ]) {
        my ($order, $index) = @$c;
        my $plan = $t->psql(qq{BEGIN; SET LOCAL ROLE taskmgr_app; SELECT set_config('tm.ws', \$1, true);
EXPLAIN SELECT t.id FROM tm.tasks t WHERE t.workspace_id = \$1 ORDER BY $order LIMIT 51; ROLLBACK}, $ws);
        like($plan, qr/Index (?:Only )?Scan (?:Backward )?using $index/, "deleted=include by $order: $index");
        unlike($plan, qr/\bSort\b/, '... without sorting');
    }
}

###########################################################################
# filters that match no task of the sort's first 500 rows (sql/0011's filter
# probe): the probe's text runs and the rows are the oracle's.  On these
# 10,000 tasks the planner picks the filters' bitmaps by itself; the probe
# matters where it would not (bench/list-1m.sh: a project and an assignee
# no task has together, sort=title, 4.6 s before)

{
    $t->psql('ANALYZE tm.tasks');
    my $before = recent_scans('tasks_status_priority_idx');
    for my $c ([ 'sort=title', 't.title ASC, t.id ASC' ], [ 'sort=-updated_at', 't.updated_at DESC, t.id DESC' ]) {
        my ($q, $order) = @$c;
        # no archived task has priority 4, no done task priority 0
        is_deeply(walk("filter[status]=archived&filter[priority]=4&$q&limit=20"), [],
                  "archived + priority 4, $q: none");
        is_deeply(walk("filter[status]=done&filter[priority]=0&$q&limit=20"), [], "done + priority 0, $q: none");
        my $want = list_oracle("$LIVE AND t.status = 'archived' AND t.priority = 3"
                               . " AND t.created_at < '2025-12-31T23:50:00Z' AND t.created_at >= '2025-01-01'", $order);
        cmp_ok(scalar @$want, '>', 7, "archived, priority 3, created in a range: " . scalar(@$want));
        is_deeply(walk("filter[status]=archived&filter[priority]=3&filter[created_at][lt]=2025-12-31T23:50:00Z"
                       . "&filter[created_at][gte]=2025-01-01T00:00:00Z&$q&limit=7"), $want,
                  "archived + priority 3 + a created_at range, $q: every match, in order");
    }
    ok(recent_read($before, 'tasks_status_priority_idx'), '... read from tasks_status_priority_idx');

    # an offset page reads the ids of its rows first, then the rows (0011)
    for my $c ([ 'filter[status]=todo&sort=due_at', "$LIVE AND t.status = 'todo'", 't.due_at ASC NULLS LAST, t.id ASC' ],
               [ 'filter[priority][gte]=3&sort=-title', "$LIVE AND t.priority >= 3", 't.title DESC, t.id DESC' ],
               [ 'deleted=include&sort=-updated_at', 'true', 't.updated_at DESC, t.id DESC' ],
               # a split sort's branches past the skipped ones read their ids first too (0013)
               [ 'filter[status]=todo&sort=-priority', "$LIVE AND t.status = 'todo'",
                 't.priority DESC, t.id DESC' ],
               [ 'filter[priority][gte]=2&sort=status', "$LIVE AND t.priority >= 2",
                 't.status ASC, t.id ASC' ],
               # a search's offset page: the sort's order while a twentieth of the rows
               # wanted are among its first 5000 (0013), else the words' bitmap
               [ 'q=needle&sort=title', "$LIVE AND t.search @@ websearch_to_tsquery('english', 'needle')",
                 't.title ASC, t.id ASC' ],
               [ 'q=needle&sort=-priority', "$LIVE AND t.search @@ websearch_to_tsquery('english', 'needle')",
                 't.priority DESC, t.id DESC' ]) {
        my ($q, $where, $order) = @$c;
        my $want = list_oracle($where, $order, 2000);
        cmp_ok(scalar @$want, '==', 2000, "$q: at least 2000 rows");
        my $r = get("$q&page=40&per_page=50");
        is($r->{status}, 200, "$q, page 40: 200");
        is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[1950 .. 1999] ], '... the rows 1951-2000');
        $r = get("$q&page=4&per_page=50");
        is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[150 .. 199] ], '... page 4: the rows 151-200');
    }
}

###########################################################################
# offset pages through an assignee, a project, a status or a label (sql/0015,
# 0019): an index of the assignee's, the project's or the status's tasks in
# the sort's order is one range for any depth; the indexes of the sorts hold the labels, so the ids
# of a label's offset page come from an index-only scan.  The rows are the
# oracle's.

{
    my $project = $t->psql(q{INSERT INTO tm.projects (workspace_id, name, created_by)
                             VALUES ($1, 'deep pages', $2) RETURNING id}, $ws, $u->{user_id});
    chomp $project;
    like($project, qr/^[0-9a-f-]{36}$/, 'a project');
    # by the last byte of the id: a third of the tasks assigned to the user,
    # a quarter in the project, another quarter labelled "deep"; updated_at
    # spread over 97 minutes
    $t->psql(q{UPDATE tm.tasks t
                  SET assignee_id = CASE WHEN get_byte(uuid_send(t.id), 15) % 3 = 0 THEN $2::uuid END,
                      project_id = CASE WHEN get_byte(uuid_send(t.id), 15) % 4 = 1 THEN $3::uuid END,
                      labels = CASE WHEN get_byte(uuid_send(t.id), 15) % 4 = 2 THEN '{deep,x}'::text[]
                                    ELSE '{x}'::text[] END,
                      updated_at = '2026-03-01 00:00:00+00'::timestamptz
                                   + (get_byte(uuid_send(t.id), 14) % 97) * interval '1 minute'
                WHERE t.workspace_id = $1}, $ws, $u->{user_id}, $project);
    $t->psql('VACUUM ANALYZE tm.tasks');

    my $A = "t.assignee_id = '$u->{user_id}'";
    my $P = "t.project_id = '$project'";
    my $L = "t.labels @> '{deep}'";
    my $S = "t.status = 'todo'";
    for my $c (
        [ "filter[assignee_id]=$u->{user_id}&sort=title", $A, 't.title ASC, t.id ASC', 'tasks_assignee_title_idx' ],
        [ "filter[assignee_id]=$u->{user_id}&sort=due_at", $A, 't.due_at ASC NULLS LAST, t.id ASC',
          'tasks_assignee_due_idx' ],
        [ "filter[assignee_id]=$u->{user_id}&sort=-updated_at", $A, 't.updated_at DESC, t.id DESC',
          'tasks_assignee_updated_idx' ],
        [ "filter[project_id]=$project", $P, 't.created_at DESC, t.id DESC', 'tasks_project_list_idx' ],
        [ "filter[project_id]=$project&sort=-title", $P, 't.title DESC, t.id DESC', 'tasks_project_title_idx' ],
        [ "filter[project_id]=$project&sort=-due_at", $P, 't.due_at DESC NULLS FIRST, t.id DESC',
          'tasks_project_due_idx' ],
        [ "filter[project_id]=$project&sort=updated_at", $P, 't.updated_at ASC, t.id ASC',
          'tasks_project_updated_idx' ],
        [ 'filter[status]=todo&sort=title', $S, 't.title ASC, t.id ASC', 'tasks_status_title_idx' ],
        [ 'filter[status]=todo&sort=-due_at', $S, 't.due_at DESC NULLS FIRST, t.id DESC',
          'tasks_status_due_idx' ],
        [ 'filter[status]=todo&sort=updated_at', $S, 't.updated_at ASC, t.id ASC',
          'tasks_status_updated_idx' ],
        [ 'filter[label]=deep&sort=title', $L, 't.title ASC, t.id ASC' ],
        [ 'filter[label]=deep', $L, 't.created_at DESC, t.id DESC' ],
        [ 'filter[label]=deep&sort=-due_at', $L, 't.due_at DESC NULLS FIRST, t.id DESC' ],
        [ 'filter[label]=deep&sort=updated_at', $L, 't.updated_at ASC, t.id ASC' ],
    ) {
        my ($q, $where, $order, $index) = @$c;
        my $before = defined $index ? recent_scans($index) : undef;
        my $want = list_oracle("$LIVE AND $where", $order);
        cmp_ok(scalar @$want, '>', 2000, "$q: " . scalar(@$want) . " rows");
        my $r = get("$q&page=40&per_page=50");
        is($r->{status}, 200, "$q, page 40: 200");
        is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[1950 .. 1999] ], '... the rows 1951-2000');
        is($r->{headers}{'x-total-count'}, scalar @$want, '... X-Total-Count');
        $r = get("$q&page=4&per_page=50");
        is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[150 .. 199] ], '... page 4: the rows 151-200');
        ok(recent_read($before, $index), "... read from $index") if defined $index;
    }

    # past the last row: no rows, and the count of every match (0015's one
    # pass counts from the offset, then the whole count runs)
    my $all = list_oracle("$LIVE AND $L", 't.id');
    my $r = get('filter[label]=deep&sort=title&page=100&per_page=50');
    is($r->{status}, 200, 'a label, past the last page: 200');
    is_deeply($r->{json}{data}, [], '... no rows');
    is($r->{headers}{'x-total-count'}, scalar @$all, '... X-Total-Count of every match');
    ok(!exists $r->{headers}{'x-total-count-capped'}, '... not capped');
    $r = get('page=300&per_page=50');
    is_deeply($r->{json}{data}, [], 'the whole list, past the last page: no rows');
    is($r->{headers}{'x-total-count'}, scalar @{ list_oracle($LIVE, 't.id') }, '... X-Total-Count of every live task');
    # the last rows: the count's pass holds fewer rows than the page
    my $want = list_oracle("$LIVE AND $L", 't.title ASC, t.id ASC');
    my $off = @$want - 3;
    $r = get("filter[label]=deep&sort=title&offset=$off&limit=10");
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[$off .. $#$want] ], 'a label\'s last 3 rows');
    is($r->{headers}{'x-total-count'}, scalar @$want, '... X-Total-Count');
    is($r->{json}{next_cursor}, undef, '... no next page');

    # the ids of a label's offset page, alone or with an assignee, a project,
    # a status, or in a branch of a split sort: an index-only scan of the
    # order's index
    for my $c ([ '', 't.title ASC, t.id ASC', 'tasks_title_idx' ],
               [ '', 't.created_at DESC, t.id DESC', 'tasks_list_idx' ],
               [ '', 't.due_at DESC NULLS FIRST, t.id DESC', 'tasks_due_idx' ],
               [ '', 't.updated_at ASC, t.id ASC', 'tasks_updated_idx' ],
               [ " AND $A", 't.title ASC, t.id ASC', 'tasks_assignee_title_idx' ],
               [ " AND $A", 't.created_at DESC, t.id DESC', 'tasks_assignee_list_idx' ],
               [ " AND $P", 't.due_at ASC NULLS LAST, t.id ASC', 'tasks_project_due_idx' ],
               [ " AND t.status = 'todo'", 't.created_at DESC, t.id DESC', 'tasks_status_idx' ],
               [ " AND t.status = 'todo'", 't.updated_at DESC, t.id DESC', 'tasks_status_updated_idx' ],
               [ " AND t.status = 'todo'", 't.title ASC, t.id ASC', 'tasks_status_title_idx' ],
               [ ' AND t.priority = 3', 't.id DESC', 'tasks_priority_id_idx' ],
               [ " AND t.status = 'done'", 't.id ASC', 'tasks_status_id_idx' ]) {
        my ($and, $order, $index) = @$c;
        my $plan = $t->psql(qq{BEGIN; SET LOCAL ROLE taskmgr_app; SELECT set_config('tm.ws', \$1, true);
SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off;
EXPLAIN SELECT t.id FROM tm.tasks t WHERE t.workspace_id = \$1 AND $LIVE AND $L$and
 ORDER BY $order LIMIT 51 OFFSET 100; ROLLBACK}, $ws);
        like($plan, qr/Index Only Scan (?:Backward )?using $index/,
             "a label's ids" . ($and ? " with$and" : '') . " by $order: index-only, $index");
    }
}

unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/, 'no alerts in the error log');

done_testing;
