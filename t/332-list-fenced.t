# Few filtered tasks without a search, and a split sort's keyset pages of
# words with facet filters (sql/0025, sql/0026).
#
# Where the filter probe finds few matches among the order's first 500 rows,
# the matches' keys and sort columns are read in a query of their own (no
# order asked of it: an index-only scan where an index has the filters'
# columns), sorted, and only the page's rows are fetched; an offset page
# counts and slices its keys in that same pass.  A split sort's page by its
# cursor (no count) of plain words with filters tasks_facets_idx has reads
# the facet keys' candidates in one query where the planner expects few.
# Common words with filters that pass up to 20,000 and 2% of the tasks:
# the filters' tasks, the words tested on each (an offset page's one pass,
# a split sort's keyset page).  Keyset pages of words expected in at most
# 1% of the tasks, under a split sort or a sort whose first rows would not
# hold the page: the words' candidates, as an offset page's one pass;
# (0026) under a sort, only where its probe of the first 5000 rows finds
# too few matches (else the order), and only with filters that pass 10% or
# more of the tasks (rarer ones' bitmaps are ANDed).
# Every page is compared with an SQL oracle (offset pages: rows,
# X-Total-Count, the Link to the next; keyset pages: whole walks through
# the cursors), and the rows each way fetches from the table or the indexes
# it reads are checked.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user);
use Taskmgr::List qw(list_walk offset_pages psql_ids index_scans);

my $t = Taskmgr::Test->new(name => 'list_fenced');
$t->start(http_config => 'taskmgr_task_purge_after 0;');

my $u   = setup_user($t);
my $few = setup_user($t);    # assigned to ~100 tasks
my $ws  = $u->{ws};
my $uid = $u->{user_id};
my $u2  = $few->{user_id};

my $project = $t->psql(q{INSERT INTO tm.projects (workspace_id, name, created_by)
                         VALUES ($1, 'older tasks', $2) RETURNING id}, $ws, $uid);
like($project, qr/^[0-9a-f-]{36}$/, 'a project');

# 20,000 tasks, the newest last (their ids grow with i): "amber" in every
# title; "kilo" in a fifth (i % 5 = 0), "lima" in a fifth (i / 5 % 5 = 0),
# "mike" in a fifth (i / 25 % 5 = 0); each status and priority; the label
# security (i % 3 = 0); assigned to $few (i % 199 = 5) or $u (i % 3 = 1);
# the project's tasks are 3,000 old ones (1000 <= i < 4000); due on 800 days
# (none for i % 7 = 0); updated a few minutes after their creation; every
# 23rd soft-deleted
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, status, priority, assignee_id, project_id, labels,
                      due_at, created_by, created_at, updated_at, deleted_at)
SELECT $1::uuid,
       ('00000000-0000-7000-b320-' || lpad(to_hex(i), 12, '0'))::uuid,
       'amber '
       || CASE WHEN i % 5 = 0 THEN 'kilo ' ELSE '' END
       || CASE WHEN i / 5 % 5 = 0 THEN 'lima ' ELSE '' END
       || CASE WHEN i / 25 % 5 = 0 THEN 'mike ' ELSE '' END || (i % 977),
       (ARRAY['todo', 'in_progress', 'done', 'archived'])[i % 4 + 1],
       (i / 7) % 5,
       CASE WHEN i % 199 = 5 THEN $3::uuid WHEN i % 3 = 1 THEN $2::uuid END,
       CASE WHEN i >= 1000 AND i < 4000 THEN $4::uuid END,
       CASE WHEN i % 3 = 0 THEN '{security}'::text[] ELSE '{}' END,
       CASE WHEN i % 7 <> 0 THEN '2027-01-01 00:00:00+00'::timestamptz + (i % 800) * interval '1 day' END,
       $2::uuid,
       '2026-01-01 00:00:00+00'::timestamptz + i * interval '20 minutes',
       '2026-01-01 00:00:00+00'::timestamptz + i * interval '20 minutes' + (i % 7) * interval '1 minute',
       CASE WHEN i % 23 = 0 THEN '2026-11-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 20000) i}, $ws, $uid, $u2, $project);
# (the visibility map set: an index-only scan reads no row of the table)
$t->psql('VACUUM ANALYZE tm.tasks');

sub get {
    my ($q) = @_;
    return $t->request(GET => "/v1/workspaces/$ws/tasks?$q", token => $u->{token});
}

# every task of the workspace with $where (live ones unless $where says
# otherwise) and the words ('': any), in $order
sub oracle {
    my ($words, $where, $order) = @_;
    return psql_ids($t, 'SELECT t.id FROM tm.tasks t WHERE t.workspace_id = $1 AND ' . $where
                        . ($words eq '' ? '' : " AND t.search @@ websearch_to_tsquery('english', \$2)")
                        . " ORDER BY $order", $ws, $words);
}

# the rows of tm.tasks fetched by index scans and bitmaps (an index-only
# scan fetches none) while $code runs (a backend reports its statistics when
# idle, within 10 s)
sub fetched {
    my ($code) = @_;
    my $sql = q{SELECT idx_tup_fetch FROM pg_stat_user_tables WHERE relid = 'tm.tasks'::regclass};
    sleep 11;
    my $before = $t->psql($sql);
    $code->();
    sleep 11;
    return $t->psql($sql) - $before;
}

my $LIVE = 't.deleted_at IS NULL';
my $P    = "t.project_id = '$project'";

###########################################################################
# few filtered tasks without a search: the project's old tasks under sorts
# whose first 500 rows (of the first branch) are the newest, old tasks of a
# priority by -updated_at, an assignee of ~100 tasks; live tasks and
# deleted=include

my @cases = (
    [ "filter[project_id]=$project&filter[status][in]=todo,done&sort=-priority",
      "$LIVE AND $P AND t.status IN ('todo', 'done')", 't.priority DESC, t.id DESC', 100 ],
    [ "filter[project_id]=$project&filter[status]=archived&sort=-priority,-created_at",
      "$LIVE AND $P AND t.status = 'archived'", 't.priority DESC, t.created_at DESC, t.id DESC', 50 ],
    # not a split sort: the newest updated are the newest created
    [ 'filter[created_at][lt]=2026-01-29T00:00:00Z&filter[priority]=1&sort=-updated_at',
      "$LIVE AND t.created_at < '2026-01-29T00:00:00Z' AND t.priority = 1", 't.updated_at DESC, t.id DESC', 50 ],
    # none of the first 500 archived tasks (by id) is the assignee's with
    # priority 4
    [ "filter[assignee_id]=$u2&filter[priority]=4&sort=status",
      "$LIVE AND t.assignee_id = '$u2' AND t.priority = 4", 't.status ASC, t.id ASC', 4 ],
    [ "deleted=include&filter[project_id]=$project&filter[status]=done&sort=-priority",
      "$P AND t.status = 'done'", 't.priority DESC, t.id DESC', 100 ],
);

for my $c (@cases) {
    my ($q, $where, $order, $per) = @$c;
    my $want = oracle('', $where, $order);
    cmp_ok(scalar @$want, '>=', 2 * $per, "$q: the oracle has matches (" . scalar(@$want) . ')');
    offset_pages($t, $ws, $u->{token}, $q, $want, $per);
    # keyset pages, a cursor inside a branch and across them
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=" . int($per * 1.5 + 1), 200), $want,
              "$q: every page through the cursors, as the oracle");
}

# the keys first: an offset page of 1,500 of the project's tasks fetches its
# 100 rows (and the probe's 500 or so), not the 1,500 twice (0024: the
# project's bitmap, once for the count and once for the page), and a keyset
# page its rows
{
    my ($q) = @{ $cases[0] };
    my $n = fetched(sub {
        my $r = get("$q&page=3&per_page=100");
        is($r->{status}, 200, "$q, page 3 of 100: 200");
        cmp_ok($r->{headers}{'x-total-count'}, '>', 1300, '... ' . $r->{headers}{'x-total-count'} . ' matches');
    });
    cmp_ok($n, '<', 1200, "... $n rows fetched from the table (the probe's and the page's)");
    $n = fetched(sub {
        my $r = get("$q&limit=100");
        is(scalar @{ $r->{json}{data} }, 100, "$q, a keyset page of 100");
    });
    cmp_ok($n, '<', 1200, "... $n rows fetched from the table");
}

###########################################################################
# a split sort's page by its cursor, plain words with facet filters: their
# keys' candidates (tasks_facets_idx) in one query

# the live tasks the planner expects to pass $conds (tm.live_expected, as
# task_find asks it): the way's precondition (at most 1% of the live tasks)
my $live = $t->psql(q{SELECT count(*) FROM tm.tasks WHERE workspace_id = $1 AND deleted_at IS NULL}, $ws);
sub expected { Taskmgr::List::live_expected($t, $ws, $_[0], undef, $_[1]) }
my $MATCH = q{ AND t.search @@ websearch_to_tsquery('english', $3)};
cmp_ok(expected(" AND t.labels @> '{security}'$MATCH", 'kilo lima mike'), '<=', $live / 100,
       'kilo lima mike with security: expected in at most 1%');

my @facet = (
    [ 'q=kilo+lima+mike&filter[label]=security&sort=-priority', 'kilo lima mike',
      "t.labels @> '{security}'", 't.priority DESC, t.id DESC', 7 ],
    [ 'q=kilo+lima+mike&filter[label]=security&sort=status', 'kilo lima mike',
      "t.labels @> '{security}'", 't.status ASC, t.id ASC', 6 ],
    # due_at after the split key, with more keys: its NULLs a branch of their own
    [ 'q=kilo+lima+mike&filter[label]=security&sort=-priority,due_at,title', 'kilo lima mike',
      "t.labels @> '{security}'", 't.priority DESC, t.due_at ASC NULLS LAST, t.title ASC, t.id ASC', 5 ],
    [ "q=amber&filter[assignee_id]=$u2&filter[priority]=4&sort=status", 'amber',
      "t.assignee_id = '$u2' AND t.priority = 4", 't.status ASC, t.id ASC', 3 ],
);
for my $c (@facet) {
    my ($q, $words, $where, $order, $per) = @$c;
    my $want = oracle($words, "$LIVE AND $where", $order);
    cmp_ok(scalar @$want, '>=', 3 * $per, "$q: the oracle has matches (" . scalar(@$want) . ')');
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=$per", 200), $want,
              "$q: every page through the cursors, as the oracle");
}

# the facet keys read, the label's and the words' own indexes not (0024's
# branches, after a probe of the newest tasks, read the words' bitmap)
{
    my ($q) = @{ $facet[0] };
    sleep 11;
    my %before = map { $_ => index_scans($t, $_) } qw(tasks_facets_idx tasks_labels_idx tasks_search_idx);
    my $r = get("$q&limit=7");
    is($r->{status}, 200, "$q: 200");
    is(scalar @{ $r->{json}{data} }, 7, '... a page of 7');
    sleep 11;
    cmp_ok(index_scans($t, 'tasks_facets_idx'), '>', $before{tasks_facets_idx}, '... tasks_facets_idx read');
    is(index_scans($t, $_) - $before{$_}, 0, "... $_ unread") for qw(tasks_labels_idx tasks_search_idx);
}

###########################################################################
# common words with filters that pass up to 20,000 and 2% of the live tasks
# (here ~300 of 19,000: two weeks of due dates): the filters' tasks, the
# words tested on each, for an offset page's one pass and a split sort's
# keyset page; a subquery of their own, but where the branches' order
# starts with the filter's column (-priority,due_at: its index reads the
# branch from the range on)

my $DUE = 'filter[due_at][gte]=2027-02-01T00:00:00Z&filter[due_at][lt]=2027-02-15T00:00:00Z';
my $DUE_SQL = "t.due_at >= '2027-02-01T00:00:00Z' AND t.due_at < '2027-02-15T00:00:00Z'";
{
    my $fexp = expected(" AND $DUE_SQL");
    cmp_ok($fexp, '>', $live / 100, "the due range: expected in more than 1% of the live tasks ($fexp)");
    cmp_ok($fexp, '<=', $live / 50, '... and at most 2%');
    cmp_ok(expected($MATCH, 'kilo'), '>', $live / 100, 'kilo: expected in more than 1%');
}
my @due = (
    [ "q=kilo&$DUE&sort=title", 't.title ASC, t.id ASC', 10 ],
    [ "q=kilo&$DUE&sort=-priority", 't.priority DESC, t.id DESC', 10 ],
    [ "q=kilo&$DUE&sort=status", 't.status ASC, t.id ASC', 10 ],
    [ "q=kilo&$DUE&sort=-priority,due_at", 't.priority DESC, t.due_at ASC NULLS LAST, t.id ASC', 10 ],
);
for my $c (@due) {
    my ($q, $order, $per) = @$c;
    my $want = oracle('kilo', "$LIVE AND $DUE_SQL", $order);
    cmp_ok(scalar @$want, '>=', 3 * $per, "$q: the oracle has matches (" . scalar(@$want) . ')');
    offset_pages($t, $ws, $u->{token}, $q, $want, $per);
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=7", 200), $want,
              "$q: every page through the cursors, as the oracle");
}

# the words' index unread: an offset page and a split sort's keyset page
for my $q ("q=kilo&$DUE&sort=title&page=2&per_page=10", "q=kilo&$DUE&sort=-priority&limit=7") {
    sleep 11;
    my %before = map { $_ => index_scans($t, $_) } qw(tasks_due_idx tasks_search_idx);
    my $r = get($q);
    is($r->{status}, 200, "$q: 200");
    cmp_ok(scalar @{ $r->{json}{data} }, '>=', 7, '... a page');
    sleep 11;
    cmp_ok(index_scans($t, 'tasks_due_idx'), '>', $before{tasks_due_idx}, '... tasks_due_idx read');
    is(index_scans($t, 'tasks_search_idx') - $before{tasks_search_idx}, 0, '... tasks_search_idx unread');
}

###########################################################################
# keyset pages of words the planner expects in at most 1% of the live tasks
# (here kilo lima mike: 160 of 19,000) with filters the facet keys do not
# have: the words' candidates alone, the filters tested on each, as an
# offset page's one pass reads them; under a split sort, and under a sort
# whose first 5000 rows would not hold the page

cmp_ok(expected($MATCH, 'kilo lima mike'), '<=', $live / 100, 'kilo lima mike: expected in at most 1%');
my @words = (
    [ 'q=kilo+lima+mike&filter[status]=todo&sort=-priority', "t.status = 'todo'", 't.priority DESC, t.id DESC', 4 ],
    [ 'q=kilo+lima+mike&filter[status][in]=todo,done&sort=status', "t.status IN ('todo', 'done')",
      't.status ASC, t.id ASC', 6 ],
    [ 'q=kilo+lima+mike&filter[label][ne]=security&sort=-priority,due_at,title', "NOT t.labels @> '{security}'",
      't.priority DESC, t.due_at ASC NULLS LAST, t.title ASC, t.id ASC', 9 ],
    [ 'q=kilo+lima+mike&filter[label][ne]=security&sort=title', "NOT t.labels @> '{security}'",
      't.title ASC, t.id ASC', 40 ],
    [ 'q=kilo+lima+mike&deleted=include&filter[status][in]=todo,done&sort=-priority',
      "t.status IN ('todo', 'done')", 't.priority DESC, t.id DESC', 8 ],
);
for my $c (@words) {
    my ($q, $where, $order, $per) = @$c;
    my $want = oracle('kilo lima mike', ($q =~ /deleted=include/ ? '' : "$LIVE AND ") . $where, $order);
    cmp_ok(scalar @$want, '>=', 2 * $per, "$q: the oracle has matches (" . scalar(@$want) . ')');
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=$per", 200), $want,
              "$q: every page through the cursors, as the oracle");
}

# the words' index read, the status's indexes not (0024's branches ANDed
# them, or read a branch of a priority through its index); by title, the
# probe of the order's first rows (0026) reads tasks_title_idx: they hold no
# match (the titles without the words sort first), so the words' candidates
for my $q ('q=kilo+lima+mike&filter[status]=todo&sort=-priority&limit=4',
           'q=kilo+lima+mike&filter[label][ne]=security&sort=title&limit=40') {
    sleep 11;
    my @unread = qw(tasks_status_idx tasks_status_priority_idx tasks_status_id_idx tasks_priority_id_idx);
    push @unread, 'tasks_title_idx' if $q =~ /-priority/;
    my %before = map { $_ => index_scans($t, $_) } 'tasks_search_idx', @unread;
    my $r = get($q);
    is($r->{status}, 200, "$q: 200");
    cmp_ok(scalar @{ $r->{json}{data} }, '>=', 4, '... a page');
    sleep 11;
    cmp_ok(index_scans($t, 'tasks_search_idx'), '>', $before{tasks_search_idx}, '... tasks_search_idx read');
    is(index_scans($t, $_) - $before{$_}, 0, "... $_ unread") for @unread;
}

# (0026) a sort whose first rows hold the page (the words in one task of
# 125, evenly, and the newest updated first: ~27 of the first 5000 pass),
# although the planner expects them to hold less than the page: its probe
# first, which reads the sort's index (0025 took the words' candidates at
# once, no index in the sort's order read); the page is then the planner's
# (on a tenant this small it may take the words' bitmap and sort)
{
    my $q = 'q=kilo+lima+mike&filter[label][ne]=security&sort=-updated_at&limit=40';
    my $want = oracle('kilo lima mike', "$LIVE AND NOT t.labels @> '{security}'", 't.updated_at DESC, t.id DESC');
    is_deeply(list_walk($t, $ws, $u->{token}, $q, 200), $want, "$q: every page through the cursors, as the oracle");
    sleep 11;
    my $before = index_scans($t, 'tasks_updated_idx');
    my $r = get($q);
    is($r->{status}, 200, "$q: 200");
    is(scalar @{ $r->{json}{data} }, 40, '... a page of 40');
    sleep 11;
    cmp_ok(index_scans($t, 'tasks_updated_idx'), '>', $before, '... tasks_updated_idx read (the probe)');
}

# (0026) a split sort's keyset page of those words with a filter that
# passes 5% to 10% of the tasks (two months of due dates, ~6%: neither the
# rare-together words' bitmaps of 0023 nor, now, the words alone), through
# the cursors as the oracle (which of the bitmaps the planner ANDs is its
# choice on a tenant this small: bench/README.md has the 1M figures)
{
    my $range = 'filter[due_at][gte]=2027-02-15T00:00:00Z&filter[due_at][lt]=2027-04-16T00:00:00Z';
    my $range_sql = "t.due_at >= '2027-02-15T00:00:00Z' AND t.due_at < '2027-04-16T00:00:00Z'";
    my $fexp = expected(" AND $range_sql");
    cmp_ok($fexp, '>', $live / 20, "the two months: expected in more than 5% of the live tasks ($fexp)");
    cmp_ok($fexp, '<', $live / 10, '... and less than 10%');
    for my $c ([ 'sort=-priority', 't.priority DESC, t.id DESC' ], [ 'sort=status', 't.status ASC, t.id ASC' ]) {
        my $q = "q=kilo+lima+mike&$range&$c->[0]";
        my $want = oracle('kilo lima mike', "$LIVE AND $range_sql", $c->[1]);
        cmp_ok(scalar @$want, '>=', 6, "$q: the oracle has matches (" . scalar(@$want) . ')');
        is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=2", 200), $want,
                  "$q: every page through the cursors, as the oracle");
    }
}

unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/, 'no alerts in the error log');

$t->done;
