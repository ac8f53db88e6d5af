# Plain words with a label list (filter[label][in]) through the facet keys
# (sql/0026).
#
# tasks_facets_idx has a key for each label of a task: a label list is one
# "@>" of the words' keys (and the other "eq" filters') and one "&&" of its
# labels' keys (up to 4 labels; sql/0028: 0026 ORed one "@>" a label, a scan
# of the index each).  The count of an offset page (X-Total-Count)
# of plain words with facet filters reads those keys instead of ANDing the
# words' and the labels' bitmaps where the planner expects at most 20,000
# candidates of them, and a split sort's branch of that page reads them too
# where it expects at most 2,000 (a priority's branch with that priority's
# key).  Every offset page is compared with an SQL
# oracle (rows, X-Total-Count, the Link to the next), every keyset walk too,
# and the indexes each page reads are checked.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user);
use Taskmgr::List qw(list_walk offset_pages list_oracle index_scans);

my $t = Taskmgr::Test->new(name => 'list_label_lists');
$t->start(http_config => 'taskmgr_task_purge_after 0;');

my $u   = setup_user($t);
my $ws  = $u->{ws};
my $uid = $u->{user_id};

# 20,000 tasks: "oscar" in a third of the titles (i % 3 = 0), "papa" in a
# fifth (i % 5 = 0); the label perf (i % 13 in 0, 2), infra (i % 13 in 1,
# 2), ux (i % 13 = 3): perf or infra on 3 tasks of 13; each status and
# priority; due on 800 days (none for i % 7 = 0); every 23rd soft-deleted
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, status, priority, labels, due_at, created_by, created_at,
                      updated_at, deleted_at)
SELECT $1::uuid,
       ('00000000-0000-7000-b333-' || lpad(to_hex(i), 12, '0'))::uuid,
       'quartz '
       || CASE WHEN i % 3 = 0 THEN 'oscar ' ELSE '' END
       || CASE WHEN i % 5 = 0 THEN 'papa ' ELSE '' END || (i % 977),
       (ARRAY['todo', 'in_progress', 'done', 'archived'])[i % 4 + 1],
       (i / 7) % 5,
       CASE i % 13 WHEN 0 THEN '{perf}'::text[] WHEN 1 THEN '{infra}'::text[]
                   WHEN 2 THEN '{perf,infra}'::text[] WHEN 3 THEN '{ux}'::text[] ELSE '{}' END,
       CASE WHEN i % 7 <> 0 THEN '2027-01-01 00:00:00+00'::timestamptz + (i % 800) * interval '1 day' END,
       $2::uuid,
       '2026-01-01 00:00:00+00'::timestamptz + i * interval '20 minutes',
       '2026-01-01 00:00:00+00'::timestamptz + i * interval '20 minutes' + (i % 7) * interval '1 minute',
       CASE WHEN i % 23 = 0 THEN '2026-11-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 20000) i}, $ws, $uid);
$t->psql('VACUUM ANALYZE tm.tasks');

sub get {
    my ($q) = @_;
    return $t->request(GET => "/v1/workspaces/$ws/tasks?$q", token => $u->{token});
}

my $LIVE = 't.deleted_at IS NULL';

# every live task of the workspace with the words and $where, in $order
sub oracle { list_oracle($t, $ws, $_[1], $_[0], $_[2]) }

# the planner's expectations, as task_find asks them: the matches more than
# 1% of the live tasks (no one pass of few candidates: a count of its own),
# a priority's at most 2,000 (its branch through the keys)
my $live = $t->psql(q{SELECT count(*) FROM tm.tasks WHERE workspace_id = $1 AND deleted_at IS NULL}, $ws);
sub expected { Taskmgr::List::live_expected($t, $ws, @_) }
my $LIST = q{ AND t.labels && string_to_array($2[1], ',')};
my $MATCH = q{ AND t.search @@ websearch_to_tsquery('english', $3)};
{
    my $m = expected("$LIST$MATCH", '{"perf,infra"}', 'oscar papa');
    cmp_ok($m, '>', $live / 100, "label in (perf,infra) with oscar papa: expected in more than 1% ($m)");
    my $p = expected("$LIST$MATCH AND t.priority = 4", '{"perf,infra"}', 'oscar papa');
    cmp_ok($p, '<=', 2000, "... with priority=4: at most 2,000 ($p)");
}

my $IN = "(t.labels && '{perf,infra}')";
my @cases = (
    [ 'q=oscar+papa&filter[label][in]=perf,infra&sort=title', 'oscar papa', $IN, 't.title ASC, t.id ASC', 40 ],
    [ 'q=oscar+papa&filter[label][in]=perf,infra&sort=-priority', 'oscar papa', $IN,
      't.priority DESC, t.id DESC', 40 ],
    [ 'q=oscar+papa&filter[label][in]=perf,infra&sort=status', 'oscar papa', $IN, 't.status ASC, t.id ASC', 40 ],
    [ 'q=oscar+papa&filter[label][in]=perf,infra&sort=-priority,due_at', 'oscar papa', $IN,
      't.priority DESC, t.due_at ASC NULLS LAST, t.id ASC', 40 ],
    # with an "eq" filter: its key in each arm
    [ 'q=oscar&filter[label][in]=perf,ux&filter[priority]=3&sort=-created_at', 'oscar',
      "(t.labels && '{perf,ux}') AND t.priority = 3", 't.created_at DESC, t.id DESC', 30 ],
    # one label in the list: one "@>"
    [ 'q=oscar+papa&filter[label][in]=infra&sort=-priority', 'oscar papa', "(t.labels && '{infra}')",
      't.priority DESC, t.id DESC', 30 ],
    # five labels: more than the keys take (the labels tested on each)
    [ 'q=oscar+papa&filter[label][in]=perf,infra,ux,a,b&sort=-priority', 'oscar papa',
      "(t.labels && '{perf,infra,ux,a,b}')", 't.priority DESC, t.id DESC', 40 ],
);
for my $c (@cases) {
    my ($q, $words, $where, $order, $per) = @$c;
    my $want = oracle($words, $where, $order);
    cmp_ok(scalar @$want, '>=', 3 * $per, "$q: the oracle has matches (" . scalar(@$want) . ')');
    offset_pages($t, $ws, $u->{token}, $q, $want, $per);
    is_deeply(list_walk($t, $ws, $u->{token}, "$q&limit=" . int($per * 1.5 + 1), 200), $want,
              "$q: every page through the cursors, as the oracle");
}

# the count through the keys: an offset page reads tasks_facets_idx (0025
# read the words' bitmap here, or on the 1M bench ANDed it to the labels'),
# not the labels' index (0025 did not on this small tenant either), for a
# sort (its titles without the words first: the bitmaps' way, the words a
# condition each) and for a split sort's branches
for my $q ('q=oscar+papa&filter[label][in]=perf,infra&sort=title&page=2&per_page=35',
           'q=oscar+papa&filter[label][in]=perf,infra&sort=-priority&page=2&per_page=35') {
    sleep 11;
    my %before = map { $_ => index_scans($t, $_) } qw(tasks_facets_idx tasks_labels_idx);
    my $r = get($q);
    is($r->{status}, 200, "$q: 200");
    is(scalar @{ $r->{json}{data} }, 35, '... a page of 35');
    sleep 11;
    if ($q =~ /sort=title/) {
        # the count's one read (the page: the words' bitmaps)
        is(index_scans($t, 'tasks_facets_idx') - $before{tasks_facets_idx}, 1,
           '... tasks_facets_idx read once: the keys and any of the labels in one scan');
    } else {
        cmp_ok(index_scans($t, 'tasks_facets_idx'), '>', $before{tasks_facets_idx}, '... tasks_facets_idx read');
    }
    is(index_scans($t, 'tasks_labels_idx') - $before{tasks_labels_idx}, 0, '... tasks_labels_idx unread');
}

# a label list with a comma-free quote and a backslash in a label: its key
# spelled as the index's (no match, no error)
{
    my $r = get(q{q=oscar+papa&filter[label][in]=per%22f,in%5Cfra&sort=title&page=2&per_page=10});
    is($r->{status}, 200, 'a label list with a quote and a backslash: 200');
    is($r->{headers}{'x-total-count'}, 0, '... no match');
}

unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/, 'no alerts in the error log');

$t->done;
