# The JWT access phase on its own (taskmgr_auth_jwt), in front of plain nginx
# content: what it accepts, what it refuses and how, and the $jwt_* variables.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test qw(run_blocks mint_jwt);

my $t = Taskmgr::Test->new;

sub uuid4 {
    my @b = map { int rand 256 } 1 .. 16;
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    my $h = join '', map { sprintf '%02x', $_ } @b;
    return join '-', substr($h, 0, 8), substr($h, 8, 4), substr($h, 12, 4),
                     substr($h, 16, 4), substr($h, 20, 12);
}

my $uid = uuid4();
my $sid = uuid4();
my %base = (sub => $uid, sid => $sid, jti => "jti-$t->{rand}", role => 'admin', n => 42);
my $other_key = 'not-the-server-key-' x 4;

my %tok = (
    valid          => $t->jwt({%base}),
    lower_scheme   => $t->jwt({%base}),
    alg_none       => $t->jwt({%base}, alg => 'none'),
    # "alg":"none" in the header, yet a real HS256 signature after it
    alg_none_sig   => $t->jwt({%base}, header => { alg => 'none' }),
    hs512          => $t->jwt({%base}, alg => 'HS512'),
    hs384          => $t->jwt({%base}, alg => 'HS384'),
    # algorithm confusion: says RS256, HMAC-signed with the shared secret
    rs256_confused => $t->jwt({%base}, header => { alg => 'RS256' }),
    wrong_key      => $t->jwt({%base}, key => $other_key),
    expired        => $t->jwt({%base, iat => '-7200', exp => '-3600'}),
    expired_forged => $t->jwt({%base, iat => '-7200', exp => '-3600'}, key => $other_key),
    exp_in_leeway  => $t->jwt({%base, iat => '-100', exp => '-5'}),
    no_exp         => $t->jwt({%base, exp => undef}),
    exp_string     => $t->jwt({%base, exp => '' . (time + 300)}),
    nbf_future     => $t->jwt({%base, nbf => '+3600'}),
    nbf_in_leeway  => $t->jwt({%base, nbf => '+5'}),
    iat_future     => $t->jwt({%base, iat => '+3600', exp => '+7200'}),
    wrong_iss      => $t->jwt({%base, iss => 'someone-else'}),
    no_iss         => $t->jwt({%base, iss => undef}),
    wrong_aud      => $t->jwt({%base, aud => 'other-api'}),
    no_aud         => $t->jwt({%base, aud => undef}),
    aud_list_ok    => $t->jwt({%base, aud => ['other-api', 'taskmgr-api']}),
    aud_list_bad   => $t->jwt({%base, aud => ['other-api', 'taskmgr-apix']}),
    sub_not_uuid   => $t->jwt({%base, sub => 'alice'}),
    sub_number     => $t->jwt({%base, sub => 12345}),
    no_sub         => $t->jwt({%base, sub => undef}),
    sid_not_uuid   => $t->jwt({%base, sid => 'session-1'}),
    no_sid         => $t->jwt({%base, sid => undef}),
    big_ok         => $t->jwt({%base, pad => 'p' x 5500}),
    oversized      => $t->jwt({%base, pad => 'p' x 7000}),
);

# The signature of a valid token with its last character changed.
{
    my $v = $tok{valid};
    my $last = substr($v, -2, 1);
    substr($v, -2, 1) = $last eq 'A' ? 'B' : 'A';
    $tok{bad_sig} = $v;
}
# The claims of a valid token swapped for others, signature kept.
{
    my ($h, undef, $s) = split /\./, $tok{valid};
    my (undef, $p2) = split /\./, $t->jwt({%base, role => 'owner'});
    $tok{swapped_claims} = "$h.$p2.$s";
}

cmp_ok(length $tok{big_ok}, '<', 8192, 'big_ok is under the 8192-byte limit');
cmp_ok(length $tok{oversized}, '>', 8192, 'oversized is over the 8192-byte limit');

$t->var($_ => $tok{$_}) for keys %tok;
$t->var(uid => $uid);
$t->var(sid => $sid);
$t->var(jti => $base{jti});

my $conf = <<'EOF';
large_client_header_buffers 4 32k;
location = /healthz { taskmgr_healthz; }
location = /guarded { taskmgr_auth_jwt on; taskmgr_healthz; }
location = /whoami {
    return 200 "sub=[$jwt_sub] sid=[$jwt_sid] jti=[$jwt_jti] role=[$jwt_claim_role] n=[$jwt_claim_n] pad=[$jwt_claim_nope]";
}
location /proxied/ {
    taskmgr_auth_jwt on;
    proxy_set_header X-Jwt-Sub $jwt_sub;
    proxy_set_header X-Jwt-Role $jwt_claim_role;
    proxy_pass http://127.0.0.1:%%PORT%%/echo/;
}
location /echo/ {
    return 200 "backend uri=$uri sub=[$http_x_jwt_sub] role=[$http_x_jwt_role]";
}
EOF

$t->start(config => $conf);
run_blocks($t, no_done => 1);

# A refused request never reaches the backend; an accepted one does.
{
    my $log = $t->access_log;
    like($log, qr{"GET /echo/valid-\Q$t->{rand}\E"}, 'the backend saw the accepted request');
    unlike($log, qr{"GET /echo/forged-}, 'the backend never saw a forged request');
    unlike($log, qr{"GET /echo/none-}, 'the backend never saw an alg none request');
}

# request_id of an access-phase 401 is the X-Request-Id of the response.
{
    my $r = $t->request(GET => '/guarded', token => $tok{bad_sig});
    is($r->{status}, 401, 'bad signature: 401');
    ok(defined $r->{json} && defined $r->{headers}{'x-request-id'}
       && $r->{json}{request_id} eq $r->{headers}{'x-request-id'},
       'problem request_id equals X-Request-Id')
        or diag explain $r;
    like($r->{headers}{'x-request-id'} // '', qr/^[0-9a-f]{32}$/, 'generated request id');

    # an invalid token says nothing more specific than "not valid"
    my $e = $t->request(GET => '/guarded', token => $tok{expired_forged});
    is($e->{json}{code}, 'unauthorized', 'an expired forged token is not "token_expired"');
}

# Tokens never show up in error.log (which logs rejections at info).
{
    my $log = $t->error_log;
    like($log, qr/taskmgr: JWT rejected/, 'rejections are logged');
    my @leaks = grep { index($log, (split /\./, $tok{$_})[2] // "\0") >= 0 }
                grep { $tok{$_} =~ /\.[^.]+$/ } sort keys %tok;
    is_deeply(\@leaks, [], 'no token signature appears in error.log');
}

$t->done;

__DATA__

=== TEST 1: a valid token passes the access phase
--- request
GET /guarded
--- token: valid
--- error_code: 200
--- response_json: {"status":"ok"}

=== TEST 2: no Authorization header: 401 with a bare Bearer challenge
--- request
GET /guarded
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
Content-Type: application/problem+json
Cache-Control: no-store
X-Request-Id: ~^[0-9a-f]{32}$
--- response_json_like
{"type":"https://taskmgr.dev/problems/unauthorized","title":"Unauthorized","status":401,
 "code":"unauthorized","detail":"A bearer token is required.","request_id":"/^[0-9a-f]{32}$/"}

=== TEST 3: another scheme (Basic) is no bearer token
--- request
GET /guarded
--- more_headers
Authorization: Basic dXNlcjpwYXNzd29yZA==
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
--- response_json_like: {"code":"unauthorized","status":401}

=== TEST 4: a valid JWT under another scheme name is refused
--- request
GET /guarded
--- more_headers
Authorization: Token {{valid}}
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 5: the scheme name is case-insensitive (RFC 7235)
--- request
GET /guarded
--- more_headers
Authorization: bearer {{lower_scheme}}
--- error_code: 200

=== TEST 6: "Bearer" followed by several spaces (RFC 6750: "Bearer" 1*SP b64token)
--- request
GET /guarded
--- more_headers
Authorization: Bearer   {{valid}}
--- error_code: 200

=== TEST 7: "Bearer" with nothing after it (nginx trims the value): no credentials
--- request
GET /guarded
--- more_headers
Authorization: Bearer
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
--- response_json_like: {"code":"unauthorized"}

=== TEST 8: characters outside b64token
--- request
GET /guarded
--- more_headers
Authorization: Bearer abc$def.ghi
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer error="invalid_token"
--- response_json_like: {"code":"unauthorized","detail":"The access token is not valid."}

=== TEST 9: not a JWT at all
--- request
GET /guarded
--- more_headers
Authorization: Bearer not-a-jwt
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer error="invalid_token"
--- response_json_like: {"code":"unauthorized"}

=== TEST 10: two segments only
--- request
GET /guarded
--- more_headers
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 11: alg none with an empty signature
--- request
GET /guarded
--- token: alg_none
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer error="invalid_token"
--- response_json_like: {"code":"unauthorized","status":401}

=== TEST 12: alg none in the header, whatever the signature
--- request
GET /guarded
--- token: alg_none_sig
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 13: HS512 (right key) when HS256 is configured
--- request
GET /guarded
--- token: hs512
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}
--- error_log
taskmgr: JWT rejected

=== TEST 14: HS384 (right key) when HS256 is configured
--- request
GET /guarded
--- token: hs384
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 15: RS256 header over an HMAC signature (algorithm confusion)
--- request
GET /guarded
--- token: rs256_confused
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 16: a changed signature
--- request
GET /guarded
--- token: bad_sig
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer error="invalid_token"
--- response_json_like: {"code":"unauthorized"}
--- error_log
taskmgr: JWT rejected: bad signature

=== TEST 17: other claims under a valid token's signature
--- request
GET /guarded
--- token: swapped_claims
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 18: signed with another key
--- request
GET /guarded
--- token: wrong_key
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 19: expired: 401 token_expired
--- request
GET /guarded
--- token: expired
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer error="invalid_token"
Content-Type: application/problem+json
--- response_json_like
{"type":"https://taskmgr.dev/problems/token_expired","title":"Token expired",
 "status":401,"code":"token_expired","detail":"The access token has expired."}
--- error_log
taskmgr: JWT rejected: expired

=== TEST 20: expired but signed with another key: plain unauthorized
--- request
GET /guarded
--- token: expired_forged
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 21: expired by less than the leeway (30 s) still passes
--- request
GET /guarded
--- token: exp_in_leeway
--- error_code: 200

=== TEST 22: no exp claim
--- request
GET /guarded
--- token: no_exp
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 23: exp as a string, not a NumericDate
--- request
GET /guarded
--- token: exp_string
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 24: nbf in the future
--- request
GET /guarded
--- token: nbf_future
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}
--- error_log
taskmgr: JWT rejected: not valid yet

=== TEST 25: nbf within the leeway passes
--- request
GET /guarded
--- token: nbf_in_leeway
--- error_code: 200

=== TEST 26: iat in the future
--- request
GET /guarded
--- token: iat_future
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 27: wrong iss
--- request
GET /guarded
--- token: wrong_iss
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}
--- error_log
taskmgr: JWT rejected: wrong issuer

=== TEST 28: no iss
--- request
GET /guarded
--- token: no_iss
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 29: wrong aud
--- request
GET /guarded
--- token: wrong_aud
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}
--- error_log
taskmgr: JWT rejected: wrong audience

=== TEST 30: no aud
--- request
GET /guarded
--- token: no_aud
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 31: aud as a list that holds ours
--- request
GET /guarded
--- token: aud_list_ok
--- error_code: 200

=== TEST 32: aud as a list without ours (no prefix matching)
--- request
GET /guarded
--- token: aud_list_bad
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 33: sub that is not a UUID
--- request
GET /guarded
--- token: sub_not_uuid
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 34: sub that is a number
--- request
GET /guarded
--- token: sub_number
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 35: no sub
--- request
GET /guarded
--- token: no_sub
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 36: sid that is not a UUID
--- request
GET /guarded
--- token: sid_not_uuid
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 37: no sid is allowed by the access phase (a session-less token)
--- request
GET /guarded
--- token: no_sid
--- error_code: 200

=== TEST 38: a large token under the 8192-byte limit passes
--- request
GET /guarded
--- token: big_ok
--- error_code: 200

=== TEST 39: an oversized token (over 8192 bytes, validly signed) is refused
--- request
GET /guarded
--- token: oversized
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}
--- error_log
taskmgr: JWT rejected: bad length

=== TEST 40: a token in the query string is no credential
--- request
GET /guarded?access_token={{valid}}
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer

=== TEST 41: a refused POST (with a body) still answers a 401 problem
--- request
POST /guarded
{"some":"body"}
--- token: wrong_key
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 42: $jwt_* variables of a valid token, without taskmgr_auth_jwt in the location
--- request
GET /whoami
--- token: valid
--- error_code: 200
--- response_body
sub=[{{uid}}] sid=[{{sid}}] jti=[{{jti}}] role=[admin] n=[42] pad=[]

=== TEST 43: no claim leaks from a forged token
--- request
GET /whoami
--- token: wrong_key
--- error_code: 200
--- response_body
sub=[] sid=[] jti=[] role=[] n=[] pad=[]

=== TEST 44: no claim leaks from a token with swapped claims
--- request
GET /whoami
--- token: swapped_claims
--- error_code: 200
--- response_body
sub=[] sid=[] jti=[] role=[] n=[] pad=[]

=== TEST 45: no claim leaks from an alg none token
--- request
GET /whoami
--- token: alg_none
--- error_code: 200
--- response_body
sub=[] sid=[] jti=[] role=[] n=[] pad=[]

=== TEST 46: no claims from an expired (validly signed) token
--- request
GET /whoami
--- token: expired
--- error_code: 200
--- response_body
sub=[] sid=[] jti=[] role=[] n=[] pad=[]

=== TEST 47: no claims without a token
--- request
GET /whoami
--- error_code: 200
--- response_body
sub=[] sid=[] jti=[] role=[] n=[] pad=[]

=== TEST 48: in front of proxy_pass: a valid token reaches the backend with its claims
--- request
GET /proxied/valid-{{rand}}
--- token: valid
--- error_code: 200
--- response_body
backend uri=/echo/valid-{{rand}} sub=[{{uid}}] role=[admin]

=== TEST 49: in front of proxy_pass: a forged token stops at 401
--- request
GET /proxied/forged-{{rand}}
--- token: swapped_claims
--- error_code: 401
--- response_headers
Content-Type: application/problem+json
WWW-Authenticate: Bearer error="invalid_token"
--- response_body_like: ^\{"type":"https://taskmgr.dev/problems/unauthorized"(?!.*backend)

=== TEST 50: in front of proxy_pass: alg none stops at 401
--- request
GET /proxied/none-{{rand}}
--- token: alg_none
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 51: in front of proxy_pass: no token stops at 401
--- request
GET /proxied/none-{{rand}}-2
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
