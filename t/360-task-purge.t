# The background purge: tasks soft-deleted longer than
# taskmgr_task_purge_after are deleted for good by one worker, in bounded
# batches through the pool; subtasks lose their parent; expired
# Idempotency-Key records go too.  taskmgr_task_purge_after 0 turns it off.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes ();
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task wait_until);

my $t = Taskmgr::Test->new;

# the directive's bounds
{
    my ($ok, $err) = $t->try_start(http_config => "    taskmgr_task_purge_interval 10ms;\n");
    ok(!$ok, 'taskmgr_task_purge_interval 10ms: nginx refuses to start');
    like($err // '', qr/taskmgr_task_purge_interval must be between 100ms and 1d/,
         '... with the reason');
    $t->stop;
    ($ok, $err) = $t->try_start(http_config => "    taskmgr_task_purge_after 3651d;\n");
    ok(!$ok, 'taskmgr_task_purge_after 3651d: refused');
    like($err // '', qr/taskmgr_task_purge_after must be at most 3650d/, '... with the reason');
    $t->stop;
}

$t->start(workers => 2, http_config => <<'EOF2');
    taskmgr_task_purge_after 1h;
    taskmgr_task_purge_interval 200ms;
EOF2

my $u = setup_user($t);
my $ws = $u->{ws};
my $tk = $u->{token};
sub task_path { "/v1/workspaces/$ws/tasks" . (@_ ? "/$_[0]" : '') }

my $recent = create_task($t, $u, 'deleted recently');
my $live   = create_task($t, $u, 'live');
my $old    = create_task($t, $u, 'deleted long ago');
my $child  = $t->request(POST => task_path(), token => $tk,
                         body => { title => 'child', parent_id => $old })->{json}{id};
ok($child, 'a subtask of the task to purge');
is($t->request(DELETE => task_path($_), token => $tk)->{status}, 204, 'soft delete')
    for $recent, $old;

$t->psql(q{INSERT INTO tm.idempotency_keys (user_id, key, fingerprint, token, state,
                                            status, payload, expires_at)
           VALUES ($1, 'old-key', repeat('a', 64), gen_random_uuid(), 'done', 201, '{}',
                   now() - interval '1 minute'),
                  ($1, 'new-key', repeat('a', 64), gen_random_uuid(), 'done', 201, '{}',
                   now() + interval '1 hour')}, $u->{user_id});

my $off = $t->error_log_size;
$t->psql(q{UPDATE tm.tasks SET deleted_at = now() - interval '61 minutes' WHERE id = $1}, $old);

ok(wait_until(10, sub { $t->psql('SELECT count(*) FROM tm.tasks WHERE id = $1', $old) eq '0' }, 0.1),
   'a task soft-deleted more than 1h ago is purged');
is($t->psql('SELECT count(*) FROM tm.tasks WHERE id = $1', $recent), '1',
   'a task deleted recently is kept');
is($t->psql('SELECT deleted_at IS NOT NULL FROM tm.tasks WHERE id = $1', $recent), 't',
   '... still soft-deleted (restorable)');
is($t->request(GET => task_path($live), token => $tk)->{status}, 200, 'a live task is kept');
my $c = $t->request(GET => task_path($child), token => $tk);
is($c->{json}{parent_id}, undef, 'the subtask lost its parent');
is($c->{json}{version}, 2, '... with a new version');
ok(wait_until(5, sub { $t->psql(q{SELECT count(*) FROM tm.idempotency_keys
                                 WHERE key = 'old-key'}) eq '0' }, 0.1),
   'an expired Idempotency-Key record is purged');
is($t->psql(q{SELECT count(*) FROM tm.idempotency_keys WHERE key = 'new-key'}), '1',
   '... a live one is kept');

ok(wait_until(5, sub { $t->error_log_since($off) =~ /purge deleted 1 tasks/ }),
   'error.log: purge deleted 1 tasks');

# more than one batch: 1500 old soft-deleted tasks, one worker purges them
$t->psql(q{INSERT INTO tm.tasks (workspace_id, title, created_by, deleted_at)
           SELECT $1, 'bulk old ' || g, $2, now() - interval '2 hours'
             FROM generate_series(1, 1500) g}, $ws, $u->{user_id});
ok(wait_until(20, sub { $t->psql(q{SELECT count(*) FROM tm.tasks
                                  WHERE title LIKE 'bulk old %'}) eq '0' }, 0.2),
   '1500 old tasks are purged (in batches of at most 1000)');
my $log = $t->error_log_since($off);
my %pids = map { $_ => 1 } $log =~ /\[info\] (\d+)#\d+: taskmgr: purge deleted/g;
my @purgers = keys %pids;
is(scalar @purgers, 1, 'all purges ran in one worker') or diag $log;
my @n = $log =~ /purge deleted (\d+) tasks/g;
ok(!grep({ $_ > 1000 } @n), 'no batch over 1000') or diag "@n";
cmp_ok(scalar @n, '>=', 3, 'the 1500 took at least two batches') or diag "@n";

# off
$t->stop;
$t->start(workers => 1, http_config => <<'EOF2');
    taskmgr_task_purge_after 0;
    taskmgr_task_purge_interval 100ms;
EOF2
$t->psql(q{UPDATE tm.tasks SET deleted_at = now() - interval '400 days' WHERE id = $1}, $recent);
Time::HiRes::sleep(1.5);
is($t->psql('SELECT count(*) FROM tm.tasks WHERE id = $1', $recent), '1',
   'taskmgr_task_purge_after 0: nothing is purged');

$t->done;
