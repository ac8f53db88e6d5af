# The per-worker PostgreSQL pool under pressure: (a) every connection busy
# and the wait queue full -> 503 at once; (b) a query over
# taskmgr_pg_query_timeout -> 503, and the pool recovers.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes ();
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task async_request timed_request
                     lock_row lock_waiters app_backends app_backend_pids
                     wait_until is_unavailable);

my $t = Taskmgr::Test->new;

###########################################################################
# (a) pool exhaustion: one connection, a queue of one

$t->start(workers => 1, http_config => <<'EOF');
    taskmgr_pg_pool_size 1;
    taskmgr_pg_queue_size 1;
    taskmgr_pg_query_timeout 10s;
EOF

my $u  = setup_user($t);
my $ws = $u->{ws};
my $a  = create_task($t, $u, 'task A');
my $b  = create_task($t, $u, 'task B');
my $path_a = "/v1/workspaces/$ws/tasks/$a";
my $path_b = "/v1/workspaces/$ws/tasks/$b";

{
    my $lock = lock_row($t, $a);

    my $p1 = async_request($t, PATCH => $path_a, token => $u->{token},
                           body => { title => 'first' });
    ok(wait_until(5, sub { lock_waiters($t) == 1 }),
       '(a) PATCH 1 holds the only connection, blocked on the row lock');

    my $p2 = async_request($t, PATCH => $path_a, token => $u->{token},
                           body => { title => 'second' });
    # nothing observable tells "queued" from "not read yet": give the worker
    # time to read it and queue it
    Time::HiRes::sleep(0.5);
    ok(!$p1->answered && !$p2->answered, '(a) PATCH 1 and 2 are both pending');
    is(lock_waiters($t), 1, '(a) PATCH 2 is not in PostgreSQL (it waits in the queue)');

    my $off = $t->error_log_size;
    my ($r, $secs) = timed_request($t, GET => $path_b, token => $u->{token},
                                   timeout => 5);
    ok(is_unavailable($r), '(a) a third request: 503 problem+json dependency_unavailable')
        or diag "$r->{status} $r->{body}";
    cmp_ok($secs, '<', 1, '(a) the 503 is answered at once (under 1 s)');
    like($r->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/,
         '(a) the 503 has Retry-After (delay-seconds)');
    is($r->{json} && $r->{json}{status}, 503, '(a) problem status 503');
    ok(wait_until(3, sub { $t->error_log_since($off) =~ /wait queue full/ }),
       '(a) error.log: wait queue full');

    ($r, $secs) = timed_request($t, GET => '/readyz', timeout => 5);
    is($r->{status}, 503, '(a) /readyz with the queue full: 503 at once');
    cmp_ok($secs, '<', 1, '(a) /readyz answered in under 1 s');

    ok(!$p1->answered && !$p2->answered, '(a) PATCH 1 and 2 still pending');

    my $t_commit = Time::HiRes::time();
    $lock->send("COMMIT;\n");
    my $r1 = $p1->wait(5);
    my $r2 = $p2->wait(5);
    is($r1->{status}, 200, '(a) PATCH 1 completes with 200') or diag $r1->{raw};
    is($r2->{status}, 200, '(a) PATCH 2 (from the queue) completes with 200')
        or diag $r2->{raw};
    is($r1->{json} && $r1->{json}{title}, 'first', '(a) PATCH 1 answers its title');
    is($r2->{json} && $r2->{json}{title}, 'second', '(a) PATCH 2 answers its title');
    cmp_ok($r1->{done_at}, '>=', $t_commit, '(a) PATCH 1 answered after COMMIT');
    cmp_ok($r2->{done_at}, '>=', $r1->{done_at}, '(a) PATCH 2 answered after PATCH 1');
    $lock->close;

    $r = $t->request(GET => $path_a, token => $u->{token});
    is($r->{status}, 200, '(a) afterwards requests succeed');
    is($r->{json} && $r->{json}{title}, 'second', '(a) task A has the title of PATCH 2');
    is(app_backends($t), 1, '(a) one backend for the app (pool size 1 x 1 worker)');
}

###########################################################################
# (b) query timeout: the connection is given up and replaced

my ($POOL, $WORKERS) = (2, 1);
$t->start(workers => $WORKERS, http_config => <<"EOF");
    taskmgr_pg_pool_size $POOL;
    taskmgr_pg_query_timeout 1s;
EOF

{
    ok(wait_until(5, sub {
        $t->request(GET => '/readyz', timeout => 5)->{status} == 200
            && app_backends($t) == $POOL }),
       "(b) the pool is up: $POOL backends");
    my @before = app_backend_pids($t);

    my $lock = lock_row($t, $a);
    my $off = $t->error_log_size;
    my ($r, $secs) = timed_request($t, PATCH => $path_a, token => $u->{token},
                                   body => { title => 'too late' }, timeout => 10);
    ok(is_unavailable($r), '(b) PATCH blocked past the query timeout: 503 dependency_unavailable')
        or diag "$r->{status} $r->{body}";
    cmp_ok($secs, '>=', 0.9, '(b) ... after about 1 s (not before)');
    cmp_ok($secs, '<', 3, '(b) ... after about 1 s (not much later)');
    like($r->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, '(b) the 503 has Retry-After');

    my $log = '';
    wait_until(3, sub { ($log = $t->error_log_since($off))
                            =~ /query timed out|\(57014\)/ });
    like($log, qr/query timed out|\(57014\)/,
         '(b) error.log: the query timed out (nginx timer or statement_timeout)');
    my $by_nginx = $log =~ /query timed out/;
    note('(b) the timeout was detected by ' . ($by_nginx ? 'nginx' : 'statement_timeout'));

    $lock->send("COMMIT;\n");
    $lock->close;

    # the other connection answers at once; the closed one reconnects after
    # a 100 ms back-off
    my $ok = wait_until(5, sub {
        $t->request(GET => $path_a, token => $u->{token}, timeout => 5)->{status} == 200 });
    ok($ok, '(b) after the lock is released requests succeed again');
    my @st = map { $t->request(PATCH => $path_a, token => $u->{token},
                               body => { title => "after $_" }, timeout => 5)->{status} }
             1 .. 2 * $POOL;
    is_deeply(\@st, [(200) x (2 * $POOL)], '(b) several requests in a row succeed');

    my $r2 = $t->request(GET => $path_a, token => $u->{token});
    is($r2->{json} && $r2->{json}{title}, 'after ' . 2 * $POOL,
       '(b) the timed-out PATCH did not apply; the later ones did');

    my @p = map { async_request($t, GET => '/readyz') } 1 .. $POOL;
    is_deeply([map { $_->wait(5)->{status} } @p], [(200) x $POOL],
              "(b) $POOL concurrent /readyz: all 200");

    # nginx's timer closed the connection (PQfinish; the backend, cancelled
    # by statement_timeout, goes away) and opens a new one after a 100 ms
    # back-off; or statement_timeout answered first and the connection
    # stays.  Either way: the pool's size, no more.
    my %old = map { $_ => 1 } @before;
    my @after;
    ok(wait_until(5, sub {
        @after = app_backend_pids($t);
        @after == $POOL * $WORKERS && (!$by_nginx || grep { !$old{$_} } @after) }),
       '(b) pg_stat_activity: pool size x workers backends for the app'
       . ($by_nginx ? ', the timed-out one replaced by a new one' : ''))
        or diag "before @before, after @after";
    ok(wait_until(3, sub { app_backends($t) <= $POOL * $WORKERS }),
       '(b) ... and no more');

    unlike($t->error_log, qr/\[alert\]/, '(b) no [alert] in error.log');
}

###########################################################################
# (c) the same with a backend that does not answer at all (SIGSTOP): only
# nginx's timer can end the query, the connection must be replaced

SKIP: {
    $t->start(workers => 1, http_config => <<'EOF');
    taskmgr_pg_pool_size 1;
    taskmgr_pg_query_timeout 1s;
EOF
    ok(wait_until(5, sub {
        $t->request(GET => '/readyz', timeout => 5)->{status} == 200
            && app_backends($t) == 1 }), '(c) the pool is up: 1 backend');
    my ($frozen) = app_backend_pids($t);
    skip '(c) cannot signal the PostgreSQL backend', 9
        unless $frozen && kill('STOP', $frozen);
    my $guard = Taskmgr::Load::Cont->new($frozen);

    my $off = $t->error_log_size;
    my ($r, $secs) = timed_request($t, GET => $path_b, token => $u->{token},
                                   timeout => 10);
    ok(is_unavailable($r), '(c) GET with a frozen backend: 503 dependency_unavailable')
        or diag "$r->{status} $r->{body}";
    cmp_ok($secs, '>=', 0.9, '(c) ... after about 1 s (not before)');
    cmp_ok($secs, '<', 3, '(c) ... after about 1 s (not much later)');
    like($t->error_log_since($off), qr/postgres: query timed out/,
         '(c) error.log: query timed out');

    my ($ok, $n) = (0, 0);
    $ok = wait_until(5, sub {
        $n++;
        $t->request(GET => $path_b, token => $u->{token}, timeout => 5)->{status} == 200 });
    ok($ok, "(c) requests succeed again while the old backend is still frozen ($n tries)");
    my @now = app_backend_pids($t);
    ok(scalar(grep { $_ != $frozen } @now) == 1,
       '(c) a new backend serves the pool') or diag "frozen $frozen, now @now";

    $guard->release;    # SIGCONT: it finds its client gone and exits
    my @after;
    ok(wait_until(5, sub { @after = app_backend_pids($t);
                           @after == 1 && $after[0] != $frozen }),
       '(c) the old backend is gone: 1 backend for the app (pool size 1 x 1 worker)')
        or diag "frozen $frozen, now @after";
    my @st = map { $t->request(GET => $path_b, token => $u->{token})->{status} } 1 .. 3;
    is_deeply(\@st, [200, 200, 200], '(c) requests succeed');
    unlike($t->error_log, qr/\[alert\]/, '(c) no [alert] in error.log');
}

$t->done;

# SIGCONT for a stopped backend, also when the test dies
package Taskmgr::Load::Cont;
my %STOPPED;
sub new     { my ($c, $pid) = @_; $STOPPED{$pid} = 1; bless { pid => $pid }, $c }
sub release { my ($s) = @_; kill 'CONT', $s->{pid} if delete $STOPPED{ $s->{pid} } }
sub DESTROY { $_[0]->release }
END { kill 'CONT', $_ for keys %STOPPED }
