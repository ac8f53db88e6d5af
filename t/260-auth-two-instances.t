# Ending sessions takes effect on the very next request on every nginx
# instance, access tokens included: two instances share PostgreSQL and
# Redis, the second serves the caller from its read cache (no PostgreSQL),
# and logout-all / DELETE of a session / password change on the first make
# the second refuse the still-unexpired access tokens at once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task wait_until);

my $http = "    taskmgr_cache on;\n    taskmgr_cache_ttl 60s;\n";
my $conf = <<'EOF';
        location /v1/auth/ {
            taskmgr_api;
        }
        location /v1/ {
            taskmgr_auth_jwt on;
            taskmgr_api;
        }
EOF
my $t1 = Taskmgr::Test->new(name => 'two-a');
my $t2 = Taskmgr::Test->new(name => 'two-b');
$t1->start(http_config => $http, config => $conf);
# the second instance uses the first one's database (each test instance
# has its own otherwise)
$t2->start(http_config => $http . '    taskmgr_pg_dsn "' . $t1->pg_dsn . "\";\n",
           config => $conf);

my $u = setup_user($t1);
create_task($t1, $u, 'seen on both');
my $list = "/v1/workspaces/$u->{ws}/tasks?limit=10";

sub login {
    my ($t, $email, $password) = @_;
    my $r = $t->request(POST => '/v1/auth/login',
                        body => { email => $email, password => $password });
    is($r->{status}, 200, "login on $t->{name}") or diag $r->{body};
    return $r->{json}{access_token};
}

# the token reads from the second instance's cache: a hit, no PostgreSQL
sub cached_on_two {
    my ($tok, $what) = @_;
    ok(wait_until(5, sub {
        my $r = $t2->request(GET => $list, token => $tok);
        ($r->{headers}{'x-cache'} // '') eq 'HIT';
    }), "$what: the token reads from the second instance's cache");
}

my $pw = 'correct horse battery staple';

# --- logout-all -----------------------------------------------------------
my $a = login($t1, $u->{email}, $pw);
cached_on_two($a, 'logout-all');
is($t1->request(POST => '/v1/auth/logout-all', token => $a)->{status}, 204,
   'logout-all on the first instance');
my $r = $t2->request(GET => $list, token => $a);
is($r->{status}, 401, 'logout-all: the second instance refuses the token at once');
like($r->{body}, qr/revoked/, '... as revoked');
my $fresh = login($t1, $u->{email}, $pw);
is($t2->request(GET => $list, token => $fresh)->{status}, 200,
   'a login right after logout-all works on the second instance');

# --- DELETE of one session ------------------------------------------------
my $b = login($t1, $u->{email}, $pw);
cached_on_two($b, 'DELETE session');
my $sessions = $t1->request(GET => '/v1/auth/sessions', token => $fresh);
my ($sb) = map { $_->{id} } grep { !$_->{current} } @{ $sessions->{json}{data} || [] };
ok($sb, 'the other session is listed');
is($t1->request(DELETE => "/v1/auth/sessions/$sb", token => $fresh)->{status}, 204,
   'DELETE of the session on the first instance');
is($t2->request(GET => $list, token => $b)->{status}, 401,
   'DELETE session: the second instance refuses its token at once');
is($t2->request(GET => $list, token => $fresh)->{status}, 200,
   '... the caller\'s own session goes on');

# --- password change ------------------------------------------------------
my $c = login($t1, $u->{email}, $pw);
cached_on_two($c, 'password change');
my $new = 'a brand new passphrase 42';
is($t1->request(POST => '/v1/auth/password', token => $fresh,
                body => { current_password => $pw, new_password => $new })->{status},
   204, 'password change on the first instance');
is($t2->request(GET => $list, token => $c)->{status}, 401,
   'password change: the second instance refuses the other session\'s token at once');
is($t2->request(GET => $list, token => $fresh)->{status}, 200,
   '... the session that changed it goes on');

$t2->stop;
unlike($t2->error_log, qr/\[(?:alert|crit|emerg)\]/, 'second instance: no [alert], [crit] or [emerg]');
$t1->done;
