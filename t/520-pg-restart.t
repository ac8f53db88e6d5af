# PostgreSQL goes away and comes back: the API answers 503 at once while it
# is down (liveness stays 200), and recovers by itself, without a restart
# or reload of nginx; also when the restart happens under load.
#
# It stops the PostgreSQL of the test run (scripts/test.sh's stack): other
# test files must not run against the same stack at the same time (prove
# runs them one after the other).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use POSIX ();
use Time::HiRes ();
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task timed_request app_backends
                     wait_until is_unavailable);

my ($POOL, $WORKERS) = (4, 2);

my $t = Taskmgr::Test->new;
plan skip_all => 'TASKMGR_TEST_PG_DATADIR is not set (needed to stop PostgreSQL)'
    unless $ENV{TASKMGR_TEST_PG_DATADIR};

$t->start(workers => $WORKERS, http_config => <<"EOF");
    taskmgr_pg_pool_size $POOL;
    taskmgr_pg_connect_timeout 2s;
    taskmgr_pg_query_timeout 3s;
EOF

my $u  = setup_user($t);
my $ws = $u->{ws};
my $id = create_task($t, $u, 'survivor');
my $path = "/v1/workspaces/$ws/tasks/$id";
my @workers = sort $t->worker_pids;
is(scalar @workers, $WORKERS, "$WORKERS workers");

my %json_ok = (status => 'ready', checks => { postgres => 'ok', redis => 'ok' });
my %json_down = (status => 'unavailable',
                 checks => { postgres => 'unavailable', redis => 'ok' });

is($t->request(GET => $path, token => $u->{token})->{status}, 200, 'GET task: 200');
is($t->request(GET => '/readyz')->{status}, 200, '/readyz: 200');

# Every worker's pool is up (the count includes both workers' connections).
ok(wait_until(10, sub { app_backends($t) == $POOL * $WORKERS }),
   "the pools are up: $POOL x $WORKERS backends");

###########################################################################
# PostgreSQL stopped

my $off = $t->error_log_size;
$t->pg_stop;
pass('PostgreSQL stopped (pg_ctl stop -m fast)');

my @calls = (
    [GET   => $path, token => $u->{token}],
    [PATCH => $path, token => $u->{token}, body => { title => 'not now' }],
    [GET   => "/v1/workspaces/$ws/tasks", token => $u->{token}],
    [POST  => "/v1/workspaces/$ws/tasks", token => $u->{token},
              body => { title => 'not now' }],
    [GET   => '/v1/workspaces', token => $u->{token}],
    [POST  => '/v1/auth/register', body => { email => "down-$$\@example.com",
              password => 'correct horse battery staple', name => 'Down' }],
);

for my $round (1, 2) {
    for my $c (@calls) {
        my ($m, $p) = @$c;
        my ($r, $secs) = timed_request($t, @$c, timeout => 10);
        # a task read earlier may still be answered from the Redis cache
        # (taskmgr_cache on in the shipped conf) while its markers live
        my $cached = $r->{status} == 200
                     && ($r->{headers}{'x-cache'} // '') eq 'HIT';
        ok(is_unavailable($r) || $cached,
           "down, round $round: $m $p: 503 dependency_unavailable or a cache hit")
            or diag "$r->{status} $r->{body}";
        cmp_ok($secs, '<', 2, "down, round $round: $m $p: answered in under 2 s");
    }
    my ($r, $secs) = timed_request($t, GET => '/readyz', timeout => 10);
    is($r->{status}, 503, "down, round $round: /readyz 503");
    is_deeply($r->{json}, \%json_down, "down, round $round: /readyz body")
        or diag $r->{body};
    cmp_ok($secs, '<', 2, "down, round $round: /readyz answered in under 2 s");

    ($r, $secs) = timed_request($t, GET => '/healthz', timeout => 10);
    is($r->{status}, 200, "down, round $round: /healthz still 200");
    cmp_ok($secs, '<', 1, "down, round $round: /healthz answered in under 1 s");

    # the second round runs while the pools retry with a longer back-off
    Time::HiRes::sleep(1.5) if $round == 1;
}

no_alert_since($off, 'PostgreSQL stopped');

###########################################################################
# PostgreSQL back

$off = $t->error_log_size;
$t->pg_start;
pass('PostgreSQL started again');
my $t0 = Time::HiRes::time();

my $n = 0;
ok(wait_until(15, sub { $n++; $t->request(GET => $path, token => $u->{token},
                                           timeout => 5)->{status} == 200 }, 0.1),
   'API requests succeed again (polled up to 15 s)');
note(sprintf 'first success %.2f s after pg_start (%d tries)', Time::HiRes::time() - $t0, $n);

# both workers: their pools reconnect on their own back-off
ok(wait_until(15, sub { app_backends($t) == $POOL * $WORKERS }, 0.1),
   "every worker reconnected: $POOL x $WORKERS backends");
my @st = map { $t->request(GET => $path, token => $u->{token}, timeout => 5)->{status} }
         1 .. 20;
is_deeply(\@st, [(200) x 20], '20 requests in a row succeed');

my $r = $t->request(GET => '/readyz');
is($r->{status}, 200, '/readyz: 200 again');
is_deeply($r->{json}, \%json_ok, '/readyz body: ready');
is_deeply([sort $t->worker_pids], \@workers,
          'the same worker processes (no restart, no reload)');
no_alert_since($off, 'PostgreSQL started again');

###########################################################################
# a restart under load

my $CLIENTS  = 3;
my $MAX_REQS = 3000;    # per client
my $TIMEOUT  = 5;       # per request
my $stop = $t->dir . '/load.stop';
unlink $stop;

my @kids;
for my $k (1 .. $CLIENTS) {
    my $out = $t->dir . "/load.$k";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open my $fh, '>', $out or POSIX::_exit(2);
        my $deadline = Time::HiRes::time() + 30;
        for my $i (1 .. $MAX_REQS) {
            last if -e $stop || Time::HiRes::time() > $deadline;
            my @c = $i % 3 == 0
                ? (PATCH => $path, token => $u->{token}, body => { title => "load $k $i" })
                : $i % 3 == 1
                ? (GET => $path, token => $u->{token})
                : (GET => "/v1/workspaces/$ws/tasks", token => $u->{token});
            my ($res, $secs) = timed_request($t, @c, timeout => $TIMEOUT);
            my $code = $res->{json} && ref $res->{json} eq 'HASH'
                     ? $res->{json}{code} // '' : '';
            printf {$fh} "%s\t%d\t%.3f\t%s\t%s\t%s\n", $c[0], $res->{status}, $secs,
                $res->{headers}{'content-type'} // '', $code || '-',
                Time::HiRes::time();
        }
        close $fh;
        POSIX::_exit(0);
    }
    push @kids, [$pid, $out];
}

Time::HiRes::sleep(1);
$off = $t->error_log_size;
my $t_restart = Time::HiRes::time();
$t->pg_restart;
pass('PostgreSQL restarted under load');
my $t_up = Time::HiRes::time();

ok(wait_until(15, sub { $t->request(GET => $path, token => $u->{token},
                                     timeout => 5)->{status} == 200 }, 0.1),
   'under load: API requests succeed again (polled up to 15 s)');
Time::HiRes::sleep(1);    # some more load on the recovered pools
open my $sf, '>', $stop or die "$stop: $!";
close $sf;

for my $kid (@kids) {
    my $done = wait_until(2 * $TIMEOUT + 5, sub { waitpid($kid->[0], POSIX::WNOHANG()) != 0 });
    if (!$done) {
        kill 'KILL', $kid->[0];
        waitpid $kid->[0], 0;
    }
    ok($done, "load client $kid->[0] finished");
}

my (%by, @bad, $n_total, $max_secs, $ok_after);
$max_secs = 0;
for my $kid (@kids) {
    open my $fh, '<', $kid->[1] or die "$kid->[1]: $!";
    while (<$fh>) {
        chomp;
        my ($m, $status, $secs, $ct, $code, $at) = split /\t/;
        $n_total++;
        $max_secs = $secs if $secs > $max_secs;
        my $class = $status =~ /^2/ ? '2xx' : $status;
        $by{$class}++;
        $ok_after++ if $class eq '2xx' && $at > $t_up;
        push @bad, $_ unless $class eq '2xx'
            || ($status == 503 && $ct =~ m{^application/problem\+json}
                && $code eq 'dependency_unavailable');
    }
}
note("under load: $n_total requests: "
     . join(', ', map { "$_: $by{$_}" } sort keys %by)
     . sprintf('; slowest %.2f s; restart took %.2f s', $max_secs, $t_up - $t_restart));

cmp_ok($n_total, '>', 0, 'under load: requests were made');
ok(!@bad, 'under load: every answer is 2xx or 503 problem+json dependency_unavailable')
    or diag join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)];
ok(!$by{500}, 'under load: no 500');
ok(!$by{599}, "under load: no request hung past ${TIMEOUT} s (or lost its connection)");
cmp_ok($max_secs, '<', $TIMEOUT, 'under load: every request answered within the timeout');
ok($ok_after, 'under load: requests succeeded after the restart');

ok(wait_until(15, sub { app_backends($t) == $POOL * $WORKERS }, 0.1),
   "after the restart under load: $POOL x $WORKERS backends");
$r = $t->request(GET => '/readyz');
is($r->{status}, 200, 'after the restart under load: /readyz 200');
is_deeply([sort $t->worker_pids], \@workers,
          'the same worker processes (no restart, no reload)');
no_alert_since($off, 'PostgreSQL restarted under load');

$t->done;

# [alert]/[crit] lines logged since $off (the file's final check sees them
# too; this one says which step logged them).
sub no_alert_since {
    my ($off, $step) = @_;
    my @bad = grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, $t->error_log_since($off);
    ok(!@bad, "$step: no [alert] or [crit] in error.log")
        or diag join "\n", @bad[0 .. ($#bad > 4 ? 4 : $#bad)];
}
