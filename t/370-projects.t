# /v1/workspaces/{ws}/projects: create, get, list (keyset pages), PATCH
# with If-Match, DELETE (refused while live tasks use the project); roles;
# validation; another tenant's projects answer like missing ones; a task's
# project_id must be a project of its workspace; the 1000-project quota;
# Idempotency-Key; a project delete invalidates cached task reads.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task wait_until async_request);

my $t = Taskmgr::Test->new(name => 'projects');
$t->start(http_config => 'taskmgr_cache on; taskmgr_cache_ttl 30s;');

my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

sub uuid4 {
    my $h = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    substr($h, 12, 1) = '4';
    return join '-', unpack 'A8 A4 A4 A4 A12', $h;
}

sub req {
    my ($method, $path, $u, %o) = @_;
    return $t->request($method => $path, token => $u->{token}, %o);
}

sub problem {
    my ($r, $status, $code, $name) = @_;
    is($r->{status}, $status, "$name: $status") or diag $r->{body};
    like($r->{headers}{'content-type'} // '', qr{^application/problem\+json},
         "$name: problem+json");
    is($r->{json} && $r->{json}{code}, $code, "$name: code $code");
}

sub without_rid {
    my ($j) = @_;
    my %c = %{ $j // {} };
    delete $c{request_id};
    return \%c;
}

# alice owns the workspace; bob is a member, carol a viewer, dave an admin;
# eve is in no part of it.
my ($alice, $bob, $carol, $dave, $eve) = map { setup_user($t) } 1 .. 5;
my $ws = $alice->{ws};
for ([ $bob, 'member' ], [ $carol, 'viewer' ], [ $dave, 'admin' ]) {
    $t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role)
               VALUES ($1, $2, $3)}, $ws, $_->[0]{user_id}, $_->[1]);
}
my $base = "/v1/workspaces/$ws/projects";

# --- create, get -----------------------------------------------------------

my $c = req(POST => $base, $alice, body => { name => 'Apollo', description => 'to the moon' });
is($c->{status}, 201, 'create: 201') or diag $c->{body};
my $p = $c->{json};
like($p->{id}, $UUID, 'create: a UUIDv7 id');
is($c->{headers}{location}, "$base/$p->{id}", 'create: Location is the project');
is($c->{headers}{etag}, '"1"', 'create: ETag "1"');
is_deeply([ sort keys %$p ],
          [qw(created_at created_by description id name updated_at version workspace_id)],
          'project keys');
is($p->{workspace_id}, $ws, 'create: workspace_id');
is($p->{created_by}, $alice->{user_id}, 'create: created_by is the caller');
is($p->{name}, 'Apollo', 'create: name');
is($p->{description}, 'to the moon', 'create: description');
is($p->{version}, 1, 'create: version 1');
like($p->{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'create: created_at');

my $g = req(GET => $c->{headers}{location}, $alice);
is($g->{status}, 200, 'get: 200');
is_deeply($g->{json}, $p, 'get: the created representation');
is($g->{headers}{etag}, '"1"', 'get: ETag "1"');
like($g->{headers}{'cache-control'} // '', qr/^private\b/, 'get: Cache-Control private');
is(req(GET => "$base/$p->{id}", $alice, headers => { 'If-None-Match' => '"1"' })->{status},
   304, 'get: If-None-Match of its ETag: 304');
is(req(GET => "$base/$p->{id}", $alice, headers => { 'If-None-Match' => '"7"' })->{status},
   200, 'get: another If-None-Match: 200');
my $h = req(HEAD => "$base/$p->{id}", $alice);
is($h->{status}, 200, 'HEAD: 200');
is($h->{body}, '', 'HEAD: no body');

my $nodesc = req(POST => $base, $alice, body => { name => 'No description' });
is($nodesc->{status}, 201, 'create without description: 201');
is($nodesc->{json}{description}, '', '... description defaults to ""');
my $nulldesc = req(POST => $base, $alice, body => { name => 'Null description', description => undef });
is($nulldesc->{json}{description}, '', 'description null: ""');

# --- validation ------------------------------------------------------------

problem(req(POST => $base, $alice, body => {}), 422, 'validation_failed', 'no name');
problem(req(POST => $base, $alice, body => { name => '' }), 422, 'validation_failed', 'empty name');
problem(req(POST => $base, $alice, body => { name => undef }), 422, 'validation_failed', 'name null');
problem(req(POST => $base, $alice, body => { name => 5 }), 422, 'validation_failed', 'name a number');
my $long = req(POST => $base, $alice, body => { name => 'n' x 201 });
problem($long, 422, 'validation_failed', 'name of 201 characters');
is($long->{json}{errors}[0]{field}, 'name', '... names the field name');
is(req(POST => $base, $alice, body => { name => "\x{e9}" x 200 })->{status}, 201,
   'a name of 200 (non-ASCII) characters: 201');
my $ld = req(POST => $base, $alice, body => { name => 'x', description => 'd' x 10001 });
problem($ld, 422, 'validation_failed', 'description of 10001 characters');
is($ld->{json}{errors}[0]{field}, 'description', '... names the field description');
my $unk = req(POST => $base, $alice, body => { name => 'x', color => 'red' });
problem($unk, 400, 'validation_failed', 'unknown field');
is($unk->{json}{errors}[0]{field}, 'color', '... names the field color');
problem($t->request(POST => $base, token => $alice->{token}, body => '{"name":',
                    headers => { 'Content-Type' => 'application/json' }),
        400, 'validation_failed', 'broken JSON');
problem($t->request(POST => $base, token => $alice->{token}, body => 'name=x',
                    headers => { 'Content-Type' => 'application/x-www-form-urlencoded' }),
        415, 'unsupported_media_type', 'not JSON');
problem($t->request(GET => $base), 401, 'unauthorized', 'no token');
my $put = req(PUT => "$base/$p->{id}", $alice);
is($put->{status}, 405, 'PUT: 405');
is($put->{headers}{allow}, 'GET, HEAD, PATCH, DELETE', '... Allow lists the methods');
problem(req(GET => "$base/not-a-uuid", $alice), 404, 'not_found', 'a malformed id');
problem(req(GET => "$base/" . uuid4(), $alice), 404, 'not_found', 'a missing project');
problem(req(GET => "$base/$p->{id}?x=1", $alice), 400, 'validation_failed', 'a query parameter on get');

# --- PATCH and If-Match ----------------------------------------------------

my $u1 = req(PATCH => "$base/$p->{id}", $dave, body => { name => 'Apollo 11' });
is($u1->{status}, 200, 'patch by an admin: 200') or diag $u1->{body};
is($u1->{json}{name}, 'Apollo 11', 'patch: the new name');
is($u1->{json}{description}, 'to the moon', 'patch: description untouched (merge patch)');
is($u1->{json}{version}, 2, 'patch: version 2');
is($u1->{headers}{etag}, '"2"', 'patch: ETag "2"');

my $same = req(PATCH => "$base/$p->{id}", $alice, body => { name => 'Apollo 11' });
is($same->{json}{version}, 2, 'patch without a change: no new version');
is(req(PATCH => "$base/$p->{id}", $alice, body => {})->{json}{version}, 2,
   'empty patch: no new version');

problem(req(PATCH => "$base/$p->{id}", $alice, body => { name => 'stale' },
            headers => { 'If-Match' => '"1"' }),
        412, 'precondition_failed', 'If-Match of an old version');
problem(req(PATCH => "$base/$p->{id}", $alice, body => { name => 'weak' },
            headers => { 'If-Match' => 'W/"2"' }),
        412, 'precondition_failed', 'a weak If-Match never matches');
problem(req(PATCH => "$base/$p->{id}", $alice, body => { name => 'junk' },
            headers => { 'If-Match' => 'junk' }),
        412, 'precondition_failed', 'an unparsable If-Match');
my $u2 = req(PATCH => "$base/$p->{id}", $alice, body => { description => undef },
             headers => { 'If-Match' => '"2"' });
is($u2->{status}, 200, 'If-Match of the current version: 200');
is($u2->{json}{description}, '', 'description null clears it');
is($u2->{json}{version}, 3, '... version 3');
is(req(GET => "$base/$p->{id}", $alice)->{json}{name}, 'Apollo 11', 'the 412s changed nothing');
problem(req(PATCH => "$base/$p->{id}", $alice, body => { name => '' }),
        422, 'validation_failed', 'patch: empty name');
problem(req(PATCH => "$base/$p->{id}", $alice, body => { name => undef }),
        422, 'validation_failed', 'patch: name null');
problem(req(PATCH => "$base/$p->{id}", $alice, body => { id => uuid4() }),
        400, 'validation_failed', 'patch: unknown field id');
problem(req(PATCH => "$base/" . uuid4(), $alice, body => { name => 'x' }),
        404, 'not_found', 'patch: a missing project');

# --- roles -----------------------------------------------------------------

is(req(GET => "$base/$p->{id}", $carol)->{status}, 200, 'viewer reads a project');
is(req(GET => $base, $carol)->{status}, 200, 'viewer lists projects');
problem(req(POST => $base, $carol, body => { name => 'v' }), 403, 'forbidden', 'viewer creates');
problem(req(PATCH => "$base/$p->{id}", $carol, body => { name => 'v' }), 403, 'forbidden',
        'viewer patches');
problem(req(DELETE => "$base/$p->{id}", $carol), 403, 'forbidden', 'viewer deletes');
# API.md: "admin manages projects": a member reads, and assigns tasks to them
problem(req(POST => $base, $bob, body => { name => 'Bob project' }), 403, 'forbidden',
        'member creates');
my $name_before = req(GET => "$base/$p->{id}", $bob)->{json}{name};
problem(req(PATCH => "$base/$p->{id}", $bob, body => { name => 'by bob' }), 403, 'forbidden',
        'member patches');
is(req(GET => "$base/$p->{id}", $bob)->{json}{name}, $name_before, '... nothing changed');
my $bp = req(POST => $base, $dave, body => { name => 'Dave project' });
is($bp->{status}, 201, 'admin creates');
is(req(PATCH => "$base/$bp->{json}{id}", $dave, body => { name => 'Dave project 2' })->{status},
   200, 'admin patches');
problem(req(DELETE => "$base/$bp->{json}{id}", $bob), 403, 'forbidden', 'member deletes');
is(req(DELETE => "$base/$bp->{json}{id}", $dave)->{status}, 204, 'admin deletes');
problem(req(GET => "$base/$bp->{json}{id}", $alice), 404, 'not_found', 'the deleted project is gone');
problem(req(DELETE => "$base/$bp->{json}{id}", $dave), 404, 'not_found', 'deleting it again');

# --- another tenant ----------------------------------------------------------

{
    my $theirs = req(GET => $base, $eve);
    my $none = req(GET => '/v1/workspaces/' . uuid4() . '/projects', $eve);
    problem($theirs, 404, 'not_found', "list of another tenant's projects");
    is_deeply(without_rid($theirs->{json}), without_rid($none->{json}),
              "... answers exactly like a missing workspace");
    for my $m ([ GET => undef ], [ PATCH => { name => 'x' } ], [ DELETE => undef ]) {
        my $a = req($m->[0] => "$base/$p->{id}", $eve, $m->[1] ? (body => $m->[1]) : ());
        my $b = req($m->[0] => "/v1/workspaces/" . uuid4() . "/projects/$p->{id}", $eve,
                    $m->[1] ? (body => $m->[1]) : ());
        problem($a, 404, 'not_found', "$m->[0] of another tenant's project");
        is_deeply(without_rid($a->{json}), without_rid($b->{json}), '... same as a missing one');
    }
    problem(req(POST => $base, $eve, body => { name => 'intruder' }), 404, 'not_found',
            "create in another tenant's workspace");
    # alice's project id under eve's own workspace: not there
    my $own = req(GET => "/v1/workspaces/$eve->{ws}/projects/$p->{id}", $eve);
    my $miss = req(GET => "/v1/workspaces/$eve->{ws}/projects/" . uuid4(), $eve);
    problem($own, 404, 'not_found', "another tenant's project id in one's own workspace");
    is_deeply(without_rid($own->{json}), without_rid($miss->{json}), '... same as a missing one');
    is($t->psql(q{SELECT count(*) FROM tm.projects WHERE name = 'intruder'}), '0',
       'nothing was written');
}

# --- a task's project_id -----------------------------------------------------

my $eve_p = req(POST => "/v1/workspaces/$eve->{ws}/projects", $eve, body => { name => 'Eve' });
is($eve_p->{status}, 201, 'eve creates a project in her workspace');
{
    my $r = req(POST => "/v1/workspaces/$ws/tasks", $alice,
                body => { title => 't', project_id => $eve_p->{json}{id} });
    problem($r, 422, 'validation_failed', "a task in another workspace's project");
    like($r->{json}{detail} // '', qr/^project_id:/, '... the detail names project_id');
    $r = req(POST => "/v1/workspaces/$ws/tasks", $alice,
             body => { title => 't', project_id => uuid4() });
    problem($r, 422, 'validation_failed', 'a task in a missing project');
    like($r->{json}{detail} // '', qr/^project_id:/, '... the detail names project_id');
    $r = req(POST => "/v1/workspaces/$ws/tasks", $alice,
             body => { title => 't', project_id => 'nope' });
    is($r->{status}, 422, 'a malformed project_id: 422');
    is($r->{json}{errors}[0]{field}, 'project_id', '... names project_id');
}

# --- DELETE and the tasks of the project -------------------------------------

my $task = req(POST => "/v1/workspaces/$ws/tasks", $alice,
               body => { title => 'in Apollo', project_id => $p->{id} });
is($task->{status}, 201, 'a task in the project') or diag $task->{body};
my $tid = $task->{json}{id};
my $task_url = "/v1/workspaces/$ws/tasks/$tid";
{
    my $r = req(DELETE => "$base/$p->{id}", $alice);
    problem($r, 409, 'conflict', 'delete while a live task uses the project');
    like($r->{json}{detail} // '', qr/^1 live task/, '... the detail says how many');
    problem(req(DELETE => "$base/$p->{id}", $alice, headers => { 'If-Match' => '"2"' }),
            412, 'precondition_failed', 'delete with a stale If-Match');
}
is(req(DELETE => $task_url, $alice)->{status}, 204, 'soft delete of the task');

# the soft-deleted task is in a cached list; the project delete must not
# leave it stale
my $list = "/v1/workspaces/$ws/tasks?deleted=only";
my $before = req(GET => $list, $alice);
is($before->{json}{data}[0]{project_id}, $p->{id}, 'the deleted task still names the project');
wait_until(3, sub { (req(GET => $list, $alice)->{headers}{'x-cache'} // '') eq 'HIT' });
is(req(GET => $list, $alice)->{headers}{'x-cache'}, 'HIT', 'the list is cached');

my $d = req(DELETE => "$base/$p->{id}", $alice, headers => { 'If-Match' => '"3"' });
is($d->{status}, 204, 'delete once only soft-deleted tasks use it: 204') or diag $d->{body};
is($d->{body}, '', '... no body');
my $after = req(GET => $list, $alice);
is($after->{headers}{'x-cache'}, 'MISS', 'the cached list went stale with the delete');
is($after->{json}{data}[0]{id}, $tid, 'the deleted task is listed');
is($after->{json}{data}[0]{project_id}, undef, '... without a project now');
is($after->{json}{data}[0]{version}, $before->{json}{data}[0]{version} + 1, '... in a new version');
my $rs = req(POST => "$task_url/restore", $alice);
is($rs->{status}, 200, 'restore');
is($rs->{json}{project_id}, undef, 'the restored task has no project');
problem(req(GET => "$base/$p->{id}", $alice), 404, 'not_found', 'the project is gone');

# --- list pages ----------------------------------------------------------------

{
    my $u = setup_user($t);
    my $lb = "/v1/workspaces/$u->{ws}/projects";
    my $e = req(GET => $lb, $u);
    is($e->{status}, 200, 'empty list: 200');
    is($e->{body}, '{"data":[],"next_cursor":null}', 'empty list body');
    like($e->{headers}{etag} // '', qr/^W\/"[0-9a-f]{32}"$/, 'list: weak ETag');
    like($e->{headers}{'cache-control'} // '', qr/^private\b/, 'list: Cache-Control private');
    is(req(GET => $lb, $u, headers => { 'If-None-Match' => $e->{headers}{etag} })->{status},
       304, 'list: If-None-Match of its ETag: 304');
    my @ids = map { req(POST => $lb, $u, body => { name => "P$_" })->{json}{id} } 1 .. 5;
    my $p1 = req(GET => "$lb?limit=2", $u);
    is_deeply([ map { $_->{id} } @{ $p1->{json}{data} } ], [ @ids[0, 1] ], 'page 1: oldest two');
    is($p1->{json}{next_cursor}, $ids[1], 'page 1: next_cursor');
    is($p1->{headers}{link}, "<$lb?limit=2&cursor=$ids[1]>; rel=\"next\"", 'page 1: Link');
    my $p2 = req(GET => "$lb?limit=2&cursor=$p1->{json}{next_cursor}", $u);
    is_deeply([ map { $_->{id} } @{ $p2->{json}{data} } ], [ @ids[2, 3] ], 'page 2');
    my $p3 = req(GET => "$lb?cursor=$p2->{json}{next_cursor}&limit=2", $u);
    is_deeply([ map { $_->{id} } @{ $p3->{json}{data} } ], [ $ids[4] ], 'page 3: the last one');
    is($p3->{json}{next_cursor}, undef, 'page 3: no next_cursor');
    ok(!exists $p3->{headers}{link}, 'page 3: no Link');
    my $all = req(GET => $lb, $u);
    is(scalar @{ $all->{json}{data} }, 5, 'default limit: all five');
    is(req(GET => "$lb?limit=200", $u)->{status}, 200, 'limit=200: 200');
    for my $bad ([ 'limit=0', 'limit' ], [ 'limit=201', 'limit' ], [ 'limit=x', 'limit' ],
                 [ 'limit=', 'limit' ], [ 'cursor=abc', 'cursor' ], [ 'limit=1&limit=2', 'limit' ],
                 [ 'sort=name', 'sort' ], [ "cursor=$ids[0]&cursor=$ids[1]", 'cursor' ]) {
        my $r = req(GET => "$lb?$bad->[0]", $u);
        problem($r, 400, 'validation_failed', "list ?$bad->[0]");
        is($r->{json}{errors}[0]{field}, $bad->[1], "... names $bad->[1]");
    }

    # --- the quota: 1000 projects per workspace --------------------------------
    $t->psql(q{INSERT INTO tm.projects (workspace_id, name)
               SELECT $1, 'bulk ' || g FROM generate_series(1, 994) g}, $u->{ws});
    is(req(POST => $lb, $u, body => { name => 'the 1000th' })->{status}, 201,
       'the 1000th project: 201');
    my $q = req(POST => $lb, $u, body => { name => 'one too many' });
    problem($q, 403, 'quota_exceeded', 'the 1001st project');
    is($t->psql(q{SELECT count(*) FROM tm.projects WHERE workspace_id = $1}, $u->{ws}),
       '1000', 'exactly 1000 projects');
    my $pages = 0;
    my $seen = 0;
    my $cur = '';
    while ($pages < 10) {
        my $r = req(GET => "$lb?limit=200$cur", $u);
        $pages++;
        $seen += @{ $r->{json}{data} };
        last unless defined $r->{json}{next_cursor};
        $cur = "&cursor=$r->{json}{next_cursor}";
    }
    is($seen, 1000, 'paging through 1000 projects sees each once');
    is($pages, 5, '... in 5 pages of 200');
}

# --- the quota holds under concurrent creates ------------------------------------

{
    my $u = setup_user($t);
    my $lb = "/v1/workspaces/$u->{ws}/projects";
    $t->psql(q{INSERT INTO tm.projects (workspace_id, name)
               SELECT $1, 'bulk ' || g FROM generate_series(1, 995) g}, $u->{ws});
    my @pending = map { async_request($t, POST => $lb, token => $u->{token},
                                      body => { name => "race $_" }) } 1 .. 10;
    my %status;
    $status{ $_->wait(30)->{status} }++ for @pending;
    is($status{201}, 5, '10 concurrent creates with room for 5: five 201')
        or diag explain \%status;
    is($status{403}, 5, '... and five 403');
    is($t->psql(q{SELECT count(*) FROM tm.projects WHERE workspace_id = $1}, $u->{ws}),
       '1000', '... exactly 1000 projects');
}

# --- Idempotency-Key -----------------------------------------------------------

{
    my %h = ('Idempotency-Key' => "proj-$t->{rand}");
    my $a = req(POST => $base, $alice, body => { name => 'Once' }, headers => \%h);
    is($a->{status}, 201, 'create with Idempotency-Key: 201');
    my $b = req(POST => $base, $alice, body => { name => 'Once' }, headers => \%h);
    is($b->{status}, 201, 'the repeat: 201');
    is($b->{body}, $a->{body}, '... the same body');
    is($b->{headers}{location}, $a->{headers}{location}, '... the same Location');
    is($b->{headers}{'idempotent-replayed'}, 'true', '... Idempotent-Replayed: true');
    is($t->psql(q{SELECT count(*) FROM tm.projects WHERE workspace_id = $1 AND name = 'Once'}, $ws),
       '1', 'one project only');
    problem(req(POST => $base, $alice, body => { name => 'Twice' }, headers => \%h),
            422, 'validation_failed', 'the same key with another body');

    my %k = ('Idempotency-Key' => "proj-patch-$t->{rand}");
    my $url = "$base/$a->{json}{id}";
    my $x = req(PATCH => $url, $alice, body => { name => 'Once more' }, headers => \%k);
    is($x->{json}{version}, 2, 'patch with Idempotency-Key');
    my $y = req(PATCH => $url, $alice, body => { name => 'Once more' }, headers => \%k);
    is($y->{body}, $x->{body}, 'its repeat answers the same body');
    is($y->{headers}{'idempotent-replayed'}, 'true', '... replayed');
    is(req(GET => $url, $alice)->{json}{version}, 2, '... and wrote nothing more');
}

$t->done;
