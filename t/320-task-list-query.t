# The task listing query language: every filter operator on every field,
# every sort field in both directions, multi-field sorts with NULLs,
# deleted=include|only, q ranking and its combinations, offset pages with
# X-Total-Count, and a 400 naming the parameter for every bad input.
#
# The oracle of every list is an SQL query written here by hand against
# tm.tasks, run by psql: each API answer is walked page by page (keyset, 7
# a page) and must equal it exactly, row for row.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user);

my $t = Taskmgr::Test->new(name => 'list_query');
# the seed's soft-deleted tasks are older than the purge's 30 days: no purge
# here, or a slow run loses them after its first minute
$t->start(http_config => 'taskmgr_task_purge_after 0;');

my $u = setup_user($t);
my $other = setup_user($t);
my $ws = $u->{ws};
my ($ua, $ub) = ($u->{user_id}, $other->{user_id});
my $proj = $t->psql(q{INSERT INTO tm.projects (workspace_id, name, created_by)
                      VALUES ($1, 'P', $2) RETURNING id}, $ws, $ua);

# 60 tasks with ties, NULLs and a spread of every listed field; rows 1..3
# are parents of others; every 9th is soft-deleted.
$t->psql(q{
INSERT INTO tm.tasks (workspace_id, id, title, description, status, priority,
                      due_at, assignee_id, project_id, labels, created_by,
                      created_at, updated_at, completed_at, deleted_at)
SELECT $1::uuid,
       ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
       'title' || lpad(((i * 7) % 30)::text, 2, '0'),
       CASE i % 5 WHEN 0 THEN 'database migration plan'
                  WHEN 1 THEN 'migrate the database, then migrate the database again'
                  WHEN 2 THEN 'nothing to see'
                  WHEN 3 THEN 'ui polish'
                  ELSE '' END,
       (ARRAY['todo', 'in_progress', 'done', 'archived'])[i % 4 + 1],
       i % 5,
       CASE WHEN i % 3 = 0 THEN NULL
            ELSE '2026-01-01 00:00:00+00'::timestamptz + (i % 7) * interval '1 day' END,
       CASE i % 3 WHEN 0 THEN NULL WHEN 1 THEN $2::uuid ELSE $3::uuid END,
       CASE WHEN i % 4 = 0 THEN $4::uuid END,
       CASE i % 4 WHEN 0 THEN '{}'::text[] WHEN 1 THEN '{bug}' WHEN 2 THEN '{bug,ui}'
                  ELSE '{ops}' END,
       $2::uuid,
       '2026-02-01 00:00:00+00'::timestamptz + (i % 10) * interval '1 hour',
       '2026-03-01 00:00:00+00'::timestamptz + (i % 6) * interval '1 minute',
       CASE WHEN i % 4 = 2 THEN '2026-03-05 00:00:00+00'::timestamptz + (i % 3) * interval '1 day' END,
       CASE WHEN i % 9 = 0 THEN '2026-04-01 00:00:00+00'::timestamptz END
  FROM generate_series(1, 60) i},
    $ws, $ua, $ub, $proj);
$t->psql(q{UPDATE tm.tasks SET parent_id = ('00000000-0000-7000-8000-' || lpad(to_hex(1 + (x % 3)), 12, '0'))::uuid
             FROM generate_series(10, 60, 5) x
            WHERE workspace_id = $1
              AND id = ('00000000-0000-7000-8000-' || lpad(to_hex(x), 12, '0'))::uuid}, $ws);
my $p1 = '00000000-0000-7000-8000-000000000001';

sub get {
    my ($q, $user) = @_;
    return $t->request(GET => "/v1/workspaces/$ws/tasks?$q",
                       token => ($user // $u)->{token});
}

# every page of the list, following next_cursor; (ids, last response)
sub walk {
    my ($q) = @_;
    my (@ids, $cursor, $r);
    for my $page (1 .. 100) {
        $r = get($q . (defined $cursor ? "&cursor=$cursor" : ''));
        return (undef, $r) unless $r->{status} == 200;
        push @ids, map { $_->{id} } @{ $r->{json}{data} };
        $cursor = $r->{json}{next_cursor};
        last unless defined $cursor;
    }
    return (\@ids, $r);
}

sub oracle {
    my ($where, $order) = @_;
    my $out = $t->psql("SELECT id FROM tm.tasks t WHERE t.workspace_id = \$1 AND ($where) "
                       . "ORDER BY $order", $ws);
    return [ grep { length } split /\n/, $out ];
}

sub check {
    my ($q, $where, $order, $name, $limit) = @_;
    $name //= $q;
    my $want = oracle($where, $order);
    my ($got, $r) = walk('limit=' . ($limit // 7) . "&$q");
    if (!defined $got) {
        fail("$name: walk") ;
        diag("$r->{status} $r->{body}");
        return;
    }
    is_deeply($got, $want, "$name: " . scalar(@$want) . " rows in order");
}

my $LIVE = 't.deleted_at IS NULL';
my $DEF  = 't.created_at DESC, t.id DESC';

ok(scalar @{ oracle($LIVE, $DEF) } > 40, 'the data set is there');

# --- the default list, and sort on every field in both directions --------
check('', $LIVE, $DEF, 'no parameters');
check('sort=-created_at', $LIVE, $DEF);
for my $f (qw(created_at updated_at priority title status)) {
    check("sort=$f", $LIVE, "t.$f ASC, t.id ASC");
    check("sort=-$f", $LIVE, "t.$f DESC, t.id DESC");
}
# NULL is above every value: last ascending, first descending
check('sort=due_at', $LIVE, 't.due_at ASC NULLS LAST, t.id ASC');
check('sort=-due_at', $LIVE, 't.due_at DESC NULLS FIRST, t.id DESC');

# --- multi-field sorts: mixed directions, NULLs in the middle ------------
check('sort=-priority,due_at', $LIVE,
      't.priority DESC, t.due_at ASC NULLS LAST, t.id ASC');
check('sort=priority,-due_at', $LIVE,
      't.priority ASC, t.due_at DESC NULLS FIRST, t.id DESC');
check('sort=due_at,-title', $LIVE,
      't.due_at ASC NULLS LAST, t.title DESC, t.id DESC');
check('sort=-due_at,priority,title', $LIVE,
      't.due_at DESC NULLS FIRST, t.priority ASC, t.title ASC, t.id ASC');
check('sort=status,-priority,created_at', $LIVE,
      't.status ASC, t.priority DESC, t.created_at ASC, t.id ASC');
check('sort=title,created_at', $LIVE, 't.title ASC, t.created_at ASC, t.id ASC');
check('sort=-created_at,-updated_at,-due_at,-priority,-title,-status', $LIVE,
      't.created_at DESC, t.updated_at DESC, t.due_at DESC NULLS FIRST, '
      . 't.priority DESC, t.title DESC, t.status DESC, t.id DESC', 'all six sort fields');

# --- every operator on every field ---------------------------------------
my %val = (
    status => 'in_progress', priority => '2', assignee_id => $ua,
    project_id => $proj, parent_id => $p1,
    due_at => '2026-01-04T00:00:00Z', created_at => '2026-02-01T05:00:00.000Z',
    updated_at => '2026-03-01T00:03:00+00:00',
    completed_at => '2026-03-06T00:00:00Z',
);
my %sqlv = (
    status => "'in_progress'", priority => '2', assignee_id => "'$ua'::uuid",
    project_id => "'$proj'::uuid", parent_id => "'$p1'::uuid",
    due_at => "'2026-01-04 00:00:00+00'::timestamptz",
    created_at => "'2026-02-01 05:00:00+00'::timestamptz",
    updated_at => "'2026-03-01 00:03:00+00'::timestamptz",
    completed_at => "'2026-03-06 00:00:00+00'::timestamptz",
);
my %list = (
    status => ['todo,done', "'todo','done'"],
    priority => ['0,3,4', '0,3,4'],
    assignee_id => ["$ua,$ub", "'$ua'::uuid,'$ub'::uuid"],
    project_id => [$proj, "'$proj'::uuid"],
    parent_id => ["$p1,00000000-0000-7000-8000-000000000002",
                  "'$p1'::uuid,'00000000-0000-7000-8000-000000000002'::uuid"],
    due_at => ['2026-01-02T00:00:00Z,2026-01-03T00:00:00Z',
               "'2026-01-02 00:00:00+00'::timestamptz,'2026-01-03 00:00:00+00'::timestamptz"],
    created_at => ['2026-02-01T01:00:00Z,2026-02-01T02:00:00Z',
                   "'2026-02-01 01:00:00+00'::timestamptz,'2026-02-01 02:00:00+00'::timestamptz"],
    updated_at => ['2026-03-01T00:01:00Z', "'2026-03-01 00:01:00+00'::timestamptz"],
    completed_at => ['2026-03-05T00:00:00Z,2026-03-07T00:00:00Z',
                     "'2026-03-05 00:00:00+00'::timestamptz,'2026-03-07 00:00:00+00'::timestamptz"],
);
my %nullable = map { $_ => 1 } qw(assignee_id project_id parent_id due_at completed_at);
my %ordered = map { $_ => 1 } qw(priority assignee_id project_id parent_id due_at
                                 created_at updated_at completed_at);
my %cmp = (lt => '<', lte => '<=', gt => '>', gte => '>=');

for my $f (sort keys %val) {
    my ($v, $s) = ($val{$f}, $sqlv{$f});
    check("filter[$f]=$v", "$LIVE AND t.$f = $s", $DEF);
    check("filter[$f][eq]=$v", "$LIVE AND t.$f = $s", $DEF);
    check("filter[$f][ne]=$v", "$LIVE AND t.$f IS DISTINCT FROM $s", $DEF);
    if ($ordered{$f}) {
        for my $op (sort keys %cmp) {
            check("filter[$f][$op]=$v", "$LIVE AND t.$f $cmp{$op} $s", $DEF);
        }
    }
    my ($lv, $ls) = @{ $list{$f} };
    check("filter[$f][in]=$lv", "$LIVE AND t.$f IN ($ls)", $DEF);
    check("filter[$f][nin]=$lv", "$LIVE AND (t.$f IS NULL OR t.$f NOT IN ($ls))", $DEF);
    check("filter[$f][is]=null", "$LIVE AND t.$f IS NULL", $DEF);
    check("filter[$f][is]=notnull", "$LIVE AND t.$f IS NOT NULL", $DEF);
}

# label: membership in the array
check('filter[label]=ui', "$LIVE AND 'ui' = ANY (t.labels)", $DEF);
check('filter[label][eq]=bug', "$LIVE AND 'bug' = ANY (t.labels)", $DEF);
check('filter[label][ne]=bug', "$LIVE AND NOT ('bug' = ANY (t.labels))", $DEF);
check('filter[label][in]=ui,ops', "$LIVE AND t.labels && '{ui,ops}'", $DEF);
check('filter[label][nin]=ui,ops', "$LIVE AND NOT (t.labels && '{ui,ops}')", $DEF);
check('filter[label][is]=null', "$LIVE AND t.labels = '{}'", $DEF);
check('filter[label][is]=notnull', "$LIVE AND t.labels <> '{}'", $DEF);

# time values with an offset and fractions mean the same instant
check('filter[created_at][gte]=2026-02-01T07:30:00.5%2B02:00',
      "$LIVE AND t.created_at >= '2026-02-01 05:30:00.5+00'", $DEF, 'a time with +02:00');

# filters and sorts combine
check('filter[status][in]=todo,in_progress&filter[priority][gte]=1&filter[due_at][lt]=2026-01-06T00:00:00Z&sort=-priority,due_at',
      "$LIVE AND t.status IN ('todo','in_progress') AND t.priority >= 1 AND t.due_at < '2026-01-06 00:00:00+00'",
      't.priority DESC, t.due_at ASC NULLS LAST, t.id ASC', 'three filters and a sort');
check('filter[due_at][gte]=2026-01-02T00:00:00Z&filter[due_at][lte]=2026-01-05T00:00:00Z&sort=due_at',
      "$LIVE AND t.due_at BETWEEN '2026-01-02 00:00:00+00' AND '2026-01-05 00:00:00+00'",
      't.due_at ASC NULLS LAST, t.id ASC', 'a range on one field');
check('filter[label]=bug&filter[assignee_id][is]=notnull&sort=title',
      "$LIVE AND 'bug' = ANY (t.labels) AND t.assignee_id IS NOT NULL",
      't.title ASC, t.id ASC');

# a percent-encoded filter name is the same filter
check('filter%5Bstatus%5D%5Bne%5D=done', "$LIVE AND t.status <> 'done'", $DEF,
      'an encoded filter name');

# --- deleted --------------------------------------------------------------
check('deleted=include', 'true', $DEF);
check('deleted=only', 't.deleted_at IS NOT NULL', $DEF);
check('deleted=only&sort=title', 't.deleted_at IS NOT NULL', 't.title ASC, t.id ASC');
check('deleted=include&filter[status]=todo&sort=-due_at', "t.status = 'todo'",
      't.due_at DESC NULLS FIRST, t.id DESC');

# --- full-text search -----------------------------------------------------
my $RANK = "ts_rank(t.search, websearch_to_tsquery('english', 'database'))";
check('q=database', "$LIVE AND t.search @@ websearch_to_tsquery('english', 'database')",
      "$RANK DESC, t.id DESC", 'q ranked');
{
    my $r = get('q=database&limit=200');
    my @rows = @{ $r->{json}{data} };
    like($rows[0]{description}, qr/database.*database/,
         'q: the row that says it twice ranks first');
    like($rows[-1]{description}, qr/^database migration plan$/,
         'q: the row that says it once ranks last');
}
check('q=migrations', "$LIVE AND t.search @@ websearch_to_tsquery('english', 'migrations')",
      "ts_rank(t.search, websearch_to_tsquery('english', 'migrations')) DESC, t.id DESC",
      'q is stemmed: migrations finds migrate and migration');
check('q=title07', "$LIVE AND t.search @@ websearch_to_tsquery('english', 'title07')",
      "ts_rank(t.search, websearch_to_tsquery('english', 'title07')) DESC, t.id DESC",
      'q searches the title');
check('q=database+-plan', "$LIVE AND t.search @@ websearch_to_tsquery('english', 'database -plan')",
      "ts_rank(t.search, websearch_to_tsquery('english', 'database -plan')) DESC, t.id DESC",
      'q: web search syntax, + is a space');
check('q=database&sort=title', "$LIVE AND t.search @@ websearch_to_tsquery('english', 'database')",
      't.title ASC, t.id ASC', 'q with a sort: the sort decides');
check('q=database&filter[status]=todo&deleted=include',
      "t.status = 'todo' AND t.search @@ websearch_to_tsquery('english', 'database')",
      "$RANK DESC, t.id DESC", 'q with a filter and deleted');
check('q=zebra', "$LIVE AND t.search @@ websearch_to_tsquery('english', 'zebra')",
      't.id', 'q that matches nothing');

# --- offset pages ---------------------------------------------------------
{
    my $all = oracle("$LIVE AND t.status <> 'done'", 't.title ASC, t.id ASC');
    my @got;
    my $total;
    for my $page (1 .. 20) {
        my $r = get("filter[status][ne]=done&sort=title&page=$page&per_page=4");
        is($r->{status}, 200, "page $page: 200") or last;
        $total = $r->{headers}{'x-total-count'};
        is($r->{json}{next_cursor}, undef, "page $page: no cursor in page mode");
        push @got, map { $_->{id} } @{ $r->{json}{data} };
        if (!$r->{headers}{link}) {
            last;
        }
        is($r->{headers}{link},
           "</v1/workspaces/$ws/tasks?filter[status][ne]=done&sort=title&per_page=4&page="
           . ($page + 1) . '>; rel="next"', "page $page: Link to the next page");
    }
    is($total, scalar @$all, 'X-Total-Count counts every matching task');
    is_deeply(\@got, $all, 'pages 1.. hold every task once, in order');

    my $r = get('offset=3&limit=5&sort=title');
    my $want = oracle($LIVE, 't.title ASC, t.id ASC');
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ], [ @$want[3 .. 7] ],
              'offset=3&limit=5: rows 4 to 8');
    is($r->{headers}{'x-total-count'}, scalar @$want, 'offset: X-Total-Count');
    like($r->{headers}{link}, qr/\?limit=5&sort=title&offset=8>; rel="next"$/,
         'offset: Link carries the next offset');

    $r = get('page=100&per_page=50');
    is($r->{status}, 200, 'a page past the end: 200');
    is_deeply($r->{json}{data}, [], '... and empty');
    is($r->{headers}{'x-total-count'}, scalar @$want, '... with the total');
    ok(!exists $r->{headers}{link}, '... and no Link');

    $r = get('page=1&q=database');
    is($r->{headers}{'x-total-count'},
       scalar @{ oracle("$LIVE AND t.search @@ websearch_to_tsquery('english', 'database')", 't.id') },
       'page mode with q: the total of the search');

    $r = get('limit=5');
    ok(!exists $r->{headers}{'x-total-count'}, 'keyset pages have no X-Total-Count');
}

# --- the Link header keeps the query, encoding what would break it ----
{
    my $r = get('q="database"&limit=1');
    is($r->{status}, 200, 'a phrase in raw quotes: 200');
    like($r->{headers}{link} // '', qr{^</v1/workspaces/$ws/tasks\?q=%22database%22&limit=1&cursor=[A-Za-z0-9_-]+>; rel="next"$},
         'the Link header keeps q and limit and encodes the quotes');
}

# --- tenancy: another user sees none of it --------------------------------
{
    my $r = get('filter[status]=todo', $other);
    is($r->{status}, 404, 'a filter on a workspace of another tenant: 404');
    $r = get('page=1', $other);
    is($r->{status}, 404, 'offset mode on a workspace of another tenant: 404');
}

# --- a label or word on 1000 tasks and more: the planner chooses freely --
# (tm_api.task_find counts up to 1000 matches through the GIN index first;
# below that it reads them by bitmap and sorts, as every check above did)
$t->psql(q{INSERT INTO tm.tasks (workspace_id, title, labels, priority, created_by, created_at)
           SELECT $1, 'bulk' || i, '{bulk}', i % 5, $2,
                  '2026-05-01 00:00:00+00'::timestamptz + (i % 50) * interval '1 second'
             FROM generate_series(1, 1100) i}, $ws, $ua);
check('filter[label]=bulk&sort=-priority,created_at', "$LIVE AND 'bulk' = ANY (t.labels)",
      't.priority DESC, t.created_at ASC, t.id ASC', 'a label on 1100 tasks', 97);
check('q=bulk17&sort=title', "$LIVE AND t.search @@ websearch_to_tsquery('english', 'bulk17')",
      't.title ASC, t.id ASC', 'a word on one task among the 1100');
{
    my $r = get('filter[label][in]=bulk,ui&page=2&per_page=100&sort=title');
    is($r->{headers}{'x-total-count'},
       scalar @{ oracle("$LIVE AND t.labels && '{bulk,ui}'", 't.id') },
       'label in (bulk, ui): X-Total-Count');
}

# --- every bad input: 400 naming the parameter ----------------------------
my @bad = (
    [ 'colour=red', 'colour', 'unknown parameter' ],
    [ 'sort=', 'sort' ],
    [ 'sort=size', 'sort' ],
    [ 'sort=id', 'sort' ],
    [ 'sort=rank', 'sort' ],
    [ 'sort=title,-title', 'sort', 'names a field twice' ],
    [ 'sort=title,', 'sort' ],
    [ 'sort=+title', 'sort' ],
    [ 'sort=title&sort=status', 'sort', 'given twice' ],
    [ 'filter[colour]=red', 'filter[colour]' ],
    [ 'filter[status][like]=to', 'filter[status][like]' ],
    [ 'filter[status][lt]=done', 'filter[status][lt]' ],
    [ 'filter[label][gt]=a', 'filter[label][gt]' ],
    [ 'filter[status]', 'filter[status]' ],
    [ 'filter[status]=', 'filter[status]' ],
    [ 'filter[status]=doing', 'filter[status]' ],
    [ 'filter[priority]=5', 'filter[priority]' ],
    [ 'filter[priority]=-1', 'filter[priority]' ],
    [ 'filter[priority]=high', 'filter[priority]' ],
    [ 'filter[assignee_id]=me', 'filter[assignee_id]' ],
    [ 'filter[due_at][lt]=tomorrow', 'filter[due_at][lt]' ],
    [ 'filter[due_at][lt]=2026-02-30T00:00:00Z', 'filter[due_at][lt]' ],
    [ 'filter[due_at][lt]=2026-01-01', 'filter[due_at][lt]' ],
    [ 'filter[due_at][lt]=2026-01-01T00:00:00', 'filter[due_at][lt]' ],
    [ 'filter[due_at][lt]=2026-01-01T00:00:00.1234567Z', 'filter[due_at][lt]' ],
    [ 'filter[created_at][gt]=2026-01-01T24:00:00Z', 'filter[created_at][gt]' ],
    [ 'filter[due_at][is]=nil', 'filter[due_at][is]' ],
    [ 'filter[status][in]=todo,,done', 'filter[status][in]' ],
    [ 'filter[status][in]=todo,doing', 'filter[status][in]' ],
    [ 'filter[label]=' . ('x' x 65), 'filter[label]' ],
    [ 'filter[label]=a%01b', 'filter[label]' ],
    [ 'filter[priority][in]=' . join(',', (1) x 101), 'filter[priority][in]', 'lists at most 100 values' ],
    [ 'filter[status]=todo&filter[status][eq]=done', 'filter[status][eq]', 'given twice' ],
    [ 'filter[status]x=todo', 'filter[status]x' ],
    [ 'filter[status][eq]x=todo', 'filter[status][eq]x' ],
    [ 'filter[]=todo', 'filter[]' ],
    [ 'filter=todo', 'filter', 'unknown parameter' ],
    [ 'q=', 'q' ],
    [ 'q=' . ('a' x 257), 'q' ],
    [ 'q=a%00b', 'q' ],
    [ 'q=%ff%fe', 'q' ],
    [ 'q=a&q=b', 'q', 'given twice' ],
    [ 'deleted=all', 'deleted' ],
    [ 'deleted=', 'deleted' ],
    [ 'page=0', 'page' ],
    [ 'page=x', 'page' ],
    [ 'page=2002&per_page=50', 'page' ],
    [ 'per_page=0', 'per_page' ],
    [ 'per_page=201', 'per_page' ],
    [ 'per_page=5&limit=5', 'per_page' ],
    [ 'offset=-1', 'offset' ],
    [ 'offset=100001', 'offset' ],
    [ 'offset=1&page=1', 'offset' ],
    [ 'offset=1&per_page=5', 'per_page' ],
    [ 'page=1&cursor=abc', 'cursor' ],
    [ 'offset=0&cursor=abc', 'cursor' ],
    # a search's offset pages end at taskmgr_search_offset_max (1000) matches
    [ 'q=alpha&sort=title&page=21&per_page=50', 'page',
      'with q, offset pages end at the first 1000 matches: use the cursor' ],
    [ 'q=alpha&offset=951&limit=50', 'offset',
      'with q, offset pages end at the first 1000 matches: use the cursor' ],
    [ 'q=alpha&page=2&per_page=1000', 'per_page' ],
);
# ... up to there: the last page of the window, a page of one
for my $q ('q=alpha&sort=title&page=20&per_page=50', 'q=alpha&offset=999&limit=1', 'q=alpha&page=5&per_page=200') {
    my $r = get($q);
    is($r->{status}, 200, "$q: 200 (within the first 1000 matches)") or diag $r->{body};
    ok(defined $r->{headers}{'x-total-count'}, "$q: an offset page");
}
{
    # 17 distinct (field, operator) pairs
    my @many;
    @many = ((map { "filter[$_][is]=notnull" } qw(status priority assignee_id project_id
             parent_id due_at created_at updated_at completed_at label)),
             (map { "filter[$_][gte]=2026-01-01T00:00:00Z" } qw(due_at created_at updated_at completed_at)),
             (map { "filter[$_][lte]=2027-01-01T00:00:00Z" } qw(due_at created_at updated_at)));
    push @bad, [ join('&', @many), 'filter[updated_at][lte]',
                 'too many filters (at most 16)' ];
    my @sixteen = @many[0 .. 15];
    my $r = get(join('&', @sixteen));
    is($r->{status}, 200, '16 filters are allowed') or diag $r->{body};
}
for my $b (@bad) {
    my ($q, $field, $msg) = @$b;
    my $r = get($q);
    is($r->{status}, 400, "$q: 400") or diag $r->{body};
    is($r->{json}{code}, 'validation_failed', "$q: validation_failed");
    is($r->{json}{errors}[0]{field}, $field, "$q: names $field");
    is($r->{json}{errors}[0]{message}, $msg, "$q: says '$msg'") if defined $msg;
}

$t->done;
