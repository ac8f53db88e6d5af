# Unit tests of the test harness itself (no nginx, no database).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use JSON::PP ();
use MIME::Base64 ();
use Digest::SHA ();
use Taskmgr::Test qw(parse_blocks json_match mint_jwt base64url expand_vars
                     json_path default_server_block free_port);

my $JSON = JSON::PP->new->canonical;

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return MIME::Base64::decode_base64($s);
}

# ---------------------------------------------------------------- JWT ----
{
    my $key = 'a1b2c3' x 20;
    my $now = 1_700_000_000;
    my $jwt = mint_jwt($key, { sub => 'u1', tenant => 't1', nbf => '-10',
                               iss => undef }, now => $now);
    my @parts = split /\./, $jwt, -1;
    is(scalar @parts, 3, 'jwt has three parts');
    unlike($jwt, qr/[=+\/]/, 'jwt is base64url without padding');

    my $hdr = JSON::PP::decode_json(b64url_decode($parts[0]));
    is_deeply($hdr, { alg => 'HS256', typ => 'JWT' }, 'jwt header');

    my $c = JSON::PP::decode_json(b64url_decode($parts[1]));
    is($c->{sub}, 'u1', 'claim sub');
    is($c->{aud}, 'taskmgr-api', 'default aud');
    ok(!exists $c->{iss}, 'claim set to undef is removed');
    is($c->{iat}, $now, 'default iat = now');
    is($c->{exp}, $now + 300, 'default exp = now + 300');
    is($c->{nbf}, $now - 10, '"-10" becomes now - 10');
    like(b64url_decode($parts[1]), qr/"exp":\d+[,}]/, 'exp is a JSON number');

    my $sig = Digest::SHA::hmac_sha256("$parts[0].$parts[1]", $key);
    is(b64url_decode($parts[2]), $sig, 'HS256 signature verifies with the raw key');

    my $c2 = JSON::PP::decode_json(b64url_decode(
        (split /\./, mint_jwt($key, { exp => '+60', iss => 'other' }, now => $now))[1]));
    is($c2->{exp}, $now + 60, '"+60" becomes now + 60');
    is($c2->{iss}, 'other', 'given claims override defaults');

    my $none = mint_jwt($key, {}, alg => 'none');
    like($none, qr/^[\w-]+\.[\w-]+\.$/, 'alg none: empty signature');
    my @p512 = split /\./, mint_jwt($key, {}, alg => 'HS512');
    is(b64url_decode($p512[2]), Digest::SHA::hmac_sha512("$p512[0].$p512[1]", $key),
       'HS512 signature');
    is(base64url("\xfb\xff"), '-_8', 'base64url alphabet');
}

# ------------------------------------------------------------- blocks ----
{
    my $text = <<'EOF';
ignored preamble
=== TEST 1: create a task
--- jwt: {"sub":"u1","exp":"+300"}
--- request
POST /v1/tasks
{"title":"write tests"}

--- more_headers
X-A: 1
X-B: two words
--- error_code: 201
--- response_json_like: {"id":"/^\\d+$/"}
--- capture
task_id = id
loc = header:location

=== TEST 2: second
--- ONLY
--- request
GET /v1/tasks/{{task_id}}
--- error_code: 200
EOF
    my $b = parse_blocks($text);
    is(scalar @$b, 2, 'two blocks');
    is($b->[0]{name}, 'TEST 1: create a task', 'block name');
    is($b->[0]{n}, 1, 'block number');
    my $s = $b->[0]{sections};
    is($s->{jwt}, '{"sub":"u1","exp":"+300"}', 'inline section value');
    is($s->{request}, qq{POST /v1/tasks\n{"title":"write tests"}},
       'multi-line value, trailing blank lines and final newline trimmed');
    is($s->{more_headers}, "X-A: 1\nX-B: two words", 'more_headers');
    is($s->{error_code}, '201', 'error_code');
    is($s->{response_json_like}, '{"id":"/^\\\\d+$/"}', 'json_like raw text');
    is($s->{capture}, "task_id = id\nloc = header:location", 'capture');
    ok(exists $b->[1]{sections}{ONLY}, 'flag section');
    is_deeply($b->[0]{order},
              [qw(jwt request more_headers error_code response_json_like capture)],
              'section order');

    ok(!eval { parse_blocks("=== TEST 1: x\n--- error_code: 200\n--- error_code: 201\n"); 1 },
       'a section given twice is an error');
    ok(!eval { parse_blocks("=== TEST 1: x\n--- error_code: 200\nstray\n"); 1 },
       'lines after an inline value are an error');

    is(expand_vars('GET /v1/tasks/{{task_id}}?r={{ rand }}', { task_id => 42, rand => 'ab' }),
       'GET /v1/tasks/42?r=ab', 'expand_vars');
    ok(!eval { expand_vars('{{nope}}', {}); 1 }, 'unknown variable dies');
    like($@, qr/unknown variable \{\{nope\}\}/, '... with its name');

    my $data = { access_token => 'tok', user => { id => 7 }, data => [ { id => 'a' }, { id => 'b' } ] };
    is_deeply([ json_path($data, 'user.id') ], [ 1, 7 ], 'json_path object');
    is_deeply([ json_path($data, 'data.1.id') ], [ 1, 'b' ], 'json_path array');
    is_deeply([ json_path($data, 'access_token') ], [ 1, 'tok' ], 'json_path top level');
    is((json_path($data, 'data.5.id'))[0], 0, 'json_path out of range');
    is((json_path($data, 'user.name'))[0], 0, 'json_path missing key');
}

# --------------------------------------------------------- json_match ----
{
    my $d = sub { JSON::PP->new->decode($_[0]) };
    my @like_ok = (
        [ '{"id":12,"title":"t","extra":1}', '{"id":"/^\\\\d+$/","title":"t"}', 'regex leaf on a number, extra keys ignored' ],
        [ '{"items":[{"a":1,"b":2},{"a":3}]}', '{"items":[{"a":1}]}', 'array compared on the expected length' ],
        [ '{"items":[]}', '{"items":[]}', 'empty array matches empty array' ],
        [ '{"ok":true,"n":null}', '{"ok":true,"n":null}', 'booleans and null' ],
        [ '{"s":"abc"}', '{"s":"/b/"}', 'regex leaf on a string' ],
        [ '{"b":false}', '{"b":"/^false$/"}', 'regex leaf on a boolean' ],
    );
    for (@like_ok) {
        my ($ok, $msg) = json_match($d->($_->[0]), $d->($_->[1]), like => 1);
        ok($ok, "json_like matches: $_->[2]") or diag $msg;
    }
    my @like_bad = (
        [ '{"id":"x12"}', '{"id":"/^\\\\d+$/"}', 'regex does not match', qr/\$\.id: "x12" does not match/ ],
        [ '{"items":[1]}', '{"items":[]}', 'expected [] but got elements', qr/expected 0 elements, got 1/ ],
        [ '{"items":[1]}', '{"items":[1,2]}', 'too few elements', qr/at least 2/ ],
        [ '{"a":1}', '{"b":1}', 'missing key', qr/\$\.b: missing/ ],
        [ '{"a":"1"}', '{"a":1}', 'string vs number', qr/expected 1, got "1"/ ],
        [ '{"a":1}', '{"a":true}', 'number vs boolean', qr/expected true, got 1/ ],
        [ '{"a":null}', '{"a":"/x/"}', 'regex vs null', qr/matching/ ],
        [ '{"a":{"b":[{"c":1}]}}', '{"a":{"b":[{"c":2}]}}', 'nested path in message', qr/\$\.a\.b\[0\]\.c: expected 2, got 1/ ],
        [ '[1,2]', '{"a":1}', 'array vs object', qr/expected an object/ ],
    );
    for (@like_bad) {
        my ($ok, $msg) = json_match($d->($_->[0]), $d->($_->[1]), like => 1);
        ok(!$ok, "json_like rejects: $_->[2]");
        like($msg, $_->[3], "... message for: $_->[2]");
    }

    my ($ok, $msg) = json_match($d->('{"a":1,"b":[1,2]}'), $d->('{"b":[1,2],"a":1}'));
    ok($ok, 'exact match, key order irrelevant') or diag $msg;
    ($ok, $msg) = json_match($d->('{"a":1,"b":2}'), $d->('{"a":1}'));
    ok(!$ok, 'exact match rejects extra keys');
    like($msg, qr/\$\.b: unexpected key/, '... and names them');
    ($ok) = json_match($d->('{"a":[1,2,3]}'), $d->('{"a":[1,2]}'));
    ok(!$ok, 'exact match compares array lengths');
    ($ok) = json_match($d->('{"a":"/x/"}'), $d->('{"a":"/x/"}'));
    ok($ok, 'exact match takes "/x/" literally');
    ($ok) = json_match($d->('{"a":"x"}'), $d->('{"a":"/x/"}'));
    ok(!$ok, '... so it does not act as a regex');
}

# ------------------------------------------------------- conf rendering ----
{
    my $server = default_server_block();
    like($server, qr/location = \/healthz \{ taskmgr_healthz; \}/, 'default server: healthz');
    like($server, qr/taskmgr_auth_jwt on;/, 'default server: /v1/ needs a token');
    unlike($server, qr/\blisten\b/, 'default server has no listen');
    unlike($server, qr/#/, 'default server has no comments');

    my $t = Taskmgr::Test->new(offline => 1, name => 'harness');
    ok(-d $t->dir, 'offline object has a directory');
    like($t->db, qr/^t_harness_\d+$/, 'database name');
    my $conf = $t->render_conf(
        http_config => "taskmgr_pg_pool_size 1;\n# no taskmgr_request_id here",
        main_config => 'thread_pool taskmgr_pw threads=8;',
        workers     => 2,
    );
    like($conf, qr/^worker_processes 2;$/m, 'workers');
    like($conf, qr/^load_module \S+\.so;$/m, 'load_module');
    like($conf, qr/taskmgr_pg_pool_size 1;/, 'http_config is emitted');
    unlike($conf, qr/taskmgr_pg_pool_size 4;/, '... and replaces the default line');
    unlike($conf, qr/^\s*taskmgr_request_id on;/m, 'a mention in a comment drops a default');
    is(() = $conf =~ /^thread_pool /mg, 1, 'main_config replaces the default thread_pool');
    like($conf, qr/taskmgr_pg_dsn "hostaddr=127\.0\.0\.1 port=\d+ dbname=t_harness_\d+ user=taskmgr_app";/,
         'pg dsn');
    like($conf, qr/listen 127\.0\.0\.1:\d+;/, 'listen');
    like($conf, qr/\$taskmgr_request_id/, 'access log format has the request id');
    unlike($conf, qr/http_authorization/, '... and no Authorization header');

    my $c2 = $t->render_conf(config => 'location /x { return 200 "%%PORT%% %%TESTDIR%%"; }');
    my ($port, $dir) = ($t->port, $t->dir);
    like($c2, qr/return 200 "$port \Q$dir\E";/, 'placeholders are substituted');
    unlike($c2, qr/taskmgr_healthz/, 'config replaces the default server block');

    ok(free_port() > 0, 'free_port');
}

done_testing();
