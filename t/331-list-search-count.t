# X-Total-Count of searches and their offset pages in one pass (sql/0024).
# With q, X-Total-Count is exact up to 1,000 matches (the deepest a search's
# offset page reaches by default), then 1000 with X-Total-Count-Capped:
# true.  An offset page of few matches reads its candidates once, sorts
# them, counts them and takes its page from that pass: the candidates of
# the facet keys (plain words with the filters tasks_facets_idx has), of
# the words alone (their bitmap; a common filter tested on each, not
# ANDed as a bitmap of its own), or of the bitmaps 0023 reads for rare
# words and few filtered tasks.  Every offset page is compared with an SQL
# oracle (rows, X-Total-Count, the Link to the next page), and the indexes
# each way leaves unread are checked.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user);
use Taskmgr::List qw(list_walk offset_pages psql_ids index_scans);

my $t = Taskmgr::Test->new(name => 'list_search_count');
$t->start(http_config => 'taskmgr_task_purge_after 0;');

my $u   = setup_user($t);
my $few = setup_user($t);    # assigned to ~100 tasks
my $ws  = $u->{ws};
my $uid = $u->{user_id};
my $u2  = $few->{user_id};

# 20,000 tasks, the newest last: "amber" in every title; "kilo" in a fifth
# (i % 5 = 0), "lima" in a fifth (i / 5 % 5 = 0), "mike" in a fifth
# (i / 25 % 5 = 0), all three adjacent in 160 (i % 125 = 0); "zeppelin" in
# 50 (i % 397 = 11); each status and priority; the label security
# (i % 3 = 0), ops (i % 31 = 0); assigned to $few (i % 199 = 5) or $u (i % 3 = 1); due on 800
# days (none for i % 7 = 0); every 23rd soft-deleted
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, status, priority, assignee_id, labels, due_at,
                      created_by, created_at, updated_at, deleted_at)
SELECT $1::uuid,
       ('00000000-0000-7000-b300-' || lpad(to_hex(i), 12, '0'))::uuid,
       'amber '
       || CASE WHEN i % 5 = 0 THEN 'kilo ' ELSE '' END
       || CASE WHEN i / 5 % 5 = 0 THEN 'lima ' ELSE '' END
       || CASE WHEN i / 25 % 5 = 0 THEN 'mike ' ELSE '' END
       || CASE WHEN i % 397 = 11 THEN 'zeppelin ' ELSE '' END || i,
       (ARRAY['todo', 'in_progress', 'done', 'archived'])[i % 4 + 1],
       (i / 7) % 5,
       CASE WHEN i % 199 = 5 THEN $3::uuid WHEN i % 3 = 1 THEN $2::uuid END,
       CASE WHEN i % 3 = 0 THEN '{security}'::text[] ELSE '{}' END
       || CASE WHEN i % 31 = 0 THEN '{ops}'::text[] ELSE '{}' END,
       CASE WHEN i % 7 <> 0 THEN '2027-01-01 00:00:00+00'::timestamptz + (i % 800) * interval '1 day' END,
       $2::uuid,
       '2026-01-01 00:00:00+00'::timestamptz + i * interval '20 minutes',
       '2026-01-01 00:00:00+00'::timestamptz + ((i * 7919) % 20000) * interval '20 minutes',
       CASE WHEN i % 23 = 0 THEN '2026-11-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 20000) i}, $ws, $uid, $u2);
$t->psql('ANALYZE tm.tasks');

sub get {
    my ($q) = @_;
    return $t->request(GET => "/v1/workspaces/$ws/tasks?$q", token => $u->{token});
}

sub oracle {
    my ($q, $where, $order) = @_;
    return Taskmgr::List::list_oracle($t, $ws, $where, $q, $order);
}

# the live tasks the planner expects to pass $conds (tm.live_expected, as
# task_find asks it): the preconditions of each way below
sub expected { Taskmgr::List::live_expected($t, $ws, $_[0], undef, $_[1]) }
my $live = $t->psql(q{SELECT count(*) FROM tm.tasks WHERE workspace_id = $1 AND deleted_at IS NULL}, $ws);
my $MATCH = q{ AND t.search @@ websearch_to_tsquery('english', $3)};

###########################################################################
# X-Total-Count with q: exact up to 1000, then 1000 and capped; without q
# exact up to 10,000

{
    my $amber = oracle('amber', 'true', 't.title ASC, t.id ASC');
    cmp_ok(scalar @$amber, '>', 10000, 'amber: more than 10,000 live matches (' . scalar(@$amber) . ')');

    my $r = get('q=amber&sort=title&page=2&per_page=20');
    is($r->{status}, 200, 'q=amber by title, page 2: 200');
    is($r->{headers}{'x-total-count'}, 1000, '... X-Total-Count: 1000');
    is($r->{headers}{'x-total-count-capped'}, 'true', '... X-Total-Count-Capped: true');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$amber[20 .. 39] ], '... the rows 21-40');
    ok($r->{headers}{link}, '... a next page');

    # the last page a search's offset pages reach (taskmgr_search_offset_max)
    $r = get('q=amber&sort=title&offset=980&limit=20');
    is($r->{headers}{'x-total-count'}, 1000, 'offset 980, to the 1000th match: 1000');
    is($r->{headers}{'x-total-count-capped'}, 'true', '... capped');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$amber[980 .. 999] ], '... the rows 981-1000');
    $r = get('q=amber&sort=title&offset=981&limit=20');
    is($r->{status}, 400, 'past the 1000th: 400');

    # ranked: the 200 newest matches, counted exactly
    $r = get('q=amber&page=2&per_page=20');
    is($r->{headers}{'x-total-count'}, 200, 'ranked: 200');
    ok(!exists $r->{headers}{'x-total-count-capped'}, '... exact');

    # 1000 matches or fewer: exact
    my $kilo = oracle('kilo lima', 'true', 't.due_at ASC NULLS LAST, t.id ASC');
    cmp_ok(scalar @$kilo, '<', 1000, 'kilo lima: fewer than 1000 ('. scalar(@$kilo) . ')');
    cmp_ok(scalar @$kilo, '>', 500, '... more than 500');
    $r = get('q=kilo+lima&sort=due_at&page=3&per_page=50');
    is($r->{headers}{'x-total-count'}, scalar @$kilo, '... X-Total-Count: exact');
    ok(!exists $r->{headers}{'x-total-count-capped'}, '... not capped');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$kilo[100 .. 149] ], '... the rows 101-150');

    # without q the count goes on to 10,000
    $r = get('sort=title&page=2&per_page=20');
    is($r->{headers}{'x-total-count'}, 10000, 'no q: 10000');
    is($r->{headers}{'x-total-count-capped'}, 'true', '... capped');
    $r = get('filter[label]=security&sort=title&page=2&per_page=20');
    my $sec = $t->psql(q{SELECT count(*) FROM tm.tasks WHERE workspace_id = $1 AND deleted_at IS NULL
                          AND labels @> '{security}'}, $ws);
    cmp_ok($sec, '>', 1000, "$sec live tasks with security");
    is($r->{headers}{'x-total-count'}, $sec, '... counted exactly past 1000 without q');

    # keyset pages have no count
    $r = get('q=amber&sort=title&limit=20');
    ok(!exists $r->{headers}{'x-total-count'}, 'keyset pages: no count');
}

###########################################################################
# the ways of the one pass, every offset page as the oracle

my $PRIO_DUE = 't.priority DESC, t.due_at ASC NULLS LAST, t.id ASC';

# the words alone: three words, each in a fifth of the tasks, which the
# planner expects in at most 1% of them together, with a filter that passes
# more than 5% (so 0023's rare words do not take them)
cmp_ok(expected($MATCH, 'kilo lima mike'), '<=', $live / 100, 'kilo lima mike: expected in at most 1%');
cmp_ok(expected(q{ AND t.status = 'todo'}), '>', $live / 20, 'status=todo: expected in more than 5%');

my @cases = (
    # the words alone, under split sorts (always one pass) and a sort whose
    # first rows hold too few matches for pages from the 3rd on
    [ 'q=kilo+lima+mike&filter[status]=todo&sort=-priority', 'kilo lima mike', "t.status = 'todo'",
      't.priority DESC, t.id DESC', 10 ],
    [ 'q=kilo+lima+mike&filter[status][in]=todo,done&sort=status', 'kilo lima mike',
      "t.status IN ('todo', 'done')", 't.status ASC, t.id ASC', 10 ],
    [ 'q=kilo+lima+mike&filter[label][ne]=security&sort=title', 'kilo lima mike',
      "NOT t.labels @> '{security}'", 't.title ASC, t.id ASC', 10 ],
    [ 'q=mike+kilo+lima&filter[due_at][gte]=2027-03-01T00:00:00Z&sort=-priority,due_at', 'mike kilo lima',
      "t.due_at >= '2027-03-01T00:00:00Z'", $PRIO_DUE, 10 ],
    # the facet keys: plain words with priority, label, assignee or project
    [ "q=amber&filter[assignee_id]=$u2&filter[priority]=4&sort=status", 'amber',
      "t.assignee_id = '$u2' AND t.priority = 4", 't.status ASC, t.id ASC', 4 ],
    [ 'q=kilo+lima&filter[label]=security&filter[priority]=4&sort=-updated_at', 'kilo lima',
      "t.labels @> '{security}' AND t.priority = 4", 't.updated_at DESC, t.id DESC', 10 ],
    [ 'q=kilo+lima&filter[label]=security&filter[status]=done&sort=-priority', 'kilo lima',
      "t.labels @> '{security}' AND t.status = 'done'", 't.priority DESC, t.id DESC', 5 ],
    # 0023's bitmaps: a rare word, a phrase rare by its pairs, few filtered
    # tasks (the words tested on each)
    [ 'q=zeppelin&filter[status][in]=todo,done&sort=title', 'zeppelin', "t.status IN ('todo', 'done')",
      't.title ASC, t.id ASC', 4 ],
    [ 'q=zeppelin&sort=-priority,due_at', 'zeppelin', 'true', $PRIO_DUE, 8 ],
    [ 'q=%22kilo+lima+mike%22&filter[priority][in]=0,1,2&sort=due_at', '"kilo lima mike"',
      't.priority IN (0, 1, 2)', 't.due_at ASC NULLS LAST, t.id ASC', 10 ],
    [ "q=amber+-zeppelin&filter[assignee_id]=$u2&sort=-priority", 'amber -zeppelin', "t.assignee_id = '$u2'",
      't.priority DESC, t.id DESC', 12 ],
    # rare pairs with a label (tested on each of their tasks)
    [ 'q=%22kilo+lima+mike%22&filter[label]=security&sort=title', '"kilo lima mike"',
      "t.labels @> '{security}'", 't.title ASC, t.id ASC', 8 ],
);

for my $c (@cases) {
    my ($q, $words, $where, $order, $per) = @$c;
    my $want = oracle($words, $where, $order);
    cmp_ok(scalar @$want, '>=', 2 * $per, "$q: the oracle has matches (" . scalar(@$want) . ')');
    cmp_ok(scalar @$want, '<', 1000, '... fewer than 1000');
    offset_pages($t, $ws, $u->{token}, $q, $want, $per);
}

# deleted=include: the words' live and deleted candidates, each from its own
# index (the words' GIN indexes are partial)
{
    my $q = 'q=kilo+lima+mike&deleted=include&filter[label][ne]=security&sort=title';
    my $want = psql_ids($t, q{SELECT id FROM tm.tasks t WHERE t.workspace_id = $1
                                AND t.search @@ websearch_to_tsquery('english', 'kilo lima mike')
                                AND NOT t.labels @> '{security}' ORDER BY t.title ASC, t.id ASC}, $ws);
    my $deleted = $t->psql(q{SELECT count(*) FROM tm.tasks t WHERE t.workspace_id = $1 AND t.deleted_at IS NOT NULL
                               AND t.search @@ websearch_to_tsquery('english', 'kilo lima mike')
                               AND NOT t.labels @> '{security}'}, $ws);
    cmp_ok($deleted, '>=', 3, "$q: $deleted deleted tasks among the oracle's " . scalar(@$want));
    offset_pages($t, $ws, $u->{token}, $q, $want, 10);
}

# a page of each is the same through the cursors (keyset pages keep the
# ways before 0024)
for my $c (@cases[0, 4, 7, 11]) {
    my ($q, $words, $where, $order) = @$c;
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=7", 80), oracle($words, $where, $order),
              "$q: every page through the cursors, as the oracle");
}

# which indexes each way reads (a backend reports its statistics when idle,
# within 10 s)
sub unread {
    my ($q, $read, @unread) = @_;
    sleep 11;
    my %before = map { $_ => index_scans($t, $_) } $read, @unread;
    my $r = get($q);
    is($r->{status}, 200, "$q: 200");
    cmp_ok($r->{headers}{'x-total-count'}, '>', 0, '... with matches');
    sleep 11;
    cmp_ok(index_scans($t, $read), '>', $before{$read}, "... $read read");
    is(index_scans($t, $_) - $before{$_}, 0, "... $_ unread") for @unread;
}

# the words alone: the status's indexes unread (the planner ANDed their
# bitmap to the words', or a branch a priority read them; 0023's page 2 here
# read tasks_status_priority_idx).  (The page's rows by their keys may come
# through tasks_status_id_idx: a key each.)
unread('q=kilo+lima+mike&filter[status]=todo&sort=-priority&page=2&per_page=10', 'tasks_search_idx',
       qw(tasks_status_idx tasks_status_priority_idx tasks_priority_idx tasks_priority_id_idx
          tasks_facets_idx));
# the facet keys: one condition of tasks_facets_idx, the label's and the
# priority's own indexes unread (the page's rows by their keys may come
# through tasks_priority_id_idx)
unread('q=kilo+lima&filter[label]=security&filter[priority]=4&sort=-updated_at&page=3&per_page=10',
       'tasks_facets_idx', qw(tasks_labels_idx tasks_priority_idx tasks_search_idx tasks_updated_idx));

# rare pairs with a label: the label tested on each of their tasks, its
# index unread, offset and keyset pages as the oracle.  (On the 1M bench
# 0023's planner ANDed the bitmap of a label on 12% of the tasks to the
# pairs', 45 ms; on this small tenant it took the pairs' alone under 0023
# too, so this check guards the way, it does not show the change)
{
    my $q = 'q=%22kilo+lima+mike%22&filter[label]=ops&sort=-updated_at';
    my $want = oracle('"kilo lima mike"', "t.labels @> '{ops}'", 't.updated_at DESC, t.id DESC');
    cmp_ok(scalar @$want, '>=', 4, "$q: the oracle has matches (" . scalar(@$want) . ')');
    sleep 11;
    my %before = map { $_ => index_scans($t, $_) } qw(tasks_search_pairs_idx tasks_labels_idx);
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=2", 80), $want, "$q: every keyset page as the oracle");
    my $r = get("$q&page=2&per_page=2");
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[2, 3] ], '... offset page 2 too');
    is($r->{headers}{'x-total-count'}, scalar @$want, '... X-Total-Count: every match');
    sleep 11;
    cmp_ok(index_scans($t, 'tasks_search_pairs_idx'), '>', $before{tasks_search_pairs_idx},
           '... tasks_search_pairs_idx read');
    is(index_scans($t, 'tasks_labels_idx') - $before{tasks_labels_idx}, 0, '... tasks_labels_idx unread');
}

$t->done;
