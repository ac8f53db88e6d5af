# A search of several words with other filters (sql/0021): where the newest
# 2000 tasks hold fewer than 10 with the words, the page comes from the
# words' GIN bitmap, one condition a word, the filters tested on each row
# (a label's test is no index condition there); where they hold more, the
# probes decide as before, and the probe of a ranked search with filters
# reads the newest tasks' ids before their rows.  Every list is compared row
# for row with an SQL oracle.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user);
use Taskmgr::List qw(list_walk psql_ids index_scans index_read_since);

my $t = Taskmgr::Test->new(name => 'list_search_filters');
$t->start(http_config => 'taskmgr_task_purge_after 0;');

my $u  = setup_user($t);
my $ws = $u->{ws};

my $project = '00000000-0000-7000-b005-000000000001';
$t->psql(q{INSERT INTO tm.projects (workspace_id, id, name, created_by) VALUES ($1, $2, 'launch', $3)},
         $ws, $project, $u->{user_id});

# Matches of "quartz meadow": 8 a month from 2024-01 to 2026-11 (280), with
# labels security (k % 3 = 0), ops + security (k % 3 = 1) or none, every
# priority, every other one in the project, half assigned, two thirds due
# (on 50 distinct days: ties), every 17th soft-deleted, and in a quarter of
# them an e-mail address and a version number.  Noise: 40 tasks a month
# with one of the words, labelled security.  The newest 2500 tasks
# (2026-12) have "quartz filler", half of them security, so the newest 2000
# hold no match of "quartz meadow".
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, project_id, title, description, status, priority,
                      assignee_id, labels, due_at, created_by, created_at, deleted_at)
SELECT $1::uuid,
       ('00000000-0000-7000-b000-' || lpad(to_hex(m * 8 + k), 12, '0'))::uuid,
       CASE WHEN k % 2 = 0 THEN $3::uuid END,
       'quartz meadow ' || m || '.' || k,
       CASE WHEN k % 4 = 3 THEN 'mail ops@example.com about v1.2.3' ELSE 'plain' END,
       CASE WHEN k % 3 = 0 THEN 'todo' ELSE 'done' END,
       (m + k) % 5,
       CASE WHEN k % 4 < 2 THEN $2::uuid END,
       CASE k % 3 WHEN 0 THEN '{security}'::text[] WHEN 1 THEN '{ops,security}' ELSE '{}' END,
       CASE WHEN k % 3 <> 2 THEN '2027-01-01 00:00:00+00'::timestamptz
                                 + ((m * 8 + k) % 50) * interval '1 day' END,
       $2::uuid,
       '2024-01-01 00:00:00+00'::timestamptz + m * interval '1 month'
           + k * interval '3 days' + (m % 3) * interval '1 hour',
       CASE WHEN (m * 8 + k) % 17 = 0 THEN '2026-01-01 00:00:00+00'::timestamptz END
  FROM generate_series(0, 34) m, generate_series(0, 7) k}, $ws, $u->{user_id}, $project);
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, labels, priority, created_by, created_at)
SELECT $1::uuid, ('00000000-0000-7000-b002-' || lpad(to_hex(m * 40 + j), 12, '0'))::uuid,
       CASE WHEN j % 2 = 0 THEN 'quartz pebble ' ELSE 'meadow brook ' END || j, '{security}',
       j % 5, $2::uuid,
       '2024-01-01 00:00:00+00'::timestamptz + m * interval '1 month' + j * interval '13 hours'
  FROM generate_series(0, 34) m, generate_series(0, 39) j}, $ws, $u->{user_id});
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, labels, priority, created_by, created_at)
SELECT $1::uuid, ('00000000-0000-7000-b003-' || lpad(to_hex(i), 12, '0'))::uuid,
       'quartz filler ' || i,
       CASE WHEN i % 50 = 0 THEN '{security,rare}'::text[]
            WHEN i % 2 = 0 THEN '{security}' ELSE '{}' END, i % 5, $2::uuid,
       '2026-12-01 00:00:00+00'::timestamptz + i * interval '1 second'
  FROM generate_series(1, 2500) i}, $ws, $u->{user_id});
# 20,000 tasks with "cobalt harbor" in 2026-11, before the newest 2500
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, priority, created_by, created_at)
SELECT $1::uuid, ('00000000-0000-7000-b004-' || lpad(to_hex(i), 12, '0'))::uuid,
       'cobalt harbor ' || i, i % 5, $2::uuid,
       '2026-11-10 00:00:00+00'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 20000) i}, $ws, $u->{user_id});
$t->psql('ANALYZE tm.tasks');


sub get {
    my ($q) = @_;
    return $t->request(GET => "/v1/workspaces/$ws/tasks?$q", token => $u->{token});
}

# the oracles (Taskmgr::List) of this workspace
sub rank_oracle { Taskmgr::List::rank_oracle($t, $ws, @_) }
sub list_oracle { Taskmgr::List::list_oracle($t, $ws, @_) }

sub walk { list_walk($t, $ws, $u->{token}, $_[0], 60) }

# Data-driven: [ query string, oracle (rank or list), where, words, order ]
my $W = 'quartz meadow';
my @cases = (
    [ 'q=quartz+meadow&filter[label]=security&limit=25', 'rank', "t.labels @> '{security}'" ],
    [ 'q=quartz+meadow&filter[label][in]=ops,legal&limit=25', 'rank', "t.labels && '{ops,legal}'" ],
    [ 'q=quartz+meadow&filter[label][ne]=security&limit=25', 'rank', "NOT t.labels @> '{security}'" ],
    [ 'q=quartz+meadow&filter[label][nin]=ops,legal&limit=25', 'rank', "NOT t.labels && '{ops,legal}'" ],
    [ 'q=quartz+meadow&filter[label]=legal&limit=25', 'rank', "t.labels @> '{legal}'" ],
    [ 'q=quartz+meadow&filter[priority]=4&limit=25', 'rank', 't.priority = 4' ],
    [ "q=quartz+meadow&filter[project_id]=$project&limit=25", 'rank', "t.project_id = '$project'" ],
    [ "q=quartz+meadow&filter[assignee_id]=$u->{user_id}&filter[label]=security&limit=25", 'rank',
      "t.assignee_id = '$u->{user_id}' AND t.labels @> '{security}'" ],
    [ 'q=quartz+meadow&filter[label]=security&sort=-created_at&limit=30', 'list',
      "t.labels @> '{security}'", $W, 't.created_at DESC, t.id DESC' ],
    [ 'q=quartz+meadow&filter[label]=security&sort=due_at&limit=30', 'list',
      "t.labels @> '{security}'", $W, 't.due_at ASC NULLS LAST, t.id ASC' ],
    [ 'q=quartz+meadow&filter[priority][in]=1,3&sort=-due_at&limit=30', 'list',
      't.priority IN (1, 3)', $W, 't.due_at DESC NULLS FIRST, t.id DESC' ],
    [ 'q=meadow+quartz+plain&filter[label]=ops&sort=title&limit=30', 'list',
      "t.labels @> '{ops}'", 'meadow quartz plain', 't.title ASC, t.id ASC' ],
    # lexemes with "@" and "." (an e-mail address, a version): one
    # condition a word, each a quoted lexeme
    [ 'q=quartz+ops@example.com+v1.2.3&filter[label]=security&limit=25', 'rank',
      "t.labels @> '{security}'", 'quartz ops@example.com v1.2.3' ],
    [ 'q=quartz+ops@example.com&filter[priority][lte]=2&sort=-created_at&limit=30', 'list',
      't.priority <= 2', 'quartz ops@example.com', 't.created_at DESC, t.id DESC' ],
);

# the oracles first: theirs may read tasks_labels_idx (a psql backend
# reports its statistics as it exits)
my @want = map {
    my ($q, $kind, $where, $words, $order) = @$_;
    $words //= $W;
    $kind eq 'rank' ? rank_oracle($where, $words) : list_oracle($where, $words, $order);
} @cases;
my $search0 = index_scans($t, 'tasks_search_idx');
my $labels0 = index_scans($t, 'tasks_labels_idx');

for my $i (0 .. $#cases) {
    my $q = $cases[$i][0];
    cmp_ok(scalar @{ $want[$i] }, '>', 0, "$q: the oracle has matches") unless $q =~ /legal&limit/;
    is_deeply(walk($q), $want[$i], "$q: every page, as the oracle");
}

# the rare words' pages came from the words' GIN index, the labels' one unread
# (a backend reports its statistics when idle for up to 10 s)
ok(index_read_since($t, 'tasks_search_idx', $search0), 'the words were read from tasks_search_idx');
sleep 11;
is(index_scans($t, 'tasks_labels_idx') - $labels0, 0,
   'tasks_labels_idx served none of them (the labels are tested on the words\' matches)');

# ranked offset pages from the words' bitmap: the candidates read once,
# counted, then ranked (rare words and a label; common words and a rare
# label)
for my $c ([ 'q=quartz+meadow&filter[label]=security', "t.labels @> '{security}'", $W ],
           [ 'q=quartz+filler&filter[label]=rare', "t.labels @> '{rare}'", 'quartz filler' ]) {
    my ($q, $where, $words) = @$c;
    my $want = rank_oracle($where, $words);
    for my $page (1, 2, 9) {
        my $r = get("$q&page=$page&per_page=10");
        is($r->{status}, 200, "$q, ranked offset page $page");
        is($r->{headers}{'x-total-count'}, scalar @$want, '... X-Total-Count: every candidate');
        my @slice = grep { defined } @$want[ ($page - 1) * 10 .. $page * 10 - 1 ];
        is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], \@slice, '... the oracle\'s rows of that page');
    }
}

# with a status too: (0022) these rare words take the bitmap as without
# it (the month path until 0022), every filter tested on its rows
{
    my $want = rank_oracle("t.labels @> '{security}' AND t.priority >= 2 AND t.status = 'todo'", $W);
    cmp_ok(scalar @$want, '>', 10, 'todo matches with security and priority >= 2 (' . scalar(@$want) . ')');
    is_deeply(walk('q=quartz+meadow&filter[label]=security&filter[priority][gte]=2&filter[status]=todo&limit=25'),
              $want, 'q=quartz meadow, a label, a priority and a status: every page, as the oracle');
    $want = rank_oracle("t.labels && '{ops,nobody}' AND t.status = 'done'", $W);
    cmp_ok(scalar @$want, '>', 10, 'done matches with ops or nobody (' . scalar(@$want) . ')');
    is_deeply(walk('q=quartz+meadow&filter[label][in]=ops,nobody&filter[status]=done&limit=20'),
              $want, 'q=quartz meadow, two labels (in) and a status: every page, as the oracle');
}

# an offset page and its count
{
    my $want = list_oracle("t.labels @> '{security}'", $W, 't.due_at ASC NULLS LAST, t.id ASC');
    my $r = get('q=quartz+meadow&filter[label]=security&sort=due_at&page=3&per_page=20');
    is($r->{status}, 200, 'an offset page of rare words and a label');
    is($r->{headers}{'x-total-count'}, scalar @$want, 'X-Total-Count: every match');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[40 .. 59] ], 'offset page 3');
}

# words common among the newest, ranked, with filters that pass 10% of the
# tasks or more (priority 4: 20%, security: 11%): the month path, the
# filters tested on each month's matches
{
    my $months0 = index_scans($t, 'tasks_search_months_idx');
    for my $c (
        [ 'q=quartz+filler&filter[priority]=4&limit=50', 't.priority = 4' ],
        [ 'q=quartz+filler&filter[label]=security&limit=50', "t.labels @> '{security}'" ],
        [ 'q=quartz+filler&filter[priority]=4&filter[label][ne]=security&limit=50',
          "t.priority = 4 AND NOT t.labels @> '{security}'" ],
    ) {
        my ($q, $where) = @$c;
        my $want = rank_oracle($where, 'quartz filler');
        is(scalar @$want, 200, "$q: 200 candidates");
        is_deeply(walk($q), $want, "$q: ranked, every page");
    }
    ok(index_read_since($t, 'tasks_search_months_idx', $months0), '... from tasks_search_months_idx');

    # sorted: the sort's probe reads the ids with priority 4 first, then
    # their rows; every page as the oracle
    my $want = list_oracle('t.priority = 4', 'quartz filler', 't.updated_at DESC, t.id DESC');
    is(scalar @$want, 500, 'q=quartz filler&filter[priority]=4: 500 matches');
    is_deeply(walk('q=quartz+filler&filter[priority]=4&sort=-updated_at&limit=100'), $want,
              '... by -updated_at, every page');
}

# the same words with a rare label (50 tasks, 0.2%): (0022) the facet way,
# one condition of tasks_facets_idx for the words and the label (not the
# month path nor the time-ordered one)
{
    my $want = rank_oracle("t.labels @> '{rare}'", 'quartz filler');
    is(scalar @$want, 50, 'q=quartz filler&filter[label]=rare: 50 matches');
    my $facets = index_scans($t, 'tasks_facets_idx');
    is_deeply(walk('q=quartz+filler&filter[label]=rare&limit=20'), $want, '... ranked, every page');
    ok(index_read_since($t, 'tasks_facets_idx', $facets), '... from tasks_facets_idx');
    # and a sort: the probes as before
    $want = list_oracle("t.labels @> '{rare}'", 'quartz filler', 't.title ASC, t.id ASC');
    is_deeply(walk('q=quartz+filler&filter[label]=rare&sort=title&limit=20'), $want,
              '... by title, every page');
}

# words absent from the newest 2000 tasks but in 20,000 before them: the
# planner expects many, so not the bitmap of every match: ranked, the month
# path, which stops at the 200 newest; by title, the probes as before
{
    my $want = rank_oracle('t.priority = 4', 'cobalt harbor');
    is(scalar @$want, 200, 'q=cobalt harbor&filter[priority]=4: 200 candidates');
    my $months0 = index_scans($t, 'tasks_search_months_idx');
    is_deeply(walk('q=cobalt+harbor&filter[priority]=4&limit=50'), $want, '... ranked, every page');
    ok(index_read_since($t, 'tasks_search_months_idx', $months0), '... from tasks_search_months_idx');
    my $r = get('q=cobalt+harbor&filter[priority]=4&sort=title&limit=50');
    my $titles = list_oracle('t.priority = 4', 'cobalt harbor', 't.title ASC, t.id ASC');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$titles[0 .. 49] ], '... by title: the first page');
}

# a write through the API: the new match is found with its label
{
    my $r = $t->request(POST => "/v1/workspaces/$ws/tasks", token => $u->{token},
                        body => { title => 'a late quartz in the meadow', labels => ['security'],
                                  priority => 4 });
    is($r->{status}, 201, 'a labelled task with both words is created');
    my $id = $r->{json}{id};
    my $want = rank_oracle("t.labels @> '{security}' AND t.priority = 4", $W);
    ok((grep { $_ eq $id } @$want), 'the oracle has it');
    is_deeply(walk('q=quartz+meadow&filter[label]=security&filter[priority]=4&limit=25'), $want,
              'the search has it too');
}

$t->done;
