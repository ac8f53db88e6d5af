# JWT algorithms and keys: HS256, RS256, ES256 and EdDSA (Ed25519) through
# taskmgr_auth_jwt_alg; several keys with kid= for rotation; the algorithm
# pin against none, HS/RS confusion and other algorithms; keys of the wrong
# type refused at start-up; rotation through nginx -s reload; tokens the API
# issues are signed with the configured algorithm and signing key.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP ();
use MIME::Base64 ();
use Taskmgr::Test qw(run_blocks mint_jwt openssl_genkey base64url);

# the reload refused on purpose below logs an [emerg]
my $t = Taskmgr::Test->new(expect_alerts => [qr/holds a PEM key, but HS256 needs a shared secret/]);
my $d = $t->dir;

sub uuid4 {
    my $h = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    substr($h, 12, 1) = '4';
    return join '-', unpack 'A8 A4 A4 A4 A12', $h;
}

sub spew {
    my ($f, $c) = @_;
    open my $fh, '>:raw', $f or die "$f: $!";
    print {$fh} $c;
    close $fh;
    chmod 0644, $f;
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or die "$f: $!";
    local $/;
    return <$fh>;
}

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return MIME::Base64::decode_base64($s);
}

# Keys: two of each type (the first signs, the second only verifies, so the
# server gets its public half), one stranger of each type, and some keys of
# the wrong size or curve.
my %k;
for my $type (qw(rsa ec ed25519)) {
    for my $n (1, 2, 'x') {
        my ($priv, $pub) = openssl_genkey($d, "$type$n", $type);
        $k{"$type$n"} = $priv;
        $k{"$type${n}_pub"} = $pub;
    }
}
(undef, undef) = openssl_genkey($d, 'rsa1024', 'rsa:1024');
(undef, undef) = openssl_genkey($d, 'p384', 'ec:P-384');
spew("$d/hs-a.key", ('a' x 40) . "\n");
spew("$d/hs-b.key", ('b' x 40) . "\n");
spew("$d/garbage.pem", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");

my $uid = uuid4();
my %claims = (sub => $uid, sid => uuid4());

my $conf = <<"EOF";
location = /rs {
    taskmgr_auth_jwt on;
    taskmgr_auth_jwt_alg RS256;
    taskmgr_auth_jwt_key_file $k{rsa1} kid=k1;
    taskmgr_auth_jwt_key_file $k{rsa2_pub} kid=k2;
    taskmgr_healthz;
}
location = /es {
    taskmgr_auth_jwt on;
    taskmgr_auth_jwt_alg ES256;
    taskmgr_auth_jwt_key_file $k{ec1} kid=k1;
    taskmgr_auth_jwt_key_file $k{ec2_pub} kid=k2;
    taskmgr_healthz;
}
location = /ed {
    taskmgr_auth_jwt on;
    taskmgr_auth_jwt_alg EdDSA;
    taskmgr_auth_jwt_key_file $k{ed255191} kid=k1;
    taskmgr_auth_jwt_key_file $k{ed255192_pub} kid=k2;
    taskmgr_healthz;
}
location = /hs {
    taskmgr_auth_jwt on;
    taskmgr_auth_jwt_key_file $d/hs-a.key kid=k1;
    taskmgr_auth_jwt_key_file $d/hs-b.key kid=k2;
    taskmgr_healthz;
}
location = /rs-single {
    taskmgr_auth_jwt on;
    taskmgr_auth_jwt_alg RS256;
    taskmgr_auth_jwt_key_file $k{rsa1_pub};
    taskmgr_healthz;
}
EOF

$t->start(config => $conf);

sub check {
    my ($path, $token, $want, $name) = @_;
    my $r = $t->request(GET => $path, token => $token);
    is($r->{status}, $want, "$path: $name -> $want") or diag $r->{body};
    if ($want == 401) {
        like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/, "$path: $name: WWW-Authenticate");
        is(($r->{json} // {})->{status}, 401, "$path: $name: problem+json");
    }
    return $r;
}

# [path, alg, key of k1, key of k2, stranger, public PEM of k1]
my @sets = (
    ['/rs', 'RS256', $k{rsa1}, $k{rsa2}, $k{rsax}, $k{rsa1_pub}],
    ['/es', 'ES256', $k{ec1}, $k{ec2}, $k{ecx}, $k{ec1_pub}],
    ['/ed', 'EdDSA', $k{ed255191}, $k{ed255192}, $k{ed25519x}, $k{ed255191_pub}],
    ['/hs', 'HS256', 'a' x 40, 'b' x 40, 'x' x 40, undef],
);

my %other = (RS256 => ['ES256', $k{ec1}], ES256 => ['EdDSA', $k{ed255191}],
             EdDSA => ['RS256', $k{rsa1}], HS256 => ['RS256', $k{rsa1}]);

for my $s (@sets) {
    my ($p, $alg, $k1, $k2, $kx, $pub1) = @$s;
    my $m = sub { my ($key, $c, %h) = @_; mint_jwt($key, { %claims, %$c }, alg => $alg, header => {%h}) };

    check($p, $m->($k1, {}, kid => 'k1'), 200, 'signing key, its kid');
    check($p, $m->($k2, {}, kid => 'k2'), 200, 'verify-only key, its kid');
    check($p, $m->($k1, {}), 200, 'no kid: the signing key');
    check($p, $m->($k2, {}), 401, 'no kid, signed by the second key');
    check($p, $m->($k1, {}, kid => 'k3'), 401, 'unknown kid');
    check($p, $m->($k1, {}, kid => 'K1'), 401, 'kid differs in case');
    check($p, $m->($k2, {}, kid => 'k1'), 401, 'kid names another key');
    check($p, $m->($kx, {}, kid => 'k1'), 401, 'a stranger key');
    check($p, mint_jwt(undef, {%claims}, alg => 'none', header => { kid => 'k1' }), 401, 'alg none');
    check($p, $m->($k1, {}, kid => 'k1', alg => 'none'), 401, 'alg none over a valid signature');
    my ($oalg, $okey) = @{ $other{$alg} };
    check($p, mint_jwt($okey, {%claims}, alg => $oalg, header => { kid => 'k1' }), 401,
          "another algorithm ($oalg)");
    if ($pub1) {
        # HS/RS confusion: HMAC keyed with the public key the server holds
        my $pem = slurp($pub1);
        check($p, mint_jwt($pem, {%claims}, alg => 'HS256', header => { kid => 'k1' }), 401,
              'HS256 keyed with the public key (algorithm confusion)');
        (my $trim = $pem) =~ s/\s+\z//;
        check($p, mint_jwt($trim, {%claims}, alg => 'HS256'), 401,
              'HS256 keyed with the trimmed public key, no kid');
    }
    my $e = check($p, $m->($k1, { iat => '-7200', exp => '-3600' }, kid => 'k1'), 401, 'expired');
    is(($e->{json} // {})->{code}, 'token_expired', "$p: expired: token_expired");
    check($p, $m->($k1, { nbf => '+3600' }, kid => 'k1'), 401, 'nbf in the future');
    check($p, $m->($k1, { iat => '+3600', exp => '+7200' }, kid => 'k1'), 401, 'iat in the future');
    check($p, $m->($k1, { exp => undef }, kid => 'k1'), 401, 'no exp');
    check($p, $m->($k1, { iss => 'someone-else' }, kid => 'k1'), 401, 'wrong iss');
    check($p, $m->($k1, { aud => 'other-api' }, kid => 'k1'), 401, 'wrong aud');

    # a valid token with one signature byte changed
    my $v = $m->($k1, {}, kid => 'k1');
    my ($h, $c, $sig) = split /\./, $v;
    my $raw = b64url_decode($sig);
    substr($raw, 5, 1) = chr(ord(substr($raw, 5, 1)) ^ 1);
    check($p, "$h.$c." . base64url($raw), 401, 'one signature bit flipped');
    # the claims of another token under this signature
    my (undef, $c2) = split /\./, $m->($k1, { role => 'owner' }, kid => 'k1');
    check($p, "$h.$c2.$sig", 401, 'claims swapped under a valid signature');
}

# ES256 signatures are R||S (64 bytes) in JWS: the DER form is refused.
{
    my $tok = mint_jwt($k{ec1}, {%claims}, alg => 'ES256', header => { kid => 'k1' });
    my ($h, $c) = split /\./, $tok;
    my $in = "$h.$c";
    my $tmp = "$d/der-in";
    spew($tmp, $in);
    my $der = `openssl dgst -sha256 -binary -sign $k{ec1} $tmp`;
    ok(length $der > 64, 'openssl made a DER ECDSA signature');
    check('/es', "$in." . base64url($der), 401, 'ES256 with a DER signature');
}

# a single key without kid: tokens without kid verify; a kid is unknown
check('/rs-single', mint_jwt($k{rsa1}, {%claims}, alg => 'RS256'), 200, 'single key, no kid');
check('/rs-single', mint_jwt($k{rsa1}, {%claims}, alg => 'RS256', header => { kid => 'k1' }), 401,
      'single key without kid, token names one');

like($t->error_log, qr/JWT rejected: unknown kid/, 'unknown kid is logged');
like($t->error_log, qr/JWT rejected: algorithm not allowed/, 'algorithm pin is logged');

###########################################################################
# Rotation through nginx -s reload

my %rot = (a => 'A' x 48, b => 'B' x 48, b2 => 'C' x 48);
spew("$d/rot-a.key", $rot{a});
spew("$d/rot-b.key", $rot{b});
my $rot_conf = sub {
    my ($lines) = @_;
    return "location = /rot { taskmgr_auth_jwt on; $lines taskmgr_healthz; }";
};
my $tok = sub { my ($key, $kid) = @_; $t->jwt({%claims}, key => $key, header => { kid => $kid }) };

# reload, then wait until the old workers are gone (they still accept
# connections until they got the master's QUIT)
sub reload_done {
    my (%c) = @_;
    my %old = map { $_ => 1 } $t->worker_pids;
    my $ok = $t->reload(%c);
    return 0 unless $ok;
    my $deadline = time + 15;
    while (time < $deadline) {
        return 1 unless grep { $old{$_} } $t->worker_pids;
        select undef, undef, undef, 0.05;
    }
    return 0;
}

$t->stop;
$t->start(config => $rot_conf->("taskmgr_auth_jwt_key_file $d/rot-a.key kid=a;"));
my $old = $tok->($rot{a}, 'a');
check('/rot', $old, 200, 'before rotation: kid a');
check('/rot', $tok->($rot{b}, 'b'), 401, 'before rotation: kid b is unknown');

ok(reload_done(config => $rot_conf->("taskmgr_auth_jwt_key_file $d/rot-b.key kid=b; "
                                    . "taskmgr_auth_jwt_key_file $d/rot-a.key kid=a;")),
   'reload with b signing, a still listed');
check('/rot', $old, 200, 'after rotation: an old kid-a token still verifies');
check('/rot', $tok->($rot{b}, 'b'), 200, 'after rotation: kid b');
check('/rot', $t->jwt({%claims}, key => $rot{b}), 200, 'after rotation: no kid means b');
check('/rot', $t->jwt({%claims}, key => $rot{a}), 401, 'after rotation: no kid, signed by a');

ok(reload_done(config => $rot_conf->("taskmgr_auth_jwt_key_file $d/rot-b.key kid=b;")),
   'reload without a');
check('/rot', $old, 401, 'a removed: kid-a tokens are refused');
check('/rot', $tok->($rot{b}, 'b'), 200, 'a removed: kid b still verifies');

# the same file with new content: a reload reads it again
spew("$d/rot-b.key", $rot{b2});
ok(reload_done(), 'reload after rewriting rot-b.key');
check('/rot', $tok->($rot{b}, 'b'), 401, 'file rewritten: the old content no longer verifies');
check('/rot', $tok->($rot{b2}, 'b'), 200, 'file rewritten: the new content verifies');

# an RSA key under the same path, same config: the reload fails, old workers go on
spew("$d/rot-b.key", slurp($k{rsa1}));
ok(!$t->reload, 'a PEM key where HS256 wants a secret: the reload is refused');
check('/rot', $tok->($rot{b2}, 'b'), 200, 'refused reload: the running configuration still verifies');
$t->stop;
my @em = $t->error_log =~ /\[emerg\][^\n]*/g;
ok(scalar(grep { /holds a PEM key, but HS256 needs a shared secret/ } @em), 'the refused reload says why')
    or diag "@em";

###########################################################################
# Tokens the API issues: the configured algorithm, the signing key's kid,
# verifiable with the public key alone (openssl), and accepted by the API.

my $pw = "correct horse battery $t->{rand}";
my $n = 0;
for my $case (['RS256', $k{rsa1}, $k{rsa1_pub}], ['ES256', $k{ec1}, $k{ec1_pub}],
              ['EdDSA', $k{ed255191}, $k{ed255191_pub}], ['HS256', "$d/hs-a.key", undef]) {
    my ($alg, $priv, $pub) = @$case;
    my $keys = "taskmgr_auth_jwt_alg $alg; taskmgr_auth_jwt_key_file $priv kid=sig-$alg; "
             . ($pub ? "taskmgr_auth_jwt_key_file $pub kid=old-$alg;" : '');
    $t->start(config => <<"EOF");
location ~ ^/v1/auth/(register|login|refresh)\$ { $keys taskmgr_api; }
location /v1/ { taskmgr_auth_jwt on; $keys taskmgr_api; }
EOF
    $n++;
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => "k$n-$t->{rand}\@example.com", password => $pw, name => "K$n" });
    is($r->{status}, 201, "$alg: register") or diag $r->{body};
    my $at = ($r->{json} // {})->{access_token} // '';
    my ($h64, $c64, $s64) = split /\./, $at;
    my $hdr = eval { JSON::PP::decode_json(b64url_decode($h64 // '')) } // {};
    is($hdr->{alg}, $alg, "$alg: the issued token says alg $alg");
    is($hdr->{kid}, "sig-$alg", "$alg: and the signing key's kid");
    if ($pub) {
        spew("$d/in", "$h64.$c64");
        my $sig = b64url_decode($s64);
        my $ok;
        if ($alg eq 'EdDSA') {
            spew("$d/sig", $sig);
            $ok = system("openssl pkeyutl -verify -pubin -inkey $pub -rawin -in $d/in -sigfile $d/sig >/dev/null 2>&1") == 0;
        } else {
            if ($alg eq 'ES256') {
                is(length $sig, 64, 'ES256: the signature is raw R||S (64 bytes)');
                my @i = map { my $v = $_; $v =~ s/^\x00+//; $v = "\x00$v" if ord($v) & 0x80;
                              "\x02" . chr(length $v) . $v } substr($sig, 0, 32), substr($sig, 32);
                my $body = join '', @i;
                $sig = "\x30" . chr(length $body) . $body;
            }
            spew("$d/sig", $sig);
            $ok = system("openssl dgst -sha256 -verify $pub -signature $d/sig $d/in >/dev/null 2>&1") == 0;
        }
        ok($ok, "$alg: openssl verifies the issued token with the public key");
    }
    my $w = $t->request(GET => '/v1/workspaces', token => $at);
    is($w->{status}, 200, "$alg: the API accepts its own token") or diag $w->{body};
    $t->stop;
}

# A public key first in the list cannot sign: the issuing request fails
# with 500, and says why in the log.
$t->start(config => <<"EOF");
location ~ ^/v1/auth/(register|login|refresh)\$ {
    taskmgr_auth_jwt_alg ES256;
    taskmgr_auth_jwt_key_file $k{ec1_pub};
    taskmgr_api;
}
EOF
{
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => "pub-$t->{rand}\@example.com", password => $pw, name => 'Pub' });
    is($r->{status}, 500, 'a public signing key: register answers 500');
    like($t->error_log, qr/cannot issue a token: the signing key .* is a public key/,
         'a public signing key: logged');
}
$t->stop;

###########################################################################
# Start-up errors

my $mk = sub {
    my ($lines) = @_;
    return "location = /x { taskmgr_auth_jwt on; $lines taskmgr_healthz; }";
};
$t->{vars}{d} = $d;
my $blocks = '';
my @die = (
    ['RS256 with an EC key', "taskmgr_auth_jwt_alg RS256; taskmgr_auth_jwt_key_file $k{ec1};",
     'RS256 needs an RSA key'],
    ['RS256 with a 1024-bit RSA key', "taskmgr_auth_jwt_alg RS256; taskmgr_auth_jwt_key_file $d/rsa1024.pem;",
     'RS256 needs an RSA key of at least 2048 bits'],
    ['ES256 with an RSA key', "taskmgr_auth_jwt_alg ES256; taskmgr_auth_jwt_key_file $k{rsa1_pub};",
     'ES256 needs an EC key on the P-256 curve'],
    ['ES256 with a P-384 key', "taskmgr_auth_jwt_alg ES256; taskmgr_auth_jwt_key_file $d/p384.pem;",
     'ES256 needs an EC key on the P-256 curve'],
    ['EdDSA with an EC key', "taskmgr_auth_jwt_alg EdDSA; taskmgr_auth_jwt_key_file $k{ec1};",
     'EdDSA needs an Ed25519 key'],
    ['RS256 with an HMAC secret', "taskmgr_auth_jwt_alg RS256; taskmgr_auth_jwt_key_file $d/hs-a.key;",
     'holds no unencrypted PEM private or public key, which RS256 needs'],
    ['RS256 with a broken PEM', "taskmgr_auth_jwt_alg RS256; taskmgr_auth_jwt_key_file $d/garbage.pem;",
     'holds no unencrypted PEM private or public key'],
    ['HS256 with a PEM key', "taskmgr_auth_jwt_key_file $k{rsa1};",
     'holds a PEM key, but HS256 needs a shared secret'],
    ['two keys, one without kid', "taskmgr_auth_jwt_key_file $d/hs-a.key kid=a; taskmgr_auth_jwt_key_file $d/hs-b.key;",
     'every "taskmgr_auth_jwt_key_file" needs a kid='],
    ['the same kid twice', "taskmgr_auth_jwt_key_file $d/hs-a.key kid=a; taskmgr_auth_jwt_key_file $d/hs-b.key kid=a;",
     'duplicate JWT kid "a"'],
    ['a kid with a space', "taskmgr_auth_jwt_key_file $d/hs-a.key \"kid=a b\";",
     'a kid is 1 to 64 letters, digits'],
    ['an empty kid', "taskmgr_auth_jwt_key_file $d/hs-a.key kid=;",
     'expected kid=<id>'],
    ['another parameter', "taskmgr_auth_jwt_key_file $d/hs-a.key id=a;",
     'invalid parameter "id=a"'],
    ['alg in lower case', "taskmgr_auth_jwt_alg rs256; taskmgr_auth_jwt_key_file $k{rsa1};",
     'unsupported JWT algorithm "rs256"'],
);
my $i = 0;
for my $c (@die) {
    $i++;
    $blocks .= "=== TEST $i: $c->[0]\n--- must_die\n--- config\n" . $mk->($c->[1])
             . "\n--- error_log\n$c->[2]\n\n";
}
run_blocks($t, blocks => $blocks, config => $conf);
