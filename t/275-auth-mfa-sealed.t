# TOTP secrets sealed at rest with taskmgr_mfa_key_file (AES-256-GCM, the
# user id as additional data): PostgreSQL holds "v1.<base64url>" only; set
# up, confirm and login work through it; a sealed secret copied to another
# user, or read without the key, does not open (500, logged); plain secrets
# stored before the key keep working; a malformed key file stops start-up.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA ();
use Taskmgr::Test;

my $t    = Taskmgr::Test->new;
my $rand = $t->{rand};

sub spew {
    my ($name, $text) = @_;
    my $f = $t->dir . "/$name";
    open my $fh, '>', $f or die "$f: $!";
    print {$fh} $text;
    close $fh;
    return $f;
}

my $key = spew('mfa.key', join('', map { sprintf '%02x', int rand 256 } 1 .. 32) . "\n");

sub b32_decode {
    my ($s) = @_;
    my $bits = join '', map { sprintf '%05b', index('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', $_) } split //, $s;
    return pack 'B*', substr($bits, 0, int(length($bits) / 8) * 8);
}

sub totp {
    my ($secret, $step) = @_;
    my $h = Digest::SHA::hmac_sha1(pack('NN', 0, $step), b32_decode($secret));
    my $o = ord(substr($h, 19, 1)) & 15;
    return sprintf '%06d', (unpack('N', substr($h, $o, 4)) & 0x7fffffff) % 1000000;
}

# a malformed key file stops start-up
for my $bad ([ short => 'ab' x 31 ], [ 'not hex' => 'zz' x 32 ]) {
    my $f = spew("bad.key", $bad->[1]);
    my ($ok, $err) = $t->try_start(http_config => "taskmgr_mfa_key_file $f;");
    ok(!$ok, "a key file of $bad->[0] digits: nginx does not start");
    like($err // '', qr/taskmgr_mfa_key_file.*64 hex digits/, '... and says why');
}

$t->start(http_config => "taskmgr_mfa_key_file $key;\ntaskmgr_login_max_failures 0;");

my %u;
for my $name (qw(alice bob carol)) {
    my $email = "$name-$rand\@example.com";
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => $email, password => "pass phrase of $name $rand", name => $name });
    is($r->{status}, 201, "register $name");
    $u{$name} = { email => $email, uid => $r->{json}{user}{id}, tok => $r->{json}{access_token},
                  pw => "pass phrase of $name $rand" };
}

sub last_step { $t->psql('SELECT last_step FROM tm.user_mfa WHERE user_id = $1', $_[0]{uid}) }
sub stored    { $t->psql('SELECT totp_secret FROM tm.user_mfa WHERE user_id = $1', $_[0]{uid}) }
sub login {
    my ($u, $code) = @_;
    return $t->request(POST => '/v1/auth/login', body => {
        email => $u->{email}, password => $u->{pw}, (defined $code ? (totp_code => $code) : ()) });
}

for my $name (qw(alice bob)) {
    my $u = $u{$name};
    my $r = $t->request(POST => '/v1/auth/mfa/totp', token => $u->{tok});
    is($r->{status}, 200, "$name: set up") or diag($r->{body});
    $u->{secret} = $r->{json}{secret};
    like($u->{secret}, qr/^[A-Z2-7]{32}$/, "$name: the answer has the plain secret");
    like($r->{json}{otpauth_uri}, qr/secret=\Q$u->{secret}\E&/, "$name: in the URI too");
    like(stored($u), qr/^v1\.[A-Za-z0-9_-]{80}$/, "$name: PostgreSQL holds it sealed");
    unlike(stored($u), qr/\Q$u->{secret}\E/, "$name: ... not as is");
    $r = $t->request(POST => '/v1/auth/mfa/totp/confirm', token => $u->{tok},
                     body => { code => totp($u->{secret}, int(time() / 30)) });
    is($r->{status}, 200, "$name: confirm through the sealed secret") or diag($r->{body});
}
isnt(stored($u{alice}), stored($u{bob}), 'each secret sealed on its own');

my $r = login($u{alice}, totp($u{alice}{secret}, last_step($u{alice}) + 1));
is($r->{status}, 200, 'login with a code of the sealed secret') or diag($r->{body});
is(login($u{alice}, totp($u{bob}{secret}, last_step($u{alice}) + 1))->{status}, 401,
   'another user\'s code: 401');
is(login($u{alice})->{status}, 401, 'no code: 401');

# bob's row gets alice's sealed secret: it does not open for bob
$t->psql('UPDATE tm.user_mfa SET totp_secret = $1 WHERE user_id = $2', stored($u{alice}), $u{bob}{uid});
my $pos = $t->error_log_size;
$r = login($u{bob}, totp($u{alice}{secret}, last_step($u{bob}) + 2));
is($r->{status}, 500, 'a sealed secret moved to another user does not open: 500');
is($r->{json}{code}, 'internal', '... internal');
like($t->error_log_since($pos), qr/TOTP secret of user \Q$u{bob}{uid}\E does not open/, '... logged');
$r = $t->request(DELETE => '/v1/auth/mfa/totp', token => $u{bob}{tok},
                 body => { code => totp($u{alice}{secret}, int(time() / 30)) });
is($r->{status}, 500, '... nor for disable');

# a plain secret stored before the key keeps working
my $plain = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
$t->psql(q{INSERT INTO tm.user_mfa (user_id, totp_secret, enabled_at) VALUES ($1, $2, now())},
         $u{carol}{uid}, $plain);
is(login($u{carol}, totp($plain, int(time() / 30)))->{status}, 200, 'a plain stored secret still works');

# without the key, sealed secrets do not open
$t->stop;
$t->start(http_config => "# no taskmgr_mfa_key_file\ntaskmgr_login_max_failures 0;");
$pos = $t->error_log_size;
$r = login($u{alice}, totp($u{alice}{secret}, last_step($u{alice}) + 1));
is($r->{status}, 500, 'without the key a sealed secret does not open: 500');
like($t->error_log_since($pos), qr/does not open \(no taskmgr_mfa_key_file\)/, '... logged as such');

unlike($t->error_log, qr/\Q$u{alice}{secret}\E|\Q$u{bob}{secret}\E/, 'no secret in the log');

$t->done;
