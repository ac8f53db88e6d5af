# Password reset and magic links: /v1/auth/password/forgot and
# /v1/auth/magic-link answer 202 for any email (same status, headers and
# body); a known one gets a token (256 bits, stored as its SHA-256 only)
# and an outbox row with the link, in one transaction, at most once a
# minute.  Tokens are single
# use, short-lived (30 and 15 minutes), replaced by a newer one.  A reset
# applies the password rules and ends every session (rva in Redis); a magic
# link makes a new session, asking the TOTP code when TOTP is on.  Bad,
# used, replaced or expired tokens: 401 unauthorized.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA ();
use Taskmgr::Test;

my $t    = Taskmgr::Test->new;
my $rand = $t->{rand};

$t->start(http_config => <<'EOF');
taskmgr_login_max_failures 0;
taskmgr_login_ip_max_failures 0;
EOF

my $pw    = "first pass phrase $rand";
my $email = "Reset-$rand\@example.com";
my $r = $t->request(POST => '/v1/auth/register',
                    body => { email => $email, password => $pw, name => 'Reset' });
is($r->{status}, 201, 'register');
my $uid = $r->{json}{user}{id};
my $tok = $r->{json}{access_token};
my $rt  = $r->{json}{refresh_token};

sub outbox_count {
    $t->psql('SELECT count(*) FROM tm.outbox WHERE lower(recipient) = lower($1)', $_[0]);
}

# the token of the newest outbox row of $template for $email
sub outbox_token {
    my ($template) = @_;
    my $link = $t->psql(q{SELECT payload->>'link' FROM tm.outbox
                           WHERE recipient = $1 AND template = $2
                           ORDER BY created_at DESC, id DESC LIMIT 1},
                        $email, $template);
    my ($tk) = $link =~ /token=([A-Za-z0-9_-]+)$/;
    return ($tk, $link);
}

# asks again for $email, as if the previous request were a minute old
sub ask {
    my ($ep) = @_;
    $t->psql(q{UPDATE tm.auth_tokens SET created_at = created_at - interval '61 seconds'
                WHERE user_id = $1}, $uid);
    return $t->request(POST => $ep, body => { email => $email });
}

sub shape {
    my ($x) = @_;
    return join ' ', $x->{status}, $x->{body},
        join(',', sort grep { !/^(date|x-request-id)$/ } keys %{ $x->{headers} });
}

# ---------------------------------------------------------------------------
# forgot: 202 always

for my $ep ('/v1/auth/password/forgot', '/v1/auth/magic-link') {
    my $k = $t->request(POST => $ep, body => { email => $email });
    my $u = $t->request(POST => $ep, body => { email => "nobody-$rand\@example.com" });
    is($k->{status}, 202, "$ep known email: 202") or diag($k->{body});
    is(shape($u), shape($k), "$ep: an unknown email answers the same");
    is($t->request(POST => $ep, body => {})->{status}, 422, "$ep without email: 422");
    is($t->request(POST => $ep, body => { email => $email, x => 1 })->{status}, 400,
       "$ep with an unknown field: 400");
    is($t->request(POST => $ep, body => { email => 'a' x 300 })->{status}, 422,
       "$ep with a 300-character email: 422");
}
is(outbox_count("nobody-$rand\@example.com"), 0, 'no outbox row for an unknown email');
is(outbox_count($email), 2, 'one outbox row per request for the known email');

# within a minute: 202 as ever, but no new token and no new email
for my $ep ('/v1/auth/password/forgot', '/v1/auth/magic-link') {
    is($t->request(POST => $ep, body => { email => $email })->{status}, 202, "$ep again at once: 202");
}
is(outbox_count($email), 2, '... no new outbox row within a minute');

my ($reset1, $link) = outbox_token('password_reset');
like($link, qr{^/reset-password\?token=[A-Za-z0-9_-]{43}$}, 'reset link: 43 base64url characters (256 bits)');
my ($magic1, $mlink) = outbox_token('magic_link');
like($mlink, qr{^/magic-link\?token=[A-Za-z0-9_-]{43}$}, 'magic link: 256 bits too');

is($t->psql('SELECT count(*) FROM tm.auth_tokens WHERE token_hash = $1', Digest::SHA::sha256_hex($reset1)), 1,
   'the reset token is stored as its SHA-256');
is($t->psql('SELECT count(*) FROM tm.auth_tokens WHERE token_hash = $1', $reset1), 0, '... not as is');
is($t->psql(q{SELECT round(extract(epoch FROM expires_at - created_at)) FROM tm.auth_tokens
               WHERE user_id = $1 AND purpose = 'password_reset'}, $uid), 1800,
   'reset token lives 30 minutes');
is($t->psql(q{SELECT round(extract(epoch FROM expires_at - created_at)) FROM tm.auth_tokens
               WHERE user_id = $1 AND purpose = 'magic_link'}, $uid), 900,
   'magic link lives 15 minutes');
is($t->psql(q{SELECT payload->>'name' FROM tm.outbox WHERE recipient = $1 LIMIT 1}, $email), 'Reset',
   'outbox payload: the name for the template');

# ---------------------------------------------------------------------------
# reset

sub reset_pw { $t->request(POST => '/v1/auth/password/reset',
                           body => { token => $_[0], new_password => $_[1] }) }

my $new = "second pass phrase $rand";

$r = reset_pw('x' x 43, $new);
is($r->{status}, 401, 'an unknown token: 401');
is($r->{json}{code}, 'unauthorized', '... unauthorized');
is(reset_pw($magic1, $new)->{status}, 401, 'a magic link token does not reset');
is(reset_pw($reset1, 'short')->{status}, 422, 'a short password: 422');
$r = reset_pw($reset1, "reset-$rand 12345");
is($r->{status}, 422, 'a password holding the email\'s local part: 422');
is($r->{json}{errors}[0]{field}, 'new_password', '... naming new_password');
is($t->request(POST => '/v1/auth/password/reset', body => { token => $reset1 })->{status}, 422,
   'no new_password: 422');

# a newer token replaces the older one
is(ask('/v1/auth/password/forgot')->{status}, 202, 'forgot again a minute later');
my ($reset2) = outbox_token('password_reset');
isnt($reset2, $reset1, 'a new token');
is(reset_pw($reset1, $new)->{status}, 401, 'the replaced token: 401');

$r = reset_pw($reset2, $new);
is($r->{status}, 204, 'reset: 204') or diag($r->{body});
is($t->request(GET => '/v1/me', token => $tok)->{status}, 401, 'the old access token stops working');
is($t->request(POST => '/v1/auth/refresh', body => { refresh_token => $rt })->{status}, 401,
   'the old refresh token too');
ok($t->redis_cli('GET', "tmk:{$uid}:rva") =~ /^\d+$/, 'rva written to Redis');
is($t->psql('SELECT count(*) FROM tm.sessions WHERE user_id = $1 AND revoked_at IS NULL', $uid), 0,
   'every session ended in PostgreSQL');
is(reset_pw($reset2, "third pass phrase $rand")->{status}, 401, 'the token works once');

is($t->request(POST => '/v1/auth/login', body => { email => $email, password => $pw })->{status}, 401,
   'the old password no longer works');
sleep 1;    # rva revokes tokens issued in an earlier second
$r = $t->request(POST => '/v1/auth/login', body => { email => $email, password => $new });
is($r->{status}, 200, 'the new password works');
$tok = $r->{json}{access_token};
is($t->request(GET => '/v1/me', token => $tok)->{status}, 200, '... and its token');

# expired
ask('/v1/auth/password/forgot');
my ($reset3) = outbox_token('password_reset');
$t->psql(q{UPDATE tm.auth_tokens SET expires_at = now() - interval '1 second'
            WHERE user_id = $1 AND purpose = 'password_reset'}, $uid);
is(reset_pw($reset3, "fourth pass phrase $rand")->{status}, 401, 'an expired token: 401');

# ---------------------------------------------------------------------------
# magic links

sub consume { $t->request(POST => '/v1/auth/magic-link/consume', body => { @_ }) }

ask('/v1/auth/magic-link');
my ($magic2) = outbox_token('magic_link');
is(consume(token => $magic1)->{status}, 401, 'the replaced magic link: 401');
is(consume(token => $reset3)->{status}, 401, 'a reset token is no magic link');
is(consume()->{status}, 422, 'no token: 422');

$r = consume(token => $magic2, device_name => 'mail');
is($r->{status}, 200, 'consume: 200') or diag($r->{body});
ok($r->{json}{access_token} && $r->{json}{refresh_token}, '... tokens');
is($r->{json}{user}{id}, $uid, '... of the user');
is($r->{json}{token_type}, 'Bearer', '... Bearer');
like($r->{headers}{'cache-control'} // '', qr/no-store/, '... no-store');
my $mtok = $r->{json}{access_token};
is($t->request(GET => '/v1/me', token => $mtok)->{status}, 200, 'the new session works');
is($t->psql(q{SELECT device_name FROM tm.sessions WHERE user_id = $1 AND revoked_at IS NULL
               ORDER BY created_at DESC LIMIT 1}, $uid), 'mail', '... with its device name');
is(consume(token => $magic2)->{status}, 401, 'a magic link works once');

ask('/v1/auth/magic-link');
my ($magic3) = outbox_token('magic_link');
$t->psql(q{UPDATE tm.auth_tokens SET expires_at = now() - interval '1 second'
            WHERE user_id = $1 AND purpose = 'magic_link'}, $uid);
is(consume(token => $magic3)->{status}, 401, 'an expired magic link: 401');

# with TOTP on, the code is asked too
$r = $t->request(POST => '/v1/auth/mfa/totp', token => $tok);
my $secret = $r->{json}{secret};

sub totp {
    my ($s, $step) = @_;
    my $bits = join '', map { sprintf '%05b', index('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', $_) } split //, $s;
    my $key = pack 'B*', substr($bits, 0, int(length($bits) / 8) * 8);
    my $h = Digest::SHA::hmac_sha1(pack('NN', 0, $step), $key);
    my $o = ord(substr($h, 19, 1)) & 15;
    return sprintf '%06d', (unpack('N', substr($h, $o, 4)) & 0x7fffffff) % 1000000;
}

$r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $tok,
                 body => { code => totp($secret, int(time() / 30)) });
is($r->{status}, 200, 'TOTP on');
my $last = $t->psql('SELECT last_step FROM tm.user_mfa WHERE user_id = $1', $uid);

ask('/v1/auth/magic-link');
my ($magic4) = outbox_token('magic_link');
$r = consume(token => $magic4);
is($r->{status}, 401, 'TOTP on, no code: 401');
is($r->{json}{code}, 'mfa_required', '... mfa_required');
$r = consume(token => $magic4, totp_code => totp($secret, $last));
is($r->{status}, 401, 'a used code: 401');
is($r->{json}{code}, 'unauthorized', '... unauthorized');
$r = consume(token => $magic4, totp_code => totp($secret, $last + 1));
is($r->{status}, 200, 'the token still works with a fresh code') or diag($r->{body});
is(consume(token => $magic4, totp_code => totp($secret, $last + 1))->{status}, 401,
   '... once');

# PostgreSQL's own guard, for two requests racing with one code: the token
# survives a refused code
ask('/v1/auth/magic-link');
my ($magic5) = outbox_token('magic_link');
is($t->psql('SELECT status FROM tm_api.magic_link_consume($1, $2, NULL, $3, NULL, NULL, NULL, 60)',
            Digest::SHA::sha256_hex($magic5), $last + 1, 'e' x 64), 401,
   'PostgreSQL refuses a used step');
is($t->psql('SELECT count(*) FROM tm.auth_tokens WHERE token_hash = $1', Digest::SHA::sha256_hex($magic5)), 1,
   '... and keeps the token');

unlike($t->error_log, qr/\Q$magic4\E|\Q$reset2\E/, 'no token in the error log');
unlike($t->access_log, qr/\Q$magic4\E|\Q$reset2\E/, 'no token in the access log');

$t->done;
