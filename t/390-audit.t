# The audit trail (sql/0007_audit.sql, 0017): every write to tasks,
# projects, comments, workspace members and attachments records exactly one
# entry per row (who, what changed, request id, client IP), in the write's
# own transaction;
# failed writes record nothing; GET .../tasks/{id}/activity (members) and
# GET .../audit-log (admins and owners) page newest first; nothing changes
# or deletes audit rows, and no route writes them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP ();
use Digest::SHA ();
use MIME::Base64 ();
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task);

my $t = Taskmgr::Test->new(name => 'audit');
$t->start(http_config => 'taskmgr_cache on; taskmgr_cache_ttl 30s;');

my $JSON = JSON::PP->new->utf8->canonical;
my $TS = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

sub uuid4 {
    my $h = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    substr($h, 12, 1) = '4';
    return join '-', unpack 'A8 A4 A4 A4 A12', $h;
}

# every request carries its own X-Request-Id: the key to its entries
my $N = 0;
sub req {
    my ($method, $path, $u, %o) = @_;
    my $rid = "audit-$t->{rand}-" . ++$N;
    my $r = $t->request($method => $path, token => $u->{token}, %o,
                        headers => { 'X-Request-Id' => $rid, %{ $o{headers} // {} } });
    $r->{rid} = $rid;
    return $r;
}

sub problem {
    my ($r, $status, $code, $name) = @_;
    is($r->{status}, $status, "$name: $status") or diag $r->{body};
    like($r->{headers}{'content-type'} // '', qr{^application/problem\+json},
         "$name: problem+json");
    is($r->{json} && $r->{json}{code}, $code, "$name: code $code");
}

# the entries one request wrote, oldest first, as the API shows them (plus
# session_id and the transaction)
sub entries {
    my ($rid) = @_;
    my $out = $t->psql(q{
        SELECT coalesce(json_agg(json_build_object(
                 'entry', tm.audit_json(a), 'session_id', a.session_id,
                 'xid', a.xmin::text) ORDER BY a.id), '[]')
          FROM tm.audit_log a WHERE a.request_id = $1}, $rid);
    return [ map { { %{ $_->{entry} }, session_id => $_->{session_id}, xid => $_->{xid} } }
             @{ $JSON->decode($out) } ];
}

# the one entry of a request, checked for who and from where
sub one_entry {
    my ($r, $u, $name, %want) = @_;
    my $es = entries($r->{rid});
    is(scalar @$es, 1, "$name: exactly one entry") or diag explain $es;
    my $e = $es->[0] // {};
    is($e->{request_id}, $r->{rid}, "$name: request_id is the X-Request-Id sent");
    is($r->{headers}{'x-request-id'}, $r->{rid}, "$name: ... and the one answered");
    is($e->{ip}, '127.0.0.1', "$name: ip 127.0.0.1");
    is($e->{actor_id}, $u->{user_id}, "$name: actor_id is the caller");
    is($e->{session_id}, $u->{sid}, "$name: session_id is the caller's session");
    like($e->{created_at} // '', $TS, "$name: created_at RFC 3339 ms");
    like($e->{id} // '', qr/^[1-9][0-9]*$/, "$name: id a decimal string");
    for my $k (sort keys %want) {
        if (ref $want{$k}) {
            is_deeply($e->{$k}, $want{$k}, "$name: $k") or diag explain $e->{$k};
        } else {
            is($e->{$k}, $want{$k}, "$name: $k");
        }
    }
    return $e;
}

sub no_entry {
    my ($r, $name) = @_;
    is(scalar @{ entries($r->{rid}) }, 0, "$name: no audit entry");
}

# a task in the shared workspace (create_task() uses the user's own)
sub mk {
    my ($u, $title) = @_;
    my $r = req(POST => "/v1/workspaces/$main::WS/tasks", $u, body => { title => $title });
    die "create task: $r->{status} $r->{body}\n" unless $r->{status} == 201;
    return $r->{json}{id};
}

sub jwt_sid {
    my ($token) = @_;
    my $p = (split /\./, $token)[1];
    $p =~ tr/-_/+\//;
    $p .= '=' x ((4 - length($p) % 4) % 4);
    return $JSON->decode(MIME::Base64::decode_base64($p))->{sid};
}

# alice owns the workspace; bob is a member, carol a viewer, dave an admin;
# eve has only her own workspace.
my ($alice, $bob, $carol, $dave, $eve) = map { setup_user($t) } 1 .. 5;
$_->{sid} = jwt_sid($_->{token}) for $alice, $bob, $carol, $dave, $eve;
my $ws = $alice->{ws};
our $WS = $ws;
for ([ $bob, 'member' ], [ $carol, 'viewer' ], [ $dave, 'admin' ]) {
    $t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role)
               VALUES ($1, $2, $3)}, $ws, $_->[0]{user_id}, $_->[1]);
}
my $tasks = "/v1/workspaces/$ws/tasks";

# --- tasks: create, update, no-op, delete, restore, purge -------------------------

my $c = req(POST => $tasks, $bob, body => { title => 'Audit me', priority => 2,
                                            labels => ['a', 'b'] });
is($c->{status}, 201, 'task create: 201') or diag $c->{body};
my $tid = $c->{json}{id};
my $e = one_entry($c, $bob, 'task create',
    entity_type => 'task', entity_id => $tid, task_id => $tid, action => 'create',
    workspace_id => $ws,
    changes => { title => 'Audit me', description => '', status => 'todo', priority => 2,
                 due_at => undef, assignee_id => undef, project_id => undef,
                 parent_id => undef, labels => ['a', 'b'], completed_at => undef,
                 deleted_at => undef });
is_deeply([ sort grep { $_ ne 'session_id' && $_ ne 'xid' } keys %$e ],
          [qw(action actor_id changes created_at entity_id entity_type id ip request_id
              task_id workspace_id)], 'entry keys');

my $u = req(PATCH => "$tasks/$tid", $bob,
            body => { title => 'Audited', priority => 3, due_at => '2027-01-02T03:04:05Z',
                      labels => ['a', 'b'] });
is($u->{status}, 200, 'task update: 200') or diag $u->{body};
one_entry($u, $bob, 'task update', action => 'update', entity_id => $tid,
    changes => { title => { from => 'Audit me', to => 'Audited' },
                 priority => { from => 2, to => 3 },
                 due_at => { from => undef, to => '2027-01-02T03:04:05.000Z' } });

my $done = req(PATCH => "$tasks/$tid", $alice, body => { status => 'done' });
my $de = one_entry($done, $alice, 'status done', action => 'update');
is_deeply([ sort keys %{ $de->{changes} } ], [qw(completed_at status)],
          'status done: status and completed_at change');
is($de->{changes}{completed_at}{from}, undef, '... completed_at from null');
like($de->{changes}{completed_at}{to} // '', $TS, '... to a time');

no_entry(req(PATCH => "$tasks/$tid", $bob, body => { title => 'Audited' }),
         'a patch that changes nothing');
my $stale = req(PATCH => "$tasks/$tid", $bob, body => { title => 'stale' },
                headers => { 'If-Match' => '"1"' });
is($stale->{status}, 412, 'a stale If-Match: 412');
no_entry($stale, '412');
my $bad = req(PATCH => "$tasks/$tid", $bob, body => { assignee_id => $eve->{user_id} });
is($bad->{status}, 422, 'an assignee from elsewhere: 422');
no_entry($bad, '422');
my $vw = req(PATCH => "$tasks/$tid", $carol, body => { title => 'viewer' });
is($vw->{status}, 403, 'a viewer patches: 403');
no_entry($vw, '403');

my $d = req(DELETE => "$tasks/$tid", $bob);
is($d->{status}, 204, 'soft delete: 204');
my $dl = one_entry($d, $bob, 'soft delete', action => 'delete', entity_id => $tid);
is_deeply([ keys %{ $dl->{changes} } ], ['deleted_at'], 'soft delete: only deleted_at');
is($dl->{changes}{deleted_at}{from}, undef, '... from null');
like($dl->{changes}{deleted_at}{to} // '', $TS, '... to the time');

my $rs = req(POST => "$tasks/$tid/restore", $bob);
is($rs->{status}, 200, 'restore: 200');
one_entry($rs, $bob, 'restore', action => 'restore', entity_id => $tid,
    changes => { deleted_at => { from => $dl->{changes}{deleted_at}{to}, to => undef } });

# a permanent delete: the old values; the subtask loses its parent (its
# own entry); the purged task's comments are covered by the purge entry
my $gone = mk($alice, 'to purge');
my $child = req(POST => $tasks, $alice, body => { title => 'child', parent_id => $gone });
is($child->{status}, 201, 'a subtask');
is(req(POST => "$tasks/$gone/comments", $bob, body => { body => 'bye' })->{status}, 201,
   'a comment on the task to purge');
my $pg = req(DELETE => "$tasks/$gone?permanent=true", $alice);
is($pg->{status}, 204, 'purge: 204');
my $pes = entries($pg->{rid});
is_deeply([ map { "$_->{entity_type} $_->{action} $_->{entity_id}" } @$pes ],
          [ "task update $child->{json}{id}", "task purge $gone" ],
          'purge: the subtask\'s update, then the purge; no comment entries');
is_deeply($pes->[0]{changes}, { parent_id => { from => $gone, to => undef } },
          'purge: the subtask lost its parent');
is($pes->[1]{changes}{title}, 'to purge', 'purge: the old values');
is($pes->[1]{actor_id}, $alice->{user_id}, 'purge: actor');
is($pes->[0]{xid}, $pes->[1]{xid}, 'purge: one transaction');

# --- bulk: one entry per task, one transaction; a failing batch writes none ---------

my @ids = map { mk($bob, "bulk $_") } 1 .. 4;
my $bu = req(POST => "$tasks/bulk", $bob,
             body => { action => 'update', ids => \@ids, patch => { priority => 4 } });
is($bu->{status}, 200, 'bulk update: 200') or diag $bu->{body};
my $bes = entries($bu->{rid});
is(scalar @$bes, 4, 'bulk update of 4: 4 entries');
is_deeply([ sort map { $_->{entity_id} } @$bes ], [ sort @ids ], '... one per task');
ok(!(grep { $_->{action} ne 'update'
            || $JSON->encode($_->{changes}) ne '{"priority":{"from":0,"to":4}}' } @$bes),
   '... each the priority change');
is(scalar(keys %{ { map { $_->{xid} => 1 } @$bes } }), 1, '... in one transaction');
ok(!(grep { ($_->{actor_id} // '') ne $bob->{user_id} || ($_->{ip} // '') ne '127.0.0.1' }
     @$bes), '... each with actor and ip');

my $bd = req(POST => "$tasks/bulk", $bob, body => { action => 'delete', ids => \@ids });
is($bd->{status}, 200, 'bulk delete: 200');
is_deeply([ sort map { "$_->{action} $_->{entity_id}" } @{ entries($bd->{rid}) } ],
          [ sort map { "delete $_" } @ids ], 'bulk delete: a delete entry per task');
my $br = req(POST => "$tasks/bulk", $bob, body => { action => 'restore', ids => \@ids });
is($br->{status}, 200, 'bulk restore: 200');
is_deeply([ sort map { "$_->{action} $_->{entity_id}" } @{ entries($br->{rid}) } ],
          [ sort map { "restore $_" } @ids ], 'bulk restore: a restore entry per task');

my $bf = req(POST => "$tasks/bulk", $bob,
             body => { action => 'update', ids => [ @ids, uuid4() ], patch => { priority => 1 } });
is($bf->{status}, 404, 'bulk with a missing id: 404 (rolled back)');
no_entry($bf, 'the rolled-back bulk');
is($t->psql(q{SELECT count(*) FROM tm.tasks WHERE id = ANY($1::uuid[]) AND priority = 1},
            '{' . join(',', @ids) . '}'), '0', '... and no task changed');

# --- Idempotency-Key: the write records once, a replay nothing -----------------------

{
    my %k = ('Idempotency-Key' => "audit-$t->{rand}");
    my $a1 = req(POST => $tasks, $bob, body => { title => 'once' }, headers => \%k);
    is($a1->{status}, 201, 'create with Idempotency-Key');
    one_entry($a1, $bob, 'idempotent create', action => 'create', entity_id => $a1->{json}{id});
    my $a2 = req(POST => $tasks, $bob, body => { title => 'once' }, headers => \%k);
    is($a2->{headers}{'idempotent-replayed'}, 'true', 'the repeat is a replay');
    no_entry($a2, 'the replay');
    my %k2 = ('Idempotency-Key' => "audit-patch-$t->{rand}");
    my $p1 = req(PATCH => "$tasks/$a1->{json}{id}", $bob, body => { title => 'twice' },
                 headers => \%k2);
    one_entry($p1, $bob, 'idempotent update', action => 'update',
              changes => { title => { from => 'once', to => 'twice' } });
    my %k3 = ('Idempotency-Key' => "audit-bulk-$t->{rand}");
    my $b1 = req(POST => "$tasks/bulk", $bob, headers => \%k3,
                 body => { action => 'update', ids => [ $a1->{json}{id} ],
                           patch => { status => 'in_progress' } });
    is($b1->{status}, 200, 'idempotent bulk: 200');
    is(scalar @{ entries($b1->{rid}) }, 1, 'idempotent bulk: its entry');
}

# --- projects -----------------------------------------------------------------------

my $projects = "/v1/workspaces/$ws/projects";
my $pc = req(POST => $projects, $dave, body => { name => 'Apollo', description => 'moon' });
is($pc->{status}, 201, 'project create: 201') or diag $pc->{body};
my $pid = $pc->{json}{id};
one_entry($pc, $dave, 'project create', entity_type => 'project', entity_id => $pid,
          task_id => undef, action => 'create',
          changes => { name => 'Apollo', description => 'moon', archived_at => undef });
my $pu = req(PATCH => "$projects/$pid", $dave, body => { name => 'Artemis' });
one_entry($pu, $dave, 'project update', action => 'update',
          changes => { name => { from => 'Apollo', to => 'Artemis' } });
no_entry(req(PATCH => "$projects/$pid", $bob, body => { name => 'member' }),
         'a member patches a project (403)');
my $pd = req(DELETE => "$projects/$pid", $alice);
is($pd->{status}, 204, 'project delete: 204');
one_entry($pd, $alice, 'project delete', action => 'delete', entity_id => $pid,
          changes => { name => 'Artemis', description => 'moon', archived_at => undef });

# --- comments: entries carry the task -------------------------------------------------

my $cc = req(POST => "$tasks/$tid/comments", $bob, body => { body => 'hello' });
is($cc->{status}, 201, 'comment create: 201');
my $cid = $cc->{json}{id};
one_entry($cc, $bob, 'comment create', entity_type => 'comment', entity_id => $cid,
          task_id => $tid, action => 'create', changes => { body => 'hello' });
my $cu = req(PATCH => "$tasks/$tid/comments/$cid", $bob, body => { body => 'hello!' });
one_entry($cu, $bob, 'comment update', action => 'update', task_id => $tid,
          changes => { body => { from => 'hello', to => 'hello!' } });
no_entry(req(PATCH => "$tasks/$tid/comments/$cid", $bob, body => { body => 'x' },
             headers => { 'If-Match' => '"1"' }), 'a stale comment patch (412)');
my $cd = req(DELETE => "$tasks/$tid/comments/$cid", $dave);
is($cd->{status}, 204, 'comment delete by an admin: 204');
one_entry($cd, $dave, 'comment delete', action => 'delete', task_id => $tid,
          changes => { body => 'hello!' });

# --- workspace create: the owner's member row ----------------------------------------

my $wc = req(POST => '/v1/workspaces', $bob, body => { name => 'Bob & co' });
is($wc->{status}, 201, 'workspace create: 201') or diag $wc->{body};
one_entry($wc, $bob, 'workspace create', entity_type => 'member',
          entity_id => $bob->{user_id}, workspace_id => $wc->{json}{id}, task_id => undef,
          action => 'create', changes => { role => 'owner' });

# --- register: the new user's own workspace and owner row --------------------------------

{
    my $rid = "audit-$t->{rand}-register";
    my $email = "audit-reg-$t->{rand}\@example.com";
    my $r = $t->request(POST => '/v1/auth/register', headers => { 'X-Request-Id' => $rid },
                        body => { email => $email, password => 'correct horse battery staple',
                                  name => 'Reg' });
    is($r->{status}, 201, 'register: 201') or diag $r->{body};
    my $uid = $r->{json} && $r->{json}{user}{id};
    my $es = entries($rid);
    is(scalar @$es, 1, 'register: exactly one entry (the owner row)') or diag explain $es;
    my $e = $es->[0] // {};
    is($e->{request_id}, $rid, 'register: request_id is the X-Request-Id sent');
    is($e->{ip}, '127.0.0.1', 'register: ip 127.0.0.1');
    is($e->{actor_id}, $uid, 'register: actor_id is the new user');
    is($e->{session_id}, undef, 'register: no session yet');
    is($e->{entity_type}, 'member', 'register: entity_type member');
    is($e->{entity_id}, $uid, 'register: entity_id the new user');
    is_deeply($e->{changes}, { role => 'owner' }, 'register: changes role owner')
        or diag explain $e->{changes};
    my $taken = $t->request(POST => '/v1/auth/register',
                            headers => { 'X-Request-Id' => "$rid-again" },
                            body => { email => $email,
                                      password => 'correct horse battery staple',
                                      name => 'Reg' });
    is($taken->{status}, 409, 'register again: 409');
    is(scalar @{ entries("$rid-again") }, 0, 'register again: no entry');
}

# --- the background purge: recorded with no actor ---------------------------------------

{
    my $old = mk($alice, 'long gone');
    $t->psql(q{UPDATE tm.tasks SET deleted_at = now() - interval '40 days' WHERE id = $1},
             $old);
    $t->psql(q{SELECT tm_api.purge(86400, 100)});
    my $row = $JSON->decode($t->psql(q{
        SELECT row_to_json(a) FROM tm.audit_log a
         WHERE entity_id = $1 AND action = 'purge'}, $old) || 'null');
    ok($row, 'the background purge recorded a purge');
    is($row && $row->{actor_id}, undef, '... with no actor');
    is($row && $row->{request_id}, undef, '... no request id');
    is($row && $row->{changes}{title}, 'long gone', '... and the old values');
}

# --- activity ------------------------------------------------------------------------

my $act = "$tasks/$tid/activity";
{
    my $a = req(GET => $act, $carol);
    is($a->{status}, 200, 'activity: a viewer reads it') or diag $a->{body};
    like($a->{headers}{'cache-control'} // '', qr/^private\b/, 'activity: Cache-Control private');
    my $db = $t->psql(q{SELECT string_agg(id::text, ',' ORDER BY id DESC) FROM tm.audit_log
                         WHERE workspace_id = $1 AND task_id = $2}, $ws, $tid);
    is(join(',', map { $_->{id} } @{ $a->{json}{data} }), $db,
       'activity: every entry of the task and its comments, newest first');
    is_deeply([ map { "$_->{entity_type} $_->{action}" } @{ $a->{json}{data} } ],
              [ 'comment delete', 'comment update', 'comment create', 'task restore',
                'task delete', 'task update', 'task update', 'task create' ],
              'activity: the task\'s story');
    is($a->{json}{next_cursor}, undef, 'activity: one page');
    is($a->{json}{data}[0]{actor_id}, $dave->{user_id}, 'activity: who');
}

# paging: no gaps, no duplicates
{
    my $pt = mk($bob, 'paged');
    req(PATCH => "$tasks/$pt", $bob, body => { priority => $_ }) for 1 .. 4;
    req(POST => "$tasks/$pt/comments", $bob, body => { body => "c$_" }) for 1 .. 2;
    my $all = $t->psql(q{SELECT string_agg(id::text, ',' ORDER BY id DESC) FROM tm.audit_log
                          WHERE task_id = $1}, $pt);
    is(scalar(split /,/, $all), 7, 'paging: 7 entries in the database');
    my (@got, $cursor, @sizes);
    my $url = "$tasks/$pt/activity?limit=3";
    for my $page (1 .. 5) {
        my $r = req(GET => $url . (defined $cursor ? "&cursor=$cursor" : ''), $bob);
        is($r->{status}, 200, "paging: page $page") or last;
        push @got, map { $_->{id} } @{ $r->{json}{data} };
        push @sizes, scalar @{ $r->{json}{data} };
        $cursor = $r->{json}{next_cursor};
        if (defined $cursor) {
            is($r->{headers}{link}, "<$tasks/$pt/activity?limit=3&cursor=$cursor>; rel=\"next\"",
               "paging: page $page Link");
        } else {
            ok(!exists $r->{headers}{link}, "paging: page $page has no Link");
            last;
        }
    }
    is_deeply(\@sizes, [3, 3, 1], 'paging: pages of 3, 3, 1');
    is(join(',', @got), $all, 'paging: every entry once, newest first');
    is(scalar @{ req(GET => "$tasks/$pt/activity?limit=200", $bob)->{json}{data} }, 7,
       'limit=200');
}

for my $bad ([ 'limit=0', 'limit' ], [ 'limit=201', 'limit' ], [ 'limit=x', 'limit' ],
             [ 'cursor=abc', 'cursor' ], [ 'cursor=0', 'cursor' ],
             [ 'cursor=99999999999999999999', 'cursor' ],
             [ 'cursor=' . uuid4(), 'cursor' ], [ 'limit=2&limit=3', 'limit' ],
             [ 'entity_type=task', 'entity_type' ], [ 'sort=id', 'sort' ]) {
    my $r = req(GET => "$act?$bad->[0]", $alice);
    problem($r, 400, 'validation_failed', "activity ?$bad->[0]");
    is($r->{json}{errors}[0]{field}, $bad->[1], "... names $bad->[1]");
}

# a soft-deleted task's activity stays readable; a missing one or another
# tenant's answers 404
{
    my $sd = mk($bob, 'soft');
    req(DELETE => "$tasks/$sd", $bob);
    my $r = req(GET => "$tasks/$sd/activity", $carol);
    is($r->{status}, 200, 'activity of a soft-deleted task: 200');
    is_deeply([ map { $_->{action} } @{ $r->{json}{data} } ], [ 'delete', 'create' ],
              '... its delete and create');
    problem(req(GET => "$tasks/$gone/activity", $alice), 404, 'not_found',
            'activity of a purged task');
    problem(req(GET => "$tasks/" . uuid4() . "/activity", $alice), 404, 'not_found',
            'activity of a missing task');
    problem(req(GET => "$tasks/nope/activity", $alice), 404, 'not_found',
            'activity of a malformed id');
    problem(req(GET => $act, $eve), 404, 'not_found', 'activity: another tenant');
    my $et = create_task($t, $eve, 'eve\'s');
    problem(req(GET => "$tasks/$et/activity", $alice), 404, 'not_found',
            'activity of a task of another workspace, under this one');
    problem(req(GET => "/v1/workspaces/$eve->{ws}/tasks/$et/activity", $alice), 404,
            'not_found', 'activity in a workspace one is not a member of');
    problem($t->request(GET => $act), 401, 'unauthorized', 'activity without a token');
}

# --- the workspace's audit log: admins and owners --------------------------------------

my $log = "/v1/workspaces/$ws/audit-log";
{
    my $a = req(GET => "$log?limit=200", $alice);
    is($a->{status}, 200, 'audit-log: the owner reads it') or diag $a->{body};
    my $db = $t->psql(q{SELECT string_agg(id::text, ',' ORDER BY id DESC)
                          FROM (SELECT id FROM tm.audit_log WHERE workspace_id = $1
                                 ORDER BY id DESC LIMIT 200) x}, $ws);
    is(join(',', map { $_->{id} } @{ $a->{json}{data} }), $db,
       'audit-log: the workspace\'s entries, newest first');
    ok(!(grep { $_->{workspace_id} ne $ws } @{ $a->{json}{data} }),
       'audit-log: none of another workspace');
    is(req(GET => $log, $dave)->{status}, 200, 'audit-log: an admin reads it');
    problem(req(GET => $log, $bob), 403, 'forbidden', 'audit-log: a member');
    problem(req(GET => $log, $carol), 403, 'forbidden', 'audit-log: a viewer');
    problem(req(GET => $log, $eve), 404, 'not_found', 'audit-log: another tenant');

    my $pr = req(GET => "$log?entity_type=project", $alice);
    is_deeply([ map { $_->{action} } @{ $pr->{json}{data} } ], [qw(delete update create)],
              'audit-log: entity_type=project');
    my $dv = req(GET => "$log?actor_id=$dave->{user_id}&limit=2", $alice);
    ok(@{ $dv->{json}{data} } == 2
       && !(grep { $_->{actor_id} ne $dave->{user_id} } @{ $dv->{json}{data} }),
       'audit-log: actor_id filters');
    my $next = $dv->{json}{next_cursor};
    is($dv->{headers}{link},
       "<$log?limit=2&actor_id=$dave->{user_id}&cursor=$next>; rel=\"next\"",
       'audit-log: Link keeps the filter');
    my $dv2 = req(GET => "$log?actor_id=$dave->{user_id}&limit=2&cursor=$next", $alice);
    is_deeply([ map { $_->{entity_type} . ' ' . $_->{action} } @{ $dv->{json}{data} },
                @{ $dv2->{json}{data} } ],
              [ 'comment delete', 'project update', 'project create' ],
              'audit-log: dave\'s three entries over two pages');
    is($dv2->{json}{next_cursor}, undef, '... and no more');

    for my $bad ([ 'entity_type=user', 'entity_type' ], [ 'actor_id=bob', 'actor_id' ],
                 [ 'limit=500', 'limit' ], [ 'cursor=-1', 'cursor' ], [ 'foo=1', 'foo' ],
                 [ 'entity_type=task&entity_type=task', 'entity_type' ]) {
        my $r = req(GET => "$log?$bad->[0]", $alice);
        problem($r, 400, 'validation_failed', "audit-log ?$bad->[0]");
        is($r->{json}{errors}[0]{field}, $bad->[1], "... names $bad->[1]");
    }
    for my $m (qw(POST PATCH DELETE)) {
        is(req($m => $log, $alice, body => {})->{status}, 405, "audit-log: $m is 405");
    }
    is(req(DELETE => $act, $alice)->{status}, 405, 'activity: DELETE is 405');
}

# --- attachments: upload and delete; a task's purge takes them without entries ---------

{
    my $at = mk($bob, 'with files');
    my $body = "audit me $t->{rand}\n";
    my %file = (name => 'a.txt', content_type => 'text/plain', size => length $body,
                sha256 => Digest::SHA::sha256_hex($body));
    my $upload = sub {
        my ($u) = @_;
        return req(POST => "$tasks/$at/attachments?name=a.txt", $u,
                   headers => { 'Content-Type' => 'text/plain' }, body => $body);
    };
    my $up = $upload->($bob);
    is($up->{status}, 201, 'attachment upload: 201') or diag $up->{body};
    my $aid = $up->{json}{id};
    one_entry($up, $bob, 'attachment upload', entity_type => 'attachment', entity_id => $aid,
              task_id => $at, action => 'create', changes => \%file);
    my $vu = $upload->($carol);
    is($vu->{status}, 403, "a viewer's upload: 403");
    no_entry($vu, "a viewer's upload");
    my $ad = req(DELETE => "/v1/workspaces/$ws/attachments/$aid", $dave);
    is($ad->{status}, 204, 'attachment delete by an admin: 204');
    one_entry($ad, $dave, 'attachment delete', entity_type => 'attachment', entity_id => $aid,
              task_id => $at, action => 'delete', changes => \%file);
    no_entry(req(DELETE => "/v1/workspaces/$ws/attachments/$aid", $dave),
             'the same delete again (404)');
    my $act = req(GET => "$tasks/$at/activity", $bob);
    is_deeply([ map { "$_->{entity_type} $_->{action}" } @{ $act->{json}{data} } ],
              [ 'attachment delete', 'attachment create', 'task create' ],
              "the task's activity lists its attachments' entries");

    my $up2 = $upload->($bob);
    is($up2->{status}, 201, 'another upload: 201');
    my $pg2 = req(DELETE => "$tasks/$at?permanent=true", $alice);
    is($pg2->{status}, 204, 'the task deleted for good: 204');
    is_deeply([ map { "$_->{entity_type} $_->{action}" } @{ entries($pg2->{rid}) } ],
              [ 'task purge' ], '... its purge entry only (the attachment it took has none)');
    my $fl = req(GET => "/v1/workspaces/$ws/audit-log?entity_type=attachment", $alice);
    is($fl->{status}, 200, 'audit-log ?entity_type=attachment: 200');
    is_deeply([ map { "$_->{action} $_->{entity_id}" } @{ $fl->{json}{data} } ],
              [ "create $up2->{json}{id}", "delete $aid", "create $aid" ],
              '... the three attachment entries, newest first; they outlive the task');
}

# --- immutability -----------------------------------------------------------------------

{
    my $n = $t->psql(q{SELECT count(*) FROM tm.audit_log});
    for my $sql ('UPDATE tm.audit_log SET action = \'update\'',
                 'DELETE FROM tm.audit_log', 'TRUNCATE tm.audit_log') {
        eval { $t->psql("SET ROLE taskmgr_app; $sql") };
        like($@, qr/permission denied for table audit_log/, "the app role: $sql refused");
        eval { $t->psql($sql) };
        like($@, qr/audit log rows cannot be changed or deleted/,
             "even the table owner: $sql refused");
    }
    is($t->psql(q{SELECT count(*) FROM tm.audit_log}), $n, 'every entry is still there');
    # the app role reads and appends, within its tenant only
    is($t->psql(q{SELECT has_table_privilege('taskmgr_app', 'tm.audit_log', 'SELECT')
                     AND has_table_privilege('taskmgr_app', 'tm.audit_log', 'INSERT')}),
       't', 'the app role may SELECT and INSERT');
    is($t->psql(qq{SET ROLE taskmgr_app; SELECT set_config('tm.ws', '$eve->{ws}', false);
                   SELECT count(*) FROM tm.audit_log WHERE workspace_id = '$ws'}),
       "$eve->{ws}\n0", 'row-level security: another tenant\'s entries are invisible');
}

$t->done;
