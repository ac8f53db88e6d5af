# Redis killed (SIGKILL) in the middle of a mixed read/write load, then
# started again: the API keeps answering every request (rate limits on the
# per-node fallback, cache bypassed, writes still bump nothing but answer),
# /readyz says 503 naming Redis while it is gone, the fallback is logged once
# per worker and transition, and everything recovers without a reload: cache
# hits again, limits shared again, no stale read.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use POSIX ();
use JSON::PP ();
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task wait_until);

my $t = Taskmgr::Test->new(name => 'redis-outage');
# Writes go on while Redis is gone only where the operator accepts tokens
# whose revocation cannot be checked (the default refuses writes then:
# t/230-auth-revocation.t).
$t->start(workers => 2, http_config => <<'EOF', config => <<'EOF2');
    taskmgr_auth_revocation_fallback accept;
    taskmgr_cache on;
    taskmgr_cache_ttl 30s;
    taskmgr_limit_zone out_ip   key=$binary_remote_addr rate=100000r/s burst=100000;
    taskmgr_limit_zone out_user key=$jwt_sub rate=100000r/s burst=100000;
EOF
        location /v1/auth/ {
            taskmgr_limit zone=out_ip;
            taskmgr_api;
        }
        location /v1/ {
            taskmgr_auth_jwt on;
            taskmgr_limit zone=out_ip;
            taskmgr_limit zone=out_user;
            taskmgr_api;
        }
        location = /readyz {
            taskmgr_readyz;
        }
EOF2

my $KIDS     = 4;
my $SECONDS  = 10;      # each load process stops after this long ...
my $MAX_REQS = 4000;    # ... or this many requests
my $dir = tempdir(CLEANUP => 1);

my $u = setup_user($t);
my @tasks = map { create_task($t, $u, "outage $_") } 1 .. $KIDS;
my $list = "/v1/workspaces/$u->{ws}/tasks?limit=20";

is($t->request(GET => '/readyz')->{status}, 200, 'ready before the outage');

# --- the load: each process reads the list and its task, and writes it ----
my $t0 = time;
my @kids;
for my $k (0 .. $KIDS - 1) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $path = "/v1/workspaces/$u->{ws}/tasks/$tasks[$k]";
        my %st = (requests => 0, status => {}, cache => {}, ratelimit => 0,
                  last_title => undef, bad => []);
        my $n = 0;
        while (time - $t0 < $SECONDS && $st{requests} < $MAX_REQS) {
            my $r;
            if ($n % 3 == 2) {
                my $title = "kid $k write $n";
                $r = $t->request(PATCH => $path, token => $u->{token},
                                 body => { title => $title });
                $st{last_title} = $title if $r->{status} == 200;
            } else {
                $r = $t->request(GET => ($n % 3 ? $path : $list),
                                 token => $u->{token});
                $st{cache}{ $r->{headers}{'x-cache'} // 'none' }++;
            }
            $st{requests}++;
            $st{status}{ $r->{status} }++;
            $st{ratelimit}++ if defined $r->{headers}{'ratelimit'};
            push @{ $st{bad} }, "$r->{status} $r->{body}"
                if $r->{status} >= 300 && @{ $st{bad} } < 5;
            $n++;
        }
        open my $fh, '>', "$dir/$k.json" or POSIX::_exit(2);
        print $fh JSON::PP->new->canonical->encode(\%st);
        close $fh;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}

# --- the outage -----------------------------------------------------------
sleep 2;
my $pidfile = $t->_redis_dir . '/redis.pid';
open my $pf, '<', $pidfile or die "$pidfile: $!";
chomp(my $rpid = <$pf> // '');
close $pf;
ok($rpid =~ /^\d+$/ && kill('KILL', $rpid), 'Redis killed with SIGKILL under load');
$t->{redis_stopped} = 1;
my $killed = time;

my $nr = wait_until(5, sub {
    my $r = $t->request(GET => '/readyz');
    return $r->{status} == 503 ? $r : undef;
});
ok($nr, '/readyz answers 503 while Redis is gone');
like($nr ? $nr->{body} : '', qr/redis/i, '/readyz names Redis');

sleep 3;
$t->redis_start;
my $restarted = time;
my $ready = wait_until(10, sub { $t->request(GET => '/readyz')->{status} == 200 });
ok($ready, '/readyz 200 again after Redis is back, without a reload');
note(sprintf 'Redis down %.1f s; ready %.2f s after the restart',
             $restarted - $killed, time - $restarted);

waitpid($_, 0) for @kids;

my (%status, %cache, $requests, $limited, @bad);
my %last;
for my $k (0 .. $KIDS - 1) {
    open my $fh, '<', "$dir/$k.json" or die "load process $k left no result\n";
    my $st = JSON::PP->new->decode(do { local $/; <$fh> });
    $requests += $st->{requests};
    $limited  += $st->{ratelimit};
    $status{$_} += $st->{status}{$_} for keys %{ $st->{status} };
    $cache{$_}  += $st->{cache}{$_}  for keys %{ $st->{cache} };
    push @bad, @{ $st->{bad} };
    $last{$k} = $st->{last_title};
}
note('statuses: ' . join(', ', map { "$_ x$status{$_}" } sort keys %status)
     . '; X-Cache: ' . join(', ', map { "$_ x$cache{$_}" } sort keys %cache));

cmp_ok($requests, '>=', 200, "the load ran ($requests requests)");
my $non2xx = grep { !/^2/ } keys %status;
is($non2xx, 0, 'every request of the load answered 2xx, also while Redis was gone')
    or diag join "\n", @bad;
cmp_ok($cache{BYPASS} // 0, '>', 0, 'reads bypassed the cache while Redis was gone');
cmp_ok($cache{HIT} // 0, '>', 0, 'reads were served from the cache around the outage');
is($limited, $requests, 'every answer carried RateLimit (Redis or the per-node fallback)');

# --- after: fresh data, cache and shared limits are back ------------------
for my $k (0 .. $KIDS - 1) {
    my $r = $t->request(GET => "/v1/workspaces/$u->{ws}/tasks/$tasks[$k]",
                        token => $u->{token});
    is($r->{json}{title}, $last{$k}, "task $k reads its last write");
}
my $hit = wait_until(5, sub {
    my $r = $t->request(GET => $list, token => $u->{token});
    return ($r->{headers}{'x-cache'} // '') eq 'HIT' ? $r : undef;
});
ok($hit, 'the cache answers hits again');
my $keys = $t->redis_cli('--scan', '--pattern', 'tmk:*');
like($keys, qr/^tmk:\{[^}]+\}:/m, 'the limiter writes its buckets to Redis again');

my $log = $t->error_log;
my $down = () = $log =~ /rate limits fall back to this node/g;
my $up   = () = $log =~ /rate limits are shared again/g;
# Once per transition of a worker's view: one outage is a transition each way
# per worker, a few more if a slow build times out a command around the restart.
note("fallback logged $down time(s), return $up time(s), for $requests requests");
cmp_ok($down, '>=', 1, 'the fallback was logged');
cmp_ok($down, '<=', 6, 'the fallback was logged per transition (2 workers), not per request');
cmp_ok($up, '>=', 1, 'the return was logged');
cmp_ok($up, '<=', 6, 'the return was logged per transition (2 workers), not per request');

$t->done;
