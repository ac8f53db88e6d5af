# Rate limits (ngx_http_taskmgr_limit_module): GCRA exactness, the headers,
# the 429 problem, dry run, several limits, limits in front of proxy_pass,
# return and the API, internal redirects, empty keys; shared by two nginx
# instances on one Redis; Redis stopped (local fallback, fail_open,
# fail_closed, one transition line) and back (no reload).
#
# Every test uses its own key value (the X-K header), so tests never share
# a bucket, also across runs on one Redis.
#
# The Redis parts need the harness's redis_stop/redis_start/redis_cli and
# the taskmgr_redis directive: without them (or with TASKMGR_TEST_NO_REDIS=1)
# those tests are skipped and every limit runs on the local fallback, which
# the same exactness tests then check.
#
# It stops the Redis of the test run (scripts/test.sh's stack): other test
# files must not run against the same stack at the same time (prove runs
# them one after the other).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA ();
use Time::HiRes ();
use Taskmgr::Test;

my $HAVE_REDIS = Taskmgr::Test->can('redis_stop') && !$ENV{TASKMGR_TEST_NO_REDIS};

my $REDIS_CONF = $HAVE_REDIS
    ? "taskmgr_redis 127.0.0.1:%%REDIS_PORT%%;\n    taskmgr_redis_timeout 500ms;"
    : '# no taskmgr_redis: every limit runs on the local fallback';

my $HTTP = <<"EOF";
    $REDIS_CONF
    taskmgr_limit_zone burst6 key=\$http_x_k rate=1r/m burst=5;
    taskmgr_limit_zone fast   key=\$http_x_k rate=10r/s burst=2;
    taskmgr_limit_zone refill key=\$http_x_k rate=2r/s burst=3;
    taskmgr_limit_zone shared key=\$http_x_k rate=1r/m burst=9;
    taskmgr_limit_zone dry    key=\$http_x_k rate=1r/m burst=1;
    taskmgr_limit_zone wide   key=\$http_x_k rate=1r/m burst=50;
    taskmgr_limit_zone strict key=\$http_x_k rate=1r/m burst=2;
    taskmgr_limit_zone mixed  key=\$binary_remote_addr:\$http_x_k rate=1r/m burst=3 size=1m;
    taskmgr_limit_zone proxy  key=\$http_x_k rate=1r/m burst=2;
    taskmgr_limit_zone redir  key=\$http_x_k rate=1r/m burst=3;
    taskmgr_limit_zone api    key=\$http_x_k rate=1r/m burst=1;
    taskmgr_limit_zone local  key=\$http_x_k rate=1r/m burst=3;
    taskmgr_limit_zone open   key=\$http_x_k rate=1r/m burst=1;
    taskmgr_limit_zone closed key=\$http_x_k rate=1r/m burst=1;
EOF

# "return" answers in the rewrite phase, before PREACCESS (as with
# limit_req): limited locations serve files, proxy or run a module.
my $SERVER = <<'EOF';
        root %%TESTDIR%%/html;
        default_type text/plain;
        taskmgr_limit zone=wide;

        location = /burst6 { taskmgr_limit zone=burst6; }
        location = /fast   { taskmgr_limit zone=fast;   }
        location = /refill { taskmgr_limit zone=refill; }
        location = /shared { taskmgr_limit zone=shared; }
        location = /dry    { taskmgr_limit zone=wide; taskmgr_limit zone=dry dry_run;
                             }
        location = /mixed  { taskmgr_limit zone=mixed;  }
        location = /local  { taskmgr_limit zone=local on_redis_error=local;
                             }
        location = /open   { taskmgr_limit zone=open on_redis_error=fail_open;
                             }
        location = /closed { taskmgr_limit zone=closed on_redis_error=fail_closed;
                             }

        # inherits "taskmgr_limit zone=wide" and adds a stricter one
        location = /multi  { taskmgr_limit zone=wide; taskmgr_limit zone=strict;
                             }
        location = /inherited { }
        location = /off    { taskmgr_limit off; }

        location = /proxied {
            taskmgr_limit zone=proxy;
            proxy_pass http://127.0.0.1:%%PORT%%/backend;
        }
        location = /backend { taskmgr_limit off; return 200 "backend\n"; }

        # an internal redirect after the limiter: counted once
        location = /redir { taskmgr_limit zone=redir; try_files /nonexistent @target; }
        location @target  { taskmgr_limit zone=redir; rewrite ^ /target break; }

        # in front of an API module location
        location = /healthz { taskmgr_limit zone=api; taskmgr_healthz; }
EOF

sub start_nginx {
    my ($tt) = @_;
    mkdir $tt->dir . '/html' or die "mkdir: $!";
    for my $f (qw(burst6 fast refill shared dry mixed local open closed multi
                  inherited off target)) {
        open my $fh, '>', $tt->dir . "/html/$f" or die "$f: $!";
        print {$fh} $f eq 'target' ? "target\n" : "ok\n";
        close $fh;
    }
    $tt->start(http_config => $HTTP, config => $SERVER);
    redis_ready($tt) if $HAVE_REDIS;
}

# Until the worker's Redis client has connected, limits run on the local
# fallback, whose buckets are not Redis's: wait until a probe's bucket shows
# up in Redis, so that the exactness tests count in one place.
sub redis_ready {
    my ($tt) = @_;
    my $k = key('ready');
    wait_until(15, sub {
        get($tt, '/burst6', $k);
        $tt->redis_cli('EXISTS', redis_key('burst6', $k)) eq '1';
    }) or diag 'the Redis client did not connect within 15 s';
}

# Two harness objects each add their two log tests; with a plan neither
# ends the test early (done_testing).  Redis: 15 tests, plus 2 of $t2.
my $t = Taskmgr::Test->new;
my $RAND = $t->{rand};
my $N = 0;
plan tests => $HAVE_REDIS ? 94 : 92;

###########################################################################
# Configuration errors (12 tests)

run_blocks($t, no_done => 1, blocks => <<'EOF');
=== TEST 1: unknown zone
--- http_config
    taskmgr_limit_zone a key=$http_x_k rate=1r/s;
--- config
    location / { taskmgr_limit zone=b; }
--- must_die
--- error_log
unknown taskmgr_limit_zone "b"

=== TEST 2: rate unit
--- http_config
    taskmgr_limit_zone a key=$http_x_k rate=10r/h;
--- config
    location / { taskmgr_limit zone=a; }
--- must_die
--- error_log
invalid parameter "rate=10r/h"

=== TEST 3: a zone twice in one location
--- http_config
    taskmgr_limit_zone a key=$http_x_k rate=1r/s;
--- config
    location / { taskmgr_limit zone=a; taskmgr_limit zone=a dry_run; }
--- must_die
--- error_log
taskmgr_limit zone "a" is used twice in one location

=== TEST 4: on_redis_error
--- http_config
    taskmgr_limit_zone a key=$http_x_k rate=1r/s;
--- config
    location / { taskmgr_limit zone=a on_redis_error=maybe; }
--- must_die
--- error_log
invalid parameter "on_redis_error=maybe"

=== TEST 5: no key
--- http_config
    taskmgr_limit_zone a rate=1r/s burst=3;
--- config
    location / { }
--- must_die
--- error_log
"taskmgr_limit_zone" needs key= and rate=

=== TEST 6: a zone declared twice
--- http_config
    taskmgr_limit_zone a key=$http_x_k rate=1r/s;
    taskmgr_limit_zone a key=$uri rate=1r/s;
--- config
    location / { }
--- must_die
--- error_log
duplicate taskmgr_limit_zone "a"
EOF

start_nginx($t);

sub key { my ($what) = @_; return "$what-$RAND-" . ++$N }

sub get {
    my ($tt, $path, $key, %h) = @_;
    return $tt->request(GET => $path,
                        headers => { (defined $key ? ('X-K' => $key) : ()), %h });
}

# count($tt, $path, $key, $n) -> (allowed, limited, [responses])
sub count {
    my ($tt, $path, $key, $n) = @_;
    my ($ok, $lim, @r) = (0, 0);
    for (1 .. $n) {
        my $r = get($tt, $path, $key);
        push @r, $r;
        $ok++  if $r->{status} == 200;
        $lim++ if $r->{status} == 429;
    }
    return ($ok, $lim, \@r);
}

sub within { my ($got, $want, $name) = @_;
    ok(abs($got - $want) <= 1, "$name: $got, expected $want +-1") }

sub hdr { $_[0]{headers}{lc $_[1]} }

sub wait_until {
    my ($secs, $cb) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    while (Time::HiRes::time() < $deadline) {
        return 1 if $cb->();
        Time::HiRes::sleep(0.1);
    }
    return $cb->();
}

# the Redis key of a bucket
sub redis_key {
    my ($zone, $value) = @_;
    return "tmk:{$zone:" . substr(Digest::SHA::sha1_hex($value), 0, 32) . '}:rl';
}

###########################################################################
# Exactness

{
    my $k = key('b6');
    my ($ok, $lim) = count($t, '/burst6', $k, 12);
    is($ok, 6, 'rate=1r/m burst=5: 6 of 12 pass');
    is($lim, 6, 'rate=1r/m burst=5: 6 of 12 get 429');
}

{
    # 10r/s burst=2 for about 1.5 s: 3 + 10 per second pass
    my $k = key('fast');
    my ($ok, $lim, $n) = (0, 0, 0);
    my $t0 = Time::HiRes::time();
    my ($first, $last);
    while (Time::HiRes::time() - $t0 < 1.5) {
        $last = Time::HiRes::time();
        $first //= $last;
        my $r = get($t, '/fast', $k);
        $n++;
        $ok++  if $r->{status} == 200;
        $lim++ if $r->{status} == 429;
    }
    # GCRA: 3 at once, then one per 100 ms (from the first request to
    # the start of the last one)
    my $want = 3 + int(10 * ($last - $first));
    cmp_ok($n, '>', $want + 5, "10r/s: enough requests sent ($n)");
    within($ok, $want, '10r/s burst=2 over ' . sprintf('%.3f', $last - $first) . 's: passed');
    is($ok + $lim, $n, '10r/s: every other answer is 429');
}

{
    # 2r/s burst=3: 4 at once, then the bucket is full again after 2 s
    my $k = key('refill');
    my ($ok) = count($t, '/refill', $k, 8);
    is($ok, 4, 'rate=2r/s burst=3: 4 of 8 pass');
    my $r = get($t, '/refill', $k);
    is($r->{status}, 429, 'refill: still limited');
    is(hdr($r, 'Retry-After'), 1, 'refill: Retry-After 1 (0.5 s rounded up)');
    Time::HiRes::sleep(2.1);
    ($ok) = count($t, '/refill', $k, 8);
    is($ok, 4, 'refill: after 2 s the bucket is full again: 4 of 8 pass');
}

###########################################################################
# Headers and the 429 problem

{
    my $k = key('hdr');
    my @r = map { get($t, '/burst6', $k) } 1 .. 7;
    is($r[0]{status}, 200, 'headers: first request 200');
    is(hdr($r[0], 'RateLimit-Policy'), '"burst6";q=6;w=360', 'RateLimit-Policy');
    is(hdr($r[0], 'RateLimit'), '"burst6";r=5;t=60', 'RateLimit: r=5, t=60');
    is(hdr($r[0], 'X-RateLimit-Limit'), 6, 'X-RateLimit-Limit 6');
    is(hdr($r[0], 'X-RateLimit-Remaining'), 5, 'X-RateLimit-Remaining 5');
    is(hdr($r[0], 'X-RateLimit-Reset'), 60, 'X-RateLimit-Reset 60');
    ok(!defined hdr($r[0], 'Retry-After'), 'no Retry-After on a 200');

    my @rem = map { hdr($_, 'X-RateLimit-Remaining') } @r[0 .. 5];
    is("@rem", '5 4 3 2 1 0', 'remaining decreases by one per request');
    my @reset = map { hdr($_, 'X-RateLimit-Reset') } @r[0 .. 5];
    ok(!grep({ abs($reset[$_] - 60 * ($_ + 1)) > 1 } 0 .. 5),
       "reset grows by the interval: @reset");

    my $l = $r[6];
    is($l->{status}, 429, 'seventh request: 429');
    like(hdr($l, 'Content-Type'), qr{^application/problem\+json}, '429: problem+json');
    my $ra = hdr($l, 'Retry-After');
    ok(defined $ra && $ra >= 59 && $ra <= 60, "429: Retry-After about 60 s ($ra)");
    is(hdr($l, 'X-RateLimit-Remaining'), 0, '429: remaining 0');
    is(hdr($l, 'RateLimit-Policy'), '"burst6";q=6;w=360', '429: RateLimit-Policy');
    like(hdr($l, 'RateLimit'), qr/^"burst6";r=0;t=3(59|60)$/, '429: RateLimit');
    my $j = $l->{json} // {};
    is($j->{code}, 'rate_limited', '429: code rate_limited');
    is($j->{status}, 429, '429: status in the body');
    is($j->{type}, 'https://taskmgr.dev/problems/rate_limited', '429: type');
    ok(defined $j->{request_id} && $j->{request_id} eq (hdr($l, 'X-Request-Id') // ''),
       '429: request_id equals X-Request-Id');
}

###########################################################################
# dry run, several limits, inheritance, off, empty key

{
    my $k = key('dry');
    my $off = $t->error_log_size;
    my ($ok, $lim, $r) = count($t, '/dry', $k, 5);
    is($ok, 5, 'dry run: every request passes');
    my @would = $t->error_log_since($off) =~ /limit zone "dry" would limit the request \(dry run\)/g;
    is(scalar @would, 3, 'dry run: 3 "would limit" lines (2 fit the bucket)');
    unlike($t->error_log_since($off), qr/limiting request by zone "dry"/,
           'dry run: never "limiting request"');
    # the dry-run zone shows in no header: the inherited "wide" one does
    like(hdr($r->[0], 'RateLimit-Policy') // '', qr/^"wide";/, 'dry run: headers of the enforcing zone');
}

{
    my $k = key('multi');
    my ($ok, $lim, $r) = count($t, '/multi', $k, 6);
    is($ok, 3, 'several limits: the strictest (burst=2) decides: 3 of 6 pass');
    is(hdr($r->[0], 'RateLimit-Policy'), '"strict";q=3;w=180', 'several limits: headers of the strictest');
    is(hdr($r->[2], 'X-RateLimit-Remaining'), 0, 'several limits: its remaining');
    is(hdr($r->[3], 'RateLimit-Policy'), '"strict";q=3;w=180', 'several limits: 429 names the refusing zone');

    # a refused request costs the other limits nothing: "wide" was charged
    # three times only
    my $w = get($t, '/inherited', $k);
    is(hdr($w, 'X-RateLimit-Remaining'), 50 - 3, 'refused requests did not charge the wider zone');
}

{
    my $r = get($t, '/inherited', key('inh'));
    is($r->{status}, 200, 'inherited limit: 200');
    is(hdr($r, 'RateLimit-Policy'), '"wide";q=51;w=3060', 'inherited limit: server-level zone');
    $r = get($t, '/off', key('off'));
    ok(!defined hdr($r, 'RateLimit'), 'taskmgr_limit off: no headers');
}

{
    my ($ok, $lim, $r) = count($t, '/burst6', undef, 10);
    is($ok, 10, 'empty key: the limit is skipped');
    ok(!defined hdr($r->[0], 'RateLimit-Policy'), 'empty key: no headers');
}

{
    my $k = key('mixed');
    my ($ok) = count($t, '/mixed', $k, 6);
    is($ok, 4, 'key of several variables ($binary_remote_addr:$http_x_k): 4 of 6 pass');
}

###########################################################################
# In front of proxy_pass, an internal redirect, the API

{
    my $k = key('proxy');
    my ($ok, $lim, $r) = count($t, '/proxied', $k, 5);
    is($ok, 3, 'proxy_pass: 3 of 5 pass');
    is($r->[0]{body}, "backend\n", 'proxy_pass: the backend answers');
    is(hdr($r->[0], 'RateLimit'), '"proxy";r=2;t=60', 'proxy_pass: headers on the proxied response');
    is($r->[4]{status}, 429, 'proxy_pass: then 429');
}

{
    my $k = key('redir');
    my ($ok, $lim, $r) = count($t, '/redir', $k, 6);
    is($ok, 4, 'internal redirect: counted once per request: 4 of 6 pass');
    is($r->[0]{body}, "target\n", 'internal redirect: the named location answers');
    is(hdr($r->[1], 'X-RateLimit-Remaining'), 2, 'internal redirect: headers survive');
}

{
    my $k = key('api');
    my $r = get($t, '/healthz', $k);
    is($r->{status}, 200, 'API location: 200');
    is(hdr($r, 'RateLimit'), '"api";r=1;t=60', 'API location: headers on the module\'s response');
    get($t, '/healthz', $k);
    $r = get($t, '/healthz', $k);
    is($r->{status}, 429, 'API location: 429 once the bucket is empty');
}

###########################################################################
# Redis: one limit for two nginx instances; Redis stopped and back

my $t2;

SKIP: {
    skip 'no Redis client in this build (redis_stop/taskmgr_redis)', 15 unless $HAVE_REDIS;

    # warm-up: this worker has talked to Redis
    ok(wait_until(10, sub { defined $t->redis_cli('EXISTS', redis_key('burst6', 'warm')) }),
       'redis_cli works');
    get($t, '/burst6', key('warm')) for 1 .. 2;

    $t2 = Taskmgr::Test->new(name => '100-ratelimit-second');
    start_nginx($t2);
    get($t2, '/burst6', key('warm')) for 1 .. 2;

    {
        my $k = key('shared');
        my $ok = 0;
        for my $i (1 .. 30) {
            my $r = get($i % 2 ? $t : $t2, '/shared', $k);
            $ok++ if $r->{status} == 200;
        }
        within($ok, 10, 'two nginx instances, one Redis: rate=1r/m burst=9 passes 10 of 30 in total');
        is($t->redis_cli('EXISTS', redis_key('shared', $k)), 1, 'the bucket is in Redis');
        my $ttl = $t->redis_cli('PTTL', redis_key('shared', $k));
        ok($ttl > 540_000 && $ttl <= 600_000, "the bucket expires when full again ($ttl ms)");
    }

    my $kl = key('local');
    my $ko = key('open');
    my $kc = key('closed');
    my $off = $t->error_log_size;
    $t->redis_stop;

    my ($ok, $lim) = count($t, '/local', $kl, 8);
    is($ok, 4, 'Redis stopped: the local fallback limits (4 of 8 pass)');
    ($ok) = count($t, '/open', $ko, 5);
    is($ok, 5, 'Redis stopped: fail_open passes everything');
    my $r = get($t, '/closed', $kc);
    is($r->{status}, 503, 'Redis stopped: fail_closed answers 503');
    is(($r->{json} // {})->{code}, 'dependency_unavailable', 'fail_closed: dependency_unavailable');
    ok(defined hdr($r, 'Retry-After'), 'fail_closed: Retry-After');
    ($ok) = count($t, '/burst6', key('down'), 8);
    is($ok, 6, 'Redis stopped: local limits are exact too');

    my $down = $t->error_log_since($off);
    my @tr = $down =~ /redis is unavailable \([^)]*\), rate limits fall back/g;
    is(scalar @tr, 1, 'one transition line for all those requests')
        or diag $down;

    $off = $t->error_log_size;
    $t->redis_start;
    # the client reconnects by itself; a limited request notices
    ok(wait_until(15, sub {
        get($t, '/inherited', key('probe'));
        $t->error_log_since($off) =~ /redis is available again/;
    }), 'Redis back: recovered without a reload');

    my $k = key('back');
    ($ok) = count($t, '/burst6', $k, 8);
    is($ok, 6, 'Redis back: 6 of 8 pass');
    is($t->redis_cli('EXISTS', redis_key('burst6', $k)), 1, 'Redis back: the bucket is in Redis again');
    my @back = $t->error_log_since($off) =~ /redis is available again/g;
    is(scalar @back, 1, 'one line for the way back');
}

###########################################################################
# The rate limits of lua-free-conf/taskmgr.conf, with its server block
# (10 tests)

{
    open my $fh, '<', "$FindBin::Bin/../lua-free-conf/taskmgr.conf" or die "taskmgr.conf: $!";
    my $conf = do { local $/; <$fh> };
    my ($limits) = $conf =~ /^(    # --- Rate limits.*?)\n\n    # ---/ms;
    $limits //= '';
    $t->start(http_config => "$REDIS_CONF\n$limits",
              config => Taskmgr::Test::default_server_block());

    # count only once this worker's Redis client is up (else the local
    # fallback answers the first requests), and with bodies that fail
    # validation at once: a password hash per request (slow under ASan)
    # would let the bucket refill between requests
    ok($t->wait_ready, 'taskmgr.conf: Redis is up');
    my @st = map {
        $t->request(POST => '/v1/auth/login', body => {})->{status}
    } 1 .. 7;
    is("@st", '422 422 422 422 422 422 429',
       'taskmgr.conf: login is limited per address to 6 at once (10r/m burst=5)');
    # password reset and magic links share the address's auth bucket
    for my $p (qw(/v1/auth/password/forgot /v1/auth/password/reset
                  /v1/auth/magic-link /v1/auth/magic-link/consume)) {
        is($t->request(POST => $p, body => {})->{status}, 429,
           "taskmgr.conf: $p is in the auth zone");
    }

    my $r = $t->request(GET => '/healthz');
    is($r->{status}, 200, 'taskmgr.conf: /healthz 200');
    ok(!defined hdr($r, 'RateLimit'), 'taskmgr.conf: probes are not limited');

    $r = $t->request(GET => '/v1/workspaces',
                     token => $t->jwt({ sub => '00000000-0000-7000-8000-' . substr($RAND, 0, 12) }));
    is(hdr($r, 'RateLimit-Policy'), '"user";q=21;w=3', 'taskmgr.conf: /v1/ is limited per user (the strictest)');
    is(hdr($r, 'X-RateLimit-Remaining'), 20, 'taskmgr.conf: per user remaining');
}

$t2->done if $t2;
$t->done;
