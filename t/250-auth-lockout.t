# Login brute force: failures counted in Redis per account and per client
# address.  Past the threshold the account answers 423 account_locked with
# Retry-After, even to the right password, for a window that doubles per
# further failure up to a cap; a success resets the account.  An unknown
# email behaves exactly like a known one (statuses, headers, timing).  Past
# the address threshold: 429 rate_limited.  Redis down: no lockout, login
# works, logged once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes ();
use Digest::SHA ();
use Taskmgr::Test;

my $t    = Taskmgr::Test->new;
my $rand = $t->{rand};
my $IPKEY = 'tmk:{ip:127.0.0.1}:lf';

# the address counter is shared with the other files of the run
$t->redis_cli('DEL', $IPKEY);

my $http = <<'EOF';
taskmgr_login_max_failures 5;
taskmgr_login_failure_window 15m;
taskmgr_login_lock_time 2s;
taskmgr_login_max_lock_time 5s;
taskmgr_login_ip_max_failures 1000;
EOF
$t->start(http_config => $http);

my $pw = "the right pass phrase $rand";

sub login {
    my ($email, $password) = @_;
    my $t0 = Time::HiRes::time();
    my $r = $t->request(POST => '/v1/auth/login',
                        body => { email => $email, password => $password });
    $r->{elapsed} = Time::HiRes::time() - $t0;
    return $r;
}

sub shape {
    my ($r) = @_;
    return join ' ', $r->{status}, $r->{json} ? $r->{json}{code} // '-' : '-',
        join(',', sort grep { !/^(date|x-request-id|content-length|retry-after)$/ }
                  keys %{ $r->{headers} }),
        (defined $r->{headers}{'retry-after'} ? 'retry-after' : 'no-retry');
}

sub median {
    my @s = sort { $a <=> $b } @_;
    return $s[int(@s / 2)];
}

sub lf_key { 'tmk:{' . Digest::SHA::sha256_hex(lc $_[0]) . '}:lf' }

my $known = "Alice-$rand\@Example.com";
my $r = $t->request(POST => '/v1/auth/register',
                    body => { email => $known, password => $pw, name => 'Alice' });
is($r->{status}, 201, 'register');

# ---------------------------------------------------------------------------
# the lock, for a known and an unknown email alike

my %run;
for my $who ([ known => $known ], [ unknown => "nobody-$rand\@example.com" ]) {
    my ($name, $email) = @$who;
    my @seq;
    for my $i (1 .. 5) {
        my $f = login($email, "wrong $i $rand");
        is($f->{status}, 401, "$name: failure $i answers 401");
        push @seq, $f;
    }
    my $locked = login($email, $pw);
    is($locked->{status}, 423, "$name: after 5 failures even the right password: 423");
    is($locked->{json}{code}, 'account_locked', "$name: ... account_locked");
    like($locked->{headers}{'content-type'} // '', qr{^application/problem\+json},
         "$name: ... a problem");
    my $ra = $locked->{headers}{'retry-after'} // '';
    ok($ra =~ /^\d+$/ && $ra >= 1 && $ra <= 2, "$name: ... Retry-After within the 2 s lock ($ra)");
    unlike($locked->{body}, qr/access_token/, "$name: ... no token");
    push @seq, $locked;

    my $k = lf_key($email);
    is($t->redis_cli('HGET', $k, 'f'), '5', "$name: Redis $k counts 5 failures");
    ok($t->redis_cli('PTTL', $k) > 0, "$name: ... and expires");

    # the lock ends; the next failure locks for twice as long
    Time::HiRes::sleep($ra + 0.3);
    my $f6 = login($email, "wrong 6 $rand");
    is($f6->{status}, 401, "$name: after the lock a failure answers 401 again");
    push @seq, $f6;
    my $l2 = login($email, "wrong 7 $rand");
    is($l2->{status}, 423, "$name: ... and locks again");
    my $ra2 = $l2->{headers}{'retry-after'} // '';
    ok($ra2 =~ /^\d+$/ && $ra2 >= 3 && $ra2 <= 4, "$name: ... for twice as long ($ra2)");
    push @seq, $l2;

    # the doubling stops at taskmgr_login_max_lock_time
    Time::HiRes::sleep($ra2 + 0.3);
    my $f7 = login($email, "wrong 8 $rand");
    is($f7->{status}, 401, "$name: failure after the second lock: 401");
    my $l3 = login($email, $pw);
    my $ra3 = $l3->{headers}{'retry-after'} // '';
    is($l3->{status}, 423, "$name: ... locks again");
    ok($ra3 =~ /^\d+$/ && $ra3 >= 4 && $ra3 <= 5, "$name: ... capped at 5 s, not 8 ($ra3)");
    push @seq, $f7, $l3;

    $run{$name} = { seq => [ map { shape($_) } @seq ], ra => [ $ra, $ra2, $ra3 ] };
}

is_deeply($run{unknown}{seq}, $run{known}{seq},
          'an unknown email gets the same statuses, codes and headers as a known one');
is_deeply($run{unknown}{ra}, $run{known}{ra}, '... and the same Retry-After values');

# No email in the key names.
{
    my $keys = $t->redis_cli('--scan', '--pattern', 'tmk:*:lf');
    unlike($keys, qr/alice|nobody|example/i, 'no email address in the Redis keys');
}

# ---------------------------------------------------------------------------
# a success resets the account's failures

{
    my $email = "bob-$rand\@example.com";
    is($t->request(POST => '/v1/auth/register',
                   body => { email => $email, password => $pw, name => 'Bob' })->{status},
       201, 'register bob');
    is(login($email, "wrong $_ $rand")->{status}, 401, "bob: failure $_") for 1 .. 4;
    is(login($email, $pw)->{status}, 200, 'bob: the right password after 4 failures: 200');
    Time::HiRes::sleep(0.2);
    is($t->redis_cli('EXISTS', lf_key($email)), '0', 'bob: the success removed the counter');
    is(login($email, "wrong again $_ $rand")->{status}, 401, "bob: failure $_ after the success")
        for 1 .. 4;
    is(login($email, $pw)->{status}, 200,
       'bob: 4 more failures do not lock: the success reset the count');

    # the email is compared without case, so is the counter
    is(login(uc $email, "wrong $_ $rand")->{status}, 401, "bob: upper-case failure $_")
        for 1 .. 5;
    is(login($email, $pw)->{status}, 423, 'bob: failures with the email in another case count');
}

# ---------------------------------------------------------------------------
# per client address

$t->redis_cli('DEL', $IPKEY);
$t->start(http_config => <<'EOF');
taskmgr_login_max_failures 0;
taskmgr_login_ip_max_failures 6;
taskmgr_login_ip_window 1m;
EOF
{
    my $email = "carol-$rand\@example.com";
    is($t->request(POST => '/v1/auth/register',
                   body => { email => $email, password => $pw, name => 'Carol' })->{status},
       201, 'register carol');
    is(login("x$_-$rand\@example.com", "wrong $rand")->{status}, 401,
       "address: failure $_ (another email each time)") for 1 .. 3;
    is(login($email, $pw)->{status}, 200, 'address: a success in between');
    Time::HiRes::sleep(0.2);
    is($t->redis_cli('GET', $IPKEY), '3', 'address: the success is not counted as a failure');
    is(login("y$_-$rand\@example.com", "wrong $rand")->{status}, 401,
       "address: failure " . ($_ + 3)) for 1 .. 3;
    my $r = login($email, $pw);
    is($r->{status}, 429, 'address: past 6 failures even a right password: 429');
    is($r->{json}{code}, 'rate_limited', '... rate_limited');
    my $ra = $r->{headers}{'retry-after'} // '';
    ok($ra =~ /^\d+$/ && $ra >= 1 && $ra <= 60, "... with Retry-After within the window ($ra)");
    my $ttl = $t->redis_cli('TTL', $IPKEY);
    ok($ttl > 0 && $ttl <= 60, "address: the counter lives the window ($ttl)");
    is(login("z-$rand\@example.com", "wrong $rand")->{status}, 429,
       'address: an unknown email is refused alike');
    is($t->redis_cli('GET', $IPKEY), '6', 'address: refused attempts are not counted');
    is($t->request(POST => '/v1/auth/register', body => {
        email => "dan-$rand\@example.com", password => $pw, name => 'Dan' })->{status},
       201, 'address: register is not affected');
}

# ---------------------------------------------------------------------------
# timing: failed logins of a known and an unknown email, counted but below
# the threshold, interleaved so that the load of a shared machine falls on
# both alike

$t->redis_cli('DEL', $IPKEY);
$t->start(http_config => <<'EOF');
taskmgr_login_max_failures 1000;
taskmgr_login_ip_max_failures 0;
EOF
{
    $t->redis_cli('DEL', lf_key($known));
    my (@k, @u);
    for my $i (1 .. 9) {
        my $a = login($known, "wrong t$i $rand");
        my $b = login("nobody-t-$rand\@example.com", "wrong t$i $rand");
        is("$a->{status} $b->{status}", '401 401', "timing $i: both 401");
        push @k, $a->{elapsed};
        push @u, $b->{elapsed};
    }
    my ($mk, $mu) = (median(@k), median(@u));
    my $ratio = $mu / ($mk || 1e-6);
    ok($ratio > 0.25 && $ratio < 4,
       sprintf('failed logins of a known and an unknown email take alike: median %.1f ms vs %.1f ms',
               $mk * 1000, $mu * 1000));
    is($t->redis_cli('HGET', lf_key($known), 'f'), '9', 'timing: the known account counted 9');
    is($t->redis_cli('HGET', lf_key("nobody-t-$rand\@example.com"), 'f'), '9',
       'timing: the unknown one too');
}

# ---------------------------------------------------------------------------
# off, and Redis down

$t->redis_cli('DEL', $IPKEY);
$t->start(http_config => <<'EOF');
taskmgr_login_max_failures 0;
taskmgr_login_ip_max_failures 0;
EOF
{
    my $email = "carol-$rand\@example.com";
    is(login($email, "wrong $_ $rand")->{status}, 401, "off: failure $_") for 1 .. 6;
    is(login($email, $pw)->{status}, 200, 'off: no lock');
    is($t->redis_cli('EXISTS', lf_key($email)), '0', 'off: no counter in Redis');
    is($t->redis_cli('EXISTS', $IPKEY), '0', 'off: no address counter in Redis');
}

$t->start(http_config => $http);
{
    my $email = "erin-$rand\@example.com";
    is($t->request(POST => '/v1/auth/register',
                   body => { email => $email, password => $pw, name => 'Erin' })->{status},
       201, 'register erin');
    my $off = $t->error_log_size;
    $t->redis_stop;
    is(login($email, "wrong $_ $rand")->{status}, 401, "Redis down: failure $_") for 1 .. 6;
    is(login($email, $pw)->{status}, 200, 'Redis down: no lockout, the right password logs in');
    my $log = $t->error_log_since($off);
    my @lines = $log =~ /failed logins are not counted/g;
    is(scalar @lines, 1, 'Redis down: logged once, not per login');
    $t->redis_start;
    my $deadline = time + 10;
    my $up;
    while (time < $deadline) {
        login($email, $pw);
        $up = $t->error_log_since($off) =~ /failed logins are counted again/;
        last if $up;
        Time::HiRes::sleep(0.3);
    }
    ok($up, 'Redis back: logged');
    is(login($email, "wrong $rand")->{status}, 401, 'Redis back: a failure');
    is($t->redis_cli('HGET', lf_key($email), 'f'), '1', 'Redis back: counted again');
}

$t->redis_cli('DEL', $IPKEY);

run_blocks($t, no_done => 1, blocks => <<'EOF');
=== TEST 1: the longest lock must not be shorter than the first
--- must_die
--- http_config
taskmgr_login_lock_time 10m;
taskmgr_login_max_lock_time 1m;
--- error_log
~\[emerg\].*taskmgr_login_max_lock_time between taskmgr_login_lock_time and 7d

=== TEST 2: a threshold out of range
--- must_die
--- http_config
taskmgr_login_max_failures 1001;
--- error_log
~\[emerg\].*taskmgr_login_max_failures must be at most 1000
EOF

$t->done;
