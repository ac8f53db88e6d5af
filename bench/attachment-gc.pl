# bench/attachment-gc.pl: what the attachment store's garbage collection
# (taskmgr_attachment_gc) costs on a large store.  Run through the test
# harness, which starts PostgreSQL and Redis on throw-away ports:
#
#   T=bench/attachment-gc.pl make test              (100,000 files)
#   GC_FILES=300000 T=bench/attachment-gc.pl make test
#
# It starts nginx (one worker, the collection off), uploads 20 attachments
# through the API (their rows stay), puts GC_FILES orphan files (no row
# names them, mtime an hour ago) into the store, restarts nginx with
# taskmgr_attachment_gc 100ms and grace 1s, and measures until every orphan
# is gone: the wall time, the slices (from the
# log), the worker's CPU time (user + system, /proc) and the files left.
# Then one pass over the store with nothing to remove (the rows' files
# only), as the collection costs when the store holds no orphans.
# Prints a Markdown table; asserts only that the orphans went and the
# referenced files stayed (it is a measurement, not a test).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";

use Test::More;
use Digest::SHA qw(sha256_hex);
use POSIX ();
use Time::HiRes qw(sleep time);
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task);

my $N = $ENV{GC_FILES} // 100_000;

my $t = Taskmgr::Test->new(name => 'attachment_gc_bench');
$t->start(http_config => 'taskmgr_attachment_gc off;');

my $store = $t->dir . '/attachments';
my $tick = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;

sub cpu_s {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\)\s//r);
    return ($f[11] + $f[12]) / $tick;    # utime + stime
}

sub file_of { my $h = $_[0]; "$store/" . substr($h, 0, 2) . '/' . substr($h, 2, 2) . "/$h" }

# the referenced files: 20 uploads
my $u = setup_user($t);
my $tid = create_task($t, $u, 'gc bench');
my @kept;
for my $i (1 .. 20) {
    my $body = "gc bench $i $$\n";
    my $r = $t->request(POST => "/v1/workspaces/$u->{ws}/tasks/$tid/attachments?name=f$i.txt",
                        token => $u->{token}, headers => { 'Content-Type' => 'text/plain' },
                        body => $body);
    die "upload: $r->{status} $r->{body}\n" unless $r->{status} == 201;
    push @kept, file_of(sha256_hex($body));
}

# the orphans, owned like the store (the worker's user), an hour old
my ($uid, $gid) = (stat $store)[4, 5];
my $old = time - 3600;
my $t0 = time;
my @orphans;
for my $i (1 .. $N) {
    my $h = sha256_hex("orphan $i $$");
    my $d1 = "$store/" . substr($h, 0, 2);
    my $d2 = "$d1/" . substr($h, 2, 2);
    for my $d ($d1, $d2) {
        next if -d $d;
        mkdir $d, 0700 or die "mkdir $d: $!";
        chown $uid, $gid, $d;
    }
    my $f = "$d2/$h";
    open my $fh, '>', $f or die "$f: $!";
    print {$fh} "orphan $i\n";
    close $fh;
    chown $uid, $gid, $f;
    utime $old, $old, $f;
    push @orphans, $f;
}
my $made = time - $t0;

$t->start(http_config => 'taskmgr_attachment_gc 100ms;
    taskmgr_attachment_gc_grace 1s;');
my ($worker) = $t->worker_pids;
my $mark = $t->error_log_size;
my $cpu0 = cpu_s($worker);
my $w0 = time;
my $left = $N;
while (time - $w0 < 900) {
    $left = grep { -e $_ } @orphans[0 .. ($left > 2000 ? 1999 : $#orphans)];
    if (!$left) {
        $left = grep { -e $_ } @orphans;
        last unless $left;
    }
    sleep 0.2;
}
my $wall = time - $w0;
my $cpu = cpu_s($worker) - $cpu0;
my $log = $t->error_log_since($mark);
my @slices = $log =~ /attachment gc removed (\d+) files/g;
my $removed = 0;
$removed += $_ for @slices;

is($left, 0, "every orphan is gone ($N)");
is(scalar(grep { -f $_ } @kept), 20, 'the 20 referenced files stay');

# passes with nothing to remove (16 slices of 4096 directories a pass at
# most, 100 ms apart)
my $cpu1 = cpu_s($worker);
my $p0 = time;
sleep 4;
my $idle_cpu = cpu_s($worker) - $cpu1;
my $idle_wall = time - $p0;

my $pg = $t->psql(q{SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'attachments_sha256_idx'});

diag sprintf <<'EOF', $N, $made, $wall, scalar @slices, $removed, $cpu, 1e6 * $cpu / ($N || 1), $idle_wall, $idle_cpu, $pg;

| orphans | created in | all gone after | slices that removed | files removed | worker CPU | CPU per file |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| %d | %.1f s | %.1f s | %d | %d | %.2f s | %.1f µs |

Idle: %.1f s of passes over the store left (20 files, the directories the orphans made), 100 ms apart, took %.2f s of worker CPU.
attachments_sha256_idx scans: %s.
EOF

$t->done;
