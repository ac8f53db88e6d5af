# Configuration errors: nginx must refuse to start with a clear [emerg] that
# names the problem, and never echo a secret while doing so.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;

my $t = Taskmgr::Test->new;

# Key files for the blocks below (%%TESTDIR%% in the config).
sub spew {
    my ($file, $content) = @_;
    open my $fh, '>:raw', $file or die "$file: $!";
    print {$fh} $content;
    close $fh or die "$file: $!";
}
spew($t->dir . '/short.key', ('k' x 31) . "\n");     # 31 bytes once trimmed
spew($t->dir . '/exact.key', ('k' x 32) . "\n");     # 32 bytes: the minimum
spew($t->dir . '/empty_pw', '');

# A DSN password must never be echoed in the refusal.
my $dsn_secret = "Pw-$t->{rand}-SeCrEt";
$t->var(dsn_secret => $dsn_secret);

run_blocks($t, no_done => 1);

# The refusals above must not have printed the DSN password anywhere.
{
    my $all = '';
    for my $f (glob($t->dir . '/*.must_die.*')) {
        open my $fh, '<:raw', $f or next;
        local $/;
        $all .= <$fh> // '';
    }
    ok(length $all, 'the refusals left their logs');
    unlike($all, qr/\Q$dsn_secret\E/, 'the DSN password is never echoed in a refusal');
}

$t->done;

__DATA__

=== TEST 1: the default configuration starts (control for the refusals below)
--- request
GET /healthz
--- error_code: 200
--- response_json: {"status":"ok"}

=== TEST 2: taskmgr_pg_dsn with host=<name>: a DNS lookup would block the worker
--- must_die
--- http_config
taskmgr_pg_dsn "host=localhost port=%%PG_PORT%% dbname=%%PG_DB%% user=taskmgr_app";
--- error_log
[emerg]
taskmgr_pg_dsn: use "hostaddr=<ip>" or a unix socket directory instead of "host=localhost"

=== TEST 3: taskmgr_pg_dsn with host= an IP literal is refused too (hostaddr is the way)
--- must_die
--- http_config
taskmgr_pg_dsn "host=127.0.0.1 port=%%PG_PORT%% dbname=%%PG_DB%% user=taskmgr_app";
--- error_log
~\[emerg\].*use "hostaddr=<ip>".*"host=127\.0\.0\.1"

=== TEST 4: a unix socket directory as host is accepted
--- http_config
taskmgr_pg_dsn "host=%%PG_SOCKDIR%% port=%%PG_PORT%% dbname=%%PG_DB%% user=taskmgr_app";
--- request
GET /healthz
--- error_code: 200

=== TEST 5: a password in the DSN is refused (use taskmgr_pg_password_file)
--- must_die
--- http_config
taskmgr_pg_dsn "hostaddr=127.0.0.1 port=%%PG_PORT%% dbname=%%PG_DB%% user=taskmgr_app password={{dsn_secret}}";
--- error_log
[emerg]
taskmgr_pg_dsn must not hold a password, use taskmgr_pg_password_file

=== TEST 6: a DSN libpq cannot parse
--- must_die
--- http_config
taskmgr_pg_dsn "hostaddr=127.0.0.1 nosuchkeyword=1";
--- error_log
~\[emerg\] .*taskmgr_pg_dsn is invalid: .*nosuchkeyword

=== TEST 7: an empty password file
--- must_die
--- http_config
taskmgr_pg_password_file %%TESTDIR%%/empty_pw;
--- error_log
~\[emerg\] .*taskmgr_pg_password_file ".*empty_pw" must hold 1 to 4096 bytes

=== TEST 8: taskmgr_auth_jwt on without any key file
--- must_die
--- http_config
# no taskmgr_auth_jwt_key_file at all
--- config
location /v1/ { taskmgr_auth_jwt on; taskmgr_api; }
--- error_log
[emerg]
"taskmgr_auth_jwt" is on but no "taskmgr_auth_jwt_key_file" is defined for it

=== TEST 9: a key file that does not exist
--- must_die
--- http_config
taskmgr_auth_jwt_key_file %%TESTDIR%%/no-such.key;
--- error_log
~\[emerg\] .*taskmgr: open\(\) ".*no-such\.key" failed

=== TEST 10: a key shorter than 32 bytes (trailing newline trimmed)
--- must_die
--- http_config
taskmgr_auth_jwt_key_file %%TESTDIR%%/short.key;
--- error_log
~\[emerg\] .*taskmgr: key in ".*short\.key" is shorter than 32 bytes

=== TEST 11: a key of exactly 32 bytes is enough
--- http_config
taskmgr_auth_jwt_key_file %%TESTDIR%%/exact.key;
--- request
GET /v1/me
--- error_code: 401
--- response_json_like: {"code":"unauthorized","status":401}

=== TEST 12: taskmgr_auth_jwt_alg with an unknown algorithm
--- must_die
--- http_config
taskmgr_auth_jwt_alg RS999;
--- error_log
[emerg]
taskmgr: unsupported JWT algorithm "RS999"

=== TEST 13: taskmgr_auth_jwt_alg none is not an algorithm one can choose
--- must_die
--- http_config
taskmgr_auth_jwt_alg none;
--- error_log
taskmgr: unsupported JWT algorithm "none"

=== TEST 14: taskmgr_auth_jwt_ttl 0
--- must_die
--- http_config
taskmgr_auth_jwt_ttl 0;
--- error_log
~\[emerg\] .*"taskmgr_auth_jwt_ttl" directive must be at least 1s

=== TEST 15: taskmgr_pg_pool_size 0
--- must_die
--- http_config
taskmgr_pg_pool_size 0;
--- error_log
~\[emerg\] .*value must be between 1 and 1024 in .*nginx\.conf:\d+

=== TEST 16: taskmgr_pg_pool_size that is not a number
--- must_die
--- http_config
taskmgr_pg_pool_size many;
--- error_log
~\[emerg\] .*"taskmgr_pg_pool_size" directive invalid number

=== TEST 17: taskmgr_argon2 with an unknown parameter
--- must_die
--- http_config
taskmgr_argon2 t_cost=1 m_cost=8192 threads=4;
--- error_log
~\[emerg\] .*invalid parameter "threads=4" in .*nginx\.conf:\d+

=== TEST 18: taskmgr_argon2 with a value out of range
--- must_die
--- http_config
taskmgr_argon2 t_cost=1 m_cost=4;
--- error_log
~\[emerg\] .*invalid value in "m_cost=4" \(8\.\.4194304\)

=== TEST 19: taskmgr_argon2 with a value that is not a number
--- must_die
--- http_config
taskmgr_argon2 t_cost=two;
--- error_log
~\[emerg\] .*invalid value in "t_cost=two" \(1\.\.100\)

=== TEST 20: client_body_buffer_size smaller than taskmgr_api_max_body_size (http level)
--- must_die
--- http_config
client_body_buffer_size 16k;
--- error_log
[emerg]
client_body_buffer_size (16384) must be at least taskmgr_api_max_body_size (1048576)

=== TEST 21: ... and inside the taskmgr_api location
--- must_die
--- config
location /v1/ {
    client_body_buffer_size 8k;
    taskmgr_api_max_body_size 64k;
    taskmgr_auth_jwt on;
    taskmgr_api;
}
--- error_log
client_body_buffer_size (8192) must be at least taskmgr_api_max_body_size (65536)

=== TEST 22: a matching pair in the location starts
--- config
location /v1/ {
    client_body_buffer_size 64k;
    taskmgr_api_max_body_size 64k;
    taskmgr_auth_jwt on;
    taskmgr_api;
}
--- request
GET /v1/me
--- error_code: 401

=== TEST 23: client_max_body_size smaller than taskmgr_api_max_body_size
--- must_die
--- http_config
client_max_body_size 512k;
--- error_log
client_max_body_size must be at least taskmgr_api_max_body_size (1048576)

=== TEST 24: taskmgr_api twice in one location
--- must_die
--- config
location /v1/ { taskmgr_api; taskmgr_api; }
--- error_log
~\[emerg\] .*"taskmgr_api" directive is duplicate or conflicts with another content handler

=== TEST 25: taskmgr_api after another content handler (proxy_pass)
--- must_die
--- config
location /v1/ { proxy_pass http://127.0.0.1:9; taskmgr_api; }
--- error_log
~\[emerg\] .*"taskmgr_api" directive is duplicate or conflicts with another content handler

=== TEST 26: taskmgr_api together with taskmgr_healthz
--- must_die
--- config
location /v1/ { taskmgr_healthz; taskmgr_api; }
--- error_log
~\[emerg\] .*"taskmgr_api" directive is duplicate or conflicts

=== TEST 27: taskmgr_api before another content handler (proxy_pass) is refused too
--- must_die
--- config
location /v1/ { taskmgr_api; proxy_pass http://127.0.0.1:9; }
--- error_log
[emerg]

=== TEST 28: taskmgr_refresh_ttl below one minute
--- must_die
--- http_config
taskmgr_refresh_ttl 10s;
--- error_log
taskmgr_refresh_ttl must be between 1m and 365d

=== TEST 29: taskmgr_search_offset_max 0
--- must_die
--- http_config
taskmgr_search_offset_max 0;
--- error_log
taskmgr_search_offset_max must be between 1 and 100000

=== TEST 30: taskmgr_search_offset_max past the offset limit
--- must_die
--- http_config
taskmgr_search_offset_max 100001;
--- error_log
taskmgr_search_offset_max must be between 1 and 100000

=== TEST 31: taskmgr_search_offset_max that is not a number
--- must_die
--- http_config
taskmgr_search_offset_max many;
--- error_log
~\[emerg\] .*"taskmgr_search_offset_max" directive invalid number
