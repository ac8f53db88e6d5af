# POST /v1/workspaces/{ws}/tasks/bulk: one transaction, all or nothing;
# validation of ids and patch; roles; one cache generation bump; a replay
# under Idempotency-Key.  DELETE ?permanent=true: owners and admins only.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task);

my $t = Taskmgr::Test->new;
$t->start(workers => 1);

my $u  = setup_user($t);
my $ws = $u->{ws};
my $tk = $u->{token};
my $bulk = "/v1/workspaces/$ws/tasks/bulk";

sub task_path { "/v1/workspaces/$ws/tasks" . (@_ ? "/$_[0]" : '') }

sub get_task {
    my ($id, $token) = @_;
    return $t->request(GET => task_path($id), token => $token // $tk);
}

sub err_field {
    my ($r) = @_;
    return $r->{json} && $r->{json}{errors} && $r->{json}{errors}[0]{field};
}

my @ids = map { create_task($t, $u, "bulk $_") } 1 .. 3;

###########################################################################
# update, delete, restore

{
    # a cached read of the first task
    is(get_task($ids[0])->{json}{priority}, 0, 'task 1 priority 0 (read, cached)');

    my $r = $t->request(POST => $bulk, token => $tk,
                        body => { action => 'update', ids => \@ids,
                                  patch => { priority => 3, labels => ['x'] } });
    is($r->{status}, 200, 'bulk update: 200');
    is_deeply($r->{json}, { ids => \@ids }, '... {"ids":[…]} in the order given');
    for my $i (0 .. 2) {
        my $g = get_task($ids[$i]);
        is($g->{json}{priority}, 3, "task @{[$i + 1]}: priority 3 (the cache was invalidated)");
        is_deeply($g->{json}{labels}, ['x'], "... labels");
        is($g->{json}{version}, 2, '... version 2');
    }

    $r = $t->request(POST => $bulk, token => $tk,
                     body => { action => 'delete', ids => [@ids[0, 1]] });
    is($r->{status}, 200, 'bulk delete: 200');
    is(get_task($ids[0])->{status}, 404, 'task 1 is deleted');
    is(get_task($ids[1])->{status}, 404, 'task 2 is deleted');
    is(get_task($ids[2])->{status}, 200, 'task 3 is not');

    $r = $t->request(POST => $bulk, token => $tk,
                     body => { action => 'restore', ids => [@ids[0, 1]] });
    is($r->{status}, 200, 'bulk restore: 200');
    is(get_task($ids[0])->{json}{version}, 4, 'task 1 is back, version 4');
}

###########################################################################
# all or nothing

{
    my $unknown = '01900000-0000-7000-8000-000000000000';
    my $r = $t->request(POST => $bulk, token => $tk,
                        body => { action => 'update', ids => [$ids[0], $unknown, $ids[2]],
                                  patch => { priority => 1 } });
    is($r->{status}, 404, 'an unknown id: 404');
    is($r->{json} && $r->{json}{code}, 'not_found', '... not_found');
    like($r->{json} && $r->{json}{detail}, qr/ids\[1\] \Q$unknown\E/, '... the detail names it');
    is(get_task($ids[0])->{json}{priority}, 3, 'the first id was rolled back');
    is($t->psql('SELECT max(version) FROM tm.tasks WHERE id = $1', $ids[0]), '4',
       '... its version too');

    $r = $t->request(POST => $bulk, token => $tk,
                     body => { action => 'restore', ids => [$ids[0]] });
    is($r->{status}, 409, 'restore of a live task: 409');
    like($r->{json}{detail}, qr/ids\[0\]/, '... naming ids[0]');

    # one failing row after deletes: nothing deleted
    $r = $t->request(POST => $bulk, token => $tk,
                     body => { action => 'delete', ids => [$ids[0], $ids[1], $unknown] });
    is($r->{status}, 404, 'a delete batch with an unknown id: 404');
    is(get_task($ids[0])->{status}, 200, '... task 1 still there');
    is(get_task($ids[1])->{status}, 200, '... task 2 still there');

    # a row that fails its reference check: 422 naming the id
    $r = $t->request(POST => $bulk, token => $tk,
                     body => { action => 'update', ids => [$ids[0], $ids[1]],
                               patch => { parent_id => $ids[1] } });
    is($r->{status}, 422, 'a task made its own parent: 422');
    like($r->{json}{detail}, qr/ids\[1\] \Q$ids[1]\E: parent_id/, '... naming the id');
    is(get_task($ids[0])->{json}{parent_id}, undef, '... and task 1 kept no parent');

    # another tenant's task is unknown
    my $v = setup_user($t);
    my $other = create_task($t, $v, 'not yours');
    $r = $t->request(POST => $bulk, token => $tk,
                     body => { action => 'delete', ids => [$other] });
    is($r->{status}, 404, 'another workspace\'s task: 404');
    is($t->request(GET => "/v1/workspaces/$v->{ws}/tasks/$other",
                   token => $v->{token})->{json}{version}, 1, '... it is untouched');
}

###########################################################################
# validation

{
    my @cases = (
        [{ action => 'update', ids => [map { sprintf '01900000-0000-7000-8000-%012d', $_ } 1 .. 501],
           patch => { priority => 1 } }, 'ids', '501 ids'],
        [{ action => 'delete', ids => [] }, 'ids', 'no ids'],
        [{ action => 'delete', ids => 'x' }, 'ids', 'ids not an array'],
        [{ action => 'delete', ids => [$ids[0], 'nope'] }, 'ids[1]', 'a malformed id'],
        [{ action => 'delete', ids => [$ids[0], 5] }, 'ids[1]', 'a number as id'],
        [{ action => 'delete', ids => [$ids[0], $ids[1], uc $ids[0]] }, 'ids[2]',
         'a duplicate id (in other case)'],
        [{ action => 'update', ids => [$ids[0]] }, 'patch', 'update without patch'],
        [{ action => 'update', ids => [$ids[0]], patch => [1] }, 'patch', 'patch not an object'],
        [{ action => 'delete', ids => [$ids[0]], patch => {} }, 'patch', 'patch with delete'],
        [{ action => 'update', ids => [$ids[0]], patch => { nope => 1 } }, 'patch.nope',
         'an unknown patch field'],
        [{ ids => [$ids[0]] }, 'action', 'no action'],
        [{ action => 'update', ids => [$ids[0]], patch => {}, extra => 1 }, 'extra',
         'an unknown member'],
    );
    for my $c (@cases) {
        my $r = $t->request(POST => $bulk, token => $tk, body => $c->[0]);
        ok($r->{status} == 400 || ($c->[1] eq 'action' && $r->{status} == 422),
           "$c->[2]: 400") or diag "$r->{status} $r->{body}";
        is(err_field($r), $c->[1], "... naming $c->[1]");
    }
    my $r = $t->request(POST => $bulk, token => $tk,
                        body => { action => 'update', ids => [$ids[0]],
                                  patch => { priority => 9 } });
    is($r->{status}, 422, 'a bad patch value: 422');
    is(err_field($r), 'patch.priority', '... naming patch.priority');
    $r = $t->request(POST => $bulk, token => $tk,
                     body => { action => 'archive', ids => [$ids[0]] });
    is($r->{status}, 422, 'an unknown action: 422');
    is(err_field($r), 'action', '... naming action');
    is(get_task($ids[0])->{json}{version}, 4, 'nothing was written by a rejected batch');
}

###########################################################################
# 500 ids, roles, replay

{
    $t->psql(q{INSERT INTO tm.tasks (workspace_id, title, created_by)
               SELECT $1, 'many ' || g, $2 FROM generate_series(1, 500) g},
             $ws, $u->{user_id});
    my @many = split /\s+/, $t->psql(q{SELECT id FROM tm.tasks WHERE title LIKE 'many %'
                                       ORDER BY id});
    is(scalar @many, 500, '500 tasks');
    my $r = $t->request(POST => $bulk, token => $tk,
                        body => { action => 'delete', ids => \@many });
    is($r->{status}, 200, '500 ids: 200');
    is(scalar @{ $r->{json}{ids} }, 500, '... 500 ids affected');
    is($t->psql(q{SELECT count(*) FROM tm.tasks WHERE title LIKE 'many %'
                  AND deleted_at IS NOT NULL}), '500', '... all deleted');

    my $v = setup_user($t);
    $t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role)
               VALUES ($1, $2, 'viewer')}, $ws, $v->{user_id});
    $r = $t->request(POST => $bulk, token => $v->{token},
                     body => { action => 'update', ids => [$ids[0]], patch => { priority => 1 } });
    is($r->{status}, 403, 'a viewer: 403');
    is($r->{json}{code}, 'forbidden', '... forbidden');

    my $w = setup_user($t);
    $r = $t->request(POST => $bulk, token => $w->{token},
                     body => { action => 'delete', ids => [$ids[0]] });
    is($r->{status}, 404, 'a non-member: 404');

    my $body = { action => 'update', ids => [@ids[1, 2]], patch => { status => 'done' } };
    my $r1 = $t->request(POST => $bulk, token => $tk, body => $body,
                         headers => { 'Idempotency-Key' => "bulk-$$" });
    is($r1->{status}, 200, 'bulk with a key: 200');
    my $r2 = $t->request(POST => $bulk, token => $tk, body => $body,
                         headers => { 'Idempotency-Key' => "bulk-$$" });
    is($r2->{status}, 200, 'its repeat: 200');
    is($r2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
    is($r2->{body}, $r1->{body}, '... byte for byte');
    # created, update, delete, restore, this batch: 5
    is(get_task($ids[1])->{json}{version}, 5, 'the batch was applied once');

    $r = $t->request(POST => "$bulk?x=1", token => $tk, body => $body);
    is($r->{status}, 400, 'a query parameter on bulk: 400');
    $r = $t->request(GET => $bulk, token => $tk);
    is($r->{status}, 404, 'GET …/tasks/bulk is no task: 404');
}

###########################################################################
# permanent delete

{
    my $parent = create_task($t, $u, 'perm parent');
    my $child = $t->request(POST => task_path(), token => $tk,
                            body => { title => 'perm child', parent_id => $parent })->{json}{id};

    my $m = setup_user($t);
    $t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role)
               VALUES ($1, $2, 'member')}, $ws, $m->{user_id});
    my $r = $t->request(DELETE => task_path($parent) . '?permanent=true', token => $m->{token});
    is($r->{status}, 403, 'permanent delete by a member: 403');
    is($r->{json}{code}, 'forbidden', '... forbidden');

    $r = $t->request(DELETE => task_path($parent) . '?permanent=maybe', token => $tk);
    is($r->{status}, 400, 'permanent=maybe: 400');
    is(err_field($r), 'permanent', '... naming permanent');
    $r = $t->request(DELETE => task_path($parent) . '?force=1', token => $tk);
    is($r->{status}, 400, 'an unknown parameter: 400');
    is(err_field($r), 'force', '... naming it');
    $r = $t->request(DELETE => task_path($parent) . '?permanent=true', token => $tk,
                     headers => { 'If-Match' => '"7"' });
    is($r->{status}, 412, 'permanent delete with a stale If-Match: 412');

    is(get_task($parent)->{status}, 200, 'the parent is read (and cached)');
    $r = $t->request(DELETE => task_path($parent) . '?permanent=true', token => $tk,
                     headers => { 'If-Match' => '"1"' });
    is($r->{status}, 204, 'permanent delete by the owner: 204');
    is($r->{body}, '', '... no body');
    is(get_task($parent)->{status}, 404, 'the task is gone (the cache was invalidated)');
    is($t->psql('SELECT count(*) FROM tm.tasks WHERE id = $1', $parent), '0',
       '... from the database');
    my $c = get_task($child);
    is($c->{json}{parent_id}, undef, 'its subtask lost its parent');
    is($c->{json}{version}, 2, '... with a new version');
    $r = $t->request(POST => task_path("$parent/restore"), token => $tk);
    is($r->{status}, 404, 'it cannot be restored');

    # a soft-deleted task can be deleted for good too
    my $soft = create_task($t, $u, 'soft then gone');
    is($t->request(DELETE => task_path($soft) . '?permanent=false', token => $tk)->{status},
       204, 'permanent=false: a soft delete');
    is($t->psql('SELECT deleted_at IS NOT NULL FROM tm.tasks WHERE id = $1', $soft), 't',
       '... the row is kept');
    is($t->request(DELETE => task_path($soft) . '?permanent=true', token => $tk)->{status},
       204, 'then permanent=true: 204');
    is($t->psql('SELECT count(*) FROM tm.tasks WHERE id = $1', $soft), '0', '... gone');
}

$t->done;
