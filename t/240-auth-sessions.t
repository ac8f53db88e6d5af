# Sessions, their revocation and the password change, end to end:
# GET /v1/auth/sessions, DELETE /v1/auth/sessions/{id}, POST
# /v1/auth/logout-all, POST /v1/auth/password, logout and refresh reuse.
# Each way of ending a session is checked in PostgreSQL (the old access
# token and the refresh token are refused) and in Redis (the revocation
# keys and their lifetimes); Redis down still answers 204.  Also the
# password rules (block list, email local part) and /v1/me's mfa_enabled.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes ();
use Taskmgr::Test;
use Taskmgr::Load qw(wait_until);

my $t    = Taskmgr::Test->new;
my $rand = $t->{rand};
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
my $TS   = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

# A small block list: comments, a CRLF line, mixed case.
my $bl = $t->dir . '/blocklist.txt';
{
    open my $fh, '>:raw', $bl or die "$bl: $!";
    print {$fh} "#!comment: test list\n# commentedpassword\n\n"
        . "CorrectHorseBatteryStaple\r\npassword123456\n"
        . ('x' x 300) . "\n";
    close $fh;
}

my $http = <<"EOF";
taskmgr_password_blocklist $bl;
EOF
$t->start(http_config => $http);

my $n = 0;

sub pw { "pass phrase $rand " . ($_[0] // '') }

sub register {
    my ($name) = @_;
    my $email = "$name-$rand\@example.com";
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => $email, password => pw($name), name => $name });
    is($r->{status}, 201, "register $name") or diag($r->{body});
    return { email => $email, uid => $r->{json}{user}{id},
             tok => $r->{json}{access_token}, rt => $r->{json}{refresh_token} };
}

sub login {
    my ($u, %o) = @_;
    my $r = $t->request(POST => '/v1/auth/login',
        headers => { ($o{ua} ? ('User-Agent' => $o{ua}) : ()) },
        body => { email => $u->{email}, password => $o{pw} // pw($u->{email} =~ /^(\w+)-/),
                  ($o{device} ? (device_name => $o{device}) : ()) });
    is($r->{status}, 200, "login $u->{email}" . ($o{device} ? " ($o{device})" : ''))
        or diag($r->{body});
    return { tok => $r->{json}{access_token}, rt => $r->{json}{refresh_token},
             sid => sid_of($r->{json}{access_token}) };
}

sub sid_of {
    my ($jwt) = @_;
    return undef unless $jwt;
    my (undef, $c) = split /\./, $jwt;
    $c =~ tr{-_}{+/};
    $c .= '=' x ((4 - length($c) % 4) % 4);
    return JSON::PP::decode_json(MIME::Base64::decode_base64($c))->{sid};
}

sub me     { $t->request(GET => '/v1/me', token => $_[0])->{status} }
sub refresh { $t->request(POST => '/v1/auth/refresh',
                          body => { refresh_token => $_[0] }) }
sub rkey   { $t->redis_cli('GET', $_[0]) }
sub rttl   { $t->redis_cli('TTL', $_[0]) }

# ---------------------------------------------------------------------------
# /v1/me shows mfa_enabled

my $alice = register('alice');
$alice->{sid} = sid_of($alice->{tok});
{
    my $r = $t->request(GET => '/v1/me', token => $alice->{tok});
    is($r->{status}, 200, 'GET /v1/me');
    ok(exists $r->{json}{mfa_enabled} && !$r->{json}{mfa_enabled}
       && $r->{body} =~ /"mfa_enabled":false/, 'GET /v1/me: mfa_enabled false');
    my $p = $t->request(PATCH => '/v1/me', token => $alice->{tok},
                        body => { name => 'Alice A' });
    is($p->{status}, 200, 'PATCH /v1/me');
    like($p->{body}, qr/"mfa_enabled":false/, 'PATCH /v1/me: mfa_enabled false');
}

# ---------------------------------------------------------------------------
# the session list

my $phone  = login($alice, device => 'phone', ua => 'phone-ua/1');
my $laptop = login($alice, device => 'laptop');
{
    my $r = $t->request(GET => '/v1/auth/sessions', token => $laptop->{tok});
    is($r->{status}, 200, 'GET /v1/auth/sessions');
    like($r->{headers}{'cache-control'} // '', qr/private/, 'sessions: Cache-Control private');
    my $d = $r->{json}{data};
    is(scalar @$d, 3, 'three live sessions');
    is_deeply([ map { $_->{id} } @$d ], [ $laptop->{sid}, $phone->{sid}, $alice->{sid} ],
              'newest first');
    is_deeply([ sort keys %{ $d->[0] } ],
              [qw(created_at current device_name id ip last_used_at user_agent)],
              'session keys');
    is_deeply([ map { $_->{current} ? 1 : 0 } @$d ], [ 1, 0, 0 ],
              'current: the caller\'s session only');
    ok(JSON::PP::is_bool($d->[0]{current}), 'current is a boolean');
    is($d->[1]{device_name}, 'phone', 'device_name from the login body');
    is($d->[1]{user_agent}, 'phone-ua/1', 'user_agent from the login request');
    is($d->[1]{ip}, '127.0.0.1', 'ip: the client address');
    ok(!defined $d->[2]{device_name}, 'register: no device name (null)');
    like($d->[0]{created_at}, $TS, 'created_at RFC 3339 with ms');
    like($d->[0]{last_used_at}, $TS, 'last_used_at RFC 3339 with ms');
    unlike($r->{body}, qr/token|hash/i, 'no token material in the list');

    my $q = $t->request(GET => '/v1/auth/sessions?limit=5', token => $laptop->{tok});
    is($q->{status}, 400, 'sessions: unknown parameter 400');
    is($t->request(GET => '/v1/auth/sessions')->{status}, 401, 'sessions: no token 401');
    is($t->request(POST => '/v1/auth/sessions', token => $laptop->{tok})->{status}, 405,
       'sessions: POST 405');
}

# a long user agent is cut to 512 bytes; a long device name is refused
{
    my $s = login($alice, device => 'long-ua', ua => 'U' x 600);
    is($t->psql('SELECT char_length(user_agent) FROM tm.sessions WHERE id = $1', $s->{sid}),
       512, 'user_agent kept to 512 bytes');
    my $r = $t->request(POST => '/v1/auth/login', body => {
        email => $alice->{email}, password => pw('alice'), device_name => 'd' x 201 });
    is($r->{status}, 422, 'device_name over 200 characters: 422');
    is($r->{json}{errors}[0]{field}, 'device_name', '... naming the field');
    is($t->request(DELETE => "/v1/auth/sessions/$s->{sid}", token => $s->{tok})->{status},
       204, 'DELETE of the caller\'s own session: 204');
    is(me($s->{tok}), 401, '... and its token stops working');
}

# refresh updates last_used_at and slides the expiry, capped at 90 days
{
    my $s = login($alice, device => 'tablet');
    $t->psql(q{UPDATE tm.sessions SET last_used_at = last_used_at - interval '1 hour',
               expires_at = now() + interval '1 day' WHERE id = $1}, $s->{sid});
    my $before = $t->psql('SELECT tm.ts(last_used_at) FROM tm.sessions WHERE id = $1', $s->{sid});
    my $f = refresh($s->{rt});
    is($f->{status}, 200, 'refresh');
    my $after = $t->psql('SELECT tm.ts(last_used_at) FROM tm.sessions WHERE id = $1', $s->{sid});
    ok($after gt $before, "refresh updates last_used_at ($before -> $after)");
    is($t->psql(q{SELECT expires_at > now() + interval '29 days'
                  AND expires_at <= now() + interval '30 days' FROM tm.sessions WHERE id = $1},
                $s->{sid}), 't', 'refresh slides the expiry to 30 days');
    $t->psql(q{UPDATE tm.sessions SET created_at = now() - interval '89 days' WHERE id = $1},
             $s->{sid});
    my $g = refresh($f->{json}{refresh_token});
    is($g->{status}, 200, 'refresh of an old session');
    is($t->psql(q{SELECT expires_at <= created_at + interval '90 days'
                  AND expires_at < now() + interval '2 days' FROM tm.sessions WHERE id = $1},
                $s->{sid}), 't', 'the expiry is capped at 90 days from the login');
    $t->psql(q{UPDATE tm.sessions SET expires_at = now() - interval '1 second' WHERE id = $1},
             $s->{sid});
    my $h = refresh($g->{json}{refresh_token});
    is($h->{status}, 401, 'an expired session\'s refresh token: 401');
    is($h->{json}{code}, 'unauthorized', '... unauthorized');
    my $l = $t->request(GET => '/v1/auth/sessions', token => $laptop->{tok});
    ok(!grep({ $_->{id} eq $s->{sid} } @{ $l->{json}{data} }),
       'an expired session is not listed');
}

# ---------------------------------------------------------------------------
# DELETE /v1/auth/sessions/{id}

my $bob = register('bob');
{
    is($t->request(DELETE => "/v1/auth/sessions/$phone->{sid}", token => $bob->{tok})->{status},
       404, "DELETE of another user's session: 404");
    is(me($phone->{tok}), 200, '... which still works');
    is($t->request(DELETE => '/v1/auth/sessions/not-a-uuid', token => $laptop->{tok})->{status},
       404, 'DELETE of a malformed id: 404');
    is($t->request(DELETE => '/v1/auth/sessions/0190f0e0-0000-7000-8000-000000000000',
                   token => $laptop->{tok})->{status}, 404, 'DELETE of an unknown id: 404');
    is($t->request(DELETE => "/v1/auth/sessions/$phone->{sid}")->{status}, 401,
       'DELETE without a token: 401');

    # a cached read leaves the session marker of the read cache
    my $ws = $t->request(GET => '/v1/workspaces', token => $phone->{tok})->{json}{data}[0]{id};
    my $mk = "tmk:{$alice->{uid}}:s:$phone->{sid}";
    my $marked;
    for (1 .. 20) {
        $t->request(GET => "/v1/workspaces/$ws/tasks", token => $phone->{tok});
        last if $marked = $t->redis_cli('EXISTS', $mk) eq '1';
        Time::HiRes::sleep(0.1);
    }
    ok($marked, "the phone's reads left the cache marker $mk");

    my $r = $t->request(DELETE => "/v1/auth/sessions/$phone->{sid}", token => $laptop->{tok});
    is($r->{status}, 204, 'DELETE of the phone session: 204');
    is($t->redis_cli('EXISTS', $mk), '0', '... which removed the cache marker');
    is($t->request(GET => "/v1/workspaces/$ws/tasks", token => $phone->{tok})->{status}, 401,
       "... so the phone's cached reads are refused at once");
    is($r->{body}, '', '... no body');
    my $k = "tmk:{$alice->{uid}}:rv:$phone->{sid}";
    is(rkey($k), '1', "Redis: $k");
    my $ttl = rttl($k);
    ok($ttl > 900 && $ttl <= 960, "... lives the access token lifetime + 60 s ($ttl)");
    is(me($phone->{tok}), 401, 'the phone\'s access token is refused');
    is(refresh($phone->{rt})->{status}, 401, 'the phone\'s refresh token is refused');
    is($t->request(DELETE => "/v1/auth/sessions/$phone->{sid}", token => $laptop->{tok})->{status},
       404, 'DELETE again: 404 (not live)');
    is(me($laptop->{tok}), 200, 'the caller\'s session goes on');
    is(rkey("tmk:{$alice->{uid}}:rva"), '', 'no revoke-all key for one session');
}

# ---------------------------------------------------------------------------
# logout

{
    my $r = $t->request(POST => '/v1/auth/logout', token => $alice->{tok});
    is($r->{status}, 204, 'logout: 204');
    my $k = "tmk:{$alice->{uid}}:rv:$alice->{sid}";
    is(rkey($k), '1', "logout: Redis $k");
    my $ttl = rttl($k);
    ok($ttl > 900 && $ttl <= 960, "... with its lifetime ($ttl)");
    is(me($alice->{tok}), 401, 'logout: the access token is refused');
    is(refresh($alice->{rt})->{status}, 401, 'logout: the refresh token is refused');
}

# ---------------------------------------------------------------------------
# refresh token reuse revokes the family, in Redis too

{
    my $s = login($bob, device => 'reuse');
    my $f = refresh($s->{rt});
    is($f->{status}, 200, 'rotate once');
    my $again = refresh($s->{rt});
    is($again->{status}, 401, 'reuse of the rotated token: 401');
    like($again->{json}{detail} // '', qr/reuse/, '... saying why');
    my $k = "tmk:{$bob->{uid}}:rv:$s->{sid}";
    is(rkey($k), '1', "reuse: Redis $k");
    my $ttl = rttl($k);
    ok($ttl > 900 && $ttl <= 960, "... with its lifetime ($ttl)");
    is(me($f->{json}{access_token}), 401, 'reuse: the newest access token is refused');
    is(refresh($f->{json}{refresh_token})->{status}, 401,
       'reuse: the newest refresh token is refused');
}

# ---------------------------------------------------------------------------
# logout-all

{
    my $carol = register('carol');
    my @s = map { login($carol, device => "dev$_") } 1 .. 3;
    my $t0 = time;
    my $r = $t->request(POST => '/v1/auth/logout-all', token => $s[0]{tok});
    is($r->{status}, 204, 'logout-all: 204');
    my $rva = rkey("tmk:{$carol->{uid}}:rva");
    ok($rva =~ /^\d+$/ && $rva >= $t0 - 2 && $rva <= time + 2,
       "logout-all: Redis rva holds the time ($rva)");
    my $ttl = rttl("tmk:{$carol->{uid}}:rva");
    ok($ttl > 900 && $ttl <= 960, "... with its lifetime ($ttl)");
    for my $i (0 .. 2) {
        is(rkey("tmk:{$carol->{uid}}:rv:$s[$i]{sid}"), '1', "logout-all: rv of session $i");
        is(me($s[$i]{tok}), 401, "logout-all: access token $i refused");
        is(refresh($s[$i]{rt})->{status}, 401, "logout-all: refresh token $i refused");
    }
    is(me($carol->{tok}), 401, 'logout-all: the register session too');
    my $new = login($carol, device => 'after');
    my $l = $t->request(GET => '/v1/auth/sessions', token => $new->{tok});
    is_deeply([ map { $_->{id} } @{ $l->{json}{data} } ], [ $new->{sid} ],
              'after logout-all only a new login is listed');
    is($t->request(POST => '/v1/auth/logout-all', token => $s[0]{tok})->{status}, 401,
       'logout-all with a revoked token: 401');
}

# ---------------------------------------------------------------------------
# POST /v1/auth/password

{
    my $dave = register('dave');
    my $keep  = login($dave, device => 'keep');
    my $other = login($dave, device => 'other');
    my $path = '/v1/auth/password';

    my $r = $t->request(POST => $path, token => $keep->{tok},
        body => { current_password => "wrong $rand", new_password => "brand new words $rand" });
    is($r->{status}, 403, 'wrong current password: 403');
    is($r->{json}{code}, 'forbidden', '... forbidden');
    is($r->{json}{errors}[0]{field}, 'current_password', '... naming current_password');
    is(me($other->{tok}), 200, '... and nothing was revoked');

    $r = $t->request(POST => $path, token => $keep->{tok},
        body => { current_password => pw('dave'), new_password => 'short' });
    is($r->{status}, 422, 'new password of 5 characters: 422');
    is($r->{json}{errors}[0]{field}, 'new_password', '... naming new_password');

    $r = $t->request(POST => $path, token => $keep->{tok},
        body => { current_password => pw('dave'), new_password => "xx DAVE-$rand yy" });
    is($r->{status}, 422, 'new password containing the email local part: 422');
    is_deeply($r->{json}{errors}, [{ field => 'new_password',
                                     message => 'must not contain the email address' }],
              '... naming the field and the reason');

    $r = $t->request(POST => $path, token => $keep->{tok},
        body => { current_password => pw('dave'), new_password => 'PASSWORD123456' });
    is($r->{status}, 422, 'a blocked new password (other case): 422');
    like($r->{json}{errors}[0]{message} // '', qr/common/, '... as too common');

    $r = $t->request(POST => $path, token => $keep->{tok},
        body => { current_password => pw('dave') });
    is($r->{status}, 422, 'no new_password: 422');
    $r = $t->request(POST => $path, token => $keep->{tok},
        body => { current_password => pw('dave'), new_password => "brand new words $rand",
                  extra => 1 });
    is($r->{status}, 400, 'an unknown field: 400');
    is($t->request(POST => $path, body => { current_password => 'x', new_password => 'y' x 12 })
       ->{status}, 401, 'no token: 401');

    is($t->redis_cli('EXISTS', "tmk:{$dave->{uid}}:rv:$other->{sid}"), '0',
       'nothing revoked by the refused changes');

    $r = $t->request(POST => $path, token => $keep->{tok},
        body => { current_password => pw('dave'), new_password => "brand new words $rand" });
    is($r->{status}, 204, 'password change: 204');
    is(me($keep->{tok}), 200, 'the caller\'s session goes on');
    is(me($other->{tok}), 401, 'the other session\'s access token is refused');
    is(me($dave->{tok}), 401, 'the register session\'s access token is refused');
    is(refresh($other->{rt})->{status}, 401, 'the other session\'s refresh token is refused');
    is(rkey("tmk:{$dave->{uid}}:rv:$other->{sid}"), '1', 'Redis: rv of the other session');
    my $ttl = rttl("tmk:{$dave->{uid}}:rv:$other->{sid}");
    ok($ttl > 900 && $ttl <= 960, "... with its lifetime ($ttl)");
    is($t->redis_cli('EXISTS', "tmk:{$dave->{uid}}:rv:$keep->{sid}"), '0',
       'Redis: no rv of the caller\'s session');
    is($t->redis_cli('EXISTS', "tmk:{$dave->{uid}}:rva"), '0',
       'Redis: no revoke-all key (it would end the caller\'s session)');
    my $f = refresh($keep->{rt});
    is($f->{status}, 200, 'the caller\'s refresh token still works');

    is($t->request(POST => '/v1/auth/login', body => {
        email => $dave->{email}, password => pw('dave') })->{status}, 401,
       'the old password no longer logs in');

    # the hash is stored only if it is still the one verified: a concurrent
    # change answers 409 and leaves everything as it was
    is($t->psql(q{SELECT status || ' ' || body FROM tm_api.password_set($1, $2, 'stale', 'new')},
                $dave->{uid}, $keep->{sid}), '409 conflict',
       'password_set with a stale hash: 409 conflict');
    is($t->psql('SELECT count(*) FROM tm.users WHERE id = $1 AND password_hash = $2',
                $dave->{uid}, 'new'), 0, '... nothing stored');
    login($dave, pw => "brand new words $rand");
}

# ---------------------------------------------------------------------------
# password rules on register

{
    my %cases = (
        'blocked'             => 'password123456',
        'blocked, other case' => 'correcthorsebatterystaple',
        'the local part'      => "erin-$rand" . '!!',
    );
    for my $what (sort keys %cases) {
        my $r = $t->request(POST => '/v1/auth/register', body => {
            email => "erin-$rand\@example.com", password => $cases{$what}, name => 'Erin' });
        is($r->{status}, 422, "register, password $what: 422");
        is($r->{json}{errors}[0]{field}, 'password', '... naming the field');
    }
    for my $ok ('# commentedpassword', '#!comment: test list') {
        my $r = $t->request(POST => '/v1/auth/register', body => {
            email => 'ok' . (++$n) . "-$rand\@example.com", password => $ok, name => 'Ok' });
        is($r->{status}, 201, "register: a comment line of the list is not blocked ($ok)");
    }
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => "ab\@example.com", password => "ab ab ab ab ab $rand", name => 'Ab' });
    isnt($r->{status}, 422, 'a local part shorter than 3 characters is not checked');
}

# ---------------------------------------------------------------------------
# Redis down: the session still ends (PostgreSQL), the answer is still 204

{
    my $frank = register('frank');
    my $a = login($frank, device => 'a');
    my $b = login($frank, device => 'b');

    # The default taskmgr_auth_revocation_fallback (reads) refuses a write
    # whose token cannot be checked, before anything is done.
    $t->redis_stop;
    is($t->request(DELETE => "/v1/auth/sessions/$b->{sid}", token => $a->{tok})->{status},
       503, 'Redis down, default fallback: DELETE of a session refused (503)');
    $t->redis_start;
    ok(wait_until(10, sub { me($b->{tok}) == 200 }),
       'Redis down, default fallback: the session was not ended');

    # Where the operator accepts unchecked tokens, the session ends in
    # PostgreSQL and the answer is still 204.
    $t->stop;
    $t->start(http_config => "$http\n    taskmgr_auth_revocation_fallback accept;");
    my $off = $t->error_log_size;
    $t->redis_stop;
    my $r = $t->request(DELETE => "/v1/auth/sessions/$b->{sid}", token => $a->{tok});
    is($r->{status}, 204, 'Redis down: DELETE of a session still 204');
    is(me($b->{tok}), 401, 'Redis down: its access token is refused (PostgreSQL)');
    is(refresh($b->{rt})->{status}, 401, 'Redis down: its refresh token is refused');
    is($t->request(POST => '/v1/auth/logout-all', token => $a->{tok})->{status}, 204,
       'Redis down: logout-all still 204');
    is(me($a->{tok}), 401, 'Redis down: logout-all ended the session');
    like($t->error_log_since($off), qr/revocation .*not written to redis/,
         'Redis down: logged');
    $t->redis_start;
}

# no secret in the logs
{
    my $log = $t->error_log . $t->access_log;
    for my $s (pw('dave'), "brand new words $rand", $laptop->{rt}, $laptop->{tok}) {
        ok(index($log, $s) < 0, 'the logs hold no password or token');
    }
}

# The list the repository ships (lua-free-conf uses it) loads and blocks.
{
    my $file = "$FindBin::Bin/../data/password-blocklist.txt";
    my $t0 = Time::HiRes::time();
    my ($ok, $err) = $t->try_start(http_config => "taskmgr_password_blocklist $file;");
    ok($ok, 'the shipped block list loads') or diag($err);
    my $took = Time::HiRes::time() - $t0;
    ok($took < 10, sprintf('... in reasonable time (%.2f s including the start)', $took));
    for my $p ('password1234', 'QwertyUiop123', 'winniethepooh', 'ILoveYou2025') {
        my $r = $t->request(POST => '/v1/auth/register', body => {
            email => 'ship' . (++$n) . "-$rand\@example.com", password => $p, name => 'S' });
        is($r->{status}, 422, "the shipped list blocks $p");
    }
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => "ship-ok-$rand\@example.com", password => "not in any list $rand", name => 'S' });
    is($r->{status}, 201, '... and lets an uncommon password through');
}

# The block list is checked at start: a missing file, or one too large.
{
    my $big = $t->dir . '/big.txt';
    open my $fh, '>:raw', $big or die "$big: $!";
    print {$fh} ("a" x 1023 . "\n") x (16 * 1024 + 1);
    close $fh;
}
run_blocks($t, no_done => 1, blocks => <<'EOF');
=== TEST 1: a missing block list: nginx refuses to start naming the file
--- must_die
--- http_config
taskmgr_password_blocklist %%TESTDIR%%/missing.txt;
--- error_log
~\[emerg\].*missing\.txt

=== TEST 2: a block list over 16 MiB is refused
--- must_die
--- http_config
taskmgr_password_blocklist %%TESTDIR%%/big.txt;
--- error_log
~\[emerg\].*password block list .*big\.txt.* is larger than 16777216 bytes
EOF

$t->done;
