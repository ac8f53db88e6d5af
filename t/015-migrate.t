# scripts/migrate.sh: each migration applied once, in order, in one
# transaction with its record; the SHA-256 of every applied file is kept, and
# a changed, missing or out-of-order file stops the run before anything is
# applied.  The steps below run against a scratch database and a scratch
# migration directory, one after the other: each step sets up the files,
# runs the script and checks its exit status, its output and what the
# database holds afterwards.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA ();
use File::Path ();
use POSIX ();
use Taskmgr::Test;

my $t = Taskmgr::Test->new;
my $repo = "$FindBin::Bin/..";
my $db = substr("t_migrate_scratch_$$", 0, 63);
my $sqldir = $t->dir . '/sql';
mkdir $sqldir or die "$sqldir: $!";

$t->_psql('postgres', qq{DROP DATABASE IF EXISTS "$db" WITH (FORCE)});
$t->_psql('postgres', qq{CREATE DATABASE "$db" TEMPLATE template0});

sub spew {
    my ($name, $content) = @_;
    open my $fh, '>:raw', "$sqldir/$name" or die "$name: $!";
    print {$fh} $content;
    close $fh or die "$name: $!";
}

sub sha { Digest::SHA::sha256_hex($_[0]) }

sub q_scratch { $t->_psql($db, $_[0]) }

# migrate(@args): runs the script on the scratch database; returns
# (exit status, stdout, stderr).
our $TAG = '';
sub migrate {
    my (@args) = @_;
    my $out = $t->dir . "/migrate$TAG.out";
    my $err = $t->dir . "/migrate$TAG.err";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{TASKMGR_SQL_DIR} = $sqldir;
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>', $err or POSIX::_exit(126);
        exec "$repo/scripts/migrate.sh", @args, $t->{pg_sockdir}, $t->pg_port, $db
            or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    return ($rc, slurp($out), slurp($err));
}

sub slurp {
    open my $fh, '<:raw', $_[0] or return '';
    local $/;
    return <$fh> // '';
}

# "version=checksum" of every record, in version order; "-" for no checksum
sub records {
    my $has = q_scratch(q{SELECT count(*) FROM information_schema.columns
                          WHERE table_schema = 'public' AND table_name = 'schema_migrations'
                            AND column_name = 'checksum'});
    my $col = $has ? q{coalesce(checksum, '-')} : q{'-'};
    return join ' ', split /\n/,
        q_scratch("SELECT version || '=' || $col FROM public.schema_migrations ORDER BY version");
}

sub tables {
    return join ' ', split /\n/, q_scratch(q{SELECT relname FROM pg_class
        WHERE relkind = 'r' AND relname LIKE 'm\_%' ORDER BY relname});
}

my %body = (
    '0001_a'      => "CREATE TABLE m_a (x int);\n",
    '0001_a_edit' => "-- a comment added later\nCREATE TABLE m_a (x int);\n",
    '0002_b'      => "CREATE TABLE m_b (x int);\n",
    '0003_c'      => "CREATE TABLE m_c (x int);\nINSERT INTO m_c VALUES (1);\n",
    '0002_late'   => "CREATE TABLE m_late (x int);\n",
    '0004_bad'    => "CREATE TABLE m_d (x int);\nSELECT 1/0;\n",
    '0004_d'      => "CREATE TABLE m_d (x int);\n",
);
my %sum = map { $_ => sha($body{$_}) } keys %body;

# Each step: what to do to the files or the database first, the arguments,
# the expected exit status, patterns its stdout/stderr must (not) match, and
# the records and tables expected afterwards.
my @steps = (
    {
        name    => 'a fresh database: every file applied in order, checksums kept',
        files   => { '0001_a.sql' => '0001_a', '0002_b.sql' => '0002_b' },
        rc      => 0,
        out     => [qr/applied 0001_a\n.*applied 0002_b\n/s, qr/up to date \(2 applied now, 2 migration files\)/],
        records => "0001_a=$sum{'0001_a'} 0002_b=$sum{'0002_b'}",
        tables  => 'm_a m_b',
    },
    {
        name    => 'run again: nothing to apply',
        rc      => 0,
        out     => [qr/up to date \(0 applied now, 2 migration files\)/],
        out_not => [qr/applied 000/],
        records => "0001_a=$sum{'0001_a'} 0002_b=$sum{'0002_b'}",
        tables  => 'm_a m_b',
    },
    {
        name    => 'an applied file edited: refused, the pending one not applied',
        files   => { '0001_a.sql' => '0001_a_edit', '0003_c.sql' => '0003_c' },
        rc      => 1,
        err     => [qr/0001_a changed since it was applied/, qr/--repair/,
                    qr/1 problem\(s\) with the migration files; nothing applied/],
        out_not => [qr/applied 0003_c/],
        records => "0001_a=$sum{'0001_a'} 0002_b=$sum{'0002_b'}",
        tables  => 'm_a m_b',
    },
    {
        name    => '--repair records the edited file\'s checksum and applies nothing',
        args    => ['--repair'],
        rc      => 0,
        out     => [qr/recorded the current checksum of 0001_a/, qr/repaired \(1 checksums recorded, nothing applied\)/],
        records => "0001_a=$sum{'0001_a_edit'} 0002_b=$sum{'0002_b'}",
        tables  => 'm_a m_b',
    },
    {
        name    => 'after the repair the pending file is applied',
        rc      => 0,
        out     => [qr/applied 0003_c\n/, qr/\(1 applied now, 3 migration files\)/],
        records => "0001_a=$sum{'0001_a_edit'} 0002_b=$sum{'0002_b'} 0003_c=$sum{'0003_c'}",
        tables  => 'm_a m_b m_c',
    },
    {
        name    => 'a new file that sorts before the newest applied one: refused',
        files   => { '0002_late.sql' => '0002_late', '0004_d.sql' => '0004_d' },
        rc      => 1,
        err     => [qr/0002_late is not applied but sorts before 0003_c/, qr/nothing applied/],
        records => "0001_a=$sum{'0001_a_edit'} 0002_b=$sum{'0002_b'} 0003_c=$sum{'0003_c'}",
        tables  => 'm_a m_b m_c',
    },
    {
        name    => 'an applied file removed: refused',
        files   => { '0002_late.sql' => undef, '0004_d.sql' => undef, '0002_b.sql' => undef },
        rc      => 1,
        err     => [qr/0002_b was applied but \S+\/0002_b\.sql is gone/, qr/nothing applied/],
        records => "0001_a=$sum{'0001_a_edit'} 0002_b=$sum{'0002_b'} 0003_c=$sum{'0003_c'}",
        tables  => 'm_a m_b m_c',
    },
    {
        name    => 'a failing file is rolled back whole and not recorded',
        files   => { '0002_b.sql' => '0002_b', '0004_bad.sql' => '0004_bad' },
        rc      => 1,
        err     => [qr/0004_bad failed in database \S+; it was rolled back/, qr/division by zero/],
        records => "0001_a=$sum{'0001_a_edit'} 0002_b=$sum{'0002_b'} 0003_c=$sum{'0003_c'}",
        tables  => 'm_a m_b m_c',
    },
    {
        name    => 'fixed, it applies',
        files   => { '0004_bad.sql' => undef, '0004_d.sql' => '0004_d' },
        rc      => 0,
        out     => [qr/applied 0004_d\n/],
        records => "0001_a=$sum{'0001_a_edit'} 0002_b=$sum{'0002_b'} 0003_c=$sum{'0003_c'} 0004_d=$sum{'0004_d'}",
        tables  => 'm_a m_b m_c m_d',
    },
    {
        name    => 'a record without a checksum takes the file\'s',
        sql     => q{UPDATE public.schema_migrations SET checksum = NULL WHERE version = '0002_b'},
        rc      => 0,
        out     => [qr/recorded the checksums of 1 migrations applied before checksums were kept/,
                    qr/\(0 applied now, 4 migration files\)/],
        records => "0001_a=$sum{'0001_a_edit'} 0002_b=$sum{'0002_b'} 0003_c=$sum{'0003_c'} 0004_d=$sum{'0004_d'}",
        tables  => 'm_a m_b m_c m_d',
    },
    {
        name    => 'a table from before checksums gains the column and every checksum',
        sql     => q{ALTER TABLE public.schema_migrations DROP COLUMN checksum},
        rc      => 0,
        out     => [qr/recorded the checksums of 4 migrations/],
        records => "0001_a=$sum{'0001_a_edit'} 0002_b=$sum{'0002_b'} 0003_c=$sum{'0003_c'} 0004_d=$sum{'0004_d'}",
        tables  => 'm_a m_b m_c m_d',
    },
    {
        name    => 'a migration file with a bad name: refused',
        files   => { '0005_bad name.sql' => '0004_d' },
        rc      => 1,
        err     => [qr/bad migration file name: \S+\/0005_bad name\.sql/],
        records => "0001_a=$sum{'0001_a_edit'} 0002_b=$sum{'0002_b'} 0003_c=$sum{'0003_c'} 0004_d=$sum{'0004_d'}",
        tables  => 'm_a m_b m_c m_d',
    },
    {
        name    => 'unknown usage: exit 2',
        files   => { '0005_bad name.sql' => undef },
        args    => ['--bogus'],
        rc      => 2,
        err     => [qr/usage: /],
        records => "0001_a=$sum{'0001_a_edit'} 0002_b=$sum{'0002_b'} 0003_c=$sum{'0003_c'} 0004_d=$sum{'0004_d'}",
        tables  => 'm_a m_b m_c m_d',
    },
);

for my $s (@steps) {
    for my $f (sort keys %{ $s->{files} // {} }) {
        my $key = $s->{files}{$f};
        if (defined $key) { spew($f, $body{$key}) } else { unlink "$sqldir/$f" or die "$f: $!" }
    }
    q_scratch($s->{sql}) if $s->{sql};

    my ($rc, $out, $err) = migrate(@{ $s->{args} // [] });
    is($rc, $s->{rc}, "$s->{name}: exit status") or diag("stdout: $out\nstderr: $err");
    like($out, $_, "$s->{name}: stdout $_") for @{ $s->{out} // [] };
    unlike($out, $_, "$s->{name}: stdout has no $_") for @{ $s->{out_not} // [] };
    like($err, $_, "$s->{name}: stderr $_") for @{ $s->{err} // [] };
    is($err, '', "$s->{name}: nothing on stderr") if $s->{rc} == 0;
    is(records(), $s->{records}, "$s->{name}: records");
    is(tables(), $s->{tables}, "$s->{name}: tables");
}

# Two migrators at once: the advisory lock lets one apply the slow file; the
# other waits, fails on the existing table, sees the record with the same
# checksum and says so (or, started late, finds it applied).  Both succeed;
# the file runs once and is recorded once.
{
    spew('0005_slow.sql', "SELECT pg_sleep(2);\nCREATE TABLE m_slow (x int);\n");
    my @kids;
    for my $i (1, 2) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            local $TAG = ".$i";
            my ($rc, $out, $err) = migrate();
            open my $fh, '>', $t->dir . "/conc.$i" or POSIX::_exit(126);
            print {$fh} "$rc\n$out$err";
            close $fh;
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    waitpid $_, 0 for @kids;
    my @res = map { slurp($t->dir . "/conc.$_") } 1, 2;
    is_deeply([map { /\A(\d+)\n/ ? $1 : -1 } @res], [0, 0], 'two migrators at once: both exit 0')
        or diag(join "\n---\n", @res);
    is(scalar(grep { /applied 0005_slow\n/ } @res), 1, 'two migrators at once: one applies it');
    is(scalar(grep { /0005_slow was applied meanwhile by another migrator|\(0 applied now/ } @res), 1,
       'two migrators at once: the other says it was applied meanwhile');
    unlike(join('', @res), qr/already exists|ERROR/, 'two migrators at once: the loser\'s error is not shown');
    is(q_scratch(q{SELECT count(*) FROM public.schema_migrations WHERE version = '0005_slow'}),
       1, 'two migrators at once: recorded once');
    like(tables(), qr/\bm_slow\b/, 'two migrators at once: applied');
}

$t->_psql('postgres', qq{DROP DATABASE IF EXISTS "$db" WITH (FORCE)});
$t->done;
