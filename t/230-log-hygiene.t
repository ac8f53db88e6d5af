# Log hygiene: register, login (right and wrong password), refresh, refresh
# reuse, logout and requests with good, revoked and forged tokens, with the
# access log in nginx's default "combined" format and error_log at info and
# then at debug level.  No password, access token, token signature, refresh
# token or the JWT key may show up in any log, with one exception at debug
# level that nginx itself makes: its "http header:" debug lines print every
# request header, Authorization included (docs/directives.md: never run
# error_log debug in production).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test qw(default_server_block);

my $t = Taskmgr::Test->new;
my $d = $t->dir;
my $rand = $t->{rand};

sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return '';
    local $/;
    return <$fh> // '';
}

# Every log nginx wrote into the test directory.
sub all_logs {
    return join "\n", map { slurp($_) } grep { -f } glob("$d/*.log"), "$d/nginx.stderr";
}

sub run_flow {
    my ($tag) = @_;
    my (%secret, @flow);
    my $email = "hyg-$tag-$rand\@example.com";
    $secret{password} = "correct horse battery staple $tag $rand";
    $secret{wrong_password} = "wrong horse battery staple $tag $rand";
    $secret{new_password} = "new horse battery staple $tag $rand";

    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => $email, password => $secret{password}, name => "Hyg $tag" });
    is($r->{status}, 201, "$tag: register") or diag $r->{body};
    $secret{register_access} = $r->{json}{access_token} // 'x';
    $secret{register_refresh} = $r->{json}{refresh_token} // 'x';

    $r = $t->request(POST => '/v1/auth/login', body => {
        email => $email, password => $secret{wrong_password} });
    is($r->{status}, 401, "$tag: login with a wrong password");

    $r = $t->request(POST => '/v1/auth/login', body => {
        email => $email, password => $secret{password} });
    is($r->{status}, 200, "$tag: login") or diag $r->{body};
    $secret{login_access} = $r->{json}{access_token} // 'x';
    $secret{login_refresh} = $r->{json}{refresh_token} // 'x';

    $r = $t->request(GET => '/v1/workspaces', token => $secret{login_access});
    is($r->{status}, 200, "$tag: an authenticated read");

    $r = $t->request(POST => '/v1/auth/refresh', body => { refresh_token => $secret{login_refresh} });
    is($r->{status}, 200, "$tag: refresh") or diag $r->{body};
    $secret{refreshed_access} = $r->{json}{access_token} // 'x';
    $secret{refreshed_refresh} = $r->{json}{refresh_token} // 'x';

    $r = $t->request(POST => '/v1/auth/refresh', body => { refresh_token => $secret{login_refresh} });
    is($r->{status}, 401, "$tag: refresh token reuse");

    # a forged token (our claims, another key), and a malformed one
    $secret{forged} = $t->jwt({ sub => '0195d0a4-6b1e-7c2a-9f00-1234567890ab' },
                              key => "forger-key-$tag-$rand" x 2);
    $r = $t->request(GET => '/v1/workspaces', token => $secret{forged});
    is($r->{status}, 401, "$tag: forged token");
    $secret{garbage} = "garbage$rand$tag.garbage.garbage";
    $r = $t->request(GET => '/v1/workspaces', token => $secret{garbage});
    is($r->{status}, 401, "$tag: garbage token");
    # credentials in another scheme
    $secret{basic} = "QmFzaWM$rand$tag";
    $r = $t->request(GET => '/v1/workspaces', headers => { Authorization => "Basic $secret{basic}" });
    is($r->{status}, 401, "$tag: Basic credentials");

    $r = $t->request(POST => '/v1/auth/logout', token => $secret{register_access});
    is($r->{status}, 204, "$tag: logout") or diag $r->{body};

    # a validation error that echoes nothing back into the logs
    $r = $t->request(POST => '/v1/auth/register', body => {
        email => "bad-$tag-$rand", password => $secret{new_password}, name => 'X' });
    like($r->{status}, qr/^4/, "$tag: register with a bad email is refused");

    # the JWT key itself
    $secret{jwt_key} = $t->jwt_key;

    # the signature part of every token on its own, too
    for my $k (grep { /access|forged/ } keys %secret) {
        my $sig = (split /\./, $secret{$k})[2];
        $secret{"$k signature"} = $sig if defined $sig && length $sig > 16;
    }
    return %secret;
}

# the lines that hold a secret, by secret name
sub leaks {
    my ($logs, %secret) = @_;
    my %found;
    for my $name (sort keys %secret) {
        my $s = $secret{$name};
        next unless length $s >= 16;
        my @lines = grep { index($_, $s) >= 0 } split /\n/, $logs;
        $found{$name} = \@lines if @lines;
    }
    return %found;
}

my $server = default_server_block();
my $http = "access_log $d/combined.log combined;\n";

###########################################################################
# info

$t->start(config => $server, http_config => $http, log_level => 'info');
my %s = run_flow('info');
$t->stop;
my $logs = all_logs();
like(slurp("$d/combined.log"), qr{"POST /v1/auth/login HTTP/1\.1" 200 }, 'info: the combined access log was written');
like($logs, qr/taskmgr: JWT rejected/, 'info: rejections are logged');
my %l = leaks($logs, %s);
is_deeply([sort keys %l], [], 'info: no secret in any log')
    or diag explain \%l;

###########################################################################
# debug

unlink glob("$d/*.log");
$t->start(config => $server, http_config => $http, log_level => 'debug');
%s = run_flow('debug');
$t->stop;
$logs = all_logs();
like($logs, qr/\[debug\]/, 'debug: the error log is at debug level');

%l = leaks($logs, %s);
# nginx core prints every request header line at debug level; bodies
# (passwords, refresh tokens) and everything of our own stay out.
my %ours;
for my $name (keys %l) {
    my @bad = grep { !/\bhttp header: "Authorization: / } @{ $l{$name} };
    $ours{$name} = \@bad if @bad;
}
# the grep finds what is there: nginx's header dump does hold the bearer token
ok(exists $l{login_access}, 'debug: (sanity) the search finds the token in nginx\'s header dump');
is_deeply([sort keys %ours], [], 'debug: no secret in any log line but nginx\'s own header dump')
    or diag explain \%ours;
for my $name (grep { /password|refresh|jwt_key/ } sort keys %s) {
    ok(!exists $l{$name}, "debug: $name appears nowhere, not even in nginx's debug lines");
}

$t->done;
