# Words common among the newest tasks with filters tasks_facets_idx has
# (sql/0022: "eq" of priority, label, project, assignee): one GIN condition
# of the words' and the filters' keys, under a sort or ranked, with offset
# pages and X-Total-Count; other filters tested on its rows; labels with
# quotes, commas and braces; writes move a task between facets.  Every list
# is compared row for row with an SQL oracle, and the index's use is
# checked (and its non-use for filters it does not have).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user);
use Taskmgr::List qw(list_walk psql_ids index_scans index_read_since);

my $t = Taskmgr::Test->new(name => 'list_search_facets');
$t->start(http_config => 'taskmgr_task_purge_after 0;');

my $u  = setup_user($t);
my $ws = $u->{ws};
my $uid = $u->{user_id};

my $project = '00000000-0000-7000-b105-000000000001';
$t->psql(q{INSERT INTO tm.projects (workspace_id, id, name, created_by) VALUES ($1, $2, 'launch', $3)},
         $ws, $project, $uid);

my $ODD = q{it's {odd}, "x"};

# 6000 tasks over six months, the newest last: "amber delta" in about half
# of them (so in far more than 10 of the newest 2000), each priority, the
# labels security (i % 3 = 0), the odd one (i % 40 = 0), in the project
# (i % 4 = 0), assigned (i % 3 = 1), due on 60 distinct days (ties), every
# 23rd soft-deleted
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, project_id, title, status, priority, assignee_id, labels,
                      due_at, created_by, created_at, updated_at, deleted_at)
SELECT $1::uuid,
       ('00000000-0000-7000-b100-' || lpad(to_hex(i), 12, '0'))::uuid,
       CASE WHEN i % 4 = 0 THEN $3::uuid END,
       CASE WHEN i % 2 = 0 THEN 'amber delta ' ELSE 'amber echo ' END || i,
       CASE WHEN i % 5 = 0 THEN 'todo' ELSE 'done' END,
       (i / 2) % 5,
       CASE WHEN i % 3 = 1 THEN $2::uuid END,
       CASE WHEN i % 40 = 0 THEN ARRAY['security', $4]
            WHEN i % 3 = 0 THEN '{security}'::text[] ELSE '{}' END,
       CASE WHEN i % 7 <> 0 THEN '2027-01-01 00:00:00+00'::timestamptz + (i % 60) * interval '1 day' END,
       $2::uuid,
       '2026-06-01 00:00:00+00'::timestamptz + i * interval '40 minutes',
       '2026-06-01 00:00:00+00'::timestamptz + ((i * 7919) % 6000) * interval '40 minutes',
       CASE WHEN i % 23 = 0 THEN '2026-12-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 6000) i}, $ws, $uid, $project, $ODD);
$t->psql('ANALYZE tm.tasks');

my $W = 'amber delta';

sub uri_escape {
    my ($s) = @_;
    utf8::encode($s);
    $s =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub get {
    my ($q) = @_;
    return $t->request(GET => "/v1/workspaces/$ws/tasks?$q", token => $u->{token});
}

# the oracles (Taskmgr::List) of this workspace
sub rank_oracle { Taskmgr::List::rank_oracle($t, $ws, @_) }
sub list_oracle { Taskmgr::List::list_oracle($t, $ws, @_) }

sub walk { list_walk($t, $ws, $u->{token}, $_[0], 80) }

my $odd_sql = $ODD =~ s/'/''/gr;
my $odd_q = uri_escape($ODD);

# Data-driven: [ query string, oracle (rank or list), where, order ]
my @cases = (
    [ 'q=amber+delta&filter[priority]=4&filter[label]=security&sort=-updated_at&limit=25', 'list',
      "t.priority = 4 AND t.labels @> '{security}'", 't.updated_at DESC, t.id DESC' ],
    [ 'q=amber+delta&filter[priority]=4&filter[label]=security&limit=25', 'rank',
      "t.priority = 4 AND t.labels @> '{security}'" ],
    [ 'q=amber+delta&filter[label]=security&sort=due_at&limit=40', 'list',
      "t.labels @> '{security}'", 't.due_at ASC NULLS LAST, t.id ASC' ],
    [ "q=amber+delta&filter[project_id]=$project&sort=title&limit=40", 'list',
      "t.project_id = '$project'", 't.title ASC, t.id ASC' ],
    [ "q=delta+amber&filter[assignee_id]=$uid&filter[priority]=2&limit=20", 'rank',
      "t.assignee_id = '$uid' AND t.priority = 2" ],
    [ "q=amber+delta&filter[label]=$odd_q&sort=-created_at&limit=10", 'list',
      "t.labels @> ARRAY['$odd_sql']", 't.created_at DESC, t.id DESC' ],
    [ "q=amber+delta&filter[label]=$odd_q&limit=10", 'rank', "t.labels @> ARRAY['$odd_sql']" ],
    # a filter the index does not have, tested on its rows
    [ 'q=amber+delta&filter[priority]=4&filter[status]=done&filter[due_at][gte]=2027-01-20T00:00:00Z&sort=-due_at&limit=20',
      'list', "t.priority = 4 AND t.status = 'done' AND t.due_at >= '2027-01-20T00:00:00Z'",
      't.due_at DESC NULLS FIRST, t.id DESC' ],
    [ 'q=amber+delta&filter[priority]=1&filter[label][ne]=security&sort=-created_at&limit=40', 'list',
      "t.priority = 1 AND NOT t.labels @> '{security}'", 't.created_at DESC, t.id DESC' ],
    [ 'q=amber+delta&filter[label]=nobody-has-it&sort=title&limit=10', 'list',
      "t.labels @> '{nobody-has-it}'", 't.title ASC, t.id ASC' ],
    [ "q=amber+delta&filter[project_id]=00000000-0000-7000-b105-0000000000ff&limit=10", 'rank',
      "t.project_id = '00000000-0000-7000-b105-0000000000ff'" ],
);

my @want = map {
    my ($q, $kind, $where, $order) = @$_;
    $kind eq 'rank' ? rank_oracle($where, $W) : list_oracle($where, $W, $order);
} @cases;

my $facets0 = index_scans($t, 'tasks_facets_idx');
for my $i (0 .. $#cases) {
    my $q = $cases[$i][0];
    cmp_ok(scalar @{ $want[$i] }, '>', 0, "$q: the oracle has matches") unless $q =~ /nobody|0000000000ff/;
    is_deeply(walk($q), $want[$i], "$q: every page, as the oracle");
}
ok(index_read_since($t, 'tasks_facets_idx', $facets0), 'the pages came from tasks_facets_idx');

# offset pages and X-Total-Count, sorted and ranked
for my $c (
    [ 'q=amber+delta&filter[priority]=4&sort=-created_at', 'list', 't.priority = 4', 't.created_at DESC, t.id DESC' ],
    [ 'q=amber+delta&filter[label]=security&sort=due_at', 'list', "t.labels @> '{security}'",
      't.due_at ASC NULLS LAST, t.id ASC' ],
    [ 'q=amber+delta&filter[priority]=3', 'rank', 't.priority = 3' ],
) {
    my ($q, $kind, $where, $order) = @$c;
    my $want = $kind eq 'rank' ? rank_oracle($where, $W) : list_oracle($where, $W, $order);
    cmp_ok(scalar @$want, '>', 40, "$q: more than 40 matches (" . scalar(@$want) . ')');
    # (with q, offset pages end at the first 1000 matches)
    for my $page (1, 3, 40) {
        my $r = get("$q&page=$page&per_page=20");
        is($r->{status}, 200, "$q, offset page $page") or diag $r->{body};
        # (X-Total-Count with q: exact up to 1000, sql/0024)
        my $n = @$want > 1000 ? 1000 : scalar @$want;
        is($r->{headers}{'x-total-count'}, $n, "... X-Total-Count: $n");
        is($r->{headers}{'x-total-count-capped'}, @$want > 1000 ? 'true' : undef,
           '... ' . (@$want > 1000 ? 'capped' : 'exact'));
        my @slice = grep { defined } @$want[ ($page - 1) * 20 .. $page * 20 - 1 ];
        is_deeply([ map { $_->{id} } @{ $r->{json}{data} // [] } ], \@slice, '... the oracle\'s rows');
    }
}

# filters the index does not have ("in", a range, a status alone) keep the
# ways before it: every page as the oracle, tasks_facets_idx unread (a
# backend reports its statistics when idle for up to 10 s)
{
    sleep 11;
    my $before = index_scans($t, 'tasks_facets_idx');
    for my $c (
        [ 'q=amber+delta&filter[priority][in]=3,4&sort=-updated_at&limit=40', 't.priority IN (3, 4)',
          't.updated_at DESC, t.id DESC' ],
        [ 'q=amber+delta&filter[status]=todo&sort=title&limit=40', "t.status = 'todo'", 't.title ASC, t.id ASC' ],
        [ 'q=amber+delta&filter[label][in]=security,other&sort=-created_at&limit=40',
          "t.labels && '{security,other}'", 't.created_at DESC, t.id DESC' ],
    ) {
        my ($q, $where, $order) = @$c;
        is_deeply(walk($q), list_oracle($where, $W, $order), "$q: every page, as the oracle");
    }
    sleep 11;
    is(index_scans($t, 'tasks_facets_idx') - $before, 0, 'tasks_facets_idx served none of those');
}

# writes: a new task is found under its facets; a change of its priority
# and labels moves it
{
    my $r = $t->request(POST => "/v1/workspaces/$ws/tasks", token => $u->{token},
                        body => { title => 'a late amber delta', labels => ['security'], priority => 4,
                                  project_id => $project });
    is($r->{status}, 201, 'a task with both words, priority 4, security, the project is created');
    my $id = $r->{json}{id};
    my $q4 = "q=amber+delta&filter[priority]=4&filter[label]=security&filter[project_id]=$project&sort=-created_at&limit=50";
    my $ids = walk($q4);
    is($ids->[0], $id, 'it is the newest of its facets');
    is_deeply($ids, list_oracle("t.priority = 4 AND t.labels @> '{security}' AND t.project_id = '$project'",
                                $W, 't.created_at DESC, t.id DESC'), '... every page as the oracle');

    $r = $t->request(PATCH => "/v1/workspaces/$ws/tasks/$id", token => $u->{token},
                     body => { priority => 1, labels => [$ODD] });
    is($r->{status}, 200, 'its priority and labels are changed') or diag $r->{body};
    ok(!(grep { $_ eq $id } @{ walk($q4) }), 'it left its old facets');
    $ids = walk("q=amber+delta&filter[priority]=1&filter[label]=$odd_q&sort=-created_at&limit=50");
    is($ids->[0], $id, 'it is found under its new ones');
    is_deeply($ids, list_oracle("t.priority = 1 AND t.labels @> ARRAY['$odd_sql']", $W,
                                't.created_at DESC, t.id DESC'), '... every page as the oracle');

    $r = $t->request(DELETE => "/v1/workspaces/$ws/tasks/$id", token => $u->{token});
    is($r->{status}, 204, 'it is deleted');
    ok(!(grep { $_ eq $id } @{ walk("q=amber+delta&filter[priority]=1&filter[label]=$odd_q&limit=50") }),
       'a deleted task is no match');
}

$t->done;
