# A query blocked in PostgreSQL (on a row lock) does not block the worker:
# with one worker process, other requests, with or without the database,
# are answered at once while the blocked one waits; it completes when the
# lock goes away.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes ();
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task async_request timed_request
                     lock_row lock_waiters wait_until);

my $t = Taskmgr::Test->new;
$t->start(workers => 1, http_config => 'taskmgr_pg_query_timeout 10s;');

my $u  = setup_user($t);
my $ws = $u->{ws};
my $a  = create_task($t, $u, 'task A');
my $b  = create_task($t, $u, 'task B');
my $path_a = "/v1/workspaces/$ws/tasks/$a";
my $path_b = "/v1/workspaces/$ws/tasks/$b";

is(lock_waiters($t), 0, 'no request waits for a lock yet');

my $lock = lock_row($t, $a);
pass('row of task A locked FOR UPDATE by another session');

my $new_title = "renamed while locked $$";
my $patch = async_request($t, PATCH => $path_a, token => $u->{token},
                          body => { title => $new_title });

# The PATCH reached PostgreSQL and waits there for the row lock.
ok(wait_until(5, sub { lock_waiters($t) == 1 }),
   'the PATCH waits for the row lock in PostgreSQL');
ok(!$patch->answered, 'the PATCH has not been answered');

my ($r, $secs) = timed_request($t, GET => '/healthz', timeout => 5);
is($r->{status}, 200, 'GET /healthz answers 200 meanwhile');
cmp_ok($secs, '<', 1, 'GET /healthz answers in under 1 s');

($r, $secs) = timed_request($t, GET => $path_b, token => $u->{token}, timeout => 5);
is($r->{status}, 200, 'GET of task B answers 200 meanwhile') or diag $r->{body};
is($r->{json} && $r->{json}{title}, 'task B', 'GET of task B: its title');
cmp_ok($secs, '<', 1, 'GET of task B answers in under 1 s');

# A plain read of the locked row does not wait for the lock either.
($r, $secs) = timed_request($t, GET => $path_a, token => $u->{token}, timeout => 5);
is($r->{status}, 200, 'GET of the locked task A answers 200 meanwhile');
is($r->{json} && $r->{json}{title}, 'task A', 'GET of task A: the old title');
cmp_ok($secs, '<', 1, 'GET of task A answers in under 1 s');

($r, $secs) = timed_request($t, GET => '/readyz', timeout => 5);
is($r->{status}, 200, 'GET /readyz (a round trip on another connection) answers 200');
cmp_ok($secs, '<', 1, 'GET /readyz answers in under 1 s');

ok(!$patch->answered, 'the PATCH is still pending after those requests');
is(lock_waiters($t), 1, 'and still waits for the lock in PostgreSQL');

my $t_commit = Time::HiRes::time();
$lock->send("COMMIT;\n");
my $p = $patch->wait(5);
is($p->{status}, 200, 'the PATCH completes with 200 once the lock is released')
    or diag $p->{raw};
is($p->{json} && $p->{json}{title}, $new_title, 'the PATCH answers the new title');
cmp_ok(Time::HiRes::time() - $t_commit, '<', 2, 'the PATCH completed promptly after COMMIT');
cmp_ok($p->{done_at}, '>=', $t_commit, 'the PATCH answered only after COMMIT');
$lock->close;

$r = $t->request(GET => $path_a, token => $u->{token});
is($r->{json} && $r->{json}{title}, $new_title, 'GET of task A shows the new title');
is(lock_waiters($t), 0, 'no request waits for a lock any more');

$t->done;
