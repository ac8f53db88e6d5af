# Task writes under concurrency: If-Match held at the database (20
# concurrent PATCHes with one version: exactly one wins), If-Match on
# restore; Idempotency-Key (replay byte for byte, 422, 409, validation,
# per-user scope, expiry, abandoned claims, a failure or a killed backend
# after the write never yields a second task).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Time::HiRes ();
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task async_request lock_row
                     lock_waiters wait_until is_unavailable);

my $t = Taskmgr::Test->new;

$t->start(workers => 2, http_config => <<'EOF');
    taskmgr_pg_pool_size 4;
    taskmgr_pg_queue_size 64;
    taskmgr_pg_query_timeout 10s;
EOF

my $u  = setup_user($t);
my $ws = $u->{ws};
my $tk = $u->{token};

sub task_path { "/v1/workspaces/$ws/tasks" . (@_ ? "/$_[0]" : '') }

sub count_titles {
    my ($title) = @_;
    return 0 + $t->psql('SELECT count(*) FROM tm.tasks WHERE title = $1', $title);
}

###########################################################################
# If-Match: 20 concurrent PATCHes with the same version

{
    my $id = create_task($t, $u, 'race');
    my $lock = lock_row($t, $id);
    my @p = map {
        async_request($t, PATCH => task_path($id), token => $tk,
                      headers => { 'If-Match' => '"1"' },
                      body => { title => "winner $_" })
    } 1 .. 20;
    ok(wait_until(10, sub { lock_waiters($t) >= 2 }),
       'the PATCHes wait on the row lock in PostgreSQL');
    Time::HiRes::sleep(0.3);
    $lock->send("COMMIT;\n");
    my @r = map { $_->wait(20) } @p;
    $lock->close;
    my @ok  = grep { $_->{status} == 200 } @r;
    my @pre = grep { $_->{status} == 412 } @r;
    is(scalar @ok, 1, '20 concurrent PATCHes with If-Match "1": exactly one 200')
        or diag join ' ', map { $_->{status} } @r;
    is(scalar @pre, 19, '... and nineteen 412');
    is($pre[0]{json} && $pre[0]{json}{code}, 'precondition_failed',
       '412 is problem+json precondition_failed');
    is($t->psql('SELECT version FROM tm.tasks WHERE id = $1', $id), '2',
       'the task moved to version 2 once');
    is($t->psql('SELECT title FROM tm.tasks WHERE id = $1', $id),
       $ok[0]{json}{title}, 'the title is the winner\'s');
}

###########################################################################
# If-Match on restore (DELETE has it, see t/310)

{
    my $id = create_task($t, $u, 'restore me');
    my $r = $t->request(DELETE => task_path($id), token => $tk,
                        headers => { 'If-Match' => '"1"' });
    is($r->{status}, 204, 'DELETE with the current If-Match: 204');
    $r = $t->request(POST => task_path("$id/restore"), token => $tk,
                     headers => { 'If-Match' => '"1"' });
    is($r->{status}, 412, 'restore with a stale If-Match: 412');
    is($r->{json} && $r->{json}{code}, 'precondition_failed', '... precondition_failed');
    $r = $t->request(POST => task_path("$id/restore"), token => $tk,
                     headers => { 'If-Match' => 'W/"2"' });
    is($r->{status}, 412, 'restore with a weak If-Match: 412');
    $r = $t->request(POST => task_path("$id/restore"), token => $tk,
                     headers => { 'If-Match' => '"2"' });
    is($r->{status}, 200, 'restore with the current If-Match: 200');
    is($r->{json}{version}, 3, '... version 3');
    is($r->{headers}{etag}, '"3"', '... ETag "3"');
}

###########################################################################
# Idempotency-Key: replay byte for byte

my $K = 0;
sub key { 'key-' . $$ . '-' . ++$K }

{
    my $key = key();
    my $body = { title => 'idem create', labels => ['a', 'b'], priority => 2,
                 due_at => '2027-01-02T03:04:05.678Z' };
    my $r1 = $t->request(POST => task_path(), token => $tk, body => $body,
                         headers => { 'Idempotency-Key' => $key });
    is($r1->{status}, 201, 'create with a key: 201');
    ok(!exists $r1->{headers}{'idempotent-replayed'},
       'the first answer has no Idempotent-Replayed');
    my $r2 = $t->request(POST => task_path(), token => $tk, body => $body,
                         headers => { 'Idempotency-Key' => $key });
    is($r2->{status}, 201, 'the repeat: 201');
    is($r2->{headers}{'idempotent-replayed'}, 'true', '... Idempotent-Replayed: true');
    is($r2->{body}, $r1->{body}, '... the body byte for byte');
    is($r2->{headers}{location}, $r1->{headers}{location}, '... the same Location');
    is($r2->{headers}{etag}, $r1->{headers}{etag}, '... the same ETag');
    is($r2->{headers}{'content-type'}, $r1->{headers}{'content-type'},
       '... the same Content-Type');
    is(count_titles('idem create'), 1, 'one task in the database');

    # the task changes: a replay still answers the first response
    my $id = $r1->{json}{id};
    my $p = $t->request(PATCH => task_path($id), token => $tk,
                        body => { title => 'idem create' , priority => 4 });
    is($p->{status}, 200, 'the task is changed afterwards');
    my $r3 = $t->request(POST => task_path(), token => $tk, body => $body,
                         headers => { 'Idempotency-Key' => $key });
    is($r3->{body}, $r1->{body}, 'a later repeat still answers the first body');

    # JSON with other whitespace is the same request
    my $r4 = $t->request(POST => task_path(), token => $tk,
                         body => "{ \"title\" : \"idem create\", \"labels\":[\"a\",\"b\"],"
                               . " \"priority\":2, \"due_at\":\"2027-01-02T03:04:05.678Z\" }",
                         headers => { 'Idempotency-Key' => $key,
                                      'Content-Type' => 'application/json' });
    is($r4->{status}, 201, 'the same JSON with other whitespace: a replay');
    is($r4->{headers}{'idempotent-replayed'}, 'true', '... Idempotent-Replayed');

    my $r5 = $t->request(POST => task_path(), token => $tk,
                         body => { %$body, title => 'other' },
                         headers => { 'Idempotency-Key' => $key });
    is($r5->{status}, 422, 'the same key with another body: 422');
    is($r5->{json} && $r5->{json}{code}, 'validation_failed', '... validation_failed');
    like($r5->{json} && $r5->{json}{detail}, qr/Idempotency-Key/, '... the detail names the key');
    ok(!exists $r5->{headers}{'idempotent-replayed'}, '... not a replay');
    is(count_titles('other'), 0, '... and nothing written');

    my $r6 = $t->request(PATCH => task_path($id), token => $tk, body => $body,
                         headers => { 'Idempotency-Key' => $key });
    is($r6->{status}, 422, 'the same key on another route: 422');

    # keys are per user
    my $v = setup_user($t);
    my $r7 = $t->request(POST => "/v1/workspaces/$v->{ws}/tasks", token => $v->{token},
                         body => $body, headers => { 'Idempotency-Key' => $key });
    is($r7->{status}, 201, 'another user with the same key: 201');
    ok(!exists $r7->{headers}{'idempotent-replayed'}, '... not a replay');
    isnt($r7->{json}{id}, $id, '... a task of its own');
    is(count_titles('idem create'), 2, 'two tasks now, one per user');

    # expiry: a record older than 24 h is forgotten
    $t->psql(q{UPDATE tm.idempotency_keys SET expires_at = now() - interval '1 second'
               WHERE key = $1 AND user_id = $2}, $key, $u->{user_id});
    my $r8 = $t->request(POST => task_path(), token => $tk, body => $body,
                         headers => { 'Idempotency-Key' => $key });
    is($r8->{status}, 201, 'after the record expired: 201');
    ok(!exists $r8->{headers}{'idempotent-replayed'}, '... processed anew');
    isnt($r8->{json}{id}, $id, '... a new task');
    is($t->psql(q{SELECT count(*) FROM tm.idempotency_keys
                  WHERE key = $1 AND user_id = $2 AND state = 'done'
                    AND expires_at > now() + interval '23 hours'}, $key, $u->{user_id}),
       '1', 'the record is renewed for 24 h');
}

# key validation
{
    for my $case (['', 'an empty key'], ['x' x 256, 'a key of 256 characters'],
                  ["caf\xc3\xa9", 'a non-ASCII key'], ["a\x7fb", 'a DEL character']) {
        # on a raw socket: HTTP::Tiny refuses such header values itself
        my $r = async_request($t, POST => task_path(), token => $tk,
                              body => { title => 'bad key' },
                              headers => { 'Idempotency-Key' => $case->[0] })->wait(10);
        is($r->{status}, 400, "$case->[1]: 400");
        is($r->{json} && $r->{json}{code}, 'validation_failed', '... validation_failed');
    }
    is(count_titles('bad key'), 0, 'nothing written for bad keys');
    my $long = join '', map { chr(0x20 + $_ % 95) } 0 .. 254;
    $long =~ s/^ +|\s+$//g;
    $long = ('k' x (255 - length $long)) . $long;
    is(length $long, 255, 'a key of 255 printable characters');
    my $r = $t->request(POST => task_path(), token => $tk, body => { title => 'long key' },
                        headers => { 'Idempotency-Key' => $long });
    is($r->{status}, 201, 'a key of 255 printable characters: 201');
    $r = $t->request(POST => task_path(), token => $tk, body => { title => 'long key' },
                     headers => { 'Idempotency-Key' => $long });
    is($r->{headers}{'idempotent-replayed'}, 'true', '... and its repeat is a replay');
    is(count_titles('long key'), 1, '... one task');
}

# 409 while the first is in flight; a PATCH replay; a recorded 4xx
{
    my $id = create_task($t, $u, 'in flight');
    my $key = key();
    my $lock = lock_row($t, $id);
    my $p = async_request($t, PATCH => task_path($id), token => $tk,
                          headers => { 'Idempotency-Key' => $key },
                          body => { priority => 3 });
    ok(wait_until(10, sub { lock_waiters($t) == 1 }), 'the first PATCH is in flight');
    my $r = $t->request(PATCH => task_path($id), token => $tk,
                        headers => { 'Idempotency-Key' => $key },
                        body => { priority => 3 });
    is($r->{status}, 409, 'a repeat while the first is in flight: 409');
    is($r->{json} && $r->{json}{code}, 'conflict', '... conflict');
    $r = $t->request(PATCH => task_path($id), token => $tk,
                     headers => { 'Idempotency-Key' => $key },
                     body => { priority => 1 });
    is($r->{status}, 422, 'another body while in flight: 422');
    $lock->send("COMMIT;\n");
    my $r1 = $p->wait(10);
    $lock->close;
    is($r1->{status}, 200, 'the first PATCH: 200');
    is($r1->{json}{version}, 2, '... version 2');
    $r = $t->request(PATCH => task_path($id), token => $tk,
                     headers => { 'Idempotency-Key' => $key },
                     body => { priority => 3 });
    is($r->{status}, 200, 'the repeat afterwards: 200');
    is($r->{headers}{'idempotent-replayed'}, 'true', '... replayed');
    is($r->{body}, $r1->{body}, '... byte for byte');
    is($r->{headers}{etag}, '"2"', '... ETag "2"');
    is($t->psql('SELECT version FROM tm.tasks WHERE id = $1', $id), '2',
       'the PATCH was applied once');

    my $k2 = key();
    $r1 = $t->request(PATCH => task_path($id), token => $tk,
                      headers => { 'Idempotency-Key' => $k2, 'If-Match' => '"1"' },
                      body => { priority => 4 });
    is($r1->{status}, 412, 'a PATCH with a key and a stale If-Match: 412');
    $r = $t->request(PATCH => task_path($id), token => $tk,
                     headers => { 'Idempotency-Key' => $k2, 'If-Match' => '"1"' },
                     body => { priority => 4 });
    is($r->{status}, 412, 'its repeat: the recorded 412');
    is($r->{headers}{'idempotent-replayed'}, 'true', '... replayed');
    is($r->{json}{detail}, $r1->{json}{detail}, '... the same detail');
    $r = $t->request(PATCH => task_path($id), token => $tk,
                     headers => { 'Idempotency-Key' => $k2, 'If-Match' => '"2"' },
                     body => { priority => 4 });
    is($r->{status}, 422, 'the same key with another If-Match: 422');
}

# restore and workspace create honour the key; DELETE does not need one
{
    my $id = create_task($t, $u, 'idem restore');
    is($t->request(DELETE => task_path($id), token => $tk)->{status}, 204, 'deleted');
    my $key = key();
    my $r1 = $t->request(POST => task_path("$id/restore"), token => $tk,
                         headers => { 'Idempotency-Key' => $key });
    is($r1->{status}, 200, 'restore with a key: 200');
    my $r2 = $t->request(POST => task_path("$id/restore"), token => $tk,
                         headers => { 'Idempotency-Key' => $key });
    is($r2->{status}, 200, 'the repeat: 200 (not 409: it is a replay)');
    is($r2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
    is($r2->{body}, $r1->{body}, '... byte for byte');
    is($t->request(POST => task_path("$id/restore"), token => $tk)->{status}, 409,
       'without the key: 409, the task is not deleted');

    my $wk = key();
    my $w1 = $t->request(POST => '/v1/workspaces', token => $tk,
                         body => { name => "idem ws $$" },
                         headers => { 'Idempotency-Key' => $wk });
    is($w1->{status}, 201, 'workspace create with a key: 201');
    my $w2 = $t->request(POST => '/v1/workspaces', token => $tk,
                         body => { name => "idem ws $$" },
                         headers => { 'Idempotency-Key' => $wk });
    is($w2->{status}, 201, 'the repeat: 201');
    is($w2->{headers}{'idempotent-replayed'}, 'true', '... replayed');
    is($w2->{body}, $w1->{body}, '... byte for byte');
    is($w2->{headers}{location}, $w1->{headers}{location}, '... the same Location');
    is($t->psql('SELECT count(*) FROM tm.workspaces WHERE name = $1', "idem ws $$"), '1',
       'one workspace');

    # an answer without a write (a malformed path) releases the claim
    my $nk = key();
    for my $n (1, 2) {
        my $r = $t->request(PATCH => task_path('not-a-uuid'), token => $tk,
                            headers => { 'Idempotency-Key' => $nk }, body => { priority => 1 });
        is($r->{status}, 404, "a key on a malformed task id ($n): 404, not 409");
    }
    is($t->psql('SELECT count(*) FROM tm.idempotency_keys WHERE key = $1', $nk), '0',
       '... no record is left');

    # DELETE does not take part: a repeated key is no replay
    my $did = create_task($t, $u, 'delete twice');
    my $dk = key();
    is($t->request(DELETE => task_path($did), token => $tk,
                   headers => { 'Idempotency-Key' => $dk })->{status}, 204, 'DELETE with a key: 204');
    is($t->request(DELETE => task_path($did), token => $tk,
                   headers => { 'Idempotency-Key' => $dk })->{status}, 404,
       '... again: 404 (DELETE ignores Idempotency-Key)');

    my $r = $t->request(POST => '/v1/auth/logout', token => setup_user($t)->{token},
                        headers => { 'Idempotency-Key' => '' });
    isnt($r->{status}, 400, 'auth routes ignore Idempotency-Key (an empty one is no 400)');
}

###########################################################################
# the write and the record commit together

# a failure after the write, in the same statement
{
    $t->psql(<<'SQL');
CREATE FUNCTION public.idem_fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.state = 'done' THEN RAISE EXCEPTION 'injected failure'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER idem_fail BEFORE UPDATE ON tm.idempotency_keys
  FOR EACH ROW EXECUTE FUNCTION public.idem_fail();
SQL
    my $key = key();
    my $off = $t->error_log_size;
    my $r = $t->request(POST => task_path(), token => $tk, body => { title => 'crash 1' },
                        headers => { 'Idempotency-Key' => $key });
    is($r->{status}, 500, 'the record fails after the write: 500');
    is($r->{json} && $r->{json}{code}, 'internal', '... internal');
    is(count_titles('crash 1'), 0, '... and the write is rolled back with it');
    ok(wait_until(5, sub { $t->psql('SELECT count(*) FROM tm.idempotency_keys WHERE key = $1',
                                    $key) eq '0' }),
       '... the claim is released');
    like($t->error_log_since($off), qr/injected failure/, '... error.log has the SQL error');
    $t->psql('DROP TRIGGER idem_fail ON tm.idempotency_keys');

    $r = $t->request(POST => task_path(), token => $tk, body => { title => 'crash 1' },
                     headers => { 'Idempotency-Key' => $key });
    is($r->{status}, 201, 'the retry: 201');
    $r = $t->request(POST => task_path(), token => $tk, body => { title => 'crash 1' },
                     headers => { 'Idempotency-Key' => $key });
    is($r->{headers}{'idempotent-replayed'}, 'true', 'a second retry: replayed');
    is(count_titles('crash 1'), 1, 'exactly one task');
}

# the backend is killed while the write runs
{
    $t->psql(<<'SQL');
CREATE FUNCTION public.idem_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.title = 'crash 2' THEN PERFORM pg_sleep(8); END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER idem_slow BEFORE INSERT ON tm.tasks
  FOR EACH ROW EXECUTE FUNCTION public.idem_slow();
SQL
    my $key = key();
    my $p = async_request($t, POST => task_path(), token => $tk,
                          body => { title => 'crash 2' },
                          headers => { 'Idempotency-Key' => $key });
    my $pid;
    ok(wait_until(10, sub {
        $pid = $t->psql(q{SELECT pid FROM pg_stat_activity
                          WHERE usename = 'taskmgr_app' AND wait_event = 'PgSleep'});
        $pid =~ /^\d+$/ }), 'the write runs (in the trigger)');
    $t->psql('SELECT pg_terminate_backend($1::int)', $pid);
    my $r = $p->wait(10);
    ok(is_unavailable($r), 'the backend is killed: 503') or diag $r->{raw};
    is(count_titles('crash 2'), 0, '... nothing committed');
    $t->psql('DROP TRIGGER idem_slow ON tm.tasks');

    $r = wait_until(10, sub {
        my $x = $t->request(POST => task_path(), token => $tk, body => { title => 'crash 2' },
                            headers => { 'Idempotency-Key' => $key });
        $x->{status} == 409 ? undef : $x });
    is($r && $r->{status}, 201, 'the retry: 201');
    $r = $t->request(POST => task_path(), token => $tk, body => { title => 'crash 2' },
                     headers => { 'Idempotency-Key' => $key });
    is($r->{headers}{'idempotent-replayed'}, 'true', 'a second retry: replayed');
    is(count_titles('crash 2'), 1, 'exactly one task');
}

# an abandoned claim is taken over, and its old owner can never commit
{
    my $key = key();
    $t->psql(q{INSERT INTO tm.idempotency_keys (user_id, key, fingerprint, token, state,
                                                started_at, expires_at)
               VALUES ($1, $2, repeat('0', 64), gen_random_uuid(), 'in_flight',
                       now() - interval '61 seconds', now() + interval '1 hour')},
             $u->{user_id}, $key);
    my $r = $t->request(POST => task_path(), token => $tk, body => { title => 'taken over' },
                        headers => { 'Idempotency-Key' => $key });
    is($r->{status}, 201, 'a claim older than 60 s is taken over: 201');
    is(count_titles('taken over'), 1, '... one task');

    my $id = create_task($t, $u, 'lost claim');
    my $k2 = key();
    my $lock = lock_row($t, $id);
    my $p = async_request($t, PATCH => task_path($id), token => $tk,
                          headers => { 'Idempotency-Key' => $k2 },
                          body => { title => 'lost claim 2' });
    ok(wait_until(10, sub { lock_waiters($t) == 1 }), 'a PATCH is in flight');
    # another request takes the claim over meanwhile
    $t->psql(q{UPDATE tm.idempotency_keys SET token = gen_random_uuid()
               WHERE key = $1 AND user_id = $2}, $k2, $u->{user_id});
    $lock->send("COMMIT;\n");
    $r = $p->wait(10);
    $lock->close;
    ok(is_unavailable($r), 'the old owner\'s write: 503') or diag $r->{raw};
    is($t->psql('SELECT title || version FROM tm.tasks WHERE id = $1', $id), 'lost claim1',
       '... and it did not commit');
}

$t->done;
