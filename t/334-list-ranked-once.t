# Ranked searches read once, one word with the facet keys, the count of one
# "@>" of many candidates, few filtered tasks in a split sort's branch, and
# deleted=include's newest deleted matches (sql/0027).
#
# - A ranked offset page (X-Total-Count: the 200 newest matches) reads its
#   candidates once, counts them and ranks them by their keys: the count and
#   the page each walked tasks_search_recent_idx before.
# - A ranked search of one plain word with facet filters (priority, label,
#   project, assignee "eq") reads the word's and the filters' keys in
#   tasks_facets_idx where the planner expects at most 10,000 candidates and
#   fewer than half the matches the time-ordered index would walk for the
#   newest 200 that pass the filters.
# - X-Total-Count of plain words with facet filters reads one "@>" of their
#   keys up to 40,000 expected candidates (20,000 before) where the planner
#   expects a fifth of them or more to pass the other filters.
# - A split sort's branch of a common word whose filtered tasks are few
#   tests the word on each of them (not its GIN bitmap), and so does the
#   count of an offset page where few of those tasks hold its cap.
# - deleted=include, ranked: the newest deleted matches from all of them.
# Every page is compared with an SQL oracle, and the indexes each way reads
# or leaves unread are checked.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user);
use Taskmgr::List qw(list_walk offset_pages capped_pages list_oracle rank_oracle reads_tracker);

my $t = Taskmgr::Test->new(name => 'list_ranked_once');
$t->start(http_config => 'taskmgr_task_purge_after 0;');

my $u   = setup_user($t);
my $ws  = $u->{ws};
my $uid = $u->{user_id};

# 45,000 tasks, the newest last: "oscar" in 8 of 10 titles (twice in every
# 7th, so that ranks differ), "quartz" in all; the label perf on 9 tasks of
# 13, infra on 1 of 13; each status (i % 4) and priority ((i / 7) % 5); due
# on 800 days (none for i % 7 = 0); every 23rd soft-deleted
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, status, priority, labels, due_at, created_by, created_at,
                      updated_at, deleted_at)
SELECT $1::uuid,
       ('00000000-0000-7000-b334-' || lpad(to_hex(i), 12, '0'))::uuid,
       'quartz '
       || CASE WHEN i % 10 < 8 THEN 'oscar ' ELSE '' END
       || CASE WHEN i % 10 < 8 AND i % 7 = 0 THEN 'oscar ' ELSE '' END || (i % 977),
       (ARRAY['todo', 'in_progress', 'done', 'archived'])[i % 4 + 1],
       (i / 7) % 5,
       CASE WHEN i % 13 < 9 THEN '{perf}'::text[] WHEN i % 13 = 9 THEN '{infra}'::text[] ELSE '{}' END,
       CASE WHEN i % 7 <> 0 THEN '2027-01-01 00:00:00+00'::timestamptz + (i % 800) * interval '1 day' END,
       $2::uuid,
       '2026-01-01 00:00:00+00'::timestamptz + i * interval '10 minutes',
       '2026-01-01 00:00:00+00'::timestamptz + i * interval '10 minutes' + (i % 7) * interval '1 minute',
       CASE WHEN i % 23 = 0 THEN '2026-11-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 45000) i}, $ws, $uid);
$t->psql('VACUUM ANALYZE tm.tasks');

# the planner's expectations, as task_find asks them
my $live = $t->psql(q{SELECT count(*) FROM tm.tasks WHERE workspace_id = $1 AND deleted_at IS NULL}, $ws);
sub expected { Taskmgr::List::live_expected($t, $ws, @_) }
my $MATCH = q{ AND t.search @@ websearch_to_tsquery('english', $3)};

# the reads of one request ([status, rows, {index or "seq" => scans}],
# Taskmgr::List::reads_tracker); these checks run last, one after the other
# (@later), after every other request
my @IDX = qw(tasks_facets_idx tasks_search_recent_idx tasks_labels_idx tasks_search_idx);
my ($tracker, @later);
sub reads { return $tracker->(@_) }

###########################################################################
# one word, ranked, with a label and a priority: the facet keys

{
    my $k = expected(q{ AND t.labels @> ARRAY[$2[1]] AND t.priority = ($2[2])::smallint} . $MATCH,
                     '{infra,4}', 'oscar');
    my $f = expected(q{ AND t.labels @> ARRAY[$2[1]] AND t.priority = ($2[2])::smallint}, '{infra,4}', undef);
    cmp_ok($k, '<=', 10000, "oscar, infra, priority=4: at most 10,000 candidates expected ($k)");
    cmp_ok($k, '<', 0.5 * 200 * $live / $f,
           "... fewer than half the matches the time-ordered index would walk (200 / $f of $live)");

    my $q = 'q=oscar&filter[label]=infra&filter[priority]=4';
    my $want = rank_oracle($t, $ws, q{t.labels @> '{infra}' AND t.priority = 4}, 'oscar');
    is(scalar @$want, 200, "$q: the oracle ranks the 200 newest matches");
    offset_pages($t, $ws, $u->{token}, $q, $want, 40);
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=30"), $want, "$q: every page through the cursors");

    for my $p ("$q&page=2&per_page=40", "$q&limit=30") {
        push @later, sub {
            my ($status, $rows, $d) = @{ reads($p) };
            is($status, 200, "$p: 200");
            is($rows, $p =~ /limit=30/ ? 30 : 40, '... a whole page');
            cmp_ok($d->{tasks_facets_idx}, '>', 0, '... tasks_facets_idx read');
            is($d->{tasks_search_recent_idx}, 0, '... tasks_search_recent_idx unread');
        };
    }
}

# with a label of most tasks: too many candidates, the time-ordered index
{
    my $q = 'q=oscar&filter[label]=perf';
    my $k = expected(q{ AND t.labels @> ARRAY[$2[1]]} . $MATCH, '{perf}', 'oscar');
    cmp_ok($k, '>', 10000, "$q: more than 10,000 candidates expected ($k)");
    my $want = rank_oracle($t, $ws, q{t.labels @> '{perf}'}, 'oscar');
    offset_pages($t, $ws, $u->{token}, $q, $want, 50);
    push @later, sub {
        my ($status, $rows, $d) = @{ reads("$q&page=3&per_page=50") };
        is($status, 200, "$q, page 3: 200");
        cmp_ok($d->{tasks_search_recent_idx}, '>', 0, '... tasks_search_recent_idx read');
        is($d->{tasks_facets_idx}, 0, '... tasks_facets_idx unread');
    };
}

###########################################################################
# a ranked offset page reads its candidates once: as many scans of the
# time-ordered index as the keyset page of the same search, which has no
# count (the count and the page each walked it before)

for my $c ([ 'q=oscar&filter[status]=todo', q{t.status = 'todo'}, 'oscar' ],
           [ 'q=oscar&filter[status]=done&filter[label]=perf', q{t.status = 'done' AND t.labels @> '{perf}'}, 'oscar' ],
           [ 'q=quartz', 'true', 'quartz' ],
           # a phrase (its pairs' test, not an index's, on the rows by key)
           [ 'q=%22quartz+oscar%22', 'true', '"quartz oscar"' ]) {
    my ($q, $where, $words) = @$c;
    my $want = rank_oracle($t, $ws, $where, $words);
    is(scalar @$want, 200, "$q: the oracle ranks the 200 newest matches");
    offset_pages($t, $ws, $u->{token}, $q, $want, 45);
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=45"), $want, "$q: every page through the cursors");

    push @later, sub {
        my ($s1, $n1, $keyset) = @{ reads("$q&limit=45") };
        my ($s2, $n2, $offset) = @{ reads("$q&page=2&per_page=45") };
        is("$s1 $n1 $s2 $n2", '200 45 200 45', "$q: a keyset page and offset page 2, 45 rows each");
        cmp_ok($keyset->{tasks_search_recent_idx}, '>', 0, '... the keyset page reads tasks_search_recent_idx');
        is($offset->{tasks_search_recent_idx}, $keyset->{tasks_search_recent_idx},
           '... the offset page (X-Total-Count: 200) as often');
    };
}

###########################################################################
# deleted=include, ranked: the 200 newest of the live and the deleted
# matches; the deleted ones every one (the planner expects at most 10,000)
# then the newest, not the newest tasks of tasks_list_idx each fetched to
# test deleted_at (which index reads them is the planner's choice: this
# small tenant's 1,956 deleted tasks, or their GIN index on the 1M bench)

{
    my $q = 'q=oscar&deleted=include';
    my $d = $t->psql(q{SELECT tm.tasks_expected($1::uuid, ' AND t.deleted_at IS NOT NULL' || $2, NULL, 'oscar')},
                     $ws, $MATCH);
    cmp_ok($d, '<=', 10000, "$q: at most 10,000 deleted matches expected ($d)");
    my $want = Taskmgr::List::psql_ids($t, q{
        SELECT id FROM (SELECT * FROM tm.tasks t
                         WHERE t.workspace_id = $1 AND t.search @@ websearch_to_tsquery('english', 'oscar')
                         ORDER BY t.created_at DESC, t.id DESC LIMIT 200) t
         ORDER BY ts_rank(t.search, websearch_to_tsquery('english', 'oscar')) DESC, t.id DESC}, $ws);
    is(scalar @$want, 200, "$q: the oracle ranks the 200 newest matches");
    my $deleted = $t->psql(q{SELECT count(*) FROM tm.tasks WHERE id = ANY($1::uuid[]) AND deleted_at IS NOT NULL},
                           '{' . join(',', @$want) . '}');
    cmp_ok($deleted, '>', 0, "... $deleted of them deleted");
    offset_pages($t, $ws, $u->{token}, $q, $want, 50);
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=50"), $want, "$q: every page through the cursors");
}

###########################################################################
# X-Total-Count through one "@>" of 20,000-40,000 candidates

my $PERF = q{ AND t.labels @> ARRAY[$2[1]]};
{
    my $k = expected("$PERF$MATCH", '{perf}', 'oscar');
    my $m = expected(qq{$PERF AND t.status = (\$2[2])::text$MATCH}, '{perf,todo}', 'oscar');
    cmp_ok($k, '>', 20000, "oscar and perf: more than 20,000 candidates expected ($k)");
    cmp_ok($k, '<=', 40000, '... at most 40,000');
    cmp_ok($m, '>=', $k / 5, "... with status=todo a fifth of them or more ($m)");
}
for my $c ([ 'sort=title', 't.title ASC, t.id ASC' ],
           [ 'sort=-priority', 't.priority DESC, t.id DESC' ],
           [ 'sort=-updated_at', 't.updated_at DESC, t.id DESC' ]) {
    my ($sort, $order) = @$c;
    my $q = "q=oscar&filter[label]=perf&filter[status]=todo&$sort";
    my $want = list_oracle($t, $ws, q{t.labels @> '{perf}' AND t.status = 'todo'}, 'oscar', $order);
    cmp_ok(scalar @$want, '>', 1000, "$q: more than 1,000 matches (" . scalar(@$want) . ')');
    capped_pages($t, $ws, $u->{token}, $q, $want, 1, 2, 20);
    push @later, sub {
        my ($status, $rows, $d) = @{ reads("$q&page=2&per_page=50") };
        is($status, 200, "$q, page 2: 200");
        cmp_ok($d->{tasks_facets_idx}, '>', 0, '... tasks_facets_idx read (the count)');
        is($d->{tasks_labels_idx}, 0, '... tasks_labels_idx unread');
    };
}

# a split sort's branch of a common word whose filtered tasks the planner
# expects to be few (up to 3,000): those tasks, the word tested on each,
# not the word's GIN bitmap
{
    my $b = expected(q{ AND t.status = ($2[1])::text AND t.priority = 4}, '{archived}', undef);
    cmp_ok($b, '<=', 3000, "status=archived, priority 4: at most 3,000 tasks expected ($b)");
    cmp_ok(expected($MATCH, undef, 'oscar'), '>', $live / 100, '... oscar: in more than 1% of the tasks');
    my $q = 'q=oscar&filter[status]=archived&sort=-priority';
    my $want = list_oracle($t, $ws, q{t.status = 'archived'}, 'oscar', 't.priority DESC, t.id DESC');
    cmp_ok(scalar @$want, '>', 1000, "$q: more than 1,000 matches (" . scalar(@$want) . ')');
    capped_pages($t, $ws, $u->{token}, $q, $want, 1, 2, 20);
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=50", 12), [ @$want[0 .. 599] ],
              "$q: the first 12 pages through the cursors");
    push @later, sub {
        my ($status, $rows, $d) = @{ reads("$q&limit=50") };
        is("$status $rows", '200 50', "$q: a page of 50");
        is($d->{tasks_search_idx}, 0, "... the word's GIN index unread");
    };
}

# X-Total-Count of a common word with filters whose tasks are few enough
# (at most 60,000, and at most 15,000 of them hold 1,001 matches): those
# tasks, the word tested on each until the count stops
for my $c ([ 'sort=title', 't.title ASC, t.id ASC' ], [ 'sort=-updated_at', 't.updated_at DESC, t.id DESC' ]) {
    my ($sort, $order) = @$c;
    my $q = "q=oscar&filter[status]=archived&$sort";
    my $want = list_oracle($t, $ws, q{t.status = 'archived'}, 'oscar', $order);
    capped_pages($t, $ws, $u->{token}, $q, $want, 1, 3, 20);
    push @later, sub {
        my ($status, $rows, $d) = @{ reads("$q&page=3&per_page=50") };
        is("$status $rows", '200 50', "$q, page 3: 50 rows");
        is($d->{tasks_search_idx}, 0, "... the word's GIN index unread (the count too)");
    };
}

# a rare filter besides: fewer than a fifth of the candidates pass it, the
# count keeps the other ways; rows and count as the oracle
{
    my $q = 'q=oscar&filter[label]=perf&filter[due_at][gte]=2027-01-01T00:00:00Z'
            . '&filter[due_at][lt]=2027-01-04T00:00:00Z&sort=title';
    my $want = list_oracle($t, $ws, q{t.labels @> '{perf}' AND t.due_at >= '2027-01-01' AND t.due_at < '2027-01-04'},
                           'oscar', 't.title ASC, t.id ASC');
    cmp_ok(scalar @$want, '>', 60, "$q: more than 60 matches (" . scalar(@$want) . ')');
    cmp_ok(scalar @$want, '<', 1000, '... fewer than 1,000');
    offset_pages($t, $ws, $u->{token}, $q, $want, 30);
}

# the index reads, one request after the other
$tracker = reads_tracker($t, $ws, $u->{token}, @IDX);
$_->() for @later;

unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/, 'no alerts in the error log');

$t->done;
