# The attachment store's garbage collection (taskmgr_attachment_gc): files no
# attachment row names any more (an attachment deleted, a task deleted for
# good) go once older than taskmgr_attachment_gc_grace; a file another row
# (another tenant's) still names stays; an upload of stored content touches
# the file, and one collected is linked anew; a removal left half done (the
# file renamed to <sha256>.gc) is undone; younger files and "off" keep all.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(sleep time);
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task);

my $t = Taskmgr::Test->new(name => 'attachments_gc');
my $gc_conf = 'taskmgr_attachment_gc 200ms;
    taskmgr_attachment_gc_grace 1s;';
$t->start(http_config => $gc_conf);

my $store = $t->dir . '/attachments';

my ($alice, $bob) = map { setup_user($t) } 1 .. 2;

sub file_of { my $h = sha256_hex($_[0]); "$store/" . substr($h, 0, 2) . '/' . substr($h, 2, 2) . "/$h" }

sub upload {
    my ($u, $tid, $name, $body) = @_;
    my $r = $t->request(POST => "/v1/workspaces/$u->{ws}/tasks/$tid/attachments?name=$name",
                        token => $u->{token}, headers => { 'Content-Type' => 'text/plain' },
                        body => $body);
    is($r->{status}, 201, "upload $name: 201") or diag $r->{body};
    return $r->{json} // {};
}

sub del_attachment {
    my ($u, $id, $name) = @_;
    is($t->request(DELETE => "/v1/workspaces/$u->{ws}/attachments/$id",
                   token => $u->{token})->{status}, 204, "$name: attachment deleted");
}

sub fetch {
    my ($u, $id) = @_;
    my $g = $t->request(GET => "/v1/workspaces/$u->{ws}/attachments/$id", token => $u->{token});
    return undef unless $g->{status} == 200;
    return $t->request(GET => $g->{json}{download_url})->{body};
}

# waits until the files are gone (or there); true when they all are
sub wait_for {
    my ($want_gone, @files) = @_;
    my $until = time + 15;
    while (time < $until) {
        my $left = grep { $want_gone ? -e $_ : !-e $_ } @files;
        return 1 unless $left;
        sleep 0.1;
    }
    return 0;
}

# after a (re)start: PostgreSQL and Redis connected (the revocation check
# answers 503 until Redis is)
sub ready { $t->wait_ready(15) or fail('ready after start') }
ready();

my $tag = "$$-" . int rand 1e9;
my ($keep, $shared, $gone, $purged) = map { "gc $_ $tag\n" } qw(keep shared gone purged);

my $t1 = create_task($t, $alice, 'holds files');
my $t2 = create_task($t, $alice, 'deleted for good');
my $tb = create_task($t, $bob, "bob's");

my $a_keep   = upload($alice, $t1, 'keep.txt', $keep);
my $a_shared = upload($alice, $t1, 'shared.txt', $shared);
my $b_shared = upload($bob, $tb, 'shared.txt', $shared);
my $a_gone   = upload($alice, $t1, 'gone.txt', $gone);
upload($alice, $t2, 'purged.txt', $purged);
ok(-f file_of($_), 'stored: ' . substr(sha256_hex($_), 0, 8)) for $keep, $shared, $gone, $purged;

my $mark = $t->error_log_size;

# an attachment deleted; a task deleted for good takes its rows; one of two
# rows (two tenants) of the same content deleted
del_attachment($alice, $a_gone->{id}, 'gone.txt');
is($t->request(DELETE => "/v1/workspaces/$alice->{ws}/tasks/$t2?permanent=true",
               token => $alice->{token})->{status}, 204, 'task deleted for good');
del_attachment($alice, $a_shared->{id}, "alice's shared.txt");

ok(wait_for(1, file_of($gone), file_of($purged)),
   'the files of a deleted attachment and of a task deleted for good are collected');
sleep 0.5;    # two more slices
ok(-f file_of($keep), 'a file its row names stays');
ok(-f file_of($shared), "a file another tenant's row still names stays");
is(fetch($alice, $a_keep->{id}), $keep, '... and downloads');
is(fetch($bob, $b_shared->{id}), $shared, "... bob's too");
like($t->error_log_since($mark), qr/\[info\].*taskmgr: attachment gc removed \d+ files/,
     'the log counts the files removed');
is_deeply([ glob("$store/*/*/*.gc") ], [], 'no <sha256>.gc left');

del_attachment($bob, $b_shared->{id}, "bob's shared.txt");
ok(wait_for(1, file_of($shared)), 'the last row of shared content gone: its file is collected');

# the directories the collected files left empty go too: <path>/ab/cd, and
# <path>/ab unless a file still kept lives under it; the same content
# uploaded again makes them again (below)
sub leaf_of { (my $d = file_of($_[0])) =~ s{/[^/]+$}{}; $d }
sub top_of  { (my $d = leaf_of($_[0])) =~ s{/[^/]+$}{}; $d }
{
    my %kept_top = map { top_of($_) => 1 } $keep;
    my @empty = map { (leaf_of($_), $kept_top{ top_of($_) } ? () : top_of($_)) } $gone, $purged, $shared;
    ok(wait_for(1, @empty), 'the directories the collected files left empty are removed')
        or diag(join ' ', grep { -e } @empty);
    ok(-d leaf_of($keep), 'the directory of a file kept stays');
    like($t->error_log_since($mark), qr/\[info\].*taskmgr: attachment gc removed \d+ empty directories/,
         'the log counts the directories removed');
}

# the same content uploaded again after its file was collected: linked anew
my $again = upload($alice, $t1, 'gone-again.txt', $gone);
ok(-f file_of($gone), 'content collected, uploaded again: stored again');
is(fetch($alice, $again->{id}), $gone, '... and downloads');

# an upload of content that is stored touches the file (the collection
# then sees it in use)
{
    my $f = file_of($keep);
    utime time - 3600, time - 3600, $f or die "utime $f: $!";
    my $before = (stat $f)[9];
    my $dup = upload($alice, $t1, 'keep-again.txt', $keep);
    my $after = (stat $f)[9];
    cmp_ok($after, '>', $before + 3000, 'an upload of stored content touches its file');
    is(fetch($alice, $dup->{id}), $keep, '... which downloads');
}

# a removal left half done: the file renamed to <sha256>.gc while its row
# still exists goes back to its name
{
    my $f = file_of($keep);
    rename $f, "$f.gc" or die "rename $f: $!";
    my $m = $t->error_log_size;
    ok(wait_for(0, $f), 'a <sha256>.gc whose file is missing goes back to its name');
    ok(!-e "$f.gc", '... and is gone');
    is(fetch($alice, $a_keep->{id}), $keep, '... the file downloads');
    like($t->error_log_since($m), qr/\[notice\].*attachment gc: restored 1 files/,
         '... and the log says so');

    # a <sha256>.gc beside its file (an upload linked the file anew) goes
    link $f, "$f.gc" or die "link $f: $!";
    ok(wait_for(1, "$f.gc"), 'a <sha256>.gc beside its file is removed');
    ok(-f $f, '... the file stays');
}

# files younger than the grace stay
$t->start(http_config => 'taskmgr_attachment_gc 200ms;
    taskmgr_attachment_gc_grace 1h;');
ready();
{
    my $young = "gc young $tag\n";
    my $a = upload($alice, $t1, 'young.txt', $young);
    del_attachment($alice, $a->{id}, 'young.txt');
    sleep 2.5;    # a dozen slices
    ok(-f file_of($young), 'an orphan younger than taskmgr_attachment_gc_grace stays');
}

# taskmgr_attachment_gc off: nothing is collected
$t->start(http_config => 'taskmgr_attachment_gc off;
    taskmgr_attachment_gc_grace 1s;');
ready();
{
    my $off = "gc off $tag\n";
    my $a = upload($alice, $t1, 'off.txt', $off);
    del_attachment($alice, $a->{id}, 'off.txt');
    sleep 2.5;
    ok(-f file_of($off), 'taskmgr_attachment_gc off: an old orphan stays');

    # and on again: it goes
    $t->start(http_config => $gc_conf);
    ready();
    ok(wait_for(1, file_of($off)), '... collected once the collection is on');
}

is($t->psql('SELECT count(*) FROM tm_api.attachment_orphans($1)',
            '{' . join(',', sha256_hex($keep), sha256_hex('never stored'), 'not-a-digest') . '}'),
   1, 'attachment_orphans: the unused digest only (malformed ones left out)');
eval { $t->psql(q{SELECT tm_api.attachment_orphans(array_fill(repeat('a', 64), ARRAY[1001]))}) };
like($@, qr/at most 1000 digests/, 'attachment_orphans: at most 1000 digests');

$t->done;
