# TOTP second factor end to end: set up (secret, otpauth URI), confirm
# (recovery codes shown once, stored hashed), login with mfa_required, a
# wrong code counted as a failed login, a code used once only (replay
# refused), recovery codes once each, disable with a TOTP or recovery code,
# five wrong codes to confirm/disable stop them for 15 minutes (429),
# /v1/me's mfa_enabled.  Codes are computed here (RFC 6238, HMAC-SHA-1).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA ();
use Taskmgr::Test;
use Taskmgr::Load qw(wait_until);

my $t    = Taskmgr::Test->new;
my $rand = $t->{rand};

$t->start(http_config => <<'EOF');
taskmgr_login_max_failures 5;
taskmgr_login_ip_max_failures 0;
EOF

sub b32_decode {
    my ($s) = @_;
    my $bits = join '', map {
        sprintf '%05b', index('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', $_)
    } split //, $s;
    return pack 'B*', substr($bits, 0, int(length($bits) / 8) * 8);
}

sub totp {
    my ($secret, $step) = @_;
    my $h = Digest::SHA::hmac_sha1(pack('NN', int($step / 2**32), $step % 2**32),
                                   b32_decode($secret));
    my $o = ord(substr($h, 19, 1)) & 15;
    return sprintf '%06d', (unpack('N', substr($h, $o, 4)) & 0x7fffffff) % 1000000;
}

sub now_step { int(time() / 30) }

# the RFC 6238 key in base32, time 59: 94287082 (8 digits) -> 287082 (6)
is(totp('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 1), '287082', 'the Perl TOTP agrees with RFC 6238');

my $pw    = "a long pass phrase $rand";
my $email = "Mfa.User+x-$rand\@example.com";
my $r = $t->request(POST => '/v1/auth/register',
                    body => { email => $email, password => $pw, name => 'Mfa' });
is($r->{status}, 201, 'register');
my $tok = $r->{json}{access_token};
my $uid = $r->{json}{user}{id};

sub login {
    my (%b) = @_;
    return $t->request(POST => '/v1/auth/login',
                       body => { email => $email, password => $pw, %b });
}
sub me_mfa { $t->request(GET => '/v1/me', token => $_[0] // $tok)->{json}{mfa_enabled} }
sub last_step { $t->psql('SELECT last_step FROM tm.user_mfa WHERE user_id = $1', $uid) }
sub lf_field { $t->redis_cli('HGET', 'tmk:{' . Digest::SHA::sha256_hex(lc $email) . '}:lf', 'f') }

# ---------------------------------------------------------------------------
# set up

is($t->request(POST => '/v1/auth/mfa/totp')->{status}, 401, 'set up needs a token');
is($t->request(DELETE => '/v1/auth/mfa/totp', body => { code => '123456' })->{status},
   401, 'disable needs a token');

$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok,
                 body => { code => '123456' });
is($r->{status}, 409, 'confirm before set up: 409');
is($r->{json}{code}, 'conflict', '... conflict');

$r = $t->request(POST => '/v1/auth/mfa/totp', token => $tok);
is($r->{status}, 200, 'POST /v1/auth/mfa/totp: 200') or diag($r->{body});
my $secret = $r->{json}{secret};
like($secret, qr/^[A-Z2-7]{32}$/, 'secret: 160 bits in base32');
my $esc = $email;
$esc =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
is($r->{json}{otpauth_uri},
   "otpauth://totp/taskmgr:$esc?secret=$secret&issuer=taskmgr&algorithm=SHA1&digits=6&period=30",
   'otpauth URI: issuer, escaped email, secret, parameters');
like($r->{headers}{'cache-control'} // '', qr/no-store/, 'set up answer: no-store');
ok(!me_mfa(), 'not enabled before confirm');
is(login()->{status}, 200, 'login without a code while TOTP is pending');

# a second set up replaces the pending secret
$r = $t->request(POST => '/v1/auth/mfa/totp', token => $tok);
is($r->{status}, 200, 'set up again while pending');
isnt($r->{json}{secret}, $secret, '... a new secret');
my $old = $secret;
$secret = $r->{json}{secret};

# ---------------------------------------------------------------------------
# confirm

$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok,
                 body => { code => totp($old, now_step()) });
is($r->{status}, 403, 'confirm with a code of the replaced secret: 403');
is($r->{json}{code}, 'forbidden', '... forbidden');
is($r->{json}{errors}[0]{field}, 'code', '... naming the field');

my $wrong = sprintf '%06d', (totp($secret, now_step()) + 1) % 1000000;
$wrong = sprintf '%06d', ($wrong + 1) % 1000000
    while grep { $_ eq $wrong } map { totp($secret, now_step() + $_) } -1 .. 1;
$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok, body => { code => $wrong });
is($r->{status}, 403, 'confirm with a wrong code: 403');
$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok, body => { code => 'abcdef' });
is($r->{status}, 403, 'confirm with letters: 403');
$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok, body => { code => '123' });
is($r->{status}, 422, 'confirm with 3 digits: 422');
$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok, body => {});
is($r->{status}, 422, 'confirm without a code: 422');
$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok,
                 body => { code => '123456', extra => 1 });
is($r->{status}, 400, 'confirm with an unknown field: 400');
ok(!me_mfa(), 'still not enabled');

# a code two steps old is outside the window
$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok,
                 body => { code => totp($secret, now_step() - 3) });
is($r->{status}, 403, 'a code three steps old: 403');

$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok,
                 body => { code => totp($secret, now_step()) });
is($r->{status}, 200, 'confirm with the current code: 200') or diag($r->{body});
like($r->{headers}{'cache-control'} // '', qr/no-store/, 'recovery codes: no-store');
my @rc = @{ $r->{json}{recovery_codes} // [] };
is(scalar @rc, 10, 'ten recovery codes');
is(scalar(grep { /^[0-9a-f]{16}$/ } @rc), 10, 'each 16 hex digits (64 bits)');
my %u = map { $_ => 1 } @rc;
is(scalar keys %u, 10, 'all different');
is($t->psql('SELECT string_agg(code_hash, \' \' ORDER BY code_hash) FROM tm.mfa_recovery_codes WHERE user_id = $1', $uid),
   join(' ', sort map { Digest::SHA::sha256_hex($_) } @rc),
   'PostgreSQL holds their SHA-256 hashes only');
ok(me_mfa(), '/v1/me: mfa_enabled true');
like($t->request(GET => '/v1/me', token => $tok)->{body}, qr/"mfa_enabled":true/, '... a JSON true');

$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok,
                 body => { code => totp($secret, now_step() + 1) });
is($r->{status}, 409, 'confirm again: 409');
$r = $t->request(POST => '/v1/auth/mfa/totp', token => $tok);
is($r->{status}, 409, 'set up while enabled: 409');
is($t->psql('SELECT totp_secret FROM tm.user_mfa WHERE user_id = $1', $uid), $secret,
   '... the secret is kept');

# ---------------------------------------------------------------------------
# login

$t->redis_cli('DEL', 'tmk:{' . Digest::SHA::sha256_hex(lc $email) . '}:lf');

$r = login();
is($r->{status}, 401, 'login without a code: 401');
is($r->{json}{code}, 'mfa_required', '... mfa_required');
ok(!$r->{json}{access_token}, '... no token');
is(lf_field(), 1, '... counted as a failed attempt');

$r = login(totp_code => $wrong);
is($r->{status}, 401, 'login with a wrong code: 401');
is($r->{json}{code}, 'unauthorized', '... unauthorized');
is(lf_field(), 2, '... counted as a failed login');

$r = $t->request(POST => '/v1/auth/login',
                 body => { email => $email, password => "not $pw", totp_code => totp($secret, now_step()) });
is($r->{status}, 401, 'a right code with a wrong password: 401');
is($r->{json}{code}, 'unauthorized', '... unauthorized, not mfa_required');

my $used = last_step();
$r = login(totp_code => totp($secret, $used));
is($r->{status}, 401, 'the code used to confirm does not work again (replay)');

my $next = $used + 1;
$r = login(totp_code => totp($secret, $next), device_name => 'totp');
is($r->{status}, 200, 'login with a fresh code: 200') or diag($r->{body});
ok($r->{json}{access_token} && $r->{json}{refresh_token}, '... tokens');
is(last_step(), $next, '... its step is remembered');
ok(wait_until(5, sub { !lf_field() }), '... the failures are forgotten');
my $tok2 = $r->{json}{access_token};
is($t->request(GET => '/v1/me', token => $tok2)->{status}, 200, '... the token works');

$r = login(totp_code => totp($secret, $next));
is($r->{status}, 401, 'the same code a second time: 401 (replay)');

# recovery codes
$r = login(totp_code => $rc[0]);
is($r->{status}, 200, 'login with a recovery code: 200');
$r = login(totp_code => $rc[0]);
is($r->{status}, 401, 'the same recovery code again: 401');
$r = login(totp_code => uc $rc[1]);
is($r->{status}, 200, 'a recovery code in upper case: 200');
$r = login(totp_code => ('0' x 16));
is($r->{status}, 401, 'an unknown recovery code: 401');
$r = login(totp_code => 'zzzzzzzzzzzzzzzz');
is($r->{status}, 401, 'a malformed code: 401');
is($t->psql('SELECT count(*) FROM tm.mfa_recovery_codes WHERE user_id = $1', $uid), 8,
   'two recovery codes used up');

# PostgreSQL's own guard, for two requests racing with one code
my $ls = last_step();
is($t->psql('SELECT status FROM tm_api.session_create_mfa($1, $2, NULL, $3, NULL, NULL, NULL, 60)',
            $uid, $ls, 'a' x 64), 401, 'PostgreSQL refuses a step not after the last one');
is($t->psql('SELECT status FROM tm_api.session_create_mfa($1, NULL, $2, $3, NULL, NULL, NULL, 60)',
            $uid, 'b' x 64, 'c' x 64), 401, '... an unknown recovery code hash');
is($t->psql('SELECT status FROM tm_api.session_create_mfa($1, NULL, NULL, $2, NULL, NULL, NULL, 60)',
            $uid, 'd' x 64), 401, '... and no factor at all while TOTP is on');
is(last_step(), $ls, '... the last step is unchanged');

# lockout: wrong codes count like wrong passwords
$t->redis_cli('DEL', 'tmk:{' . Digest::SHA::sha256_hex(lc $email) . '}:lf');
login(totp_code => $wrong) for 1 .. 5;
$r = login(totp_code => $rc[2]);
is($r->{status}, 423, 'after five wrong codes the account is locked (423)');
$t->redis_cli('DEL', 'tmk:{' . Digest::SHA::sha256_hex(lc $email) . '}:lf');

# ---------------------------------------------------------------------------
# disable

$r = $t->request(DELETE => '/v1/auth/mfa/totp', token => $tok, body => { code => $wrong });
is($r->{status}, 403, 'disable with a wrong code: 403');
is($r->{json}{errors}[0]{field}, 'code', '... naming the field');
$r = $t->request(DELETE => '/v1/auth/mfa/totp', token => $tok,
                 body => { code => totp($secret, last_step()) });
is($r->{status}, 403, 'disable with a used code: 403');
$r = $t->request(DELETE => '/v1/auth/mfa/totp', token => $tok, body => { code => $rc[0] });
is($r->{status}, 403, 'disable with a used recovery code: 403');
$r = $t->request(DELETE => '/v1/auth/mfa/totp', token => $tok, body => {});
is($r->{status}, 422, 'disable without a code: 422');
ok(me_mfa(), 'still enabled');

$r = $t->request(DELETE => '/v1/auth/mfa/totp', token => $tok, body => { code => $rc[3] });
is($r->{status}, 204, 'disable with a recovery code: 204') or diag($r->{body});
ok(!me_mfa(), 'mfa_enabled false');
is($t->psql('SELECT count(*) FROM tm.user_mfa WHERE user_id = $1', $uid)
   + $t->psql('SELECT count(*) FROM tm.mfa_recovery_codes WHERE user_id = $1', $uid), 0,
   'secret and recovery codes deleted');
is(login()->{status}, 200, 'login without a code again');
$r = $t->request(DELETE => '/v1/auth/mfa/totp', token => $tok, body => { code => '123456' });
is($r->{status}, 409, 'disable when off: 409');

# enable again, disable with a TOTP code
$r = $t->request(POST => '/v1/auth/mfa/totp', token => $tok);
$secret = $r->{json}{secret};
$r = $t->request(DELETE => '/v1/auth/mfa/totp', token => $tok,
                 body => { code => totp($secret, now_step()) });
is($r->{status}, 409, 'disable while only pending: 409');
$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok,
                 body => { code => totp($secret, now_step()) });
is($r->{status}, 200, 'enabled again');
# five wrong codes stop disable (and confirm) for the rest of 15 minutes
my $wrong2 = '000000';
$wrong2 = sprintf '%06d', $wrong2 + 1
    while grep { $_ eq $wrong2 } map { totp($secret, now_step() + $_) } -1 .. 1;
for my $i (1 .. 5) {
    is($t->request(DELETE => '/v1/auth/mfa/totp', token => $tok, body => { code => $wrong2 })->{status},
       403, "disable, wrong code $i: 403");
}
is($t->psql('SELECT failures FROM tm.user_mfa WHERE user_id = $1', $uid), 5, 'five failures counted');
$r = $t->request(DELETE => '/v1/auth/mfa/totp', token => $tok,
                 body => { code => totp($secret, last_step() + 1) });
is($r->{status}, 429, 'then even a right code: 429');
is($r->{json}{code}, 'rate_limited', '... rate_limited');
my $ra = $r->{headers}{'retry-after'} // 0;
ok($ra > 800 && $ra <= 900, "... Retry-After the rest of the 15 minutes ($ra)");
ok(me_mfa(), '... TOTP stays on');
$t->psql(q{UPDATE tm.user_mfa SET failed_at = failed_at - interval '16 minutes' WHERE user_id = $1}, $uid);

$r = $t->request(DELETE => '/v1/auth/mfa/totp', token => $tok,
                 body => { code => totp($secret, last_step() + 1) });
is($r->{status}, 204, 'a window later, disable with a fresh TOTP code: 204');
ok(!me_mfa(), 'off');

# nothing secret in the logs
my $log = $t->error_log;
unlike($log, qr/\Q$secret\E/, 'the secret is not logged');
unlike($log, qr/\Q$rc[5]\E/, 'recovery codes are not logged');

$t->done;
