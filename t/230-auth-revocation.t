# The revocation check of the access phase: tmk:{<uid>}:rv:<sid> revokes a
# session, tmk:{<uid>}:rva revokes every token of the user issued before a
# time (second); one MGET per request, kept across internal redirects, or
# none where a rate limit applies (its script reads the keys too);
# taskmgr_auth_revocation_fallback while Redis is down; checks resume when
# Redis is back, without a reload.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP ();
use MIME::Base64 ();
use Time::HiRes ();
use Taskmgr::Test qw(run_blocks);

my $t = Taskmgr::Test->new;

sub uuid4 {
    my $h = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    substr($h, 12, 1) = '4';
    return join '-', unpack 'A8 A4 A4 A4 A12', $h;
}

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return MIME::Base64::decode_base64($s);
}

sub wait_until {
    my ($secs, $cb) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    while (Time::HiRes::time() < $deadline) {
        my $v = $cb->();
        return $v if $v;
        Time::HiRes::sleep(0.1);
    }
    return undef;
}

sub calls {
    my ($cmd) = @_;
    my $info = $t->redis_cli('INFO', 'commandstats');
    return $info =~ /cmdstat_$cmd:calls=(\d+)/ ? $1 : 0;
}
sub mget_calls { calls('mget') }

my $conf = <<'EOF';
location = /healthz { taskmgr_healthz; }
location /r/ {
    taskmgr_auth_jwt on;
    proxy_pass http://127.0.0.1:%%PORT%%/echo/;
}
location /refuse/ {
    taskmgr_auth_jwt on;
    taskmgr_auth_revocation_fallback refuse;
    proxy_pass http://127.0.0.1:%%PORT%%/echo/;
}
location /accept/ {
    taskmgr_auth_jwt on;
    taskmgr_auth_revocation_fallback accept;
    proxy_pass http://127.0.0.1:%%PORT%%/echo/;
}
location /norv/ {
    taskmgr_auth_jwt on;
    taskmgr_auth_revocation off;
    proxy_pass http://127.0.0.1:%%PORT%%/echo/;
}
location /redir/ {
    taskmgr_auth_jwt on;
    root %%TESTDIR%%;
    try_files /no-such-file @named;
}
location @named {
    taskmgr_auth_jwt on;
    rewrite ^ /echo/named break;
    proxy_pass http://127.0.0.1:%%PORT%%;
}
location /echo/ {
    return 200 "backend $request_method sub=$jwt_sub\n";
}
location ~ ^/v1/auth/(register|login|refresh)$ { taskmgr_api; }
location /v1/ { taskmgr_auth_jwt on; taskmgr_api; }
EOF

# a rate-limited location (its zone is not in the configuration blocks below)
my $zone = 'taskmgr_limit_zone rv_user key=$jwt_sub rate=100000r/s burst=100000;';
my $lim = <<'EOF';
location /lim/ {
    taskmgr_auth_jwt on;
    taskmgr_limit zone=rv_user;
    proxy_pass http://127.0.0.1:%%PORT%%/echo/;
}
EOF
$t->start(config => $conf . $lim, http_config => $zone);
# the worker's Redis connections are up (slow under ASan): more clients than
# the redis-cli asking
wait_until(10, sub { (() = $t->redis_cli('CLIENT', 'LIST') =~ /^id=/mg) >= 2 })
    or diag 'nginx did not connect to Redis within 10 s';

my $uid = uuid4();
my ($s1, $s2) = (uuid4(), uuid4());
my $now = time;
my $tok1 = $t->jwt({ sub => $uid, sid => $s1, iat => $now - 100 });
my $tok2 = $t->jwt({ sub => $uid, sid => $s2, iat => $now - 100 });
my $nosid = $t->jwt({ sub => $uid, iat => $now - 100 });

sub req {
    my ($m, $p, $tok) = @_;
    return $t->request($m, $p, token => $tok, ($m =~ /^(?:POST|PATCH)$/ ? (body => '{}') : ()));
}

sub is_status {
    my ($m, $p, $tok, $want, $name) = @_;
    my $r = req($m, $p, $tok);
    is($r->{status}, $want, "$name: $m $p -> $want") or diag $r->{body};
    return $r;
}

###########################################################################
# Redis up

is_status(GET => '/r/a', $tok1, 200, 'nothing revoked');
is_status(POST => '/r/a', $tok1, 200, 'nothing revoked');

# one MGET per request, also across an internal redirect
{
    my $before = mget_calls();
    is_status(GET => '/r/a', $tok1, 200, 'counted request');
    is(mget_calls() - $before, 1, 'one MGET for one request');
    $before = mget_calls();
    my $r = is_status(GET => '/redir/x', $tok1, 200, 'internal redirect to a named location');
    like($r->{body}, qr/^backend GET sub=\Q$uid\E/, 'the named location was served');
    is(mget_calls() - $before, 1, 'one MGET across the internal redirect');
    $before = mget_calls();
    is_status(GET => '/norv/a', $tok1, 200, 'revocation off');
    is(mget_calls() - $before, 0, 'no MGET where revocation is off');
    $before = mget_calls();
    is_status(GET => '/r/a', undef, 401, 'no token');
    is(mget_calls() - $before, 0, 'no MGET for a request without a valid token');

    # a rate-limited location: the limit script reads the keys, no MGET
    $before = mget_calls();
    my $ev = calls('evalsha');
    is_status(GET => '/lim/a', $tok1, 200, 'limited location');
    # the script reads every key with one MGET of its own (Redis counts it
    # as an MGET call): one in all means the access phase sent none
    is(mget_calls() - $before, 1, 'limited location: no MGET besides the script\'s own');
    is(calls('evalsha') - $ev, 1, 'limited location: one script call for the limit and the keys');
}

# a revoked session
$t->redis_cli('SET', "tmk:{$uid}:rv:$s1", '1', 'EX', '60');
{
    my $r = is_status(GET => '/r/a', $tok1, 401, 'session revoked');
    is(($r->{json} // {})->{code}, 'unauthorized', 'revoked: code unauthorized');
    is(($r->{json} // {})->{detail}, 'The access token has been revoked.', 'revoked: detail');
    is($r->{headers}{'www-authenticate'}, 'Bearer error="invalid_token"', 'revoked: WWW-Authenticate');
    is($r->{headers}{'content-type'}, 'application/problem+json', 'revoked: problem+json');
    unlike($t->access_log, qr{"GET /echo/a-revoked}, 'sanity: no such backend line yet');
    is_status(POST => '/r/a-revoked', $tok1, 401, 'session revoked');
    unlike($t->access_log, qr{"POST /echo/a-revoked}, 'a revoked request never reaches the backend');
    is_status(GET => '/r/a', $tok2, 200, 'another session of the user');
    is_status(GET => '/redir/x', $tok1, 401, 'session revoked, internal redirect');
    is_status(GET => '/norv/a', $tok1, 200, 'session revoked, but revocation off');
    my $l = is_status(GET => '/lim/a', $tok1, 401, 'session revoked, read by the limit script');
    is(($l->{json} // {})->{detail}, 'The access token has been revoked.', 'limited: revoked detail');
    ok(defined $l->{headers}{'ratelimit'}, 'limited: the refusal still carries the RateLimit header');
    is_status(GET => '/lim/a', $tok2, 200, 'limited: another session of the user');
    like($t->error_log, qr/taskmgr: JWT rejected: revoked/, 'the refusal is logged');
}
$t->redis_cli('DEL', "tmk:{$uid}:rv:$s1");
is_status(GET => '/r/a', $tok1, 200, 'revocation key gone (expired): accepted again, nothing cached');

# logout-all: every token issued at or before T
$t->redis_cli('SET', "tmk:{$uid}:rva", $now - 50, 'EX', '60');
is_status(GET => '/r/a', $tok1, 401, 'rva newer than iat');
is_status(GET => '/r/a', $tok2, 401, 'rva newer than iat, other session');
is_status(GET => '/lim/a', $tok2, 401, 'rva newer than iat, limited location');
is_status(GET => '/lim/a', $nosid, 401, 'rva newer than iat, limited location, token without sid');
is_status(GET => '/r/a', $nosid, 401, 'rva newer than iat, token without sid');
is_status(GET => '/r/a', $t->jwt({ sub => $uid, sid => $s1, iat => $now - 50 }), 200,
          'iat equal to rva: not revoked (a login right after logout-all; older sessions have rv keys)');
is_status(GET => '/r/a', $t->jwt({ sub => $uid, sid => $s1, iat => $now - 51 }), 401, 'iat a second before rva');
is_status(GET => '/r/a', $t->jwt({ sub => $uid, sid => $s1, iat => $now - 49 }), 200, 'iat after rva');
is_status(GET => '/r/a', $t->jwt({ sub => $uid, sid => $s1, iat => undef }), 401, 'no iat: revoked by any rva');
is_status(GET => '/r/a', $t->jwt({ sub => uuid4(), sid => $s1, iat => $now - 100 }), 200, 'another user');
$t->redis_cli('SET', "tmk:{$uid}:rva", $now - 200, 'EX', '60');
is_status(GET => '/r/a', $tok1, 200, 'rva older than iat');
is_status(GET => '/r/a', $nosid, 200, 'rva older than iat, token without sid');
is_status(GET => '/lim/a', $nosid, 200, 'rva older than iat, limited location, token without sid');
is_status(GET => '/lim/a', $tok1, 200, 'rva older than iat, limited location');
$t->redis_cli('SET', "tmk:{$uid}:rva", 'garbage', 'EX', '60');
is_status(GET => '/r/a', $tok1, 401, 'rva that is not a time: fail safe');
is_status(GET => '/lim/a', $tok1, 401, 'rva that is not a time: fail safe, limited location');
$t->redis_cli('DEL', "tmk:{$uid}:rva");

# the API: identity unchanged for the handlers, and refused once revoked
my $pw = "correct horse battery $t->{rand}";
my $reg = $t->request(POST => '/v1/auth/register', body => {
    email => "rv-$t->{rand}\@example.com", password => $pw, name => 'Rv' });
is($reg->{status}, 201, 'register') or diag $reg->{body};
my $at = ($reg->{json} // {})->{access_token} // '';
my $claims = eval { JSON::PP::decode_json(b64url_decode((split /\./, $at)[1] // '')) } // {};
ok($claims->{sub} && $claims->{sid}, 'the issued token has sub and sid');
{
    my $w = is_status(GET => '/v1/workspaces', $at, 200, 'API with a fresh token');
    is(scalar @{ ($w->{json} // {})->{data} // [] }, 1, 'the handler sees the caller (one personal workspace)');
    $t->redis_cli('SET', "tmk:{$claims->{sub}}:rv:$claims->{sid}", '1', 'EX', '60');
    is_status(GET => '/v1/workspaces', $at, 401, 'API: session revoked');
    $t->redis_cli('DEL', "tmk:{$claims->{sub}}:rv:$claims->{sid}");
    $t->redis_cli('SET', "tmk:{$claims->{sub}}:rva", time + 1, 'EX', '60');
    is_status(GET => '/v1/workspaces', $at, 401, 'API: logout-all');
    $t->redis_cli('DEL', "tmk:{$claims->{sub}}:rva");
    is_status(GET => '/v1/workspaces', $at, 200, 'API: keys gone');
}

###########################################################################
# Redis down

my $off = $t->error_log_size;
$t->redis_stop;
{
    # default fallback "reads"
    is_status(GET => '/r/a', $tok1, 200, 'down, reads');
    is_status(HEAD => '/r/a', $tok1, 200, 'down, reads');
    is_status(OPTIONS => '/r/a', $tok1, 200, 'down, reads');
    for my $m (qw(POST PATCH DELETE PUT)) {
        my $r = is_status($m => '/r/a', $tok1, 503, 'down, reads');
        is(($r->{json} // {})->{code}, 'dependency_unavailable', "down, reads: $m: dependency_unavailable");
        is($r->{headers}{'retry-after'}, '1', "down, reads: $m: Retry-After");
    }
    is_status(GET => '/r/a', 'x.y.z', 401, 'down: a bad token is still 401');
    is_status(GET => '/refuse/a', $tok1, 503, 'down, refuse');
    is_status(HEAD => '/refuse/a', $tok1, 503, 'down, refuse');
    is_status(POST => '/accept/a', $tok1, 200, 'down, accept');
    is_status(DELETE => '/accept/a', $tok1, 200, 'down, accept');
    is_status(POST => '/norv/a', $tok1, 200, 'down, revocation off');
    is_status(GET => '/lim/a', $tok1, 200, 'down, limited location, reads');
    is_status(POST => '/lim/a', $tok1, 503, 'down, limited location, a write');
    is_status(POST => '/v1/workspaces', $at, 503, 'down: an API write with the default');
    is_status(GET => '/v1/workspaces', $at, 200, 'down: an API read with the default');

    my $log = $t->error_log_since($off);
    my @down = $log =~ /(\[warn\][^\n]*token revocation cannot be checked)/g;
    is(scalar @down, 1, 'down: one warn line for all those requests') or diag $log;
}

###########################################################################
# Redis back: checks resume without a reload

$off = $t->error_log_size;
$t->redis_start;
$t->redis_cli('SET', "tmk:{$uid}:rv:$s1", '1', 'EX', '60');
ok(wait_until(15, sub { req(GET => '/r/a', $tok1)->{status} == 401 }),
   'back: a revoked session is refused again, no reload');
ok(wait_until(15, sub { req(GET => '/lim/a', $tok1)->{status} == 401 }),
   'back: ... also where the limit script reads the keys');
is_status(POST => '/r/a', $tok2, 200, 'back: writes pass again');
is_status(GET => '/refuse/a', $tok2, 200, 'back: refuse location passes');
{
    my $log = $t->error_log_since($off);
    my @up = $log =~ /(\[notice\][^\n]*token revocation is checked again)/g;
    is(scalar @up, 1, 'back: one notice line') or diag $log;
}
$t->redis_cli('DEL', "tmk:{$uid}:rv:$s1");

###########################################################################
# Redis too slow: the command times out (taskmgr_redis_timeout, 200ms by
# default) and the fallback applies; then the checks resume by themselves

$off = $t->error_log_size;
is($t->redis_cli('CLIENT', 'PAUSE', '1500', 'ALL'), 'OK', 'Redis paused for 1.5 s');
{
    my $t0 = Time::HiRes::time();
    my $r = req(POST => '/r/a', $tok2);
    my $secs = Time::HiRes::time() - $t0;
    is($r->{status}, 503, 'paused: a write times out into the fallback: 503');
    cmp_ok($secs, '<', 1.2, 'paused: answered before Redis came back');
    is(($r->{json} // {})->{code}, 'dependency_unavailable', 'paused: dependency_unavailable');
    is_status(GET => '/r/a', $tok2, 200, 'paused, reads');
}
Time::HiRes::sleep(1.6);
ok(wait_until(15, sub { req(POST => '/r/a', $tok2)->{status} == 200 }),
   'pause over: writes pass again');
$t->redis_cli('SET', "tmk:{$uid}:rv:$s2", '1', 'EX', '60');
ok(wait_until(15, sub { req(GET => '/r/a', $tok2)->{status} == 401 }),
   'pause over: revocation is checked again');
$t->redis_cli('DEL', "tmk:{$uid}:rv:$s2");
like($t->error_log_since($off), qr/\[warn\][^\n]*redis is unavailable \((?:no reply|unavailable|not connected)\), token revocation/,
     'paused: the transition was logged');

###########################################################################
# Configuration

$t->var(tok => $tok1);
run_blocks($t, config => $conf);

__DATA__

=== TEST 1: taskmgr_auth_revocation on needs taskmgr_redis
--- must_die
--- http_config
# no taskmgr_redis
taskmgr_auth_revocation on;
--- error_log
"taskmgr_auth_revocation on" needs "taskmgr_redis"

=== TEST 2: an unknown fallback
--- must_die
--- http_config
taskmgr_auth_revocation_fallback maybe;
--- error_log
~\[emerg\].*invalid value "maybe"

=== TEST 3: without taskmgr_redis revocation is off by default: no Redis, no 503
--- http_config
# no taskmgr_redis
--- request
POST /r/a
{}
--- token: tok
--- error_code: 200
--- no_error_log
token revocation cannot be checked
[warn]

=== TEST 4: without taskmgr_redis, taskmgr_auth_revocation off is allowed
--- http_config
# no taskmgr_redis
taskmgr_auth_revocation off;
--- request
GET /r/a
--- token: tok
--- error_code: 200
