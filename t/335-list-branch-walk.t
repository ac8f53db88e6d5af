# A split sort's branches of common words read in their order, and the count
# of common words through one filter's B-tree index (sql/0028).
#
# - A branch of a split sort whose filtered tasks the planner expects to be
#   at most 60,000, of which at most 15,000 are read for its page (its
#   offset left plus the rows wanted over the share that match), tests the
#   words and labels on each task read in the branch's order: no GIN bitmap
#   of the words or of a label list.
# - X-Total-Count of common words with a status, a priority, a project or
#   an assignee whose tasks hold the count's 1,001 matches in at most 15,000
#   expected: that filter's index read, the words tested on each, no
#   sequential scan of the table.
# Every page is compared with an SQL oracle, and the reads are checked.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user);
use Taskmgr::List qw(list_walk offset_pages list_oracle reads_tracker capped_pages);

my $t = Taskmgr::Test->new(name => 'list_branch_walk');
$t->start(http_config => 'taskmgr_task_purge_after 0;');

my $u   = setup_user($t);
my $ws  = $u->{ws};
my $uid = $u->{user_id};

# 30,000 tasks: "kilo" in 1 title of 11 (a common word: 9% of the tasks),
# "lima" in 1 of 49 (2%), "quartz" in all; the label perf on 9 tasks of 13, infra on 1 of 13; each
# status (i % 4) and priority ((i / 7) % 5); every 23rd soft-deleted
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, status, priority, labels, created_by, created_at, updated_at,
                      deleted_at)
SELECT $1::uuid,
       ('00000000-0000-7000-b335-' || lpad(to_hex(i), 12, '0'))::uuid,
       'quartz ' || CASE WHEN i % 11 = 0 THEN 'kilo ' ELSE '' END
       || CASE WHEN i % 49 = 3 THEN 'lima ' ELSE '' END || (i % 977),
       (ARRAY['todo', 'in_progress', 'done', 'archived'])[i % 4 + 1],
       (i / 7) % 5,
       CASE WHEN i % 13 < 9 THEN '{perf}'::text[] WHEN i % 13 = 9 THEN '{infra}'::text[] ELSE '{}' END,
       $2::uuid,
       '2026-01-01 00:00:00+00'::timestamptz + i * interval '10 minutes',
       '2026-01-01 00:00:00+00'::timestamptz + i * interval '10 minutes' + (i % 7) * interval '1 minute',
       CASE WHEN i % 23 = 0 THEN '2026-11-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 30000) i}, $ws, $uid);
$t->psql('VACUUM ANALYZE tm.tasks');

# the planner's expectations, as task_find asks them
my $live = $t->psql(q{SELECT count(*) FROM tm.tasks WHERE workspace_id = $1 AND deleted_at IS NULL}, $ws);
sub expected { Taskmgr::List::live_expected($t, $ws, @_) }
my $MATCH = q{ AND t.search @@ websearch_to_tsquery('english', $3)};

# the reads of one request ([status, rows, {index or "seq" => scans}],
# Taskmgr::List::reads_tracker); these checks run last, one after the other
# (@later), after every other request
my @IDX = qw(tasks_search_idx tasks_labels_idx tasks_facets_idx);
my ($tracker, @later);
sub reads { return $tracker->(@_) }

cmp_ok(expected($MATCH, undef, $_), '>', $live / 100, "$_: in more than 1% of the tasks expected") for qw(kilo lima);

###########################################################################
# a split sort's branch read in its order: two labels by status, the page
# in the branch of archived tasks (more than 3,000 filtered tasks, 0027's
# bound, and few enough read for the page)

my $LABELS = q{ AND t.labels && string_to_array($2[1], ',')};
{
    my $b = expected(qq{$LABELS AND t.status = 'archived'}, '{"perf,infra"}', 'lima');
    my $m = expected(qq{$LABELS AND t.status = 'archived'$MATCH}, '{"perf,infra"}', 'lima');
    cmp_ok($b, '>', 3000, "perf or infra, archived: more than 3,000 tasks expected ($b)");
    cmp_ok($b, '<=', 60000, '... at most 60,000');
    cmp_ok(151 * $b / $m, '<=', 15000, "... at most 15,000 read for offset page 3 ($m of them lima)");

    my $q = 'q=lima&filter[label][in]=perf,infra&sort=status';
    my $want = list_oracle($t, $ws, q{t.labels && '{perf,infra}'}, 'lima', 't.status ASC, t.id ASC');
    cmp_ok(scalar @$want, '>', 151, "$q: more than 151 matches (" . scalar(@$want) . ')');
    offset_pages($t, $ws, $u->{token}, $q, $want, 50);
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=50"), $want, "$q: every page through the cursors");
    push @later, sub {
        for my $p ("$q&page=3&per_page=50", "$q&limit=50") {
            my ($status, $rows, $d) = @{ reads($p) };
            is("$status $rows", '200 50', "$p: 50 rows");
            is($d->{tasks_search_idx}, 0, "... the word's GIN index unread");
            is($d->{tasks_labels_idx}, 0, "... the labels' GIN index unread");
        }
    };
}

###########################################################################
# X-Total-Count through a status's or a priority list's index: the word
# tested on each task, no sequential scan (which index the page's rows come
# from is the planner's choice)

for my $c ([ 'filter[status]=in_progress&sort=title', q{t.status = 'in_progress'},
             q{ AND t.status = ($2[1])::text}, '{in_progress}', 't.title ASC, t.id ASC' ],
           [ 'filter[priority][in]=0,4&sort=-updated_at', 't.priority IN (0, 4)',
             q{ AND t.priority = ANY (string_to_array($2[1], ',')::smallint[])}, '{"0,4"}',
             't.updated_at DESC, t.id DESC' ]) {
    my ($filter, $where, $cond, $args, $order) = @$c;
    my $f = expected($cond, $args, undef);
    my $m = expected("$cond$MATCH", $args, 'kilo');
    cmp_ok(1001 * $f / $m, '<=', 15000, "$filter: at most 15,000 tasks expected to hold 1,001 kilo ($f, $m)");

    my $q = "q=kilo&$filter";
    my $want = list_oracle($t, $ws, $where, 'kilo', $order);
    if (@$want > 1000) {
        capped_pages($t, $ws, $u->{token}, $q, $want, 1, 3, 20);
    } else {
        offset_pages($t, $ws, $u->{token}, $q, $want, 100);
    }
    push @later, sub {
        my ($status, $rows, $d) = @{ reads("$q&page=3&per_page=50") };
        is("$status $rows", '200 50', "$q, page 3: 50 rows");
        is($d->{seq}, 0, '... no sequential scan of the tasks (the count)');
    };
}

# a filter without a B-tree index of its own (a label list): the count as
# before, rows and count as the oracle
{
    my $q = 'q=kilo&filter[label][in]=perf,infra&sort=title';
    my $want = list_oracle($t, $ws, q{t.labels && '{perf,infra}'}, 'kilo', 't.title ASC, t.id ASC');
    capped_pages($t, $ws, $u->{token}, $q, $want, 1, 3);
}

# the reads, one request after the other
$tracker = reads_tracker($t, $ws, $u->{token}, @IDX);
$_->() for @later;

unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/, 'no alerts in the error log');

$t->done;
