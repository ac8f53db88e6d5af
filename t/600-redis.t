# The per-worker Redis client: /readyz checks it next to PostgreSQL; Redis
# going away and coming back (no hang, one "down" line, the API unaffected);
# a Redis that accepts but never answers, or answers the handshake and then
# stalls (command timeouts); AUTH with a password and an ACL user; SELECT;
# configuration refusals.
#
# It stops the Redis of the test run (scripts/test.sh's stack) and changes
# its password for a while: other test files must not run against the same
# stack at the same time (prove runs them one after the other).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use Time::HiRes ();
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task timed_request wait_until);

my $TIMEOUT = 0.3;    # taskmgr_redis_timeout of the stalled-Redis part

my $t = Taskmgr::Test->new;
plan skip_all => 'TASKMGR_TEST_PG_DATADIR is not set (needed to find Redis)'
    unless $ENV{TASKMGR_TEST_PG_DATADIR};
plan skip_all => 'redis-cli is missing'
    unless $t->redis_cli('ping') eq 'PONG';

my %ready = (status => 'ready', checks => { postgres => 'ok', redis => 'ok' });
my %no_redis = (status => 'unavailable',
                checks => { postgres => 'ok', redis => 'unavailable' });

sub spew {
    my ($file, $content) = @_;
    open my $fh, '>:raw', $file or die "$file: $!";
    print {$fh} $content;
    close $fh or die "$file: $!";
}

sub log_count {
    my ($off, $re) = @_;
    return scalar grep { /$re/ } split /\n/, $t->error_log_since($off);
}

sub no_alert_since {
    my ($off, $step) = @_;
    my @bad = grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, $t->error_log_since($off);
    ok(!@bad, "$step: no [alert] or [crit] in error.log")
        or diag join "\n", @bad[0 .. ($#bad > 4 ? 4 : $#bad)];
}

sub readyz_becomes {
    my ($status, $secs) = @_;
    return wait_until($secs, sub {
        $t->request(GET => '/readyz', timeout => 5)->{status} == $status }, 0.05);
}

###########################################################################
# configuration refusals

run_blocks($t, no_done => 1, blocks => <<'EOF');
=== TEST 1: a host name is refused (DNS would block the worker)
--- must_die
--- http_config
taskmgr_redis localhost:6379;
--- error_log
[emerg]
taskmgr_redis: use "<ipv4 address>:<port>" or "unix:<path>" instead of "localhost:6379"

=== TEST 2: an address without a port is refused
--- must_die
--- http_config
taskmgr_redis 127.0.0.1;
--- error_log
~\[emerg\].*taskmgr_redis: use

=== TEST 3: a bad port is refused
--- must_die
--- http_config
taskmgr_redis 127.0.0.1:70000;
--- error_log
taskmgr_redis: invalid port in "127.0.0.1:70000"

=== TEST 4: taskmgr_redis_pool_size is bounded
--- must_die
--- http_config
taskmgr_redis_pool_size 65;
--- error_log
~\[emerg\].*value must be between 1 and 64

=== TEST 5: taskmgr_redis_user needs a password file
--- must_die
--- http_config
taskmgr_redis_user someone;
--- error_log
taskmgr_redis_user needs taskmgr_redis_password_file

=== TEST 6: a missing password file is refused
--- must_die
--- http_config
taskmgr_redis_password_file %%TESTDIR%%/no-such-file;
--- error_log
~\[emerg\].*no-such-file

=== TEST 7: an IPv6 literal is refused (hiredis would look it up as IPv4 first)
--- must_die
--- http_config
taskmgr_redis [::1]:6379;
--- error_log
taskmgr_redis: use "<ipv4 address>:<port>" or "unix:<path>" instead of "[::1]:6379"
EOF

###########################################################################
# Redis up

# Writes while Redis is down are part of this file: with the default
# revocation fallback ("reads") they would get 503 (t/230 tests that).
$t->start(http_config => 'taskmgr_auth_revocation_fallback accept;');
ok(readyz_becomes(200, 5), '/readyz: 200 once the client is up');
my $r = $t->request(GET => '/readyz');
is_deeply($r->{json}, \%ready, '/readyz body names postgres and redis')
    or diag $r->{body};
like($t->error_log, qr/\[notice\].*taskmgr: redis: up \(127\.0\.0\.1:\d+\)/,
     'the client logged "up" at notice level');

my $u  = setup_user($t);
my $ws = $u->{ws};
create_task($t, $u, 'before');

###########################################################################
# Redis stopped

my $off = $t->error_log_size;
$t->redis_stop;
pass('Redis stopped (SHUTDOWN NOSAVE)');

for my $round (1, 2) {
    my ($res, $secs) = timed_request($t, GET => '/readyz', timeout => 10);
    is($res->{status}, 503, "down, round $round: /readyz 503");
    is_deeply($res->{json}, \%no_redis, "down, round $round: /readyz names redis")
        or diag $res->{body};
    cmp_ok($secs, '<', 1, "down, round $round: /readyz answered in under 1 s");

    ($res, $secs) = timed_request($t, GET => '/healthz', timeout => 10);
    is($res->{status}, 200, "down, round $round: /healthz 200");

    # the second round runs while the client retries with a longer back-off
    Time::HiRes::sleep(1) if $round == 1;
}

{
    my $v = eval { setup_user($t) };
    ok($v, 'down: register + list workspaces work (PostgreSQL only)')
        or diag $@;
    my $id = $v && eval { create_task($t, $v, 'while redis is down') };
    ok($id, 'down: create a task') or diag $@;
    my $res = $t->request(GET => "/v1/workspaces/$ws/tasks", token => $u->{token});
    is($res->{status}, 200, 'down: list tasks');
}

ok(wait_until(3, sub { log_count($off, qr/taskmgr: redis: down/) >= 1 }),
   'a "down" line was logged');
Time::HiRes::sleep(0.5);
is(log_count($off, qr/taskmgr: redis: down/), 1, 'exactly one "down" line');
like($t->error_log_since($off), qr/\[warn\].*taskmgr: redis: down \(127\.0\.0\.1:\d+\)/,
     '"down" is logged at warn level');
no_alert_since($off, 'Redis stopped');

###########################################################################
# Redis back

$off = $t->error_log_size;
$t->redis_start;
pass('Redis started again');
my $t0 = Time::HiRes::time();
ok(readyz_becomes(200, 10), '/readyz 200 again (polled up to 10 s, no reload)');
note(sprintf 'ready %.2f s after redis_start', Time::HiRes::time() - $t0);
$r = $t->request(GET => '/readyz');
is_deeply($r->{json}, \%ready, '/readyz body: ready');
is(log_count($off, qr/taskmgr: redis: up/), 1, 'exactly one "up" line');
no_alert_since($off, 'Redis started again');

###########################################################################
# a Redis that accepts connections but never answers

{
    my $l = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
        or die "listen: $!";
    my $port = $l->sockport;
    my $off1 = $t->error_log_size;
    $t->start(http_config => <<"EOF");
    taskmgr_redis 127.0.0.1:$port;
    taskmgr_redis_timeout 300ms;
    taskmgr_redis_connect_timeout 500ms;
EOF
    # the first request also waits for the PostgreSQL pool to come up
    $t->request(GET => '/readyz', timeout => 10);
    for my $i (1 .. 3) {
        my ($res, $secs) = timed_request($t, GET => '/readyz', timeout => 10);
        is($res->{status}, 503, "silent Redis, request $i: /readyz 503");
        is_deeply($res->{json}, \%no_redis, "silent Redis, request $i: names redis")
            or diag $res->{body};
        cmp_ok($secs, '<', $TIMEOUT + 0.7, "silent Redis, request $i: no hang");
        Time::HiRes::sleep(0.4);
    }
    like($t->error_log_since($off1), qr/taskmgr: redis: connection #\d+ to 127\.0\.0\.1:\d+ failed: connect or handshake timed out/,
         'silent Redis: the handshake timed out');
    unlike($t->error_log_since($off1), qr/taskmgr: redis: up/, 'silent Redis: never "up"');
    $t->stop;
    close $l;
}

###########################################################################
# a Redis that answers the handshake, then stalls: command timeouts

{
    my $l = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
        or die "listen: $!";
    my $port = $l->sockport;
    my $off1 = $t->error_log_size;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        # answers the first command of every connection (the PING of the
        # handshake) and nothing after it
        my $sel = IO::Select->new($l);
        my %answered;
        my $deadline = time + 60;
        while (time < $deadline) {
            for my $s ($sel->can_read(0.2)) {
                if ($s == $l) {
                    my $c = $l->accept or next;
                    $sel->add($c);
                    next;
                }
                my $n = sysread $s, my $buf, 65536;
                if (!$n) {
                    delete $answered{fileno $s};
                    $sel->remove($s);
                    close $s;
                    next;
                }
                next if $answered{fileno $s}++;
                syswrite $s, "+PONG\r\n";
            }
        }
        POSIX::_exit(0);
    }

    $t->start(http_config => <<"EOF");
    taskmgr_redis 127.0.0.1:$port;
    taskmgr_redis_pool_size 2;
    taskmgr_redis_timeout 300ms;
    taskmgr_redis_connect_timeout 500ms;
EOF
    ok(wait_until(5, sub { $t->error_log_since($off1) =~ /taskmgr: redis: up/ }),
       'stalling Redis: the client is up (handshake answered)');

    # the first request also waits for the PostgreSQL pool to come up
    $t->request(GET => '/readyz', timeout => 10);
    my $off2 = $t->error_log_size;
    for my $i (1 .. 8) {
        my ($res, $secs) = timed_request($t, GET => '/readyz', timeout => 10);
        is($res->{status}, 503, "stalling Redis, request $i: /readyz 503");
        is_deeply($res->{json}, \%no_redis, "stalling Redis, request $i: names redis")
            or diag $res->{body};
        cmp_ok($secs, '<', $TIMEOUT + 0.7,
               "stalling Redis, request $i: answered within the timeout + slack");
    }
    cmp_ok(log_count($off2, qr/taskmgr: redis: command timed out/), '>=', 3,
           'stalling Redis: commands timed out');
    like($t->error_log_since($off2), qr/failed: commands time out/,
         'stalling Redis: a connection with repeated timeouts was dropped');
    no_alert_since($off2, 'stalling Redis');
    $t->stop;
    kill 'KILL', $pid;
    waitpid $pid, 0;
    close $l;
}

###########################################################################
# AUTH: a password (default user), an ACL user; SELECT

my $pw  = "pw-$t->{rand}";
my $pw2 = "pw2-$t->{rand}";
my $acl_user = "tm_$t->{rand}";
my $dir = $t->dir;
spew("$dir/redis_pw", "$pw\n");
spew("$dir/redis_pw_bad", "wrong-$pw\n");
spew("$dir/redis_pw2", "$pw2\n");

my $pw_set;
END { $t->redis_cli('-a', $pw, '--no-auth-warning', 'CONFIG', 'SET', 'requirepass', '')
          if $pw_set }

is($t->redis_cli('CONFIG', 'SET', 'requirepass', $pw), 'OK', 'requirepass set');
$pw_set = 1;

$t->start(http_config => "    taskmgr_redis_password_file $dir/redis_pw;");
ok(readyz_becomes(200, 5), 'requirepass: the right password: /readyz 200');

$off = $t->error_log_size;
$t->start(http_config => "    taskmgr_redis_password_file $dir/redis_pw_bad;");
Time::HiRes::sleep(0.5);
$r = $t->request(GET => '/readyz');
is($r->{status}, 503, 'requirepass: a wrong password: /readyz 503');
is_deeply($r->{json}, \%no_redis, 'requirepass: a wrong password: names redis')
    or diag $r->{body};
like($t->error_log_since($off), qr/taskmgr: redis: connection #\d+ to \S+ failed: WRONGPASS/,
     'requirepass: the refusal is logged');
$t->stop;

is($t->redis_cli('-a', $pw, '--no-auth-warning', 'CONFIG', 'SET', 'requirepass', ''),
   'OK', 'requirepass restored');
$pw_set = 0;

is($t->redis_cli('ACL', 'SETUSER', $acl_user, 'on', ">$pw2", '~*', '&*', '+@all'),
   'OK', 'ACL user created');
END { $t->redis_cli('ACL', 'DELUSER', $acl_user) if $acl_user }

$t->start(http_config => <<"EOF");
    taskmgr_redis_user $acl_user;
    taskmgr_redis_password_file $dir/redis_pw2;
    taskmgr_redis_database 3;
EOF
ok(readyz_becomes(200, 5), 'ACL user + SELECT 3: /readyz 200');
like($t->redis_cli('CLIENT', 'LIST'), qr/\bdb=3\b.*\buser=\Q$acl_user\E\b/,
     'ACL user + SELECT 3: Redis sees the connections in db 3 as the user');

$t->start(http_config => <<"EOF");
    taskmgr_redis_user $acl_user;
    taskmgr_redis_password_file $dir/redis_pw;
EOF
Time::HiRes::sleep(0.5);
is($t->request(GET => '/readyz')->{status}, 503, 'ACL user, wrong password: /readyz 503');

$t->start(http_config => '    taskmgr_redis_database 99;');
Time::HiRes::sleep(0.5);
is($t->request(GET => '/readyz')->{status}, 503, 'SELECT 99 (out of range): /readyz 503');
$t->stop;

is($t->redis_cli('ACL', 'DELUSER', $acl_user), '1', 'ACL user removed');
undef $acl_user;

###########################################################################
# a unix socket: a second redis-server of the test's own

SKIP: {
    my $sock = "$dir/redis.sock";
    skip 'the socket path is too long', 2 if length $sock > 100;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/redis-unix.log";
        open STDERR, '>&', \*STDOUT;
        exec 'redis-server', '--port', '0', '--unixsocket', $sock,
             '--unixsocketperm', '777', '--save', '', '--appendonly', 'no',
             '--dir', $dir
            or POSIX::_exit(127);
    }
    ok(wait_until(10, sub { -S $sock }), 'unix socket: redis-server listens');
    $t->start(http_config => "    taskmgr_redis unix:$sock;");
    ok(readyz_becomes(200, 5), 'unix socket: /readyz 200');
    $t->stop;
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

$off = $t->error_log_size;
$t->start(http_config => "    taskmgr_redis unix:$dir/no-such.sock;");
$r = $t->request(GET => '/readyz');
is($r->{status}, 503, 'unix socket missing: /readyz 503');
like($t->error_log_since($off), qr/taskmgr: redis: connection #0 to unix:\S+ failed: No such file/,
     'unix socket missing: the failure is logged');
$t->stop;

###########################################################################
# no taskmgr_redis: /readyz checks PostgreSQL only

$t->start(http_config => '    # no taskmgr_redis');
$r = $t->request(GET => '/readyz');
is($r->{status}, 200, 'without taskmgr_redis: /readyz 200');
is_deeply($r->{json}, { status => 'ready', checks => { postgres => 'ok' } },
          'without taskmgr_redis: only postgres is checked') or diag $r->{body};

$t->done;
