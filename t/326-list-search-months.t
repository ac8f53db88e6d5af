# A ranked search of several words through tasks_search_months_idx (sql/0020):
# where the newest tasks hold few matches (or with a status filter), the 200
# newest matches are read month by month from keys of the workspace, the
# month and each lexeme or the status; older matches than the months read
# come from the words' GIN index.  Every list is compared row for row with
# an SQL oracle (the 200 newest matches by (created_at, id), ranked).  And
# the filter probe of a project's tasks in an order of its indexes reads
# that project's tasks (0020 too).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user);
use Taskmgr::List qw(list_walk psql_ids index_scans index_read_since);

my $t = Taskmgr::Test->new(name => 'list_search_months');
$t->start(http_config => 'taskmgr_task_purge_after 0;');

my $u  = setup_user($t);
my $ws = $u->{ws};
my $ws8 = substr($ws, 0, 8);

# Matches of "quartz meadow": 8 a month from 2024-01 to 2026-11, one on the
# first millisecond of its month and one on the last, two on one instant;
# every third archived, every 17th soft-deleted; 5 more in 2018 (archived),
# older than any month the search reads.  Noise: 40 tasks a month with one
# of the words.  The newest 2500 tasks (2026-12) have "quartz" only, so the
# newest 2000 hold no match.
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, description, status, priority,
                      created_by, created_at, deleted_at)
SELECT $1::uuid,
       ('00000000-0000-7000-a000-' || lpad(to_hex(m * 8 + k), 12, '0'))::uuid,
       CASE WHEN k % 4 = 0 THEN 'quartz quartz meadow ' ELSE 'quartz meadow ' END || m || '.' || k,
       CASE WHEN k % 3 = 0 THEN 'meadow again' ELSE 'plain' END,
       CASE WHEN (m * 8 + k) % 3 = 0 THEN 'archived' WHEN k % 2 = 0 THEN 'todo' ELSE 'done' END,
       (m + k) % 5,
       $2::uuid,
       CASE k WHEN 0 THEN s.at
              WHEN 1 THEN s.at + interval '1 month' - interval '1 millisecond'
              WHEN 2 THEN s.at + interval '10 days'
              WHEN 3 THEN s.at + interval '10 days'
              ELSE s.at + k * interval '3 days' + k * interval '1 hour' END,
       CASE WHEN (m * 8 + k) % 17 = 0 THEN '2026-01-01 00:00:00+00'::timestamptz END
  FROM generate_series(0, 34) m,
       LATERAL (SELECT '2024-01-01 00:00:00+00'::timestamptz + m * interval '1 month' AS at) s,
       generate_series(0, 7) k}, $ws, $u->{user_id});
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, status, created_by, created_at)
SELECT $1::uuid, ('00000000-0000-7000-a001-' || lpad(to_hex(i), 12, '0'))::uuid,
       'quartz meadow of 2018 ' || i, 'archived', $2::uuid,
       '2018-06-01 00:00:00+00'::timestamptz + i * interval '1 day'
  FROM generate_series(1, 5) i}, $ws, $u->{user_id});
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, status, created_by, created_at)
SELECT $1::uuid, ('00000000-0000-7000-a002-' || lpad(to_hex(m * 40 + j), 12, '0'))::uuid,
       CASE WHEN j % 2 = 0 THEN 'quartz pebble ' ELSE 'meadow brook ' END || j, 'archived', $2::uuid,
       '2024-01-01 00:00:00+00'::timestamptz + m * interval '1 month' + j * interval '13 hours'
  FROM generate_series(0, 34) m, generate_series(0, 39) j}, $ws, $u->{user_id});
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, created_by, created_at)
SELECT $1::uuid, ('00000000-0000-7000-a003-' || lpad(to_hex(i), 12, '0'))::uuid,
       'quartz filler ' || i, $2::uuid,
       '2026-12-01 00:00:00+00'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 2500) i}, $ws, $u->{user_id});

# Another workspace whose id starts with the same 8 hex digits (its keys are
# this workspace's): its matches are newer than all of ours
my $clash = "$ws8-1111-7111-8111-111111111111";
$t->psql(q{INSERT INTO tm.workspaces (id, name, created_by) VALUES ($1, 'clash', $2)},
         $clash, $u->{user_id});
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, status, created_by, created_at)
SELECT $1::uuid, ('00000000-0000-7000-a004-' || lpad(to_hex(i), 12, '0'))::uuid,
       'quartz meadow elsewhere ' || i, 'archived', $2::uuid,
       '2026-11-15 00:00:00+00'::timestamptz + i * interval '1 hour'
  FROM generate_series(1, 50) i}, $clash, $u->{user_id});

# A project of 3000 tasks, 40% to do, updated before every task above (whose
# updated_at is the time of their insert): the first 500 tasks by
# -updated_at hold none of it
my $project = '00000000-0000-7000-a005-000000000001';
$t->psql(q{INSERT INTO tm.projects (workspace_id, id, name, created_by) VALUES ($1, $2, 'chores', $3)},
         $ws, $project, $u->{user_id});
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, project_id, title, status, created_by, created_at, updated_at)
SELECT $1::uuid, ('00000000-0000-7000-a006-' || lpad(to_hex(i), 12, '0'))::uuid, $2::uuid,
       'chore ' || i, CASE WHEN i % 5 < 2 THEN 'todo' ELSE 'done' END, $3::uuid,
       '2025-06-01 00:00:00+00'::timestamptz + i * interval '1 hour',
       '2026-11-01 00:00:00+00'::timestamptz + i * interval '1 minute'
  FROM generate_series(1, 3000) i}, $ws, $project, $u->{user_id});

# the rows came in bulk, behind autovacuum's back: the planner needs their
# statistics as a live table has them (without any, it reads the tenant's
# tasks through another index and computes each one's keys)
$t->psql('ANALYZE tm.tasks');

sub get {
    my ($q) = @_;
    return $t->request(GET => "/v1/workspaces/$ws/tasks?$q", token => $u->{token});
}

sub oracle {
    my ($sql) = @_;
    return psql_ids($t, $sql, $ws);
}

# the 200 newest live tasks of $where, ranked for $q (Taskmgr::List)
sub rank_oracle { Taskmgr::List::rank_oracle($t, $ws, @_) }

# every page, following next_cursor
sub walk {
    my ($q) = @_;
    return list_walk($t, $ws, $u->{token}, $q, 50);
}

sub scans { index_scans($t, $_[0]) }
sub read_since { index_read_since($t, @_) }

###########################################################################
# the keys: UTC months whatever the session's time zone

{
    my $keys = $t->psql(q{SET TimeZone = 'Pacific/Kiritimati';
        SELECT array_to_string(tm.search_months($1, '2026-10-31 23:59:59.999+00',
                                                to_tsvector('english', 'Quartz'), 'todo'), ' ')
               || ' | ' ||
               array_to_string(tm.search_months($1, '2026-11-01 00:00:00+00',
                                                to_tsvector('english', 'Meadows'), 'done'), ' ')}, $ws);
    is($keys, "${ws8}202610=todo ${ws8}202610:quartz | ${ws8}202611=done ${ws8}202611:meadow",
       'a task is keyed by the UTC month it was created in, its lexemes and its status');
}

###########################################################################
# two words, no filter: the newest 2000 hold none, the months answer

my $words = 'quartz meadow';
{
    my $before = scans('tasks_search_months_idx');
    my $want = rank_oracle('true', $words);
    is(scalar @$want, 200, 'the oracle ranks 200 (of ' . (280 - 16 + 5) . ' live matches)');
    is_deeply(walk('q=quartz+meadow&limit=50'), $want,
              'q=quartz meadow: the 200 newest matches, ranked, every page');
    ok(read_since('tasks_search_months_idx', $before), '... read from tasks_search_months_idx');
    my $r = get('q=quartz+meadow&page=1&per_page=10');
    is($r->{headers}{'x-total-count'}, 200, 'X-Total-Count: the 200 candidates');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[0 .. 9] ], 'offset page 1');
    $r = get('q=quartz+meadow&page=20&per_page=10');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[190 .. 199] ], 'offset page 20: the last');
    ok(!(grep { /^00000000-0000-7000-a004-/ } @$want), 'the other workspace (same key prefix) is not among them');

    # the month edges and the tie are among the candidates
    my %in = map { $_ => 1 } @$want;
    my $m = 33;    # 2026-10
    ok($in{ sprintf('00000000-0000-7000-a000-%012x', $m * 8 + $_) }, "2026-10's task $_ is a candidate")
        for 0 .. 3;
}

###########################################################################
# words common among the newest tasks and a status: the status is in the
# keys; the 2026-12 month holds the 200 newest

{
    my $before = scans('tasks_search_months_idx');
    my $want = rank_oracle("t.status = 'todo'", 'quartz filler');
    is(scalar @$want, 200, 'the newest 2500 tasks match "quartz filler", to do');
    is_deeply(walk('q=quartz+filler&filter[status]=todo&limit=50'), $want,
              'q=quartz filler&filter[status]=todo: the 200 newest, ranked');
    ok(read_since('tasks_search_months_idx', $before), '... read from tasks_search_months_idx');
    # rare words and a status in under 10% of the tasks (none here): the
    # month path's way (0022), where the planner may read the status's
    # btree instead of the months' keys (it expects one row)
    is_deeply(walk('q=quartz+meadow&filter[status]=in_progress&limit=50'), [],
              'q=quartz meadow&filter[status]=in_progress: none');
}

###########################################################################
# rare words and a status (none among the newest 2000, few in all): since
# 0022 the words' GIN index, the status tested on each match, not every
# month of tasks_search_months_idx; fewer than 200 archived matches, the
# five of 2018 among them (a backend reports its statistics when idle for
# up to 10 s)

{
    sleep 11;
    my $before = scans('tasks_search_months_idx');
    my $want = rank_oracle("t.status = 'archived'", $words);
    cmp_ok(scalar @$want, '<', 200, 'fewer than 200 archived matches (' . scalar(@$want) . ')');
    ok((grep { /^00000000-0000-7000-a001-/ } @$want) == 5, 'the five of 2018 among them');
    is_deeply(walk('q=quartz+meadow&filter[status]=archived&limit=40'), $want,
              'q=quartz meadow&filter[status]=archived: every match, ranked');

    $want = rank_oracle("t.status = 'todo' AND t.priority >= 2", $words);
    cmp_ok(scalar @$want, '>', 20, 'todo matches of priority >= 2 (' . scalar(@$want) . ')');
    is_deeply(walk('q=quartz+meadow&filter[status]=todo&filter[priority][gte]=2&limit=25'), $want,
              'q=quartz meadow, status=todo and priority >= 2: the same with a second filter');

    $want = rank_oracle("t.status = 'done'", 'meadow quartz again');
    is_deeply(walk('q=meadow+quartz+again&filter[status]=done&limit=50'), $want,
              'three words (one only in descriptions) and status=done');
    sleep 11;
    is(scans('tasks_search_months_idx') - $before, 0, '... none of the three read tasks_search_months_idx');
}

###########################################################################
# words dense among the newest: tasks_search_recent_idx as before

{
    my $before = scans('tasks_search_recent_idx');
    my $want = rank_oracle('true', 'quartz filler');
    is(scalar @$want, 200, '2500 newest tasks match "quartz filler"');
    is_deeply(walk('q=quartz+filler&limit=50'), $want, 'q=quartz filler: the 200 newest, ranked');
    ok(read_since('tasks_search_recent_idx', $before), '... read from tasks_search_recent_idx');

    # no match at all, and a word that no task has
    is_deeply(walk('q=quartz+zeppelin&limit=50'), [], 'q=quartz zeppelin: none');
    is_deeply(walk('q=meadow+pebble&filter[status]=archived&limit=50'), [],
              'q=meadow pebble&filter[status]=archived: none (the words are never together)');
    my $many = join '+', 'quartz', 'meadow', map { "word$_" } 1 .. 18;
    is_deeply(walk("q=$many&limit=50"), [], 'twenty words (past the month path\'s 16): none, no error');
}

###########################################################################
# the filter probe of a project's tasks by -updated_at reads the project's
# first 500 (0020): its index answers, not a bitmap of all its tasks

{
    my $before = scans('tasks_project_updated_idx');
    my $want = oracle(qq{SELECT id FROM tm.tasks t WHERE t.workspace_id = \$1 AND t.deleted_at IS NULL
                           AND t.project_id = '$project' AND t.status = 'todo'
                         ORDER BY t.updated_at DESC, t.id DESC});
    is(scalar @$want, 1200, "the project's 1200 tasks to do");
    my $got = walk("filter[project_id]=$project&filter[status]=todo&sort=-updated_at&limit=200");
    is_deeply($got, $want, "filter[project_id] + filter[status]=todo by -updated_at: every page");
    ok(read_since('tasks_project_updated_idx', $before), '... read from tasks_project_updated_idx');

    # the probe reads the project's first 500 by -updated_at, where 0018's
    # read the first 500 of all tasks (tasks_updated_idx), found none of the
    # project's and sent the page to a bitmap of all its tasks
    my $read = sub {
        $t->psql(q{SELECT idx_tup_read FROM pg_stat_user_indexes
                    WHERE schemaname = 'tm' AND indexrelname = $1}, $_[0]);
    };
    # a backend reports its statistics at the end of a transaction at most
    # once a second, else after 10 s idle: wait out the walk's, then this
    # page's
    sleep 11;
    my $u0 = $read->('tasks_updated_idx');
    is(get("filter[project_id]=$project&filter[status]=todo&sort=-updated_at&limit=49")->{status}, 200,
       'a first page of 49');
    sleep 11;
    is($read->('tasks_updated_idx') - $u0, 0, 'it read no entry of all tasks by -updated_at');

    my $r = get("filter[project_id]=$project&filter[status]=todo&sort=-updated_at&page=3&per_page=50");
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[100 .. 149] ], 'offset page 3');
    is($r->{headers}{'x-total-count'}, 1200, 'X-Total-Count 1200');
}

###########################################################################
# writes through the API: a new match is the newest candidate, a status
# change moves a task between the status's keys

{
    my $r = $t->request(POST => "/v1/workspaces/$ws/tasks", token => $u->{token},
                        body => { title => 'a fresh quartz in the meadow' });
    is($r->{status}, 201, 'a task with both words is created');
    my $fresh = $r->{json}{id};
    my $want = rank_oracle('true', $words);
    ok((grep { $_ eq $fresh } @$want), 'the oracle has it among the newest');
    is_deeply(walk('q=quartz+meadow&limit=45'), $want, 'the search has it too');

    my $id = sprintf('00000000-0000-7000-a000-%012x', 34 * 8 + 2);    # 2026-11, todo
    is($t->psql('SELECT status FROM tm.tasks WHERE id = $1', $id), 'todo', 'a todo match of 2026-11');
    $r = $t->request(PATCH => "/v1/workspaces/$ws/tasks/$id", token => $u->{token},
                     body => { status => 'archived' });
    is($r->{status}, 200, 'archived through the API');
    $want = rank_oracle("t.status = 'archived'", $words);
    ok((grep { $_ eq $id } @$want), 'the oracle has it among the archived');
    is_deeply(walk('q=quartz+meadow&filter[status]=archived&limit=35'), $want,
              'the status filter finds it under its new status');
    ok(!(grep { $_ eq $id } @{ walk('q=quartz+meadow&filter[status]=todo&limit=35') }),
       '... and no longer under the old one');
}

$t->done;
