# The read cache in Redis: hits and misses, read-your-writes, tenant and
# session isolation, Redis down (bypass) and back, no cross-tenant leak.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use POSIX ();
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task wait_until);

my $t = Taskmgr::Test->new(name => 'cache');
# writes while Redis is down are tested below: the revocation check lets
# them through ("accept"; the default "reads" would refuse them, see t/230)
$t->start(http_config => 'taskmgr_cache on; taskmgr_cache_ttl 30s; '
                       . 'taskmgr_auth_revocation_fallback accept;');

sub get {
    my ($path, $u, %h) = @_;
    return $t->request(GET => $path, token => $u->{token}, headers => \%h);
}

# fire-and-forget stores land a moment after the answer: poll for the hit
sub until_hit {
    my ($path, $u) = @_;
    my $r;
    wait_until(3, sub {
        $r = get($path, $u);
        return ($r->{headers}{'x-cache'} // '') eq 'HIT';
    });
    return $r;
}

my $a = setup_user($t);
my $b = setup_user($t);
my $id = create_task($t, $a, 'first');
my $task = "/v1/workspaces/$a->{ws}/tasks/$id";
my $list = "/v1/workspaces/$a->{ws}/tasks?limit=10";

# --- a task: MISS, then HIT with the same bytes --------------------------
my $miss = get($task, $a);
is($miss->{status}, 200, 'task: first read 200');
is($miss->{headers}{'x-cache'}, 'MISS', 'task: first read is a MISS');

my $hit = until_hit($task, $a);
is($hit->{headers}{'x-cache'}, 'HIT', 'task: a later read is a HIT');
is($hit->{body}, $miss->{body}, 'task: the hit answers the same bytes');
is($hit->{headers}{etag}, $miss->{headers}{etag}, 'task: same ETag');
like($hit->{headers}{'cache-control'} // '', qr/private/,
     'task: Cache-Control private on a hit');

my $nm = get($task, $a, 'If-None-Match' => $miss->{headers}{etag});
is($nm->{status}, 304, 'task: If-None-Match on a hit is 304');
is($nm->{headers}{'x-cache'}, 'HIT', 'task: the 304 came from the cache');

# --- read your writes -----------------------------------------------------
my $p = $t->request(PATCH => $task, token => $a->{token},
                    body => { title => 'second' });
is($p->{status}, 200, 'patch 200');
my $after = get($task, $a);
is($after->{json}{title}, 'second', 'the write is read back at once');
is($after->{headers}{'x-cache'}, 'MISS', 'after a write: MISS');
my $hit2 = until_hit($task, $a);
is($hit2->{json}{title}, 'second', 'the new hit holds the new title');

# --- a list ---------------------------------------------------------------
my $l1 = get($list, $a);
is($l1->{headers}{'x-cache'}, 'MISS', 'list: MISS');
my $l2 = until_hit($list, $a);
is($l2->{body}, $l1->{body}, 'list: the hit answers the same bytes');
my $id2 = create_task($t, $a, 'third');
my $l3 = get($list, $a);
is($l3->{headers}{'x-cache'}, 'MISS', 'list after a create: MISS');
is($l3->{json}{data}[0]{id}, $id2, 'list after a create shows the new task');

# --- another tenant never reads the cached entry --------------------------
my $xb = get($task, $b);
is($xb->{status}, 404, 'another tenant: 404 on a cached task');
unlike($xb->{body}, qr/second/, 'another tenant: nothing of the task leaks');
my $xl = get($list, $b);
is($xl->{status}, 404, 'another tenant: 404 on a cached list');

# --- a viewer reads the same representation, still cannot write ----------
$t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role)
           VALUES ($1, $2, 'viewer')}, $a->{ws}, $b->{user_id});
my $v = get($task, $b);
is($v->{status}, 200, 'a viewer reads the task');
is($v->{json}{id}, $id, 'the viewer gets the same task');
my $vw = $t->request(PATCH => $task, token => $b->{token},
                     body => { title => 'viewer' });
is($vw->{status}, 403, 'the viewer still cannot write');

# --- logout: the token stops reading cached data at once ------------------
until_hit($task, $a);
my $lo = $t->request(POST => '/v1/auth/logout', token => $a->{token});
is($lo->{status}, 204, 'logout 204');
my $dead = get($task, $a);
is($dead->{status}, 401, 'a logged-out token gets 401, not a cached hit');

# --- keys are hash-tagged per tenant --------------------------------------
my $keys = $t->redis_cli('--scan', '--pattern', "tmk:{$a->{ws}}:*");
like($keys, qr/^tmk:\{\Q$a->{ws}\E\}:gen$/m, 'the generation key is tagged');
like($keys, qr/^tmk:\{\Q$a->{ws}\E\}:c:\d+:t:\Q$id\E$/m,
     'entries are keyed by tenant, generation and route');

# --- concurrent writers each read their own write -------------------------
my $c = setup_user($t);
my @ids = map { create_task($t, $c, "w$_") } 1 .. 20;
get("/v1/workspaces/$c->{ws}/tasks/$_", $c) for @ids;   # warm the cache
my @kids;
for my $i (0 .. $#ids) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $path = "/v1/workspaces/$c->{ws}/tasks/$ids[$i]";
        my $ok = 1;
        for my $round (1 .. 5) {
            my $want = "writer $i round $round";
            my $w = $t->request(PATCH => $path, token => $c->{token},
                                body => { title => $want });
            my $r = $t->request(GET => $path, token => $c->{token});
            $ok = 0 unless $w->{status} == 200 && $r->{status} == 200
                           && $r->{json}{title} eq $want;
        }
        POSIX::_exit($ok ? 0 : 1);
    }
    push @kids, $pid;
}
my $bad = 0;
for (@kids) { waitpid($_, 0); $bad++ if $? != 0 }
is($bad, 0, '20 concurrent writers each read their own write');

# --- Redis down: reads bypass the cache and stay correct ------------------
$t->redis_stop;
my $by = get("/v1/workspaces/$c->{ws}/tasks/$ids[0]", $c);
is($by->{status}, 200, 'Redis down: the read still answers');
is($by->{headers}{'x-cache'}, 'BYPASS', 'Redis down: X-Cache BYPASS');
is($by->{json}{title}, 'writer 0 round 5', 'Redis down: fresh data');
my $wd = $t->request(PATCH => "/v1/workspaces/$c->{ws}/tasks/$ids[0]",
                     token => $c->{token}, body => { title => 'no redis' });
is($wd->{status}, 200, 'Redis down: writes still succeed');
$t->redis_start;
my $back = wait_until(10, sub {
    my $r = get("/v1/workspaces/$c->{ws}/tasks/$ids[0]", $c);
    return ($r->{headers}{'x-cache'} // '') ne 'BYPASS' ? $r : undef;
});
ok($back, 'Redis back: the cache is used again without a reload');
is($back && $back->{json}{title}, 'no redis', 'Redis back: fresh data');

# --- the cache off: no X-Cache --------------------------------------------
$t->stop;
$t->start(config => 'location /v1/ { taskmgr_auth_jwt on; taskmgr_api; }');
my $off = get("/v1/workspaces/$c->{ws}/tasks/$ids[1]", $c);
is($off->{status}, 200, 'cache off: 200');
ok(!exists $off->{headers}{'x-cache'}, 'cache off: no X-Cache header');

$t->done;
