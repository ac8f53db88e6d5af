# /v1/workspaces/{ws}/tasks/{id}/comments: create, get, list (oldest first,
# keyset pages), PATCH by the author with If-Match, DELETE by the author or
# an admin/owner; roles; body bounds; the comments of a soft-deleted task
# answer 404 and come back with a restore; a permanent delete takes them;
# another tenant answers like nothing; every write bumps the tenant's cache
# generation; Idempotency-Key.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task);

my $t = Taskmgr::Test->new(name => 'comments');
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

# alice owns the workspace; bob and frank are members, carol a viewer, dave
# an admin; eve is in no part of it.
my ($alice, $bob, $carol, $dave, $eve, $frank) = map { setup_user($t) } 1 .. 6;
my $ws = $alice->{ws};
for ([ $bob, 'member' ], [ $carol, 'viewer' ], [ $dave, 'admin' ], [ $frank, 'member' ]) {
    $t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role)
               VALUES ($1, $2, $3)}, $ws, $_->[0]{user_id}, $_->[1]);
}
my $tid = create_task($t, $alice, 'discuss me');
my $task = "/v1/workspaces/$ws/tasks/$tid";
my $base = "$task/comments";

my $gen_key = "tmk:{$ws}:gen";
sub gen { return $t->redis_cli('GET', $gen_key) // '' }

# --- create, get ---------------------------------------------------------------

# a read makes sure the tenant has a generation
req(GET => $task, $alice);
my $g0 = gen();
isnt($g0, '', 'the tenant has a cache generation');
my $c = req(POST => $base, $bob, body => { body => 'First!' });
is($c->{status}, 201, 'create: 201') or diag $c->{body};
my $cm = $c->{json};
like($cm->{id}, $UUID, 'create: a UUIDv7 id');
is($c->{headers}{location}, "$base/$cm->{id}", 'create: Location');
is($c->{headers}{etag}, '"1"', 'create: ETag "1"');
is_deeply([ sort keys %$cm ],
          [qw(author_id body created_at id task_id updated_at version workspace_id)], 'comment keys');
is($cm->{author_id}, $bob->{user_id}, 'create: author_id is the caller');
is($cm->{task_id}, $tid, 'create: task_id');
is($cm->{workspace_id}, $ws, 'create: workspace_id');
is($cm->{body}, 'First!', 'create: body');
is($cm->{version}, 1, 'create: version 1');
my $g1 = gen();
isnt($g1, $g0, 'create bumped the tenant generation');

my $g = req(GET => $c->{headers}{location}, $alice);
is($g->{status}, 200, 'get: 200');
is_deeply($g->{json}, $cm, 'get: the created representation');
is($g->{headers}{etag}, '"1"', 'get: ETag "1"');
like($g->{headers}{'cache-control'} // '', qr/^private\b/, 'get: Cache-Control private');
is(req(GET => "$base/$cm->{id}", $alice, headers => { 'If-None-Match' => '"1"' })->{status},
   304, 'get: If-None-Match: 304');

# --- validation --------------------------------------------------------------------

problem(req(POST => $base, $bob, body => {}), 422, 'validation_failed', 'no body');
my $e = req(POST => $base, $bob, body => { body => '' });
problem($e, 422, 'validation_failed', 'an empty body');
is($e->{json}{errors}[0]{field}, 'body', '... names the field body');
problem(req(POST => $base, $bob, body => { body => undef }), 422, 'validation_failed', 'body null');
problem(req(POST => $base, $bob, body => { body => [] }), 422, 'validation_failed', 'body an array');
my $l = req(POST => $base, $bob, body => { body => 'x' x 10001 });
problem($l, 422, 'validation_failed', 'a body of 10001 characters');
is($l->{json}{errors}[0]{field}, 'body', '... names the field body');
my $max = req(POST => $base, $bob, body => { body => "\x{e9}" x 10000 });
is($max->{status}, 201, 'a body of 10000 (non-ASCII) characters: 201');
is(length $max->{json}{body}, 10000, '... kept whole');
my $u = req(POST => $base, $bob, body => { body => 'x', author_id => $alice->{user_id} });
problem($u, 400, 'validation_failed', 'an unknown field');
is($u->{json}{errors}[0]{field}, 'author_id', '... names author_id');
problem(req(GET => "$base/nope", $alice), 404, 'not_found', 'a malformed comment id');
problem(req(GET => "/v1/workspaces/$ws/tasks/nope/comments", $alice), 404, 'not_found',
        'a malformed task id');
problem(req(GET => "$base/" . uuid4(), $alice), 404, 'not_found', 'a missing comment');
problem(req(GET => "/v1/workspaces/$ws/tasks/" . uuid4() . "/comments", $alice), 404,
        'not_found', 'the comments of a missing task');
problem(req(POST => "/v1/workspaces/$ws/tasks/" . uuid4() . "/comments", $bob,
            body => { body => 'x' }), 404, 'not_found', 'a comment on a missing task');
problem($t->request(GET => $base), 401, 'unauthorized', 'no token');
my $put = req(PUT => $base, $alice);
is($put->{status}, 405, 'PUT on the list: 405');
is($put->{headers}{allow}, 'GET, HEAD, POST', '... Allow');

# --- PATCH: the author only ------------------------------------------------------------

my $cu = "$base/$cm->{id}";
my $p = req(PATCH => $cu, $bob, body => { body => 'First (edited)' });
is($p->{status}, 200, 'the author edits: 200') or diag $p->{body};
is($p->{json}{body}, 'First (edited)', '... the new body');
is($p->{json}{version}, 2, '... version 2');
is($p->{headers}{etag}, '"2"', '... ETag "2"');
is(req(PATCH => $cu, $bob, body => { body => 'First (edited)' })->{json}{version}, 2,
   'the same body: no new version');
problem(req(PATCH => $cu, $frank, body => { body => 'not mine' }), 403, 'forbidden',
        'another member edits');
problem(req(PATCH => $cu, $dave, body => { body => 'admin edit' }), 403, 'forbidden',
        'an admin edits another one\'s comment');
problem(req(PATCH => $cu, $alice, body => { body => 'owner edit' }), 403, 'forbidden',
        'the owner edits another one\'s comment');
problem(req(PATCH => $cu, $carol, body => { body => 'viewer edit' }), 403, 'forbidden',
        'a viewer edits');
problem(req(PATCH => $cu, $bob, body => { body => 'stale' }, headers => { 'If-Match' => '"1"' }),
        412, 'precondition_failed', 'If-Match of an old version');
problem(req(PATCH => $cu, $bob, body => { body => 'junk' }, headers => { 'If-Match' => 'x' }),
        412, 'precondition_failed', 'an unparsable If-Match');
problem(req(PATCH => $cu, $bob, body => { body => '' }), 422, 'validation_failed', 'patch: empty body');
problem(req(PATCH => $cu, $bob, body => { body => 'x' x 10001 }), 422, 'validation_failed',
        'patch: 10001 characters');
my $g2 = gen();
my $p3 = req(PATCH => $cu, $bob, body => { body => 'third' }, headers => { 'If-Match' => '"2"' });
is($p3->{json}{version}, 3, 'If-Match of the current version: 200, version 3');
isnt(gen(), $g2, 'PATCH bumped the tenant generation');
is(req(GET => $cu, $alice)->{json}{body}, 'third', 'the refused edits changed nothing');

# --- roles on create and read ------------------------------------------------------------

problem(req(POST => $base, $carol, body => { body => 'viewer says' }), 403, 'forbidden',
        'a viewer comments');
is(req(GET => $base, $carol)->{status}, 200, 'a viewer reads the comments');
is(req(GET => $cu, $carol)->{status}, 200, 'a viewer reads a comment');
my $fc = req(POST => $base, $frank, body => { body => 'frank here' });
my $dc = req(POST => $base, $dave, body => { body => 'dave here' });
is($fc->{status}, 201, 'a member comments');
is($dc->{status}, 201, 'an admin comments');

# --- list pages: oldest first ------------------------------------------------------------

{
    my $all = req(GET => $base, $alice);
    is($all->{status}, 200, 'list: 200');
    my @ids = map { $_->{id} } @{ $all->{json}{data} };
    is_deeply(\@ids, [ $cm->{id}, $max->{json}{id}, $fc->{json}{id}, $dc->{json}{id} ],
              'list: every comment, oldest first');
    is($all->{json}{next_cursor}, undef, 'list: no next_cursor');
    like($all->{headers}{etag} // '', qr/^W\/"[0-9a-f]{32}"$/, 'list: weak ETag');
    is(req(GET => $base, $alice, headers => { 'If-None-Match' => $all->{headers}{etag} })->{status},
       304, 'list: If-None-Match: 304');
    my $p1 = req(GET => "$base?limit=3", $alice);
    is_deeply([ map { $_->{id} } @{ $p1->{json}{data} } ], [ @ids[0 .. 2] ], 'page 1 of 3');
    is($p1->{json}{next_cursor}, $ids[2], 'page 1: next_cursor');
    is($p1->{headers}{link}, "<$base?limit=3&cursor=$ids[2]>; rel=\"next\"", 'page 1: Link');
    my $p2 = req(GET => "$base?limit=3&cursor=$ids[2]", $alice);
    is_deeply([ map { $_->{id} } @{ $p2->{json}{data} } ], [ $ids[3] ], 'page 2: the last one');
    is($p2->{json}{next_cursor}, undef, 'page 2: no next_cursor');
    for my $bad ([ 'limit=0', 'limit' ], [ 'limit=201', 'limit' ], [ 'cursor=1', 'cursor' ],
                 [ 'order=desc', 'order' ]) {
        my $r = req(GET => "$base?$bad->[0]", $alice);
        problem($r, 400, 'validation_failed', "list ?$bad->[0]");
        is($r->{json}{errors}[0]{field}, $bad->[1], "... names $bad->[1]");
    }
    # the comments of another task are not listed
    my $other = create_task($t, $alice, 'quiet');
    my $o = req(GET => "/v1/workspaces/$ws/tasks/$other/comments", $alice);
    is($o->{body}, '{"data":[],"next_cursor":null}', 'another task: no comments');
    problem(req(GET => "/v1/workspaces/$ws/tasks/$other/comments/$cm->{id}", $alice), 404,
            'not_found', 'a comment under another task');
}

# --- DELETE: the author, or an admin/owner ------------------------------------------------

problem(req(DELETE => "$base/$dc->{json}{id}", $frank), 403, 'forbidden',
        'a member deletes another one\'s comment');
problem(req(DELETE => "$base/$fc->{json}{id}", $carol), 403, 'forbidden', 'a viewer deletes');
problem(req(DELETE => "$base/$fc->{json}{id}", $frank, headers => { 'If-Match' => '"9"' }),
        412, 'precondition_failed', 'delete with a stale If-Match');
my $g3 = gen();
my $d = req(DELETE => "$base/$fc->{json}{id}", $frank, headers => { 'If-Match' => '"1"' });
is($d->{status}, 204, 'the author deletes: 204');
is($d->{body}, '', '... no body');
isnt(gen(), $g3, 'DELETE bumped the tenant generation');
is(req(DELETE => "$base/$max->{json}{id}", $dave)->{status}, 204, 'an admin deletes any comment');
is(req(DELETE => "$base/$dc->{json}{id}", $alice)->{status}, 204, 'the owner deletes any comment');
problem(req(DELETE => "$base/$dc->{json}{id}", $alice), 404, 'not_found', 'deleting it again');
is_deeply([ map { $_->{id} } @{ req(GET => $base, $alice)->{json}{data} } ], [ $cm->{id} ],
          'one comment is left');

# --- another tenant ------------------------------------------------------------------------

{
    my $none = "/v1/workspaces/" . uuid4() . "/tasks/$tid/comments";
    for my $m ([ GET => $base, undef ], [ POST => $base, { body => 'x' } ],
               [ GET => $cu, undef ], [ PATCH => $cu, { body => 'x' } ], [ DELETE => $cu, undef ]) {
        my $other = $m->[1] eq $base ? $none : "$none/$cm->{id}";
        my $a = req($m->[0] => $m->[1], $eve, $m->[2] ? (body => $m->[2]) : ());
        my $b = req($m->[0] => $other, $eve, $m->[2] ? (body => $m->[2]) : ());
        problem($a, 404, 'not_found', "$m->[0] of another tenant's comment(s)");
        is_deeply(without_rid($a->{json}), without_rid($b->{json}), '... same as a missing workspace');
    }
    # alice's task under eve's own workspace: no such task
    problem(req(GET => "/v1/workspaces/$eve->{ws}/tasks/$tid/comments", $eve), 404, 'not_found',
            "another tenant's task in one's own workspace");
    is(req(GET => $cu, $alice)->{json}{body}, 'third', 'eve changed nothing');
}

# --- a soft-deleted task hides its comments ------------------------------------------------

is(req(DELETE => $task, $alice)->{status}, 204, 'soft delete of the task');
for my $m ([ GET => $base ], [ GET => $cu ], [ POST => $base, { body => 'x' } ],
           [ PATCH => $cu, { body => 'y' } ], [ DELETE => $cu ]) {
    my $r = req($m->[0] => $m->[1], $bob, $m->[2] ? (body => $m->[2]) : ());
    problem($r, 404, 'not_found', "$m->[0] $m->[1] of a deleted task");
    is($r->{json}{detail}, 'task not found', '... task not found');
}
is(req(POST => "$task/restore", $alice)->{status}, 200, 'restore the task');
is(req(GET => $cu, $alice)->{json}{body}, 'third', 'the comment is back with the task');

# --- Idempotency-Key ----------------------------------------------------------------------

{
    my %h = ('Idempotency-Key' => "comment-$t->{rand}");
    my $a = req(POST => $base, $bob, body => { body => 'once' }, headers => \%h);
    is($a->{status}, 201, 'create with Idempotency-Key');
    my $b = req(POST => $base, $bob, body => { body => 'once' }, headers => \%h);
    is($b->{status}, 201, 'its repeat: 201');
    is($b->{body}, $a->{body}, '... the same body');
    is($b->{headers}{location}, $a->{headers}{location}, '... the same Location');
    is($b->{headers}{'idempotent-replayed'}, 'true', '... Idempotent-Replayed');
    is($t->psql(q{SELECT count(*) FROM tm.comments WHERE task_id = $1 AND body = 'once'}, $tid),
       '1', 'one comment only');
    problem(req(POST => $base, $bob, body => { body => 'twice' }, headers => \%h),
            422, 'validation_failed', 'the same key with another body');
    my %k = ('Idempotency-Key' => "comment-patch-$t->{rand}");
    my $x = req(PATCH => $a->{headers}{location}, $bob, body => { body => 'once!' }, headers => \%k);
    my $y = req(PATCH => $a->{headers}{location}, $bob, body => { body => 'once!' }, headers => \%k);
    is($x->{json}{version}, 2, 'patch with Idempotency-Key');
    is($y->{body}, $x->{body}, 'its repeat answers the same body');
    is($y->{headers}{'idempotent-replayed'}, 'true', '... replayed');
}

# --- the quota: 10000 comments per task ---------------------------------------------------

{
    my $qt = create_task($t, $alice, 'busy');
    $t->psql(q{INSERT INTO tm.comments (workspace_id, task_id, author_id, body)
               SELECT $1, $2, $3, 'c' || g FROM generate_series(1, 9999) g},
             $ws, $qt, $alice->{user_id});
    my $qb = "/v1/workspaces/$ws/tasks/$qt/comments";
    is(req(POST => $qb, $alice, body => { body => 'the 10000th' })->{status}, 201,
       'the 10000th comment: 201');
    problem(req(POST => $qb, $alice, body => { body => 'one too many' }), 403, 'quota_exceeded',
            'the 10001st comment');

    # --- a permanent delete takes the comments with it --------------------------------
    is(req(DELETE => "/v1/workspaces/$ws/tasks/$qt?permanent=true", $alice)->{status}, 204,
       'permanent delete of a task with comments');
    is($t->psql(q{SELECT count(*) FROM tm.comments WHERE task_id = $1}, $qt), '0',
       'its comments are gone');
}

$t->done;
