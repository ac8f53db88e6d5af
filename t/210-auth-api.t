# /v1/auth/{register,login,refresh,logout} and /v1/me against PostgreSQL:
# shapes, validation, refresh rotation and reuse detection, logout, and no
# secret in the logs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP ();
use Digest::SHA ();
use MIME::Base64 ();
use Taskmgr::Test;

my $t = Taskmgr::Test->new;
my $rand = $t->{rand};

my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return MIME::Base64::decode_base64($s);
}

sub jwt_parts {
    my ($jwt) = @_;
    my ($h, $c) = split /\./, $jwt;
    return (JSON::PP::decode_json(b64url_decode($h)),
            JSON::PP::decode_json(b64url_decode($c)));
}

sub without_rid {
    my ($j) = @_;
    return undef unless ref $j eq 'HASH';
    my %c = %$j;
    delete $c{request_id};
    return \%c;
}

sub uuid4 {
    my $h = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    substr($h, 12, 1) = '4';
    return join '-', unpack 'A8 A4 A4 A4 A12', $h;
}

# Passwords with the file's random part, so that a grep of the logs is exact.
my %pw = (
    alice => "correct horse battery $rand",
    bob   => "Tr0ub4dor&3-$rand",
);
$t->var(alice_pw => $pw{alice});
$t->var(bob_pw => $pw{bob});
$t->var(short_pw => substr("s$rand", 0, 11));    # 11 characters
$t->var(pw_12 => substr("twelve$rand", 0, 12));
$t->var(pw_256 => 'p' x 256);
$t->var(pw_257 => 'p' x 257);
# request bodies are bytes: UTF-8 for U+00FC
$t->var(pw_uml_12 => "\xc3\xbc" x 12);
$t->var(pw_uml_11 => "\xc3\xbc" x 11);
$t->var(random_uuid => uuid4());
$t->var(tz_65 => 'Z' x 65);

$t->start;
run_blocks($t, no_done => 1);

my $v = $t->{vars};

# ----------------------------------------------------------------------------
# What the blocks captured, looked at more closely.

# The register answer: exactly these user fields, nothing secret.
{
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => "carol-$rand\@example.com", password => "carol's password $rand",
        name => 'Carol' });
    is($r->{status}, 201, 'register carol');
    is_deeply([ sort keys %{ $r->{json} } ],
              [qw(access_token expires_in refresh_token token_type user)],
              'register: top-level keys');
    is_deeply([ sort keys %{ $r->{json}{user} } ],
              [qw(created_at email id locale name timezone updated_at)],
              'register: user keys (no password hash)');
    like($r->{json}{user}{created_at}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
         'created_at is RFC 3339 UTC with milliseconds');
    unlike($r->{body}, qr/argon2|password/i, 'no password material in the body');

    my $rt = $r->{json}{refresh_token};
    like($rt, qr/^[A-Za-z0-9_-]{43,}$/, 'refresh token: base64url of >= 256 bits');
    is($t->psql('SELECT count(*) FROM tm.refresh_tokens WHERE token_hash = $1',
                Digest::SHA::sha256_hex($rt)), 1, 'refresh token stored as its SHA-256');
    is($t->psql('SELECT count(*) FROM tm.refresh_tokens WHERE token_hash = $1', $rt),
       0, 'refresh token not stored in clear');
    like($t->psql('SELECT password_hash FROM tm.users WHERE id = $1', $r->{json}{user}{id}),
         qr/^\$argon2id\$/, 'password stored as an argon2id hash');
}

# The access token.
{
    my ($h, $c) = jwt_parts($v->{l_tok});
    is($h->{alg}, 'HS256', 'access token: alg HS256');
    is($c->{sub}, $v->{a_uid}, 'access token: sub is the user id');
    like($c->{sid} // '', $UUID, 'access token: sid is a UUID');
    like($c->{jti} // '', $UUID, 'access token: jti is a UUID');
    is($c->{iss}, 'taskmgr', 'access token: iss');
    is($c->{aud}, 'taskmgr-api', 'access token: aud');
    ok($c->{iat} && abs($c->{iat} - time) < 60, 'access token: iat is now');
    is($c->{exp} - $c->{iat}, 900, 'access token: 15 minutes');

    my (undef, $ra) = jwt_parts($v->{a_tok});
    my (undef, $rr) = jwt_parts($v->{r_tok});
    isnt($ra->{sid}, $c->{sid}, 'register and login are two sessions');
    is($rr->{sid}, $c->{sid}, 'a refreshed access token stays in its session');
    isnt($rr->{jti}, $c->{jti}, 'a refreshed access token has a new jti');
    isnt($v->{r_tok}, $v->{l_tok}, 'refresh: new access token');
    isnt($v->{r_rt}, $v->{l_rt}, 'refresh: new refresh token');
}

# The refresh answer has no user and the same token fields.
{
    my $r = $t->request(POST => '/v1/auth/login', body => {
        email => "bob-$rand\@example.com", password => $pw{bob} });
    is($r->{status}, 200, 'login bob');
    my $f = $t->request(POST => '/v1/auth/refresh',
                        body => { refresh_token => $r->{json}{refresh_token} });
    is($f->{status}, 200, 'refresh bob');
    is_deeply([ sort keys %{ $f->{json} } ],
              [qw(access_token expires_in refresh_token token_type)],
              'refresh: keys');
    is($f->{json}{token_type}, 'Bearer', 'refresh: token_type');
    is($f->{json}{expires_in}, 900, 'refresh: expires_in');
    is($f->{headers}{'cache-control'}, 'no-store', 'refresh: Cache-Control: no-store');
}

# The login session records what the client said about itself.
is($t->psql(q{SELECT device_name || ' ' || ip || ' ' || user_agent || ' ' || (revoked_at IS NOT NULL)
              FROM tm.sessions WHERE device_name = 'laptop' AND user_id = $1}, $v->{a_uid}),
   'laptop 127.0.0.1 taskmgr-test/1 true',
   'login session: device name, client address, user agent; revoked by the reuse');

# Wrong password and unknown email answer alike.
{
    my $wrong = $t->request(POST => '/v1/auth/login', body => {
        email => "alice-$rand\@example.com", password => "wrong password $rand" });
    my $unknown = $t->request(POST => '/v1/auth/login', body => {
        email => "nobody-$rand\@example.com", password => "wrong password $rand" });
    is($wrong->{status}, 401, 'wrong password: 401');
    is($unknown->{status}, 401, 'unknown email: 401');
    is_deeply(without_rid($unknown->{json}), without_rid($wrong->{json}),
              'wrong password and unknown email: the same problem body');
    is_deeply([ sort grep { !/^(date|x-request-id|content-length)$/ } keys %{ $unknown->{headers} } ],
              [ sort grep { !/^(date|x-request-id|content-length)$/ } keys %{ $wrong->{headers} } ],
              '... and the same headers');
    is($wrong->{json}{request_id}, $wrong->{headers}{'x-request-id'},
       'problem request_id equals X-Request-Id');
}

# No password, refresh token or access token in the logs.
{
    my $err = $t->error_log;
    my $acc = $t->access_log;
    ok(length $acc, 'access.log has lines');
    my %secrets = (
        'alice password' => $pw{alice}, 'bob password' => $pw{bob},
        'short password' => $v->{short_pw}, 'wrong password' => "wrong password $rand",
        'carol password' => "carol's password $rand",
        'refresh token'  => $v->{a_rt}, 'rotated refresh token' => $v->{l_rt},
        'refresh token 2' => $v->{r_rt},
        'access token'   => $v->{a_tok}, 'access token signature' => (split /\./, $v->{l_tok})[2],
    );
    for my $what (sort keys %secrets) {
        my $s = $secrets{$what};
        ok(index($err, $s) < 0, "error.log holds no $what");
        ok(index($acc, $s) < 0, "access.log holds no $what");
    }
}

$t->done;

__DATA__

=== TEST 1: register: 201 with the user and a token pair
--- request
POST /v1/auth/register
{"email":"alice-{{rand}}@example.com","password":"{{alice_pw}}","name":"Alice"}
--- error_code: 201
--- response_headers
Content-Type: application/json; charset=utf-8
Cache-Control: no-store
X-Request-Id: ~^[0-9a-f]{32}$
--- response_json_like
{"user":{"id":"/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/",
         "email":"alice-{{rand}}@example.com","name":"Alice","locale":"en","timezone":"UTC",
         "created_at":"/Z$/","updated_at":"/Z$/"},
 "access_token":"/^eyJ[\\w-]+\\.eyJ[\\w-]+\\.[\\w-]+$/",
 "refresh_token":"/^[A-Za-z0-9_-]{43,}$/",
 "token_type":"Bearer","expires_in":900}
--- response_body_like: ^(?!.*(?:password|argon2))
--- capture
a_tok = access_token
a_rt = refresh_token
a_uid = user.id

=== TEST 2: register created a personal workspace with the user as owner
--- request
GET /v1/workspaces
--- token: a_tok
--- error_code: 200
--- response_json_like
{"data":[{"name":"Alice's workspace","personal":true,"role":"owner","created_by":"{{a_uid}}"}]}
--- response_body_like: ^\{"data":\[\{[^\[\]]*\}\]\}$

=== TEST 3: register bob
--- request
POST /v1/auth/register
{"email":"bob-{{rand}}@example.com","password":"{{bob_pw}}","name":"Bob"}
--- error_code: 201
--- response_json_like: {"user":{"name":"Bob"},"token_type":"Bearer"}

=== TEST 4: the same email again: 409
--- request
POST /v1/auth/register
{"email":"alice-{{rand}}@example.com","password":"another password 123","name":"Mallory"}
--- error_code: 409
--- response_headers
Content-Type: application/problem+json
--- response_json_like
{"type":"https://taskmgr.dev/problems/conflict","title":"Conflict","status":409,
 "code":"conflict","request_id":"/^[0-9a-f]{32}$/"}
--- response_body_like: ^(?!.*access_token)

=== TEST 5: the same email in another case: 409
--- request
POST /v1/auth/register
{"email":"ALICE-{{rand}}@Example.COM","password":"another password 123","name":"Mallory"}
--- error_code: 409
--- response_json_like: {"code":"conflict","status":409}

=== TEST 6: a password of 11 characters: 422 naming the field
--- request
POST /v1/auth/register
{"email":"short-{{rand}}@example.com","password":"{{short_pw}}","name":"Short"}
--- error_code: 422
--- response_headers
Content-Type: application/problem+json
--- response_json_like
{"type":"https://taskmgr.dev/problems/validation_failed","status":422,"code":"validation_failed",
 "errors":[{"field":"password","message":"must have 12 to 256 characters"}]}

=== TEST 7: a password of 12 characters is enough
--- request
POST /v1/auth/register
{"email":"pw12-{{rand}}@example.com","password":"{{pw_12}}","name":"Twelve"}
--- error_code: 201

=== TEST 8: a password of 256 characters is accepted
--- request
POST /v1/auth/register
{"email":"pw256-{{rand}}@example.com","password":"{{pw_256}}","name":"Long"}
--- error_code: 201

=== TEST 9: a password of 257 characters is not
--- request
POST /v1/auth/register
{"email":"pw257-{{rand}}@example.com","password":"{{pw_257}}","name":"Long"}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"password"}]}

=== TEST 10: password length counts characters, not bytes (12 x U+00FC)
--- request
POST /v1/auth/register
{"email":"uml12-{{rand}}@example.com","password":"{{pw_uml_12}}","name":"Umlaut"}
--- error_code: 201

=== TEST 11: ... and 11 x U+00FC (22 bytes) is too short
--- request
POST /v1/auth/register
{"email":"uml11-{{rand}}@example.com","password":"{{pw_uml_11}}","name":"Umlaut"}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"password"}]}

=== TEST 12: a bad email: 422
--- request
POST /v1/auth/register
{"email":"not-an-email","password":"a good long password","name":"X"}
--- error_code: 422
--- response_json_like
{"code":"validation_failed","errors":[{"field":"email","message":"must be an email address"}]}

=== TEST 13: an email without a dot in the domain: 422
--- request
POST /v1/auth/register
{"email":"x-{{rand}}@localhost","password":"a good long password","name":"X"}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"email"}]}

=== TEST 14: an email with a space: 422
--- request
POST /v1/auth/register
{"email":"x {{rand}}@example.com","password":"a good long password","name":"X"}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"email"}]}

=== TEST 15: an unknown field: 400 naming it
--- request
POST /v1/auth/register
{"email":"unk-{{rand}}@example.com","password":"a good long password","name":"X","role":"admin"}
--- error_code: 400
--- response_json_like
{"status":400,"code":"validation_failed","errors":[{"field":"role","message":"unknown field"}]}

=== TEST 16: the account was not created by the refused request
--- request
POST /v1/auth/login
{"email":"unk-{{rand}}@example.com","password":"a good long password"}
--- error_code: 401

=== TEST 17: a missing field: 422 "is required"
--- request
POST /v1/auth/register
{"email":"miss-{{rand}}@example.com","password":"a good long password"}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"name","message":"is required"}]}

=== TEST 18: a field of the wrong type: 422
--- request
POST /v1/auth/register
{"email":"type-{{rand}}@example.com","password":123456789012345,"name":"X"}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"password","message":"must be a string"}]}

=== TEST 19: a null name: 422
--- request
POST /v1/auth/register
{"email":"null-{{rand}}@example.com","password":"a good long password","name":null}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"name","message":"must not be null"}]}

=== TEST 20: an empty name: 422
--- request
POST /v1/auth/register
{"email":"empty-{{rand}}@example.com","password":"a good long password","name":""}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"name"}]}

=== TEST 21: malformed JSON: 400
--- request
POST /v1/auth/register
{"email":"x@example.com","password":
--- error_code: 400
--- response_json_like: {"code":"validation_failed","detail":"the body is not valid JSON"}

=== TEST 22: a JSON array: 400
--- request
POST /v1/auth/register
[{"email":"x@example.com"}]
--- error_code: 400
--- response_json_like: {"code":"validation_failed","errors":[{"message":"the body must be a JSON object"}]}

=== TEST 23: a duplicated key: 400
--- request
POST /v1/auth/register
{"email":"dup-{{rand}}@example.com","password":"a good long password","name":"A","name":"B"}
--- error_code: 400
--- response_json_like: {"code":"validation_failed"}

=== TEST 24: no body: 400
--- request
POST /v1/auth/register
--- more_headers
Content-Type: application/json
--- error_code: 400
--- response_json_like: {"code":"validation_failed"}

=== TEST 25: a form body: 415
--- request
POST /v1/auth/register
email=x%40example.com&password=a+good+long+password&name=X
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- error_code: 415
--- response_json_like
{"type":"https://taskmgr.dev/problems/unsupported_media_type","status":415,"code":"unsupported_media_type"}

=== TEST 26: JSON without a Content-Type: 415
--- request
POST /v1/auth/register
{"email":"noct-{{rand}}@example.com","password":"a good long password","name":"X"}
--- more_headers
!content-type
--- error_code: 415
--- response_json_like: {"code":"unsupported_media_type"}

=== TEST 27: GET on register: 405 with Allow
--- request
GET /v1/auth/register
--- error_code: 405
--- response_headers
Allow: POST
--- response_json_like: {"status":405}

=== TEST 28: login with the email in another case, with a device name
--- request
POST /v1/auth/login
{"email":"ALICE-{{rand}}@EXAMPLE.com","password":"{{alice_pw}}","device_name":"laptop"}
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
Cache-Control: no-store
--- response_json_like
{"user":{"id":"{{a_uid}}","email":"alice-{{rand}}@example.com","name":"Alice"},
 "access_token":"/^eyJ/","refresh_token":"/^[A-Za-z0-9_-]{43,}$/",
 "token_type":"Bearer","expires_in":900}
--- capture
l_tok = access_token
l_rt = refresh_token

=== TEST 29: login with a wrong password: 401
--- request
POST /v1/auth/login
{"email":"alice-{{rand}}@example.com","password":"not alices password"}
--- error_code: 401
--- response_headers
Content-Type: application/problem+json
--- response_json_like
{"type":"https://taskmgr.dev/problems/unauthorized","status":401,"code":"unauthorized",
 "detail":"invalid email or password"}
--- response_body_like: ^(?!.*access_token)

=== TEST 30: login with an unknown email: the same 401
--- request
POST /v1/auth/login
{"email":"nobody-{{rand}}@example.com","password":"not alices password"}
--- error_code: 401
--- response_json_like
{"type":"https://taskmgr.dev/problems/unauthorized","status":401,"code":"unauthorized",
 "detail":"invalid email or password"}

=== TEST 31: login without a password: 422
--- request
POST /v1/auth/login
{"email":"alice-{{rand}}@example.com"}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"password","message":"is required"}]}

=== TEST 32: login with an empty password: 422
--- request
POST /v1/auth/login
{"email":"alice-{{rand}}@example.com","password":""}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"password"}]}

=== TEST 33: login with an unknown field: 400
--- request
POST /v1/auth/login
{"email":"alice-{{rand}}@example.com","password":"{{alice_pw}}","remember_me":true}
--- error_code: 400
--- response_json_like: {"errors":[{"field":"remember_me","message":"unknown field"}]}

=== TEST 34: refresh: 200 with a new pair
--- request
POST /v1/auth/refresh
{"refresh_token":"{{l_rt}}"}
--- error_code: 200
--- response_headers
Cache-Control: no-store
--- response_json_like
{"access_token":"/^eyJ/","refresh_token":"/^[A-Za-z0-9_-]{43,}$/","token_type":"Bearer","expires_in":900}
--- capture
r_tok = access_token
r_rt = refresh_token

=== TEST 35: the refreshed access token works
--- request
GET /v1/me
--- token: r_tok
--- error_code: 200
--- response_json_like: {"id":"{{a_uid}}"}

=== TEST 36: the access token from before the rotation still works (same live session)
--- request
GET /v1/me
--- token: l_tok
--- error_code: 200

=== TEST 37: presenting the rotated refresh token again: 401
--- request
POST /v1/auth/refresh
{"refresh_token":"{{l_rt}}"}
--- error_code: 401
--- response_json_like: {"status":401,"code":"unauthorized"}
--- response_body_like: ^(?!.*access_token)

=== TEST 38: ... which revoked the family: the token it was rotated to is dead
--- request
POST /v1/auth/refresh
{"refresh_token":"{{r_rt}}"}
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 39: ... and the session's newest access token is dead (401 with a Bearer challenge)
--- request
GET /v1/me
--- token: r_tok
--- error_code: 401
--- response_headers
Content-Type: application/problem+json
WWW-Authenticate: ~^Bearer\b
--- response_json_like: {"status":401,"code":"unauthorized"}

=== TEST 40: ... and its older access token too
--- request
GET /v1/workspaces
--- token: l_tok
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 41: the register session of the same user is not affected
--- request
GET /v1/me
--- token: a_tok
--- error_code: 200
--- response_json_like: {"id":"{{a_uid}}"}

=== TEST 42: refresh with an unknown token: 401
--- request
POST /v1/auth/refresh
{"refresh_token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 43: refresh with an empty token: 422
--- request
POST /v1/auth/refresh
{"refresh_token":""}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"refresh_token"}]}

=== TEST 44: refresh without the field: 422
--- request
POST /v1/auth/refresh
{}
--- error_code: 422
--- response_json_like: {"errors":[{"field":"refresh_token","message":"is required"}]}

=== TEST 45: refresh with the access token in place of the refresh token: 401
--- request
POST /v1/auth/refresh
{"refresh_token":"{{a_tok}}"}
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 46: logout: 204 without a body
--- request
POST /v1/auth/logout
--- token: a_tok
--- error_code: 204
--- response_body

=== TEST 47: after logout the access token is dead
--- request
GET /v1/me
--- token: a_tok
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 48: after logout the refresh token is dead
--- request
POST /v1/auth/refresh
{"refresh_token":"{{a_rt}}"}
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 49: logout with the dead access token: 401 (it stopped working everywhere)
--- request
POST /v1/auth/logout
--- token: a_tok
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 50: logout without a token: 401
--- request
POST /v1/auth/logout
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer

=== TEST 51: log in again for /v1/me
--- request
POST /v1/auth/login
{"email":"alice-{{rand}}@example.com","password":"{{alice_pw}}"}
--- error_code: 200
--- capture
m_tok = access_token

=== TEST 52: GET /v1/me: the user, cacheable privately, with a validator
--- request
GET /v1/me
--- token: m_tok
--- error_code: 200
--- response_headers
Content-Type: application/json; charset=utf-8
Cache-Control: ~^private\b
ETag: ~^W/"[0-9a-f]{32}"$
--- response_json_like
{"id":"{{a_uid}}","email":"alice-{{rand}}@example.com","name":"Alice","locale":"en","timezone":"UTC",
 "created_at":"/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$/"}
--- response_body_like: ^(?!.*password)
--- capture
me_etag = header:etag

=== TEST 52a: GET /v1/me with an unknown query parameter: 400 naming it
--- request
GET /v1/me?fields=email
--- token: m_tok
--- error_code: 400
--- response_json_like: {"code":"validation_failed","errors":[{"field":"fields","message":"unknown parameter"}]}

=== TEST 53: GET /v1/me with If-None-Match: 304
--- request
GET /v1/me
--- token: m_tok
--- more_headers
If-None-Match: {{me_etag}}
--- error_code: 304
--- response_headers
ETag: {{me_etag}}

=== TEST 54: PATCH /v1/me: name, locale and timezone
--- request
PATCH /v1/me
{"name":"Alice Liddell","locale":"de-DE","timezone":"Europe/Berlin"}
--- token: m_tok
--- error_code: 200
--- response_json_like
{"id":"{{a_uid}}","email":"alice-{{rand}}@example.com","name":"Alice Liddell","locale":"de-DE",
 "timezone":"Europe/Berlin"}

=== TEST 55: the change is kept, and the old ETag no longer matches
--- request
GET /v1/me
--- token: m_tok
--- more_headers
If-None-Match: {{me_etag}}
--- error_code: 200
--- response_json_like: {"name":"Alice Liddell","locale":"de-DE","timezone":"Europe/Berlin"}

=== TEST 56: PATCH /v1/me with one field leaves the others (merge-patch+json)
--- request
PATCH /v1/me
{"timezone":"UTC"}
--- token: m_tok
--- more_headers
Content-Type: application/merge-patch+json
--- error_code: 200
--- response_json_like: {"name":"Alice Liddell","locale":"de-DE","timezone":"UTC"}

=== TEST 57: PATCH /v1/me with an empty object changes nothing
--- request
PATCH /v1/me
{}
--- token: m_tok
--- error_code: 200
--- response_json_like: {"name":"Alice Liddell","locale":"de-DE","timezone":"UTC"}

=== TEST 58: PATCH /v1/me: an empty name is 422
--- request
PATCH /v1/me
{"name":""}
--- token: m_tok
--- error_code: 422
--- response_json_like: {"code":"validation_failed","errors":[{"field":"name","message":"must have 1 to 200 characters"}]}

=== TEST 59: PATCH /v1/me: a null name is 422
--- request
PATCH /v1/me
{"name":null}
--- token: m_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"name","message":"must not be null"}]}

=== TEST 60: PATCH /v1/me: a locale of one character is 422
--- request
PATCH /v1/me
{"locale":"x"}
--- token: m_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"locale"}]}

=== TEST 61: PATCH /v1/me: a timezone of 65 characters is 422
--- request
PATCH /v1/me
{"timezone":"{{tz_65}}"}
--- token: m_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"timezone"}]}

=== TEST 62: PATCH /v1/me: two bad fields, both named
--- request
PATCH /v1/me
{"name":"","locale":7}
--- token: m_tok
--- error_code: 422
--- response_json_like: {"errors":[{"field":"name"},{"field":"locale","message":"must be a string"}]}

=== TEST 63: PATCH /v1/me: email is not a field of it (400)
--- request
PATCH /v1/me
{"email":"evil-{{rand}}@example.com"}
--- token: m_tok
--- error_code: 400
--- response_json_like: {"errors":[{"field":"email","message":"unknown field"}]}

=== TEST 64: PATCH /v1/me: nothing was changed by the refused requests
--- request
GET /v1/me
--- token: m_tok
--- error_code: 200
--- response_json_like
{"email":"alice-{{rand}}@example.com","name":"Alice Liddell","locale":"de-DE","timezone":"UTC"}

=== TEST 65: PATCH /v1/me: text/plain is 415
--- request
PATCH /v1/me
{"name":"X"}
--- token: m_tok
--- more_headers
Content-Type: text/plain
--- error_code: 415
--- response_json_like: {"code":"unsupported_media_type"}

=== TEST 66: PATCH /v1/me: a JSON string is 400
--- request
PATCH /v1/me
"name"
--- token: m_tok
--- more_headers
Content-Type: application/json
--- error_code: 400
--- response_json_like: {"code":"validation_failed"}

=== TEST 67: PATCH /v1/me without a token: 401
--- request
PATCH /v1/me
{"name":"X"}
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer

=== TEST 68: /v1/me with a validly signed token for a user that does not exist: 401
--- request
GET /v1/me
--- jwt: {"sub":"{{random_uuid}}"}
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}

=== TEST 69: /v1/me with a real user but a session that does not exist: 401
--- request
GET /v1/me
--- jwt: {"sub":"{{a_uid}}","sid":"{{random_uuid}}"}
--- error_code: 401
--- response_json_like: {"code":"unauthorized"}
