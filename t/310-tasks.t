# /v1/workspaces/{ws}/tasks: CRUD, validation, keyset pages, conditional
# requests, soft delete and restore, roles, tenant isolation, request ids,
# HEAD and 405.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP ();
use MIME::Base64 ();
use Time::HiRes ();
use Taskmgr::Test;

my $t = Taskmgr::Test->new;
my $rand = $t->{rand};
my $JSON = JSON::PP->new->utf8->canonical;

my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
my $TS   = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

sub uuid4 {
    my $h = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    substr($h, 12, 1) = '4';
    return join '-', unpack 'A8 A4 A4 A4 A12', $h;
}

sub b64url {
    my $s = MIME::Base64::encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return MIME::Base64::decode_base64($s);
}

sub without_rid {
    my ($j) = @_;
    return undef unless ref $j eq 'HASH';
    my %c = %$j;
    delete $c{request_id};
    return \%c;
}

sub api {
    my ($method, $path, $tok, $body, %h) = @_;
    return $t->request($method, $path, token => $tok, headers => {%h},
                       (defined $body ? (body => $body) : ()));
}

$t->start;

# Users: alice owns her personal workspace, mel is a member and vic a viewer
# of it; bob is another tenant; pat owns the workspace used for paging.
for my $who (qw(alice bob mel vic pat)) {
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => "$who-$rand\@example.com", password => "password of $who $rand",
        name => ucfirst $who });
    is($r->{status}, 201, "register $who") or diag $r->{body};
    $t->var("${who}_tok" => $r->{json}{access_token});
    $t->var("${who}_uid" => $r->{json}{user}{id});
    my $l = api(GET => '/v1/workspaces', $r->{json}{access_token});
    $t->var("${who}_ws" => $l->{json}{data}[0]{id});
}
my $v = $t->{vars};
$t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'member')},
         $v->{alice_ws}, $v->{mel_uid});
$t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'viewer')},
         $v->{alice_ws}, $v->{vic_uid});
$t->var(proj => $t->psql(q{INSERT INTO tm.projects (workspace_id, name, created_by)
                           VALUES ($1, 'Project A', $2) RETURNING id}, $v->{alice_ws}, $v->{alice_uid}));
$t->var(bob_proj => $t->psql(q{INSERT INTO tm.projects (workspace_id, name, created_by)
                               VALUES ($1, 'Project B', $2) RETURNING id}, $v->{bob_ws}, $v->{bob_uid}));
{
    my $r = api(POST => "/v1/workspaces/$v->{bob_ws}/tasks", $v->{bob_tok}, { title => "bob's task" });
    is($r->{status}, 201, "bob's own task") or diag $r->{body};
    $t->var(bob_task => $r->{json}{id});
}

$t->var(random_uuid => uuid4());
$t->var(title_500 => "\xc3\xa9" x 500);            # 500 characters, 1000 bytes
$t->var(title_501 => "\xc3\xa9" x 501);
$t->var(desc_100000 => 'd' x 100000);
$t->var(desc_100001 => 'd' x 100001);
$t->var(labels_50 => $JSON->encode([ map { sprintf('%02d', $_) . ('l' x 62) } 1 .. 50 ]));
$t->var(labels_51 => $JSON->encode([ map { "l$_" } 1 .. 51 ]));
$t->var(label_65 => 'x' x 65);
$t->var(rid_128 => 'R' x 128);
$t->var(rid_129 => 'R' x 129);

run_blocks($t, no_done => 1);

# Nothing was written by the refused requests of the blocks.
for my $title ("after logout $rand", "planted by bob $rand", "by a viewer $rand",
               "impossible date $rand", "with a query $rand", 'patched with a query') {
    is($t->psql(q{SELECT count(*) FROM tm.tasks WHERE title = $1}, $title), 0,
       "no task \"$title\" was written");
}

###########################################################################
# Pagination: 7 tasks in pat's workspace, pages of 3.
{
    my $ws = $v->{pat_ws};
    my @created;
    for my $i (1 .. 7) {
        my $r = api(POST => "/v1/workspaces/$ws/tasks", $v->{pat_tok}, { title => "page task $i" });
        is($r->{status}, 201, "paging: create $i") or diag $r->{body};
        push @created, $r->{json}{id};
        Time::HiRes::sleep(0.003);    # distinct created_at milliseconds
    }
    my @newest_first = reverse @created;

    # the default page holds all of them, newest first, and says there is no more
    my $all = api(GET => "/v1/workspaces/$ws/tasks", $v->{pat_tok});
    is($all->{status}, 200, 'paging: default list');
    is_deeply([ sort keys %{ $all->{json} } ], [qw(data next_cursor)], 'list keys');
    is_deeply([ map { $_->{id} } @{ $all->{json}{data} } ], \@newest_first,
              'default limit: all 7, newest first');
    ok(exists $all->{json}{next_cursor} && !defined $all->{json}{next_cursor},
       'default limit: next_cursor is null');
    ok(!exists $all->{headers}{link}, 'default limit: no Link header');
    my @ts = map { $_->{created_at} } @{ $all->{json}{data} };
    is_deeply(\@ts, [ sort { $b cmp $a } @ts ], 'created_at never increases down the list');

    # walk by next_cursor
    my (@seen, @sizes, $cursor, $first_cursor);
    for my $page (1 .. 5) {
        my $r = api(GET => "/v1/workspaces/$ws/tasks?limit=3"
                           . (defined $cursor ? "&cursor=$cursor" : ''), $v->{pat_tok});
        is($r->{status}, 200, "cursor walk: page $page") or diag $r->{body};
        push @seen, map { $_->{id} } @{ $r->{json}{data} };
        push @sizes, scalar @{ $r->{json}{data} };
        $cursor = $r->{json}{next_cursor};
        $first_cursor //= $cursor;
        if (defined $cursor) {
            like($cursor, qr/^[A-Za-z0-9_-]+$/, "cursor walk: page $page cursor is base64url");
            like($r->{headers}{link} // '', qr/^<[^>]+>; rel="next"$/,
                 "cursor walk: page $page has a Link next");
        } else {
            ok(!exists $r->{headers}{link}, "cursor walk: last page $page has no Link header");
            last;
        }
    }
    is_deeply(\@sizes, [3, 3, 1], 'cursor walk: pages of 3, 3, 1');
    is_deeply(\@seen, \@newest_first, 'cursor walk: every task once, newest first');

    # walk by Link
    my (@seen2, @links);
    my $url = "/v1/workspaces/$ws/tasks?limit=3";
    for my $page (1 .. 5) {
        my $r = api(GET => $url, $v->{pat_tok});
        is($r->{status}, 200, "Link walk: page $page") or diag $r->{body};
        push @seen2, map { $_->{id} } @{ $r->{json}{data} };
        my ($next) = ($r->{headers}{link} // '') =~ /^<([^>]+)>; rel="next"$/;
        if (!defined $next) {
            ok(!defined $r->{json}{next_cursor}, "Link walk: page $page without Link has next_cursor null");
            last;
        }
        push @links, $next;
        is($next, "/v1/workspaces/$ws/tasks?limit=3&cursor=$r->{json}{next_cursor}",
           "Link walk: page $page Link carries limit and the next_cursor");
        $url = $next;
    }
    is(scalar @links, 2, 'Link walk: two Link headers for three pages');
    is_deeply(\@seen2, \@newest_first, 'Link walk: every task once, newest first');

    # an exact multiple: limit=7 answers one page and no next one
    my $r7 = api(GET => "/v1/workspaces/$ws/tasks?limit=7", $v->{pat_tok});
    is(scalar @{ $r7->{json}{data} }, 7, 'limit=7: seven tasks');
    ok(!defined $r7->{json}{next_cursor} && !exists $r7->{headers}{link},
       'limit=7: no next page');

    # limit=1 walks one by one
    my (@one, $c1);
    for (1 .. 9) {
        my $r = api(GET => "/v1/workspaces/$ws/tasks?limit=1" . ($c1 ? "&cursor=$c1" : ''), $v->{pat_tok});
        push @one, map { $_->{id} } @{ $r->{json}{data} };
        $c1 = $r->{json}{next_cursor} or last;
    }
    is_deeply(\@one, \@newest_first, 'limit=1 walk: every task once, newest first');

    # a deleted task drops out of the pages
    my $gone = $newest_first[3];
    is(api(DELETE => "/v1/workspaces/$ws/tasks/$gone", $v->{pat_tok})->{status}, 204,
       'paging: delete one');
    my @after;
    $cursor = undef;
    for (1 .. 5) {
        my $r = api(GET => "/v1/workspaces/$ws/tasks?limit=3" . ($cursor ? "&cursor=$cursor" : ''),
                    $v->{pat_tok});
        push @after, map { $_->{id} } @{ $r->{json}{data} };
        $cursor = $r->{json}{next_cursor} or last;
    }
    is_deeply(\@after, [ grep { $_ ne $gone } @newest_first ], 'soft-deleted task is not listed');

    # malformed and tampered cursors: 400 naming the parameter (the
    # signed format itself is tested in t/330-list-cursor.t)
    my $raw = b64url_decode($first_cursor);
    my $flipped = $raw;
    substr($flipped, 20, 1) = chr(ord(substr($flipped, 20, 1)) ^ 1);
    my %bad = (
        'not base64url'                => '!!!!',
        'empty'                        => '',
        'truncated'                    => substr($first_cursor, 0, -4),
        'extended'                     => $first_cursor . 'AAAA',
        'base64url of something else'  => b64url('hello world'),
        'one bit flipped'              => b64url($flipped),
        'too long'                     => 'A' x 5000,
    );
    for my $what (sort keys %bad) {
        my $r = api(GET => "/v1/workspaces/$ws/tasks?limit=3&cursor=$bad{$what}", $v->{pat_tok});
        is($r->{status}, 400, "cursor $what: 400") or diag $r->{body};
        is($r->{json}{code}, 'validation_failed', "cursor $what: validation_failed");
        is($r->{json}{errors}[0]{field}, 'cursor', "cursor $what: names the cursor");
    }
    my $twice = api(GET => "/v1/workspaces/$ws/tasks?cursor=$first_cursor&cursor=$first_cursor",
                    $v->{pat_tok});
    is($twice->{status}, 400, 'cursor given twice: 400');
}

###########################################################################
# Another tenant's workspace or task answers exactly like a missing one.
{
    my ($aws, $bws, $btok, $t1) = @$v{qw(alice_ws bob_ws bob_tok t1)};
    my $rnd = uuid4();
    my @same = (
        [ 'list',   GET    => "/v1/workspaces/$aws/tasks",            "/v1/workspaces/$rnd/tasks" ],
        [ 'get',    GET    => "/v1/workspaces/$aws/tasks/$t1",        "/v1/workspaces/$rnd/tasks/$t1" ],
        [ 'patch',  PATCH  => "/v1/workspaces/$aws/tasks/$t1",        "/v1/workspaces/$rnd/tasks/$t1", { title => 'pwned' } ],
        [ 'delete', DELETE => "/v1/workspaces/$aws/tasks/$t1",        "/v1/workspaces/$rnd/tasks/$t1" ],
        [ 'restore',POST   => "/v1/workspaces/$aws/tasks/$t1/restore","/v1/workspaces/$rnd/tasks/$t1/restore" ],
        [ 'create', POST   => "/v1/workspaces/$aws/tasks",            "/v1/workspaces/$rnd/tasks", { title => 'pwned' } ],
        # bob's own workspace, alice's task id vs a random task id
        [ 'own ws, foreign task', GET => "/v1/workspaces/$bws/tasks/$t1", "/v1/workspaces/$bws/tasks/$rnd" ],
        [ 'own ws, foreign task patch', PATCH => "/v1/workspaces/$bws/tasks/$t1",
          "/v1/workspaces/$bws/tasks/$rnd", { title => 'pwned' } ],
    );
    for my $c (@same) {
        my ($what, $m, $theirs, $missing, $body) = @$c;
        my $a = api($m => $theirs, $btok, $body);
        my $b = api($m => $missing, $btok, $body);
        is($a->{status}, 404, "tenancy $what: 404") or diag $a->{body};
        is_deeply(without_rid($a->{json}), without_rid($b->{json}),
                  "tenancy $what: the same body as for a missing one");
        is_deeply([ sort grep { !/^(date|x-request-id)$/ } keys %{ $a->{headers} } ],
                  [ sort grep { !/^(date|x-request-id)$/ } keys %{ $b->{headers} } ],
                  "tenancy $what: the same headers");
    }
    my $r = api(GET => "/v1/workspaces/$aws/tasks/$t1", $v->{alice_tok});
    is($r->{status}, 200, 'alice still has her task');
    is($r->{json}{title}, 'Done task renamed', "bob's attempts changed nothing");
    is($r->{json}{deleted_at}, undef, '... and did not delete it');
    # bob's task cannot become the parent of alice's task (and vice versa)
    my $p = api(PATCH => "/v1/workspaces/$aws/tasks/$t1", $v->{alice_tok}, { parent_id => $v->{bob_task} });
    is($p->{status}, 422, "another tenant's task as parent: 422");
    my $q = api(PATCH => "/v1/workspaces/$aws/tasks/$t1", $v->{alice_tok}, { parent_id => uuid4() });
    is_deeply(without_rid($p->{json}), without_rid($q->{json}),
              "... exactly like a task that does not exist");
}

###########################################################################
# Strings round-trip through the C JSON writer unchanged.
{
    my $title = "He said \"hi\" \\ back\\slash /slash\ttab\nnewline \x{1} ctrl \x{fc}ml\x{e4}ut \x{1F600} \x{2028}";
    my $desc  = join '', map { chr } 1 .. 31, 34, 92, 127;
    my @labels = ("quo\"te", "back\\slash", "\x{e9}t\x{e9}", "\x{1F680}");
    my $r = api(POST => "/v1/workspaces/$v->{alice_ws}/tasks", $v->{alice_tok},
                { title => $title, description => $desc, labels => \@labels });
    is($r->{status}, 201, 'escapes: created') or diag $r->{body};
    ok(defined $r->{json}, 'escapes: the answer is valid JSON');
    is($r->{json}{title}, $title, 'escapes: title round-trips');
    is($r->{json}{description}, $desc, 'escapes: description round-trips');
    is_deeply($r->{json}{labels}, \@labels, 'escapes: labels round-trip');
    my $g = api(GET => "/v1/workspaces/$v->{alice_ws}/tasks/$r->{json}{id}", $v->{alice_tok});
    is($g->{json}{title}, $title, 'escapes: title round-trips through GET');
    my $l = api(GET => "/v1/workspaces/$v->{alice_ws}/tasks?limit=1", $v->{alice_tok});
    is($l->{json}{data}[0]{title}, $title, 'escapes: title round-trips through the list');

    my $big = api(POST => "/v1/workspaces/$v->{alice_ws}/tasks", $v->{alice_tok},
                  { title => 'quotes everywhere', description => '"' x 100000 });
    is($big->{status}, 201, 'escapes: 100000 quotes (200000 bytes once escaped)');
    is(length($big->{json}{description} // ''), 100000, '... round-trip');
}

###########################################################################
# Bodies: the exact key set, request ids, chunked bodies, 413.
{
    my $r = api(GET => "/v1/workspaces/$v->{alice_ws}/tasks/$v->{t1}", $v->{alice_tok});
    is_deeply([ sort keys %{ $r->{json} } ],
              [ sort qw(id workspace_id project_id parent_id title description status priority
                        due_at assignee_id labels created_by created_at updated_at completed_at
                        deleted_at version) ],
              'a task has exactly the fields of API.md');

    for my $c ([ 404 => GET => "/v1/workspaces/" . uuid4() . "/tasks" ],
               [ 422 => POST => "/v1/workspaces/$v->{alice_ws}/tasks", { title => '' } ],
               [ 400 => GET => "/v1/workspaces/$v->{alice_ws}/tasks?nope=1" ]) {
        my ($st, $m, $p, $b) = @$c;
        my $e = api($m => $p, $v->{alice_tok}, $b);
        is($e->{status}, $st, "$st problem");
        is($e->{headers}{'content-type'}, 'application/problem+json', "$st: problem+json");
        like($e->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/, "$st: X-Request-Id");
        is($e->{json}{request_id}, $e->{headers}{'x-request-id'}, "$st: request_id equals X-Request-Id");
        is($e->{json}{type}, "https://taskmgr.dev/problems/$e->{json}{code}", "$st: type names the code");
        is($e->{json}{status}, $st, "$st: status in the body");
        is_deeply([ sort grep { $_ ne 'errors' } keys %{ $e->{json} } ],
                  [qw(code detail request_id status title type)], "$st: the problem members");
        ok(length($e->{json}{title} // ''), "$st: a title");
    }
    my $ok = api(GET => "/v1/workspaces/$v->{alice_ws}/tasks/$v->{t1}", $v->{alice_tok});
    like($ok->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/, 'a 200 carries X-Request-Id too');
    my $rid = api(GET => "/v1/workspaces/$v->{alice_ws}/tasks/$v->{t1}", $v->{alice_tok}, undef,
                  'X-Request-Id' => "mine-$rand");
    is($rid->{headers}{'x-request-id'}, "mine-$rand", 'a well-formed client id is echoed on a 200');
    # the line is written after the answer is sent: give the worker a moment
    my $logged;
    for (1 .. 100) {
        last if ($logged = $t->access_log =~ /rid=mine-\Q$rand\E/);
        Time::HiRes::sleep(0.05);
    }
    ok($logged, '... and is in the access log');

    # Over client_max_body_size (2m here) nginx refuses before the module
    # reads it: still a problem+json 413.
    my $over = api(POST => "/v1/workspaces/$v->{alice_ws}/tasks", $v->{alice_tok},
                   { title => "over 2m $rand", description => 'o' x (3 * 1024 * 1024) });
    is($over->{status}, 413, 'a body over client_max_body_size: 413');
    is($over->{headers}{'content-type'}, 'application/problem+json', '... as problem+json')
        or diag substr($over->{body}, 0, 200);

    # A chunked body (no Content-Length) is read like any other.
    my $json = qq({"title":"chunked $rand"});
    my $chunked = sprintf("%x\r\n%s\r\n0\r\n\r\n", length $json, $json);
    my $raw = $t->raw_request(
        "POST /v1/workspaces/$v->{alice_ws}/tasks HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $v->{alice_tok}\r\nContent-Type: application/json\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n$chunked", timeout => 5);
    is($raw->{status}, 201, 'a chunked JSON body creates the task') or diag $raw->{body};

    # Invalid UTF-8 is not JSON.
    my $bad = api(POST => "/v1/workspaces/$v->{alice_ws}/tasks", $v->{alice_tok},
                  qq({"title":"bad \xff byte $rand"}), 'Content-Type' => 'application/json');
    is($bad->{status}, 400, 'invalid UTF-8: 400');
    is($bad->{json}{code}, 'validation_failed', '... validation_failed');

    # Over 1 MiB: 413, with nothing written.
    my $huge = api(POST => "/v1/workspaces/$v->{alice_ws}/tasks", $v->{alice_tok},
                   { title => "huge $rand", description => 'h' x (1024 * 1024) });
    is($huge->{status}, 413, 'a body over 1 MiB: 413');
    is($huge->{json}{code}, 'payload_too_large', '... payload_too_large');
    is($t->psql(q{SELECT count(*) FROM tm.tasks WHERE title = $1}, "huge $rand"), 0,
       '... and nothing was written');

    # A chunked body over 1 MiB: 413 too.
    my $hj = qq({"title":"huge chunked $rand","description":") . ('h' x (1100 * 1024)) . '"}';
    my $hc = join('', map { sprintf("%x\r\n%s\r\n", length $_, $_) } unpack('(a65536)*', $hj))
           . "0\r\n\r\n";
    my $hraw = $t->raw_request(
        "POST /v1/workspaces/$v->{alice_ws}/tasks HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $v->{alice_tok}\r\nContent-Type: application/json\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n$hc", timeout => 5);
    is($hraw->{status}, 413, 'a chunked body over 1 MiB: 413');
    is($t->psql(q{SELECT count(*) FROM tm.tasks WHERE title = $1}, "huge chunked $rand"), 0,
       '... and nothing was written');
}

$t->done;

__DATA__

=== TEST 1: create with a title only: 201, Location, ETag "1", every field
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"Write the tests"}
--- token: alice_tok
--- error_code: 201
--- response_headers
Content-Type: application/json; charset=utf-8
ETag: "1"
Location: ~^/v1/workspaces/{{alice_ws}}/tasks/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$
X-Request-Id: ~^[0-9a-f]{32}$
--- response_json_like
{"id":"/^[0-9a-f-]{36}$/","workspace_id":"{{alice_ws}}","project_id":null,"parent_id":null,
 "title":"Write the tests","description":"","status":"todo","priority":0,"due_at":null,
 "assignee_id":null,"labels":[],"created_by":"{{alice_uid}}",
 "created_at":"/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$/",
 "updated_at":"/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$/",
 "completed_at":null,"deleted_at":null,"version":1}
--- capture
t1 = id
t1_loc = header:location

=== TEST 2: the Location answers the task with ETag "1"
--- request
GET {{t1_loc}}
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: "1"
Cache-Control: ~^private\b
Content-Type: application/json; charset=utf-8
--- response_json_like: {"id":"{{t1}}","title":"Write the tests","version":1,"workspace_id":"{{alice_ws}}"}

=== TEST 3: If-None-Match with the ETag: 304 without a body
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- more_headers
If-None-Match: "1"
--- error_code: 304
--- response_headers
ETag: "1"
--- response_body

=== TEST 4: If-None-Match with the weak form of the ETag: 304
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- more_headers
If-None-Match: W/"1"
--- error_code: 304

=== TEST 5: If-None-Match with a list that holds the ETag: 304
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- more_headers
If-None-Match: "7", "1"
--- error_code: 304

=== TEST 6: If-None-Match with another ETag: 200
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- more_headers
If-None-Match: "2"
--- error_code: 200
--- response_json_like: {"id":"{{t1}}"}

=== TEST 7: create with every field
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"Full","description":"line 1\nline 2","status":"in_progress","priority":4,
 "due_at":"2026-12-01T10:30:00+02:00","assignee_id":"{{mel_uid}}","labels":["backend","p1"],
 "project_id":"{{proj}}","parent_id":"{{t1}}"}
--- token: alice_tok
--- error_code: 201
--- response_json_like
{"title":"Full","description":"line 1\nline 2","status":"in_progress","priority":4,
 "due_at":"2026-12-01T08:30:00.000Z","assignee_id":"{{mel_uid}}","project_id":"{{proj}}",
 "parent_id":"{{t1}}","completed_at":null,"version":1}
--- response_body_like: "labels":\["backend","p1"\]
--- capture
t2 = id

=== TEST 8: due_at with a fraction is kept to the millisecond
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t2}}
{"due_at":"2026-12-01T10:30:00.123456Z"}
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: "2"
--- response_json_like: {"due_at":"2026-12-01T10:30:00.123Z","version":2}

=== TEST 9: merge patch: null clears the nullable fields
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t2}}
{"description":null,"due_at":null,"assignee_id":null,"labels":null,"project_id":null,"parent_id":null}
--- token: alice_tok
--- error_code: 200
--- response_json_like
{"description":"","due_at":null,"assignee_id":null,"labels":[],"project_id":null,"parent_id":null,
 "title":"Full","status":"in_progress","priority":4,"version":3}

=== TEST 10: a create with status done sets completed_at
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"Born done","status":"done"}
--- token: alice_tok
--- error_code: 201
--- response_json_like: {"status":"done","completed_at":"/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$/"}

=== TEST 11: PATCH a field: 200, version 2, ETag "2", the rest unchanged
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":"Renamed"}
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: "2"
Content-Type: application/json; charset=utf-8
--- response_json_like
{"id":"{{t1}}","title":"Renamed","description":"","status":"todo","priority":0,"version":2,
 "completed_at":null}

=== TEST 12: PATCH with a stale If-Match: 412
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":"Lost update"}
--- token: alice_tok
--- more_headers
If-Match: "1"
--- error_code: 412
--- response_headers
Content-Type: application/problem+json
--- response_json_like
{"type":"https://taskmgr.dev/problems/precondition_failed","title":"Precondition failed",
 "status":412,"code":"precondition_failed","detail":"the task has changed since that version"}

=== TEST 13: ... which changed nothing
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: "2"
--- response_json_like: {"title":"Renamed","version":2}

=== TEST 14: PATCH with the current If-Match: 200, version 3
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"priority":2}
--- token: alice_tok
--- more_headers
If-Match: "2"
--- error_code: 200
--- response_headers
ETag: "3"
--- response_json_like: {"priority":2,"version":3}

=== TEST 15: PATCH with an If-Match that is no ETag of ours: 412
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"priority":3}
--- token: alice_tok
--- more_headers
If-Match: "abc"
--- error_code: 412
--- response_json_like: {"code":"precondition_failed"}

=== TEST 16: PATCH with If-Match: * (any version)
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"labels":["x","y"]}
--- token: alice_tok
--- more_headers
If-Match: *
--- error_code: 200
--- response_headers
ETag: "4"
--- response_json_like: {"version":4,"priority":2}
--- response_body_like: "labels":\["x","y"\]

=== TEST 17: PATCH that changes nothing keeps the version
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"priority":2,"labels":["x","y"]}
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: "4"
--- response_json_like: {"version":4}

=== TEST 18: PATCH {} keeps the version
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{}
--- token: alice_tok
--- error_code: 200
--- response_json_like: {"version":4,"title":"Renamed"}

=== TEST 19: status done sets completed_at
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"status":"done"}
--- token: alice_tok
--- error_code: 200
--- response_json_like: {"status":"done","version":5,"completed_at":"/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$/"}
--- capture
t1_done_at = completed_at

=== TEST 20: staying done keeps the first completed_at
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":"Done task","status":"done"}
--- token: alice_tok
--- error_code: 200
--- response_json_like: {"title":"Done task","status":"done","completed_at":"{{t1_done_at}}","version":6}

=== TEST 21: leaving done clears completed_at
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"status":"in_progress"}
--- token: alice_tok
--- error_code: 200
--- response_json_like: {"status":"in_progress","completed_at":null,"version":7}

=== TEST 22: PATCH with application/merge-patch+json
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":"Done task renamed"}
--- token: alice_tok
--- more_headers
Content-Type: application/merge-patch+json
--- error_code: 200
--- response_json_like: {"title":"Done task renamed","version":8}

=== TEST 23: PATCH title null: 422 (not nullable)
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":null}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"code":"validation_failed","errors":[{"field":"title","message":"must not be null"}]}

=== TEST 24: PATCH priority null and status null: 422 naming both
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"status":null,"priority":null}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"status","message":"must not be null"},{"field":"priority","message":"must not be null"}]}

=== TEST 25: PATCH a read-only field (version): 400
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"version":99}
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed","errors":[{"field":"version","message":"unknown field"}]}

=== TEST 26: PATCH created_by and workspace_id: 400 naming both
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"created_by":"{{bob_uid}}","workspace_id":"{{bob_ws}}"}
--- token: alice_tok
--- error_code: 400
--- response_body_like: "field":"created_by".*"field":"workspace_id"|"field":"workspace_id".*"field":"created_by"

=== TEST 27: PATCH text/plain: 415
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":"x"}
--- token: alice_tok
--- more_headers
Content-Type: text/plain
--- error_code: 415
--- response_json_like: {"code":"unsupported_media_type","status":415}

=== TEST 28: the refused PATCHes changed nothing
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: "8"
--- response_json_like: {"title":"Done task renamed","version":8,"workspace_id":"{{alice_ws}}","created_by":"{{alice_uid}}"}

=== TEST 29: DELETE with a stale If-Match: 412
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- more_headers
If-Match: "7"
--- error_code: 412
--- response_json_like: {"code":"precondition_failed"}

=== TEST 30: a task to delete and restore
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"Delete me"}
--- token: alice_tok
--- error_code: 201
--- capture
t3 = id

=== TEST 31: DELETE with the current If-Match: 204 without a body
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks/{{t3}}
--- token: alice_tok
--- more_headers
If-Match: "1"
--- error_code: 204
--- response_body

=== TEST 32: a deleted task is 404
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t3}}
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"type":"https://taskmgr.dev/problems/not_found","code":"not_found","detail":"task not found"}

=== TEST 33: a deleted task is not listed
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=200
--- token: alice_tok
--- error_code: 200
--- response_json_like: {"data":[{"workspace_id":"{{alice_ws}}"}],"next_cursor":null}
--- response_body_like: ^(?!.*{{t3}})(?=.*{{t1}})

=== TEST 34: PATCH of a deleted task: 404
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t3}}
{"title":"ghost"}
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 35: DELETE of a deleted task: 404
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks/{{t3}}
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 36: a deleted task cannot be a parent
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"orphan","parent_id":"{{t3}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"code":"validation_failed","detail":"parent_id: no such task in this workspace"}

=== TEST 37: restore: 200, the task is back with a new version
--- request
POST /v1/workspaces/{{alice_ws}}/tasks/{{t3}}/restore
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: "3"
--- response_json_like: {"id":"{{t3}}","title":"Delete me","deleted_at":null,"version":3}

=== TEST 38: the restored task answers GET again
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t3}}
--- token: alice_tok
--- error_code: 200
--- response_json_like: {"id":"{{t3}}","deleted_at":null}

=== TEST 39: ... and is listed again
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=200
--- token: alice_tok
--- error_code: 200
--- response_body_like: {{t3}}

=== TEST 40: restore of a live task: 409
--- request
POST /v1/workspaces/{{alice_ws}}/tasks/{{t3}}/restore
--- token: alice_tok
--- error_code: 409
--- response_json_like: {"type":"https://taskmgr.dev/problems/conflict","code":"conflict","status":409,"detail":"the task is not deleted"}

=== TEST 41: restore of a task that never existed: 404
--- request
POST /v1/workspaces/{{alice_ws}}/tasks/{{random_uuid}}/restore
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 42: a task that stays deleted (for the role tests)
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"Stays deleted"}
--- token: alice_tok
--- error_code: 201
--- capture
t_del = id

=== TEST 43: ... deleted
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks/{{t_del}}
--- token: alice_tok
--- error_code: 204

=== TEST 44: validation: an empty title
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":""}
--- token: alice_tok
--- error_code: 422
--- response_headers
Content-Type: application/problem+json
--- response_json_like
{"type":"https://taskmgr.dev/problems/validation_failed","title":"Validation failed","status":422,
 "code":"validation_failed","errors":[{"field":"title","message":"must have 1 to 500 characters"}]}

=== TEST 45: validation: a title of 500 characters (1000 bytes) is accepted
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"{{title_500}}"}
--- token: alice_tok
--- error_code: 201
--- response_json_like: {"title":"{{title_500}}"}

=== TEST 46: validation: a title of 501 characters
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"{{title_501}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"title"}]}

=== TEST 47: validation: no title
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"description":"no title"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"title","message":"is required"}]}

=== TEST 48: validation: a title that is a number
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":42}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"title","message":"must be a string"}]}

=== TEST 49: validation: a description of 100000 characters is accepted
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"long","description":"{{desc_100000}}"}
--- token: alice_tok
--- error_code: 201
--- response_json_like: {"title":"long","description":"/^(?:d{50000}){2}$/"}

=== TEST 50: validation: a description of 100001 characters
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"long","description":"{{desc_100001}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"description","message":"must have 0 to 100000 characters"}]}

=== TEST 51: validation: a status outside the enum
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","status":"blocked"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"status","message":"is not one of the allowed values"}]}

=== TEST 52: validation: the status enum is case-sensitive
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","status":"DONE"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"status"}]}

=== TEST 53: validation: archived is a status
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","status":"archived"}
--- token: alice_tok
--- error_code: 201
--- response_json_like: {"status":"archived","completed_at":null}

=== TEST 54: validation: priority 5
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","priority":5}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"priority","message":"must be between 0 and 4"}]}

=== TEST 55: validation: priority -1
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","priority":-1}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"priority","message":"must be between 0 and 4"}]}

=== TEST 56: validation: priority 1.5
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","priority":1.5}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"priority","message":"must be an integer"}]}

=== TEST 57: validation: priority "1"
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","priority":"1"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"priority","message":"must be an integer"}]}

=== TEST 58: validation: a huge priority
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","priority":9223372036854775807}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"priority"}]}

=== TEST 59: validation: due_at that is no date-time
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","due_at":"tomorrow"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"due_at","message":"must be an RFC 3339 date-time"}]}

=== TEST 60: validation: due_at without a time
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","due_at":"2026-12-01"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"due_at"}]}

=== TEST 61: validation: due_at without an offset
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","due_at":"2026-12-01T10:00:00"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"due_at"}]}

=== TEST 62: validation: due_at with an impossible date (checked by the database)
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"impossible date {{rand}}","due_at":"2026-13-45T10:00:00Z"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"status":422,"code":"validation_failed"}
--- no_error_log
[error]

=== TEST 63: validation: assignee_id that is not a UUID
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","assignee_id":"mel"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"assignee_id","message":"must be a UUID"}]}

=== TEST 64: validation: an assignee who is not a member of the workspace
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","assignee_id":"{{bob_uid}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"code":"validation_failed","detail":"assignee_id: not a member of this workspace"}

=== TEST 65: validation: an assignee who does not exist
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","assignee_id":"{{random_uuid}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"detail":"assignee_id: not a member of this workspace"}

=== TEST 66: a viewer of the workspace can be the assignee
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"for vic","assignee_id":"{{vic_uid}}"}
--- token: alice_tok
--- error_code: 201
--- response_json_like: {"assignee_id":"{{vic_uid}}"}

=== TEST 67: validation: 50 labels of 64 characters are accepted
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"labels","labels":{{labels_50}}}
--- token: alice_tok
--- error_code: 201
--- response_body_like: "labels":\["01l{62}",.*"50l{62}"\]

=== TEST 68: validation: 51 labels
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"labels","labels":{{labels_51}}}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"labels","message":"must have at most 50 items"}]}

=== TEST 69: validation: an empty label
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"labels","labels":["ok",""]}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"labels","message":"items must have 1 to 64 characters"}]}

=== TEST 70: validation: a label of 65 characters
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"labels","labels":["{{label_65}}"]}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"labels"}]}

=== TEST 71: validation: a label that is not a string
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"labels","labels":["a",1]}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"labels","message":"must be an array of strings"}]}

=== TEST 72: validation: a null label
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"labels","labels":[null]}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"labels"}]}

=== TEST 73: validation: labels that are a string
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"labels","labels":"a,b"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"labels","message":"must be an array of strings"}]}

=== TEST 74: validation: a project that does not exist
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","project_id":"{{random_uuid}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"code":"validation_failed","detail":"project_id: no such project in this workspace"}

=== TEST 75: validation: another workspace's project
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","project_id":"{{bob_proj}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"detail":"project_id: no such project in this workspace"}

=== TEST 76: validation: a parent that does not exist
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","parent_id":"{{random_uuid}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"detail":"parent_id: no such task in this workspace"}

=== TEST 77: validation: another workspace's task as parent
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","parent_id":"{{bob_task}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"detail":"parent_id: no such task in this workspace"}

=== TEST 78: cycles: c1
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"c1"}
--- token: alice_tok
--- error_code: 201
--- capture
c1 = id

=== TEST 79: cycles: c2 under c1
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"c2","parent_id":"{{c1}}"}
--- token: alice_tok
--- error_code: 201
--- response_json_like: {"parent_id":"{{c1}}"}
--- capture
c2 = id

=== TEST 80: cycles: c3 under c2
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"c3","parent_id":"{{c2}}"}
--- token: alice_tok
--- error_code: 201
--- capture
c3 = id

=== TEST 81: cycles: c1 under c2 would be a cycle
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{c1}}
{"parent_id":"{{c2}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"code":"validation_failed","detail":"parent_id: that would make a cycle"}

=== TEST 82: cycles: c1 under its grandchild c3 would be a cycle
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{c1}}
{"parent_id":"{{c3}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"detail":"parent_id: that would make a cycle"}

=== TEST 83: cycles: a task as its own parent
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{c1}}
{"parent_id":"{{c1}}"}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"detail":"parent_id: a task cannot be its own parent"}

=== TEST 84: cycles: moving c3 under c1 directly is fine
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{c3}}
{"parent_id":"{{c1}}"}
--- token: alice_tok
--- error_code: 200
--- response_json_like: {"parent_id":"{{c1}}","version":2}

=== TEST 85: validation: an unknown field is 400 naming it
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x","color":"red"}
--- token: alice_tok
--- error_code: 400
--- response_json_like
{"status":400,"code":"validation_failed","errors":[{"field":"color","message":"unknown field"}]}

=== TEST 86: validation: an unknown field wins over bad values (400, not 422)
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"","priority":9,"colour":"red"}
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"colour"}]}

=== TEST 87: validation: several bad values are all named
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"","status":"nope","priority":9}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"title"},{"field":"status"},{"field":"priority"}]}

=== TEST 88: validation: malformed JSON
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x",}
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed","detail":"the body is not valid JSON"}

=== TEST 89: validation: trailing garbage after the object
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x"} {"title":"y"}
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed"}

=== TEST 90: validation: a JSON array
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
[{"title":"x"}]
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed","errors":[{"message":"the body must be a JSON object"}]}

=== TEST 91: validation: JSON null
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
null
--- token: alice_tok
--- more_headers
Content-Type: application/json
--- error_code: 400
--- response_json_like: {"code":"validation_failed"}

=== TEST 93: validation: a duplicated key
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"a","title":"b"}
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed"}

=== TEST 94: validation: text/plain is 415
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x"}
--- token: alice_tok
--- more_headers
Content-Type: text/plain
--- error_code: 415
--- response_json_like: {"type":"https://taskmgr.dev/problems/unsupported_media_type","code":"unsupported_media_type"}

=== TEST 95: validation: no Content-Type is 415
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"x"}
--- token: alice_tok
--- more_headers
!content-type
--- error_code: 415
--- response_json_like: {"code":"unsupported_media_type"}

=== TEST 96: application/json with a charset is JSON
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"charset"}
--- token: alice_tok
--- more_headers
Content-Type: application/json; charset=utf-8
--- error_code: 201

=== TEST 97: list: limit=0
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=0
--- token: alice_tok
--- error_code: 400
--- response_json_like
{"status":400,"code":"validation_failed","errors":[{"field":"limit","message":"must be an integer from 1 to 200"}]}

=== TEST 98: list: limit=201
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=201
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"limit"}]}

=== TEST 99: list: limit=abc
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=abc
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"limit"}]}

=== TEST 100: list: limit=-1
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=-1
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"limit"}]}

=== TEST 101: list: an empty limit
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"limit"}]}

=== TEST 102: list: limit given twice
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=1&limit=2
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"limit","message":"given twice"}]}

=== TEST 103: list: limit=200 is allowed
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=200
--- token: alice_tok
--- error_code: 200
--- response_json_like: {"data":[{"workspace_id":"{{alice_ws}}"}],"next_cursor":null}

=== TEST 104: list: limit=1 answers one task and a cursor
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=1
--- token: alice_tok
--- error_code: 200
--- response_headers
Link: ~^</v1/workspaces/{{alice_ws}}/tasks\?limit=1&cursor=[A-Za-z0-9_-]+>; rel="next"$
--- response_json_like: {"data":[{"workspace_id":"{{alice_ws}}"}],"next_cursor":"/^[A-Za-z0-9_-]+$/"}
--- response_body_like: ^\{"data":\[\{[^\[]*\[[^\]]*\][^\]]*\}\],"next_cursor":"[^"]+"\}$

=== TEST 105: list: an unknown parameter is 400 naming it
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?colour=red
--- token: alice_tok
--- error_code: 400
--- response_json_like
{"status":400,"code":"validation_failed","errors":[{"field":"colour","message":"unknown parameter"}]}

=== TEST 106: list: an unknown parameter after known ones
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=5&sort=title&colour=red
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"colour"}]}

=== TEST 107: list: a percent-encoded parameter name is named decoded
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?%66oo=1
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"foo"}]}

=== TEST 108: GET one task with a query parameter: 400 naming it
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}?expand=all
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"expand","message":"unknown parameter"}]}

=== TEST 108a: create with a query parameter: 400 naming it, nothing created
--- request
POST /v1/workspaces/{{alice_ws}}/tasks?notify=all
{"title":"with a query {{rand}}"}
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed","errors":[{"field":"notify","message":"unknown parameter"}]}

=== TEST 108b: a task for the query-parameter checks
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"query target"}
--- token: alice_tok
--- error_code: 201
--- capture
t_q = id

=== TEST 108c: PATCH with a query parameter: 400 naming it
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t_q}}?dry_run=1
{"title":"patched with a query"}
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed","errors":[{"field":"dry_run","message":"unknown parameter"}]}

=== TEST 108d: DELETE with a query parameter: 400 naming it
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks/{{t_q}}?hard=1
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"hard","message":"unknown parameter"}]}

=== TEST 108e: the refused requests changed nothing
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t_q}}
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: "1"
--- response_json_like: {"title":"query target","deleted_at":null}

=== TEST 108f: (deleted, for restore)
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks/{{t_q}}
--- token: alice_tok
--- error_code: 204

=== TEST 108g: restore with a query parameter: 400 naming it
--- request
POST /v1/workspaces/{{alice_ws}}/tasks/{{t_q}}/restore?x=1
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"x","message":"unknown parameter"}]}

=== TEST 109: list: a weak ETag, and 304 for it
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=2
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: ~^W/"[0-9a-f]{32}"$
Cache-Control: ~^private\b
--- capture
list_etag = header:etag

=== TEST 110: list: If-None-Match of that ETag: 304
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=2
--- token: alice_tok
--- more_headers
If-None-Match: {{list_etag}}
--- error_code: 304
--- response_body

=== TEST 111: viewer: can list
--- request
GET /v1/workspaces/{{alice_ws}}/tasks?limit=200
--- token: vic_tok
--- error_code: 200
--- response_body_like: {{t1}}

=== TEST 112: viewer: can get
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: vic_tok
--- error_code: 200
--- response_json_like: {"id":"{{t1}}","version":8}

=== TEST 113: viewer: create is 403
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"by a viewer {{rand}}"}
--- token: vic_tok
--- error_code: 403
--- response_headers
Content-Type: application/problem+json
--- response_json_like
{"type":"https://taskmgr.dev/problems/forbidden","title":"Forbidden","status":403,"code":"forbidden"}

=== TEST 114: viewer: patch is 403
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":"by a viewer"}
--- token: vic_tok
--- error_code: 403
--- response_json_like: {"code":"forbidden"}

=== TEST 115: viewer: delete is 403
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: vic_tok
--- error_code: 403
--- response_json_like: {"code":"forbidden"}

=== TEST 116: viewer: restore is 403
--- request
POST /v1/workspaces/{{alice_ws}}/tasks/{{t_del}}/restore
--- token: vic_tok
--- error_code: 403
--- response_json_like: {"code":"forbidden"}

=== TEST 117: viewer: nothing was written
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: "8"
--- response_json_like: {"title":"Done task renamed","deleted_at":null}

=== TEST 118: viewer: the deleted task stayed deleted
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t_del}}
--- token: alice_tok
--- error_code: 404

=== TEST 119: member: create
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"by mel"}
--- token: mel_tok
--- error_code: 201
--- response_json_like: {"created_by":"{{mel_uid}}","workspace_id":"{{alice_ws}}"}
--- capture
t_mel = id

=== TEST 120: member: patch the owner's task
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t3}}
{"status":"in_progress"}
--- token: mel_tok
--- error_code: 200
--- response_json_like: {"status":"in_progress","created_by":"{{alice_uid}}"}

=== TEST 121: member: delete
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks/{{t_mel}}
--- token: mel_tok
--- error_code: 204

=== TEST 122: member: restore
--- request
POST /v1/workspaces/{{alice_ws}}/tasks/{{t_mel}}/restore
--- token: mel_tok
--- error_code: 200
--- response_json_like: {"id":"{{t_mel}}","deleted_at":null}

=== TEST 123: tenancy: bob cannot list alice's tasks
--- request
GET /v1/workspaces/{{alice_ws}}/tasks
--- token: bob_tok
--- error_code: 404
--- response_json_like: {"code":"not_found","detail":"workspace not found"}
--- response_body_like: ^(?!.*{{t1}})

=== TEST 124: tenancy: bob cannot get alice's task
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: bob_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}
--- response_body_like: ^(?!.*Done task)

=== TEST 125: tenancy: bob cannot patch alice's task
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":"pwned"}
--- token: bob_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 126: tenancy: bob cannot delete alice's task
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: bob_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 127: tenancy: bob cannot restore alice's deleted task
--- request
POST /v1/workspaces/{{alice_ws}}/tasks/{{t_del}}/restore
--- token: bob_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 128: tenancy: bob cannot create in alice's workspace
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"planted by bob {{rand}}"}
--- token: bob_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 129: tenancy: alice's task id under bob's own workspace is 404
--- request
GET /v1/workspaces/{{bob_ws}}/tasks/{{t1}}
--- token: bob_tok
--- error_code: 404
--- response_json_like: {"code":"not_found","detail":"task not found"}

=== TEST 130: tenancy: bob's list is his own
--- request
GET /v1/workspaces/{{bob_ws}}/tasks
--- token: bob_tok
--- error_code: 200
--- response_json_like: {"data":[{"id":"{{bob_task}}","workspace_id":"{{bob_ws}}"}],"next_cursor":null}
--- response_body_like: ^\{"data":\[\{[^{}]*\}\],"next_cursor":null\}$

=== TEST 131: X-Request-Id: a well-formed client id is echoed (header and body)
--- request
GET /v1/workspaces/{{random_uuid}}/tasks
--- token: alice_tok
--- more_headers
X-Request-Id: client-ID_1.2:3-{{rand}}
--- error_code: 404
--- response_headers
X-Request-Id: client-ID_1.2:3-{{rand}}
--- response_json_like: {"request_id":"client-ID_1.2:3-{{rand}}"}

=== TEST 132: X-Request-Id: 128 characters are echoed
--- request
GET /v1/workspaces/{{random_uuid}}/tasks
--- token: alice_tok
--- more_headers
X-Request-Id: {{rid_128}}
--- error_code: 404
--- response_headers
X-Request-Id: {{rid_128}}
--- response_json_like: {"request_id":"{{rid_128}}"}

=== TEST 133: X-Request-Id: 129 characters are replaced
--- request
GET /v1/workspaces/{{random_uuid}}/tasks
--- token: alice_tok
--- more_headers
X-Request-Id: {{rid_129}}
--- error_code: 404
--- response_headers
X-Request-Id: ~^[0-9a-f]{32}$
--- response_json_like: {"request_id":"/^[0-9a-f]{32}$/"}

=== TEST 134: X-Request-Id: characters outside the set are replaced
--- request
GET /v1/workspaces/{{random_uuid}}/tasks
--- token: alice_tok
--- more_headers
X-Request-Id: abc"},"injected":"x
--- error_code: 404
--- response_headers
X-Request-Id: ~^[0-9a-f]{32}$
--- response_json_like: {"request_id":"/^[0-9a-f]{32}$/"}
--- response_body_like: ^(?!.*injected)

=== TEST 135: X-Request-Id: a space makes it ill-formed
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- more_headers
X-Request-Id: two words
--- error_code: 200
--- response_headers
X-Request-Id: ~^[0-9a-f]{32}$

=== TEST 136: HEAD on a task: 200, its ETag, no body
--- request
HEAD /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: "8"
Content-Type: application/json; charset=utf-8
--- response_body

=== TEST 137: HEAD on a task with If-None-Match: 304
--- request
HEAD /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: alice_tok
--- more_headers
If-None-Match: "8"
--- error_code: 304

=== TEST 138: HEAD on the list: 200, no body
--- request
HEAD /v1/workspaces/{{alice_ws}}/tasks?limit=1
--- token: alice_tok
--- error_code: 200
--- response_headers
Link: ~rel="next"
--- response_body

=== TEST 139: HEAD of a missing task: 404
--- request
HEAD /v1/workspaces/{{alice_ws}}/tasks/{{random_uuid}}
--- token: alice_tok
--- error_code: 404
--- response_body

=== TEST 140: PUT on a task: 405 with Allow
--- request
PUT /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":"x"}
--- token: alice_tok
--- error_code: 405
--- response_headers
Allow: GET, HEAD, PATCH, DELETE
Content-Type: application/problem+json
--- response_json_like: {"status":405,"code":"method_not_allowed"}

=== TEST 141: POST on a task: 405 with Allow
--- request
POST /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":"x"}
--- token: alice_tok
--- error_code: 405
--- response_headers
Allow: GET, HEAD, PATCH, DELETE

=== TEST 142: GET on restore: 405, Allow: POST
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}/restore
--- token: alice_tok
--- error_code: 405
--- response_headers
Allow: POST

=== TEST 143: DELETE on the collection: 405, Allow: GET, HEAD, POST
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks
--- token: alice_tok
--- error_code: 405
--- response_headers
Allow: GET, HEAD, POST

=== TEST 144: a wrong method without a token is 401 first
--- request
PUT /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
{"title":"x"}
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer

=== TEST 145: a malformed workspace id: 404
--- request
GET /v1/workspaces/not-a-uuid/tasks
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found","detail":"workspace not found"}

=== TEST 146: a malformed task id: 404
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/123
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found","detail":"task not found"}

=== TEST 147: a malformed task id on PATCH: 404
--- request
PATCH /v1/workspaces/{{alice_ws}}/tasks/123
{"title":"x"}
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 148: a malformed task id on DELETE: 404
--- request
DELETE /v1/workspaces/{{alice_ws}}/tasks/{{t1}}x
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 149: a malformed task id on restore: 404
--- request
POST /v1/workspaces/{{alice_ws}}/tasks/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz/restore
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 150: a malformed workspace id on create: 404
--- request
POST /v1/workspaces/{{alice_ws}}0/tasks
{"title":"x"}
--- token: alice_tok
--- error_code: 404

=== TEST 151: tasks without a token: 401
--- request
GET /v1/workspaces/{{alice_ws}}/tasks
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
--- response_json_like: {"code":"unauthorized"}

=== TEST 152: a second session for alice ...
--- request
POST /v1/auth/login
{"email":"alice-{{rand}}@example.com","password":"password of alice {{rand}}"}
--- error_code: 200
--- capture
dead_tok = access_token

=== TEST 153: ... logged out
--- request
POST /v1/auth/logout
--- token: dead_tok
--- error_code: 204

=== TEST 154: a logged-out session's token cannot list tasks (401, not 404)
--- request
GET /v1/workspaces/{{alice_ws}}/tasks
--- token: dead_tok
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 155: ... nor create one
--- request
POST /v1/workspaces/{{alice_ws}}/tasks
{"title":"after logout {{rand}}"}
--- token: dead_tok
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 156: ... nor read one
--- request
GET /v1/workspaces/{{alice_ws}}/tasks/{{t1}}
--- token: dead_tok
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}
