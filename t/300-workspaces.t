# /v1/workspaces: list, create, get; validation; roles as seen by the list;
# another tenant's workspace answers like a missing one.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;

my $t = Taskmgr::Test->new;
my $rand = $t->{rand};

sub uuid4 {
    my $h = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    substr($h, 12, 1) = '4';
    return join '-', unpack 'A8 A4 A4 A4 A12', $h;
}

sub without_rid {
    my ($j) = @_;
    return undef unless ref $j eq 'HASH';
    my %c = %$j;
    delete $c{request_id};
    return \%c;
}

$t->start;

# Two users, each with a token and a personal workspace.
for my $who (qw(alice bob)) {
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => "$who-$rand\@example.com", password => "password of $who $rand",
        name => ucfirst $who });
    is($r->{status}, 201, "register $who") or diag $r->{body};
    $t->var("${who}_tok" => $r->{json}{access_token});
    $t->var("${who}_uid" => $r->{json}{user}{id});
    my $l = $t->request(GET => '/v1/workspaces', token => $r->{json}{access_token});
    $t->var("${who}_personal" => $l->{json}{data}[0]{id});
}
$t->var(random_uuid => uuid4());
$t->var(name_200 => 'n' x 200);
$t->var(name_201 => 'n' x 201);

# The blocks run in two phases: bob joins alice's team by SQL in between.
my $data = do { local $/; <DATA> };
my ($phase1, $phase2) = split /^#### bob joins alice's team as a viewer\n/m, $data;
run_blocks($t, blocks => $phase1, no_done => 1);
$t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'viewer')},
         $t->var('team_id'), $t->var('bob_uid'));
# What a membership write must also do for the read cache (docs/architecture.md):
# the tenant's and the new member's generations move on.  Deleting a generation
# does that: the next read starts a new, larger one.
$t->redis_cli('DEL', 'tmk:{' . $t->var('team_id') . '}:gen', 'tmk:{' . $t->var('bob_uid') . '}:gen');
run_blocks($t, blocks => $phase2, no_done => 1);

my $v = $t->{vars};

# The list: alice's personal workspace first, then the ones she created, in
# creation order; each exactly once.
{
    my $r = $t->request(GET => '/v1/workspaces', token => $v->{alice_tok});
    is($r->{status}, 200, 'list');
    my @ids = map { $_->{id} } @{ $r->{json}{data} };
    is_deeply(\@ids, [ $v->{alice_personal}, $v->{team_id}, $v->{ws200_id} ],
              'alice sees her three workspaces, oldest first')
        or diag $r->{body};
    is_deeply([ sort keys %{ $r->{json}{data}[0] } ],
              [qw(created_at created_by id name personal role updated_at)],
              'workspace keys');
    my @bob = map { "$_->{id}:$_->{role}" } @{
        $t->request(GET => '/v1/workspaces', token => $v->{bob_tok})->{json}{data} };
    is_deeply(\@bob, [ "$v->{bob_personal}:owner", "$v->{team_id}:viewer" ],
              "bob's list: his personal workspace and alice's team as viewer, nothing else");
}

# Bob's view of alice's workspace is the view of a workspace that does not
# exist: same status, same body but for the request id.
{
    my $theirs = $t->request(GET => "/v1/workspaces/$v->{alice_personal}", token => $v->{bob_tok});
    my $none   = $t->request(GET => "/v1/workspaces/" . uuid4(), token => $v->{bob_tok});
    is($theirs->{status}, 404, "another tenant's workspace: 404");
    is($none->{status}, 404, 'a missing workspace: 404');
    is_deeply(without_rid($theirs->{json}), without_rid($none->{json}),
              "another tenant's workspace answers exactly like a missing one");
    is($theirs->{headers}{'content-type'}, $none->{headers}{'content-type'}, '... same Content-Type');
    is($theirs->{json}{request_id}, $theirs->{headers}{'x-request-id'},
       'request_id equals X-Request-Id');
}

# The row really exists once, with alice as its only owner.
is($t->psql(q{SELECT string_agg(role, ',' ORDER BY role) FROM tm.workspace_members WHERE workspace_id = $1},
            $v->{team_id}), 'owner,viewer', 'team: owner alice, viewer bob (added by SQL)');

$t->done;

__DATA__

=== TEST 1: the personal workspace is listed with the owner role
--- request
GET /v1/workspaces
--- token: alice_tok
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
Cache-Control: ~^private\b
ETag: ~^W/"[0-9a-f]{32}"$
--- response_json_like
{"data":[{"id":"{{alice_personal}}","name":"Alice's workspace","personal":true,"role":"owner",
          "created_by":"{{alice_uid}}","created_at":"/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$/",
          "updated_at":"/Z$/"}]}
--- response_body_like: ^\{"data":\[\{[^{}]*\}\]\}$
--- capture
list_etag = header:etag

=== TEST 2: the list with If-None-Match of its ETag: 304
--- request
GET /v1/workspaces
--- token: alice_tok
--- more_headers
If-None-Match: {{list_etag}}
--- error_code: 304
--- response_body

=== TEST 3: create: 201, Location, the caller is owner
--- request
POST /v1/workspaces
{"name":"Team {{rand}}"}
--- token: alice_tok
--- error_code: 201
--- response_headers
Content-Type: application/json; charset=utf-8
Location: ~^/v1/workspaces/[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$
--- response_json_like
{"id":"/^[0-9a-f-]{36}$/","name":"Team {{rand}}","personal":false,"role":"owner",
 "created_by":"{{alice_uid}}","created_at":"/Z$/","updated_at":"/Z$/"}
--- capture
team_id = id
team_loc = header:location

=== TEST 4: the Location is the new workspace
--- request
GET {{team_loc}}
--- token: alice_tok
--- error_code: 200
--- response_headers
Cache-Control: ~^private\b
ETag: ~^W/"
--- response_json_like
{"id":"{{team_id}}","name":"Team {{rand}}","personal":false,"role":"owner","created_by":"{{alice_uid}}"}

=== TEST 5: the list ETag changed with the new workspace
--- request
GET /v1/workspaces
--- token: alice_tok
--- more_headers
If-None-Match: {{list_etag}}
--- error_code: 200
--- response_json_like: {"data":[{"id":"{{alice_personal}}"},{"id":"{{team_id}}","role":"owner"}]}

=== TEST 6: GET with If-None-Match of its ETag: 304
--- request
GET /v1/workspaces/{{team_id}}
--- token: alice_tok
--- more_headers
If-None-Match: *
--- error_code: 304

=== TEST 7: HEAD on a workspace: 200 without a body
--- request
HEAD /v1/workspaces/{{team_id}}
--- token: alice_tok
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
--- response_body

=== TEST 8: a name of 200 characters is accepted
--- request
POST /v1/workspaces
{"name":"{{name_200}}"}
--- token: alice_tok
--- error_code: 201
--- response_json_like: {"name":"{{name_200}}","role":"owner"}
--- capture
ws200_id = id

=== TEST 9: a name of 201 characters: 422
--- request
POST /v1/workspaces
{"name":"{{name_201}}"}
--- token: alice_tok
--- error_code: 422
--- response_headers
Content-Type: application/problem+json
--- response_json_like
{"type":"https://taskmgr.dev/problems/validation_failed","status":422,"code":"validation_failed",
 "errors":[{"field":"name","message":"must have 1 to 200 characters"}]}

=== TEST 10: an empty name: 422
--- request
POST /v1/workspaces
{"name":""}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"name"}]}

=== TEST 11: no name: 422
--- request
POST /v1/workspaces
{}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"name","message":"is required"}]}

=== TEST 12: a name that is not a string: 422
--- request
POST /v1/workspaces
{"name":42}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"name","message":"must be a string"}]}

=== TEST 13: a null name: 422
--- request
POST /v1/workspaces
{"name":null}
--- token: alice_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"name","message":"must not be null"}]}

=== TEST 14: an unknown field: 400 naming it
--- request
POST /v1/workspaces
{"name":"X","personal":true}
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed","errors":[{"field":"personal","message":"unknown field"}]}

=== TEST 15: malformed JSON: 400
--- request
POST /v1/workspaces
{"name":"X"
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed"}

=== TEST 16: a JSON array: 400
--- request
POST /v1/workspaces
["X"]
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed"}

=== TEST 17: text/plain: 415
--- request
POST /v1/workspaces
{"name":"X"}
--- token: alice_tok
--- more_headers
Content-Type: text/plain
--- error_code: 415
--- response_json_like: {"code":"unsupported_media_type"}

=== TEST 18: create without a token: 401
--- request
POST /v1/workspaces
{"name":"X"}
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
--- response_json_like: {"code":"unauthorized"}

=== TEST 19: another user's workspace: 404
--- request
GET /v1/workspaces/{{alice_personal}}
--- token: bob_tok
--- error_code: 404
--- response_headers
Content-Type: application/problem+json
--- response_json_like
{"type":"https://taskmgr.dev/problems/not_found","status":404,"code":"not_found","detail":"workspace not found"}
--- response_body_like: ^(?!.*(?:Alice|{{alice_uid}}))

=== TEST 20: another user's created workspace: 404
--- request
GET /v1/workspaces/{{team_id}}
--- token: bob_tok
--- error_code: 404
--- response_json_like: {"code":"not_found","detail":"workspace not found"}

=== TEST 21: a workspace that does not exist: the same 404
--- request
GET /v1/workspaces/{{random_uuid}}
--- token: bob_tok
--- error_code: 404
--- response_json_like: {"code":"not_found","detail":"workspace not found"}

=== TEST 22: bob's list holds only his personal workspace
--- request
GET /v1/workspaces
--- token: bob_tok
--- error_code: 200
--- response_json_like: {"data":[{"id":"{{bob_personal}}","role":"owner","personal":true}]}
--- response_body_like: ^\{"data":\[\{[^{}]*\}\]\}$

=== TEST 23: a malformed workspace id: 404
--- request
GET /v1/workspaces/not-a-uuid
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 24: a workspace id one character short: 404
--- request
GET /v1/workspaces/00000000-0000-0000-0000-00000000000
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 25: a trailing slash is another (unknown) path: 404
--- request
GET /v1/workspaces/{{team_id}}/
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}

=== TEST 26: a wrong method on the collection: 405 with Allow
--- request
PUT /v1/workspaces
{"name":"X"}
--- token: alice_tok
--- error_code: 405
--- response_headers
Allow: GET, HEAD, POST
Content-Type: application/problem+json
--- response_json_like: {"status":405}

=== TEST 27: HEAD on the list: 200 without a body
--- request
HEAD /v1/workspaces
--- token: alice_tok
--- error_code: 200
--- response_headers
ETag: ~^W/"
--- response_body

=== TEST 27a: the list with an unknown query parameter: 400 naming it
--- request
GET /v1/workspaces?role=owner
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed","errors":[{"field":"role","message":"unknown parameter"}]}

=== TEST 27b: a workspace with an unknown query parameter: 400 naming it
--- request
GET /v1/workspaces/{{alice_personal}}?expand=members
--- token: alice_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed","errors":[{"field":"expand"}]}

=== TEST 28: an unknown path under /v1 with a token: 404
--- request
GET /v1/workspacez
--- token: alice_tok
--- error_code: 404
--- response_json_like: {"code":"not_found","status":404}

#### bob joins alice's team as a viewer

=== TEST 29: a member sees the workspace with their role
--- request
GET /v1/workspaces/{{team_id}}
--- token: bob_tok
--- error_code: 200
--- response_json_like: {"id":"{{team_id}}","name":"Team {{rand}}","role":"viewer","created_by":"{{alice_uid}}"}

=== TEST 30: ... and in their list, after their own
--- request
GET /v1/workspaces
--- token: bob_tok
--- error_code: 200
--- response_json_like: {"data":[{"id":"{{bob_personal}}","role":"owner"},{"id":"{{team_id}}","role":"viewer","personal":false}]}

=== TEST 31: the owner still sees the owner role
--- request
GET /v1/workspaces/{{team_id}}
--- token: alice_tok
--- error_code: 200
--- response_json_like: {"id":"{{team_id}}","role":"owner"}

=== TEST 32: alice's personal workspace stays hidden from bob
--- request
GET /v1/workspaces/{{alice_personal}}
--- token: bob_tok
--- error_code: 404
--- response_json_like: {"code":"not_found"}
