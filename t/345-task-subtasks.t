# Subtasks: parent_id nests at most 10 levels (a top-level task is level 1),
# on create, on PATCH moving a subtree and on bulk update, exactly at the
# boundary; cycles (self, 2-cycle, long) are refused with 422 naming
# parent_id; a parent of another workspace is 422; a soft-deleted parent
# leaves its subtasks alone; writes that set a parent take the workspace's
# tree lock (held elsewhere: 409 for a single write, a bulk waits); two
# concurrent opposite moves: exactly one succeeds and no cycle is left.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task async_request lock_waiters
                     wait_until);

my $t = Taskmgr::Test->new;
$t->start(workers => 1);

my $MAX = 10;

my $u  = setup_user($t);
my $ws = $u->{ws};
my $tk = $u->{token};

sub task_path { "/v1/workspaces/$ws/tasks" . (@_ ? "/$_[0]" : '') }

sub create {
    my ($title, $parent) = @_;
    return $t->request(POST => task_path(), token => $tk,
                       body => { title => $title,
                                 (defined $parent ? (parent_id => $parent) : ()) });
}

sub move {
    my ($id, $parent) = @_;
    return $t->request(PATCH => task_path($id), token => $tk,
                       body => { parent_id => $parent });
}

sub bulk_move {
    my ($ids, $parent) = @_;
    return $t->request(POST => task_path('bulk'), token => $tk,
                       body => { action => 'update', ids => $ids,
                                 patch => { parent_id => $parent } });
}

sub parent_of {
    my ($id) = @_;
    return $t->psql('SELECT coalesce(parent_id::text, \'none\') FROM tm.tasks WHERE id = $1',
                    $id);
}

# a 422 validation_failed problem whose detail starts with parent_id and
# matches $re
sub refused {
    my ($r, $re, $name) = @_;
    is($r->{status}, 422, "$name: 422") or diag $r->{body};
    like($r->{headers}{'content-type'} // '', qr{^application/problem\+json}, "$name: problem+json");
    is($r->{json} && $r->{json}{code}, 'validation_failed', "$name: validation_failed");
    like($r->{json} && $r->{json}{detail}, qr/parent_id: .*$re/, "$name: the detail names parent_id");
}

my $DEEP = qr/at most $MAX levels deep/;
my $CYCLE = qr/would make a cycle/;

###########################################################################
# create: a chain of exactly $MAX levels, then one more is refused

my @chain;
{
    my $parent;
    for my $level (1 .. $MAX) {
        my $r = create("level $level", $parent);
        is($r->{status}, 201, "create at level $level: 201") or diag $r->{body};
        is($r->{json}{parent_id}, $parent, "... its parent") if $level > 1;
        push @chain, $parent = $r->{json}{id};
    }
    my $n = $t->psql('SELECT count(*) FROM tm.tasks WHERE workspace_id = $1', $ws);
    refused(create('level 11', $chain[-1]), $DEEP, "create at level @{[$MAX + 1]}");
    is($t->psql('SELECT count(*) FROM tm.tasks WHERE workspace_id = $1', $ws), $n,
       '... and no task was made');
}

###########################################################################
# PATCH: a subtree of height 3 moves under level 7 (7 + 3 = 10), not 8

my ($s1, $s2, $s3);
{
    $s1 = create_task($t, $u, 'subtree root');
    $s2 = create('subtree middle', $s1)->{json}{id};
    $s3 = create('subtree leaf', $s2)->{json}{id};

    my $r = move($s1, $chain[6]);
    is($r->{status}, 200, 'a subtree of height 3 under level 7: 200') or diag $r->{body};
    is($r->{json}{parent_id}, $chain[6], '... moved');
    is(parent_of($s3), $s2, '... its subtree came along');

    refused(move($s1, $chain[7]), $DEEP, 'the same subtree under level 8');
    is(parent_of($s1), $chain[6], '... it stayed under level 7');

    # a subtask at the bottom of the moved subtree, at level 10 now
    refused(create('too deep under the subtree', $s3), $DEEP, 'a child of its leaf (level 11)');

    $r = move($s1, undef);
    is($r->{status}, 200, 'back to the top: 200');
    is($r->{json}{parent_id}, undef, '... no parent');

    # a leaf moves under level 9 but not under level 10
    my $leaf = create_task($t, $u, 'a leaf');
    is(move($leaf, $chain[8])->{status}, 200, 'a leaf under level 9: 200');
    refused(move($leaf, $chain[9]), $DEEP, 'a leaf under level 10');
    is(parent_of($leaf), $chain[8], '... it stayed under level 9');

    # a soft-deleted task keeps its place in the tree and counts
    is($t->request(DELETE => task_path($s3), token => $tk)->{status}, 204, 'the subtree leaf is deleted');
    refused(move($s1, $chain[7]), $DEEP, 'the subtree with a deleted leaf under level 8');
    is($t->request(POST => task_path($s3) . '/restore', token => $tk)->{status}, 200,
       '... the leaf is restored');
}

###########################################################################
# bulk update: leaves under level 9 (to level 10), not under level 10; a
# subtree of height 3 under level 8 rolls the whole batch back

{
    my @leaves = map { create_task($t, $u, "bulk leaf $_") } 1 .. 3;
    my $r = bulk_move([ @leaves[0, 1] ], $chain[8]);
    is($r->{status}, 200, 'bulk: two leaves under level 9: 200') or diag $r->{body};
    is(parent_of($leaves[1]), $chain[8], '... moved');

    $r = bulk_move([ $leaves[2] ], $chain[9]);
    refused($r, $DEEP, 'bulk: a leaf under level 10');
    like($r->{json}{detail}, qr/^ids\[0\] \Q$leaves[2]\E: parent_id/, '... naming ids[0]');

    $r = bulk_move([ $leaves[2], $s1 ], $chain[7]);
    refused($r, $DEEP, 'bulk: a leaf and a subtree of height 3 under level 8');
    like($r->{json}{detail}, qr/^ids\[1\] \Q$s1\E: parent_id/, '... naming ids[1]');
    is(parent_of($leaves[2]), 'none', '... the leaf before it was rolled back');

    $r = bulk_move([ $leaves[2], $s1 ], $chain[6]);
    is($r->{status}, 200, 'bulk: the same under level 7: 200') or diag $r->{body};
    is(parent_of($s1), $chain[6], '... the subtree moved');
    is(move($s1, undef)->{status}, 200, '... and back to the top');
}

###########################################################################
# cycles

{
    refused(move($chain[0], $chain[0]), qr/own parent/, 'a task as its own parent');

    my $x = create_task($t, $u, 'x');
    my $y = create('y', $x)->{json}{id};
    refused(move($x, $y), $CYCLE, '2-cycle: x under its child y');
    is(parent_of($x), 'none', '... x kept no parent');

    refused(move($chain[0], $chain[-1]), $CYCLE, 'a long cycle: level 1 under level 10');
    refused(move($chain[2], $chain[5]), $CYCLE, 'a cycle in the middle: level 3 under level 6');
    is(parent_of($chain[0]), 'none', '... level 1 kept no parent');
    is(parent_of($chain[2]), $chain[1], '... level 3 kept its parent');

    my $r = bulk_move([$x], $y);
    refused($r, $CYCLE, 'bulk: x under its child y');

    # a long chain made before the limit (by hand here) cannot hide a cycle:
    # its top under a task 15 levels below is refused
    my @old = split /\s+/, $t->psql(q{
        WITH RECURSIVE c(n, id) AS (SELECT 1, gen_random_uuid()
                                    UNION ALL SELECT n + 1, gen_random_uuid() FROM c WHERE n < 15)
        SELECT id FROM c ORDER BY n});
    $t->psql(q{INSERT INTO tm.tasks (workspace_id, id, title, created_by)
               SELECT $1, id::uuid, 'old ' || n, $2
                 FROM unnest(string_to_array($3, ',')) WITH ORDINALITY AS o(id, n)},
             $ws, $u->{user_id}, join(',', @old));
    for my $i (1 .. $#old) {
        $t->psql('UPDATE tm.tasks SET parent_id = $1 WHERE id = $2', $old[$i - 1], $old[$i]);
    }
    $r = move($old[0], $old[-1]);
    is($r->{status}, 422, 'the top of a 15-level chain under its bottom: 422');
    like($r->{json}{detail}, qr/^parent_id: /, '... naming parent_id');
    is(parent_of($old[0]), 'none', '... no cycle was made');
    is(move($old[1], undef)->{status}, 200, 'a task of the old chain can move to the top');
}

###########################################################################
# another workspace; a soft-deleted parent

{
    my $v = setup_user($t);
    my $theirs = create_task($t, $v, 'not yours');
    refused(create('child of theirs', $theirs), qr/no such task/, 'create under another workspace\'s task');
    refused(move($chain[0], $theirs), qr/no such task/, 'move under another workspace\'s task');

    my $p = create_task($t, $u, 'parent to delete');
    my $c = create('its child', $p)->{json}{id};
    is($t->request(DELETE => task_path($p), token => $tk)->{status}, 204, 'a parent is soft-deleted');
    my $g = $t->request(GET => task_path($c), token => $tk);
    is($g->{status}, 200, '... its subtask is still there');
    is($g->{json}{parent_id}, $p, '... and keeps its parent_id');
    is($g->{json}{version}, 1, '... untouched (version 1)');
    refused(create('child of a deleted task', $p), qr/no such task/, 'create under a deleted task');
}

###########################################################################
# the tree lock

my $key = $t->psql('SELECT tm.task_tree_key($1)', $ws);
like($key, qr/^-?\d+$/, 'the workspace has a tree lock key');

{
    my $a = create_task($t, $u, 'lock a');
    my $b = create_task($t, $u, 'lock b');
    my $holder = $t->psql_bg("BEGIN;\nSELECT 'held:' || pg_advisory_xact_lock($key);\n");
    ok($holder->wait_for(qr/held:/, 10), 'another session holds the tree lock');

    my $r = move($a, $b);
    is($r->{status}, 409, 'a move while the lock is held elsewhere: 409') or diag $r->{body};
    is($r->{json} && $r->{json}{code}, 'conflict', '... conflict');
    like($r->{json} && $r->{json}{detail}, qr/^parent_id: .*retry/, '... naming parent_id');
    is(parent_of($a), 'none', '... not moved');
    is(create('child while locked', $b)->{status}, 409, 'a create with a parent: 409 too');
    is(create_task($t, $u, 'no parent while locked') =~ /^[0-9a-f-]{36}$/ ? 1 : 0, 1,
       'a create without a parent does not wait');
    is($t->request(PATCH => task_path($a), token => $tk, body => { title => 'renamed' })->{status},
       200, 'a PATCH without parent_id does not wait');

    # a bulk move waits for the lock (it holds no row yet)
    my $p = async_request($t, POST => task_path('bulk'), token => $tk,
                          body => { action => 'update', ids => [$a], patch => { parent_id => $b } });
    ok(wait_until(10, sub { lock_waiters($t) >= 1 }), 'a bulk move waits for the lock');
    $holder->send("COMMIT;\n");
    $holder->close;
    my $pr = $p->wait(10);
    is($pr->{status}, 200, '... and moves once it is free') or diag $pr->{body};
    is(parent_of($a), $b, '... moved');
}

###########################################################################
# concurrent opposite moves: a under b and b under a at the same time

for my $round (1 .. 8) {
    my $a = create_task($t, $u, "race a $round");
    my $b = create_task($t, $u, "race b $round");
    my @p = (async_request($t, PATCH => task_path($a), token => $tk, body => { parent_id => $b }),
             async_request($t, PATCH => task_path($b), token => $tk, body => { parent_id => $a }));
    my @r = map { $_->wait(15) } @p;
    my @ok = grep { $_->{status} == 200 } @r;
    my @no = grep { $_->{status} == 409 || $_->{status} == 422 } @r;
    is(scalar @ok, 1, "round $round: exactly one move succeeds")
        or diag join ' | ', map { "$_->{status} $_->{body}" } @r;
    is(scalar @no, 1, "round $round: the other is refused (409 or 422)");
    note "round $round: " . join(" ", map { $_->{status} } @r);
    my $links = (parent_of($a) eq $b ? 1 : 0) + (parent_of($b) eq $a ? 1 : 0);
    is($links, 1, "round $round: one link, no cycle");
}

unlike($t->error_log, qr/\[(?:alert|emerg|crit)\]/, 'no alerts in the error log');

done_testing;
