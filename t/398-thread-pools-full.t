# A thread pool whose queue is full: password hashing and the attachment
# store answer 503 dependency_unavailable with Retry-After (not 500), leave
# nothing behind (no user, no attachment row, no file, no temporary body, no
# new password) and do not count as a failed login.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use File::Find;
use Digest::SHA ();
use Taskmgr::Test;
use Time::HiRes ();
use Taskmgr::Load qw(setup_user create_task async_request wait_until);

my $t = Taskmgr::Test->new(name => 'thread_pools_full');

# One pool of one thread for both, with no queue: while a password is being
# verified (argon2 made slow on purpose, ~1-2 s), every other task is refused.
# (nginx counts an idle thread against the queue, so max_queue=0 still takes
# one task while the thread is free.)
$t->start(main_config => 'thread_pool tm_one threads=1 max_queue=0;',
          http_config => 'taskmgr_password_thread_pool tm_one;
    taskmgr_attachment_thread_pool tm_one;
    taskmgr_argon2 t_cost=8 m_cost=262144;
    taskmgr_attachment_types text/plain;
    taskmgr_attachment_max_size 16k;');

my $store = $t->dir . '/attachments';
my $temp  = $t->dir . '/tmp_body';

sub files_under {
    my ($dir) = @_;
    my @f;
    return 0 unless -d $dir;
    find(sub { push @f, $File::Find::name if -f $_ }, $dir);
    return scalar @f;
}

my $pw = 'correct horse battery staple';
my $new_pw = 'a different horse, staple battery';
my ($alice, $secs) = do {
    my $t0 = Time::HiRes::time();
    (setup_user($t), Time::HiRes::time() - $t0);
};
note(sprintf 'one slow hash: %.2f s', $secs);
my $tid = create_task($t, $alice, 'attach here');
my $att = "/v1/workspaces/$alice->{ws}/tasks/$tid/attachments";
my $hash0 = $t->psql(q{SELECT password_hash FROM tm.users WHERE id = $1}, $alice->{user_id});
my $BUSY = { status => 503, code => 'dependency_unavailable' };

# Each case: a request sent while the thread verifies alice's password, what
# must come back, and what the database must hold afterwards.
my @busy = (
    {
        name => 'upload',
        req => [POST => "$att?name=notes.txt", token => $alice->{token},
                headers => { 'Content-Type' => 'text/plain' }, body => "some notes\n"],
        want => { %$BUSY, detail => qr/the file store is busy, retry shortly/ },
        db => [[q{SELECT count(*) FROM tm.attachments WHERE task_id = $1}, [$tid], 0]],
        files => 0,
    },
    {
        name => 'register',
        req => [POST => '/v1/auth/register',
                body => { email => "late-$$\@example.com", password => $pw, name => 'Late' }],
        want => { %$BUSY, detail => qr/password hashing is busy, retry shortly/ },
        db => [[q{SELECT count(*) FROM tm.users WHERE email = $1}, ["late-$$\@example.com"], 0]],
    },
    {
        name => 'login',
        req => [POST => '/v1/auth/login', body => { email => $alice->{email}, password => $pw }],
        want => { %$BUSY, detail => qr/password hashing is busy/ },
    },
    {
        name => 'login with a wrong password (503, never 401: nothing was checked)',
        req => [POST => '/v1/auth/login', body => { email => $alice->{email}, password => 'wrong wrong wrong' }],
        want => $BUSY,
    },
    {
        name => 'login of an unknown account',
        req => [POST => '/v1/auth/login', body => { email => "nobody-$$\@example.com", password => $pw }],
        want => $BUSY,
    },
    {
        name => 'password change',
        req => [POST => '/v1/auth/password', token => $alice->{token},
                body => { current_password => $pw, new_password => $new_pw }],
        want => $BUSY,
        db => [[q{SELECT password_hash FROM tm.users WHERE id = $1}, [$alice->{user_id}], $hash0]],
    },
);

# The workers' resident memory: argon2 fills its 256 MiB as it runs, so a
# rise of 64 MiB says the slow login's verification holds the thread.
sub workers_rss_kb {
    my $kb = 0;
    for my $pid ($t->worker_pids) {
        open my $fh, '<', "/proc/$pid/status" or next;
        while (<$fh>) { $kb += $1 if /^VmRSS:\s+(\d+) kB/ }
    }
    return $kb;
}
my $rss0 = workers_rss_kb();

my $slow = async_request($t, POST => '/v1/auth/login',
                         body => { email => $alice->{email}, password => $pw });
ok(wait_until(10, sub { workers_rss_kb() > $rss0 + 64 * 1024 }, 0.01),
   'the slow login\'s verification is running (argon2 took its memory)');
ok(!$slow->answered, 'the slow login is still being verified');

for my $c (@busy) {
    my $r = $t->request(@{ $c->{req} });
    my $w = $c->{want};
    my $name = "$c->{name} while the pool is busy";
    is($r->{status}, $w->{status}, "$name: $w->{status}") or diag $r->{body};
    like($r->{headers}{'content-type'} // '', qr{^application/problem\+json}, "$name: problem+json");
    is($r->{json} && $r->{json}{code}, $w->{code}, "$name: code $w->{code}");
    like($r->{headers}{'retry-after'} // '', qr/^\d+$/, "$name: Retry-After");
    like($r->{json} && $r->{json}{detail} // '', $w->{detail}, "$name: detail")
        if $w->{detail};
    for my $q (@{ $c->{db} // [] }) {
        is($t->psql($q->[0], @{ $q->[1] }), $q->[2], "$name: $q->[0] unchanged");
    }
    is(files_under($store), $c->{files}, "$name: $c->{files} files in the store")
        if defined $c->{files};
    ok(wait_until(5, sub { files_under($temp) == 0 }), "$name: no temporary body left");
}
ok(!$slow->answered, 'the slow login was still being verified all along')
    or diag('argon2 finished before the busy requests did; the 503s above may be missing');

my $sr = $slow->wait(30);
is($sr->{status}, 200, 'the slow login then succeeds') or diag $sr->{body};

# The pool is free again: the same requests go through.
{
    my $r = $t->request(@{ $busy[0]{req} });
    is($r->{status}, 201, 'upload once the pool is free: 201') or diag $r->{body};
    is(files_under($store), 1, 'upload once the pool is free: its file is stored');
    # nginx removes the body's temporary file when it frees the request,
    # just after the response has gone out
    ok(wait_until(5, sub { files_under($temp) == 0 }), 'upload once the pool is free: no temporary body left');
}

# The refused logins were not failed attempts: the account has no failure
# counter in Redis, and once the pool frees the password still works.
is($t->redis_cli('EXISTS', 'tmk:{' . Digest::SHA::sha256_hex(lc $alice->{email}) . '}:lf'), '0',
   'the refused wrong password was not counted as a failed login');
my $r = $t->request(POST => '/v1/auth/login', body => { email => $alice->{email}, password => $pw });
is($r->{status}, 200, 'after the pool frees: login works') or diag $r->{body};

my @overflow = $t->error_log =~ /thread pool "tm_one" queue overflow/g;
is(scalar @overflow, scalar @busy, 'nginx logged each refused task');

$t->done;
