# The worker's own copies of cache entries, and the workspace reads in the
# cache: what a hit asks Redis (watched with MONITOR), that a copy is never
# served once its tenant's generation moved on (another nginx instance's
# write, a flushed or restarted Redis), role and tenant separation of the
# workspace entries, and taskmgr_cache_local_size 0.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task wait_until);

my $t = Taskmgr::Test->new(name => 'cache-local');

# one worker: every request meets the same copies
my $limited = <<'EOF';
    taskmgr_limit_zone lc_user key=$jwt_sub rate=100000r/s burst=100000;
EOF
$t->start(http_config => "taskmgr_cache on; taskmgr_cache_ttl 30s;\n$limited",
          config => <<'EOF');
        location /v1/auth/ {
            taskmgr_api;
        }
        location /v1/ {
            taskmgr_auth_jwt on;
            taskmgr_limit zone=lc_user;
            taskmgr_api;
        }
EOF

sub get {
    my ($path, $u, %h) = @_;
    return $t->request(GET => $path, token => $u->{token}, headers => \%h);
}

sub until_hit {
    my ($path, $u) = @_;
    my $r;
    wait_until(3, sub {
        $r = get($path, $u);
        return ($r->{headers}{'x-cache'} // '') eq 'HIT';
    });
    return $r;
}

# The commands Redis received from clients (not the ones scripts ran) while
# $code ran: [name, args...] in order.
sub redis_commands {
    my ($code) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->redis_port, Timeout => 3)
        or die "monitor: $!";
    $s->autoflush(1);
    print $s "MONITOR\r\n";
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $read = sub {
        my ($until) = @_;
        while ((my $left = $until - time) > 0) {
            last unless $sel->can_read($left);
            my $n = sysread($s, $buf, 65536, length $buf);
            last unless $n;
        }
    };
    $read->(time + 0.2);
    $buf =~ /^\+OK\r\n/ or die "MONITOR did not start: $buf\n";
    $buf = '';
    $code->();
    $read->(time + 0.3);
    close $s;
    my @cmds;
    for my $line (split /\r\n/, $buf) {
        # 1700000000.000000 [0 127.0.0.1:41234] "MGET" "k1" "k2"
        next unless $line =~ /^\+\d+\.\d+ \[\d+ ([^\]]+)\] (.*)$/;
        next if $1 eq 'lua';
        my @w = $2 =~ /"((?:[^"\\]|\\.)*)"/g;
        push @cmds, [ uc $w[0], @w[1 .. $#w] ] if @w;
    }
    return @cmds;
}

# the first command, then the rest sorted: commands sent together may travel
# on different connections of the pool and reach Redis in either order
sub names {
    my ($first, @rest) = map { $_->[0] } @_;
    return join ' ', grep { defined } $first, sort @rest;
}

my $a = setup_user($t);
my $b = setup_user($t);
my $id = create_task($t, $a, 'copied');
my $task = "/v1/workspaces/$a->{ws}/tasks/$id";
my $list = "/v1/workspaces/$a->{ws}/tasks?limit=50";

# --- a hit from the worker's copy: two round trips -------------------------
my $miss = get($list, $a);
is($miss->{headers}{'x-cache'}, 'MISS', 'list: first read MISS');
until_hit($list, $a);

my $hit;
my @cmds = redis_commands(sub { $hit = get($list, $a) });
is($hit->{status}, 200, 'hit: 200');
is($hit->{headers}{'x-cache'}, 'HIT', 'hit: X-Cache HIT');
is($hit->{body}, $miss->{body}, 'hit: the same bytes as the miss');
is(names(@cmds), 'EVALSHA MGET',
   'a hit asks Redis two things: the limit script (which also reads the '
   . 'revocation keys), then the generation and member marker')
    or diag explain \@cmds;
my ($ls) = grep { $_->[0] eq 'EVALSHA' } @cmds;
my @rv = sort grep { /^tmk:\{\Q$a->{user_id}\E\}:rv/ } @{ $ls || [] };
like(join(' ', @rv),
     qr/^tmk:\{\Q$a->{user_id}\E\}:rv:[0-9a-f-]{36} tmk:\{\Q$a->{user_id}\E\}:rva$/,
     'the limit script carries the revocation keys for the access phase');
is($ls && $ls->[2], 3, '... as keys: one limit, two reads');
my ($gm) = grep { $_->[0] eq 'MGET' && $_->[1] =~ /:gen$/ } @cmds;
is_deeply([ @{ $gm || [] }[1, 2] ],
          [ "tmk:{$a->{ws}}:gen", "tmk:{$a->{ws}}:m:$a->{user_id}" ],
          'content phase: MGET of the generation and the member marker, one hash tag');
ok(!grep({ $_->[0] eq 'EXISTS' } @cmds),
   'no session marker lookup: the revocation check covers ended sessions');
ok(!grep({ length join('', @$_) > 2000 } @cmds),
   'no command carries the entry (the copy is local)');

my $nm = get($list, $a, 'If-None-Match' => $miss->{headers}{etag});
is($nm->{status}, 304, 'a copy answers If-None-Match with 304');
is($nm->{headers}{'x-cache'}, 'HIT', '... as a hit');

# --- another instance's write: the generation moves, the copy is not used -
until_hit($task, $a);
$t->psql(q{UPDATE tm.tasks SET title = 'changed elsewhere', version = version + 1
           WHERE id = $1}, $id);
my $stale = get($task, $a);
is($stale->{json}{title}, 'copied',
   'before the generation moves the entry stands (the write has not answered)');
$t->redis_cli('INCR', "tmk:{$a->{ws}}:gen");    # what that write does before it answers
my $fresh = get($task, $a);
is($fresh->{json}{title}, 'changed elsewhere',
   'after the generation moved: the new title, not the copy');
isnt($fresh->{headers}{'x-cache'}, 'HIT', '... and not a hit');
my $rehit = until_hit($task, $a);
is($rehit->{json}{title}, 'changed elsewhere', 'the next hit has the new title');

# --- a flushed Redis: generations start afresh, copies are not trusted ----
$t->psql(q{UPDATE tm.tasks SET title = 'after flush', version = version + 1
           WHERE id = $1}, $id);
$t->redis_cli('FLUSHALL');
my $af = get($task, $a);
is($af->{json}{title}, 'after flush', 'after FLUSHALL: fresh data');
my $gen = $t->redis_cli('GET', "tmk:{$a->{ws}}:gen");
cmp_ok($gen, '>', 1_000_000_000_000_000,
       'a generation that was gone starts at the current time in microseconds');
until_hit($task, $a);
my $cmds_hit = names(redis_commands(sub { get($task, $a) }));
is($cmds_hit, 'EVALSHA MGET', 'the copy is used again once refreshed');

# --- a restarted Redis: the worker drops every copy -----------------------
until_hit($list, $a);
$t->psql(q{UPDATE tm.tasks SET title = 'after restart', version = version + 1
           WHERE id = $1}, $id);
$t->redis_stop;
$t->redis_start;
my $ar = wait_until(10, sub {
    my $r = get($list, $a);
    return ($r->{headers}{'x-cache'} // 'BYPASS') ne 'BYPASS' ? $r : undef;
});
ok($ar, 'Redis back: the cache answers again');
my ($row) = grep { $_->{id} eq $id } @{ $ar ? $ar->{json}{data} : [] };
is($row && $row->{title}, 'after restart', 'Redis back: fresh data, no old copy');

# --- workspaces: one entry per reader, lists per user ---------------------
my $ws = "/v1/workspaces/$a->{ws}";
my $w1 = get($ws, $a);
is($w1->{status}, 200, 'workspace: 200');
is($w1->{headers}{'x-cache'}, 'MISS', 'workspace: first read MISS');
my $w2 = until_hit($ws, $a);
is($w2->{body}, $w1->{body}, 'workspace: the hit answers the same bytes');
is($w2->{json}{role}, 'owner', 'workspace: the owner reads role owner');
ok($w2->{headers}{etag}, 'workspace: a hit carries the ETag');
is(get($ws, $a, 'If-None-Match' => $w1->{headers}{etag})->{status}, 304,
   'workspace: If-None-Match on a hit is 304');

my $xb = get($ws, $b);
is($xb->{status}, 404, 'workspace: another tenant gets 404, not the entry');

$t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role)
           VALUES ($1, $2, 'viewer')}, $a->{ws}, $b->{user_id});
$t->redis_cli('DEL', "tmk:{$a->{ws}}:gen", "tmk:{$b->{user_id}}:gen");
my $vb = get($ws, $b);
is($vb->{status}, 200, 'workspace: the new viewer reads it');
is($vb->{json}{role}, 'viewer', "workspace: the viewer reads role viewer, not the owner's entry");
my $vb2 = until_hit($ws, $b);
is($vb2->{json}{role}, 'viewer', 'workspace: the viewer\'s hit says viewer');
is(get($ws, $a)->{json}{role}, 'owner', 'workspace: the owner still reads owner');

my $l1 = get('/v1/workspaces', $a);
is($l1->{headers}{'x-cache'}, 'MISS', 'workspace list: MISS');
my $l2 = until_hit('/v1/workspaces', $a);
is($l2->{body}, $l1->{body}, 'workspace list: the hit answers the same bytes');
my $lb = until_hit('/v1/workspaces', $b);
is(scalar @{ $lb->{json}{data} }, 2, "workspace list: b's own list (personal + a's), not a's");

my $cr = $t->request(POST => '/v1/workspaces', token => $a->{token},
                     body => { name => 'Fresh team' });
is($cr->{status}, 201, 'create a workspace');
my $l3 = get('/v1/workspaces', $a);
is($l3->{headers}{'x-cache'}, 'MISS', 'workspace list after a create: MISS');
ok((grep { $_->{id} eq $cr->{json}{id} } @{ $l3->{json}{data} }),
   'workspace list after a create holds the new workspace');

# --- no copies: hits go through the lookup script -------------------------
$t->stop;
$t->start(http_config => "taskmgr_cache on; taskmgr_cache_ttl 30s;\n"
                         . "taskmgr_cache_local_size 0;\n$limited",
          config => <<'EOF');
        location /v1/auth/ {
            taskmgr_api;
        }
        location /v1/ {
            taskmgr_auth_jwt on;
            taskmgr_limit zone=lc_user;
            taskmgr_api;
        }
EOF
until_hit($list, $a);
my $h0;
my @c0 = redis_commands(sub { $h0 = get($list, $a) });
is($h0->{headers}{'x-cache'}, 'HIT', 'without copies: still a HIT');
is(names(@c0), 'EVALSHA EVALSHA',
   'without copies: the limit script (with the revocation keys), then the lookup script')
    or diag explain \@c0;
is($h0->{body}, get($list, $a)->{body}, 'without copies: the same bytes');

$t->done;
