# nginx -s reload: exiting workers still serve what they accepted (a request
# arriving on an already accepted connection, a request waiting in
# PostgreSQL); then wrk keeps GETting a task while the configuration is
# reloaded twice, once over keep-alive connections and once with
# "Connection: close".  No request fails, the old workers exit, and their
# PostgreSQL connections go with them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use POSIX ();
use Time::HiRes ();
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task app_backends wait_until async_request
                     lock_row lock_waiters);
use IO::Socket::INET;
use IO::Select;

my $WRK = '/usr/bin/wrk';
plan skip_all => "wrk is not installed ($WRK)" unless -x $WRK;

my ($POOL, $WORKERS) = (4, 2);
my ($SECS, $CONNS) = (6, 32);

my $t = Taskmgr::Test->new;
# a generous Redis timeout: under AddressSanitizer at full load a 200 ms
# command can time out, which is logged (and answered without the cache)
$t->start(workers => $WORKERS,
          http_config => "    taskmgr_pg_pool_size $POOL;\n"
                         . "    taskmgr_redis_timeout 2s;\n");

my $u  = setup_user($t);
my $id = create_task($t, $u, 'reloaded');
my $path = "/v1/workspaces/$u->{ws}/tasks/$id";
is($t->request(GET => $path, token => $u->{token})->{status}, 200, 'GET task: 200');
ok(wait_until(10, sub { app_backends($t) == $POOL * $WORKERS }),
   "before: $POOL x $WORKERS backends");

###########################################################################
# Exiting workers still serve what they accepted.

{
    # (1) A connection accepted before the reload, its request sent after
    # the old workers began to shut down: the old worker serves it.
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port,
                                     Proto => 'tcp', Timeout => 5)
        or die "connect: $!";
    Time::HiRes::sleep(0.3);    # accepted by a worker of the old generation
    my @gen0 = sort $t->worker_pids;
    my $off = $t->error_log_size;
    ok($t->reload, 'reload with a connection open: new workers started');
    ok(wait_until(5, sub {
        my @n = $t->error_log_since($off) =~ /gracefully shutting down/g;
        @n >= $WORKERS }), 'the old workers are shutting down');
    my @still = grep { kill 0, $_ } @gen0;
    ok(scalar @still, 'an old worker waits for the open connection')
        or diag "old workers @gen0 all gone";

    my $req = "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            . "Authorization: Bearer $u->{token}\r\n\r\n";
    syswrite $sock, $req;
    my $buf = '';
    my $deadline = Time::HiRes::time() + 5;
    my $sel = IO::Select->new($sock);
    while (Time::HiRes::time() < $deadline) {
        next unless $sel->can_read(0.1);
        my $n = sysread $sock, $buf, 65536, length $buf;
        last unless $n;
    }
    close $sock;
    my ($status) = $buf =~ m{^HTTP/1\.1 (\d{3})};
    is($status, 200, 'the exiting worker answers the request with 200 (it needs PostgreSQL)')
        or diag $buf;

    # (2) A request waiting in PostgreSQL (row lock) during the reload
    # completes once the lock goes away.
    my $lock = lock_row($t, $id);
    my $p = async_request($t, PATCH => $path, token => $u->{token},
                          body => { title => 'patched across a reload' });
    ok(wait_until(5, sub { lock_waiters($t) == 1 }), 'a PATCH waits for a row lock');
    @gen0 = sort $t->worker_pids;
    ok($t->reload, 'reload with the PATCH in flight: new workers started');
    Time::HiRes::sleep(0.3);
    ok(!$p->answered, 'the PATCH is still pending after the reload');
    $lock->send("COMMIT;\n");
    my $r = $p->wait(5);
    is($r->{status}, 200, 'the PATCH completes with 200') or diag $r->{raw};
    is($r->{json} && $r->{json}{title}, 'patched across a reload', 'the PATCH answers the new title');
    $lock->close;

    my @left;
    ok(wait_until(10, sub { @left = grep { kill 0, $_ } @gen0; !@left }, 0.1),
       'the old workers exited') or diag "still running: @left";
    my $n;
    ok(wait_until(10, sub { ($n = app_backends($t)) <= $POOL * $WORKERS }, 0.1),
       "at most $POOL x $WORKERS backends for the app") or diag "$n backends";
}

# Two runs of wrk, each with two reloads:
#  - keep-alive connections (wrk's default).  An exiting worker closes its
#    idle keep-alive connections at once (nginx core, ngx_close_idle_
#    connections): a request the client sends in that instant is lost as a
#    "read" socket error.  Stock nginx does the same with `return 200`, so
#    read errors are allowed here, at most one per connection and reload;
#    no answer may be non-2xx.
#  - "Connection: close": every request on a new connection.  Nothing may
#    fail: connections accepted by an exiting worker must still be served.
wrk_with_reloads('keep-alive', []);
wrk_with_reloads('Connection: close', ['-H', 'Connection: close']);

unlike($t->error_log, qr/\[(?:alert|crit)\]/, 'no [alert] or [crit] in error.log (e.g. "open socket left")');

$t->done;

sub wrk_with_reloads {
    my ($name, $extra) = @_;

    my @gen0 = sort $t->worker_pids;
    is(scalar @gen0, $WORKERS, "$name: $WORKERS workers before");

    my $out = $t->dir . '/wrk.out';
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec $WRK, '-t', 2, '-c', $CONNS, '-d', "${SECS}s", '--timeout', '5s',
             '-H', "Authorization: Bearer $u->{token}", @$extra, $t->url($path)
            or POSIX::_exit(127);
    }
    my $t0 = Time::HiRes::time();

    my (@old, @reload_at);
    my $off = $t->error_log_size;
    for my $at (1.5, 3.5) {
        my $left = $t0 + $at - Time::HiRes::time();
        Time::HiRes::sleep($left) if $left > 0;
        push @old, $t->worker_pids;
        push @reload_at, sprintf '%.2f', Time::HiRes::time() - $t0;
        ok($t->reload, "$name: reload at ${at} s: new workers started");
    }

    my $done = wait_until($SECS + 15, sub { waitpid($pid, POSIX::WNOHANG()) != 0 }, 0.1);
    if (!$done) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    ok($done, "$name: wrk finished");
    is($?, 0, "$name: wrk exited with status 0") if $done;

    my $wrk = do { local $/; open my $fh, '<', $out or die "$out: $!"; <$fh> } // '';
    note("$name: wrk (reloads at @reload_at s):\n$wrk");
    my ($nreq) = $wrk =~ /(\d+) requests in /;
    cmp_ok($nreq // 0, '>', 100, "$name: wrk made requests");
    unlike($wrk, qr/Non-2xx or 3xx responses/, "$name: wrk: no non-2xx responses");
    my ($connect, $read, $write, $timeout) = (0, 0, 0, 0);
    if ($wrk =~ /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/) {
        ($connect, $read, $write, $timeout) = ($1, $2, $3, $4);
    }
    if (@$extra) {
        ok($connect + $read + $write + $timeout == 0, "$name: wrk: no socket errors")
            or diag $wrk;
    } else {
        ok($connect + $write + $timeout == 0,
           "$name: wrk: no connect, write or timeout socket errors") or diag $wrk;
        cmp_ok($read, '<=', 2 * $CONNS,
               "$name: wrk: read errors ($read) only from keep-alive connections closed by exiting workers");
    }
    my @e503 = grep { /taskmgr/ && /\[(?:error|warn)\]/ } split /\n/, $t->error_log_since($off);
    ok(!@e503, "$name: no taskmgr errors or warnings in error.log during the run")
        or diag join "\n", @e503[0 .. ($#e503 > 4 ? 4 : $#e503)];

    # The old workers finish their requests and exit.
    my %old = map { $_ => 1 } @old;
    my @left;
    ok(wait_until(10, sub { @left = grep { kill 0, $_ } keys %old; !@left }, 0.1),
       "$name: the old workers exited") or diag "still running: @left";
    my @now = sort $t->worker_pids;
    is(scalar @now, $WORKERS, "$name: $WORKERS workers now");
    ok(!grep({ $old{$_} } @now), "$name: the workers are new ones");

    my $n;
    ok(wait_until(10, sub { ($n = app_backends($t)) <= $POOL * $WORKERS }, 0.1),
       "$name: after: at most $POOL x $WORKERS backends for the app") or diag "$n backends";
    is($t->request(GET => $path, token => $u->{token})->{status}, 200, "$name: GET task: 200");
    ok(wait_until(10, sub { app_backends($t) == $POOL * $WORKERS }, 0.1),
       "$name: after: the new workers' pools are up ($POOL x $WORKERS backends)");
}
