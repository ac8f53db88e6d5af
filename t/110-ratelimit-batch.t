# Rate limits of requests that arrive together: a worker sends the limits of
# all the requests it starts in one turn of its event loop in one script
# call.  The worker is stopped (SIGSTOP) while 30 requests queue up, then
# continued with multi_accept on, so they are started in one turn.  The
# answers must be exactly those of one call per request in order: a shared
# bucket passes exactly its capacity, a request refused by one of its limits
# charges none of them, and every answer carries its own headers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use Taskmgr::Test;
use Taskmgr::Load qw(async_request wait_until);

my $t = Taskmgr::Test->new(name => 'ratelimit-batch');
$t->start(workers => 1, events_config => '    multi_accept on;',
          http_config => <<'EOF', config => <<'EOF2');
    taskmgr_limit_zone shared key=$http_x_shared rate=1r/m burst=19;
    taskmgr_limit_zone group  key=$http_x_group  rate=1r/m burst=4;
EOF
        location = /one {
            taskmgr_limit zone=shared;
            taskmgr_healthz;
        }
        location = /two {
            taskmgr_limit zone=shared;
            taskmgr_limit zone=group;
            taskmgr_healthz;
        }
EOF2


# warm up: the worker's Redis connections are up and the script is loaded
ok(wait_until(10, sub {
    my $r = $t->request(GET => '/one', headers => { 'X-Shared' => "warm-$$" });
    return ($r->{headers}{'ratelimit-policy'} // '') ne ''
        && $t->redis_cli('--scan', '--pattern', 'tmk:{shared:*') ne '';
}), 'the limiter talks to Redis');

my $worker;
ok(wait_until(10, sub { ($worker) = $t->worker_pids; $worker }), 'one worker');

# The client commands Redis receives while $code runs (MONITOR).
sub evalsha_count {
    my ($code) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->redis_port, Timeout => 3)
        or die "monitor: $!";
    print $s "MONITOR\r\n";
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $read = sub {
        my ($until) = @_;
        while ((my $left = $until - time) > 0) {
            last unless $sel->can_read($left);
            last unless sysread($s, $buf, 65536, length $buf);
        }
    };
    $read->(time + 0.2);
    $code->();
    $read->(time + 0.3);
    close $s;
    return scalar(() = $buf =~ /^\+[\d.]+ \[\d+ [\d.:]+\] "EVALSHA"/mg);
}

# 30 requests queued while the worker is stopped, answered together.
sub burst {
    my (@reqs) = @_;
    kill 'STOP', $worker or die "SIGSTOP: $!";
    my @p = eval { map { async_request($t, GET => $_->[0], headers => $_->[1]) } @reqs };
    my $err = $@;
    sleep 0.3;    # every request is in the worker's socket buffers
    kill 'CONT', $worker;
    die $err if $err;
    return map { $_->wait(10) } @p;
}

# --- one shared bucket: exactly its capacity passes -----------------------
my $k1 = "k1-$$-" . int rand 1e9;
my @r1;
my $calls = evalsha_count(sub {
    @r1 = burst(map { [ '/one', { 'X-Shared' => $k1 } ] } 1 .. 30);
});
my %st1;
$st1{ $_->{status} }++ for @r1;
is($st1{200} // 0, 20, 'rate=1r/m burst=19: exactly 20 of 30 requests started together pass');
is($st1{429} // 0, 10, '... and 10 are refused with 429');
cmp_ok($calls, '>=', 1, 'the limits went to Redis');
cmp_ok($calls, '<=', 3, "30 requests started together took $calls script call(s), not 30");
my @rem = sort { $a <=> $b }
          map { $_->{headers}{'x-ratelimit-remaining'} } grep { $_->{status} == 200 } @r1;
is_deeply(\@rem, [ 0 .. 19 ], 'the passed requests saw remaining 19, 18, ... 0: each its own answer');
ok(!grep({ !defined $_->{headers}{'retry-after'} } grep { $_->{status} == 429 } @r1),
   'every refused request carries Retry-After');

# --- two limits: a request refused by one charges neither -----------------
my $k2 = "k2-$$-" . int rand 1e9;
my @r2 = burst(map { [ '/two', { 'X-Shared' => $k2,
                                  'X-Group' => ($_ % 3 ? "q-$k2" : "p-$k2") } ] } 1 .. 30);
my %st2;
$st2{ $_->{status} }++ for @r2;
is($st2{200} // 0, 10, 'group limits (burst=4) pass 5 of the 10 "p" and 5 of the 20 "q" requests');
my $after = $t->request(GET => '/one', headers => { 'X-Shared' => $k2 });
is($after->{status}, 200, 'the shared bucket still has room');
is($after->{headers}{'x-ratelimit-remaining'}, 20 - 10 - 1,
   'the shared bucket was charged only by the 10 requests that passed');

# --- a request that goes away while its batch waits -----------------------
kill 'STOP', $worker;
my $gone = async_request($t, GET => '/one', headers => { 'X-Shared' => "gone-$$" });
my @stay = map { async_request($t, GET => '/one', headers => { 'X-Shared' => "stay-$$" }) } 1 .. 3;
close $gone->{sock};
sleep 0.2;
kill 'CONT', $worker;
my @rs = map { $_->wait(10) } @stay;
is(scalar(grep { $_->{status} == 200 } @rs), 3, 'the others of its batch are answered');
is($t->request(GET => '/one', headers => { 'X-Shared' => "stay-$$" })->{status}, 200,
   'the worker goes on serving');

$t->done;
