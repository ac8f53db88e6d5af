package Taskmgr::List;

# Shared helpers of the task list tests (t/325, t/326): every page of a list
# through the API, the ids an SQL oracle answers, and whether an index of
# tm.tasks served a scan.
#
#     use Taskmgr::List qw(list_walk psql_ids index_scans index_read_since);
#     my $ids = list_walk($t, $ws, $token, 'q=needle&limit=50');   # [ids] or undef
#     my $want = psql_ids($t, 'SELECT id FROM tm.tasks t WHERE ...', $ws);
#     my $before = index_scans($t, 'tasks_search_recent_idx');
#     ok(index_read_since($t, 'tasks_search_recent_idx', $before));

use strict;
use warnings;

use Exporter 'import';
use Test::More ();

our @EXPORT_OK = qw(list_walk psql_ids index_scans index_read_since);

# list_walk($t, $ws, $token, $query, $max_pages): the ids of every page of
# GET /v1/workspaces/$ws/tasks?$query, following next_cursor (at most
# $max_pages, default 200); undef (and a diag) on a status other than 200.
sub list_walk {
    my ($t, $ws, $token, $q, $max) = @_;
    my (@ids, $cursor);
    for (1 .. ($max // 200)) {
        my $r = $t->request(GET => "/v1/workspaces/$ws/tasks?$q"
                                   . (defined $cursor ? "&cursor=$cursor" : ''),
                            token => $token);
        if ($r->{status} != 200) {
            Test::More::diag("$q: $r->{status} $r->{body}");
            return undef;
        }
        push @ids, map { $_->{id} } @{ $r->{json}{data} };
        $cursor = $r->{json}{next_cursor};
        last unless defined $cursor;
    }
    return \@ids;
}

# psql_ids($t, $sql, @binds): the lines psql answers, empty ones left out
sub psql_ids {
    my ($t, $sql, @binds) = @_;
    return [ grep { length } split /\n/, $t->psql($sql, @binds) ];
}

# index_scans($t, $index): the scans an index of schema tm has served
sub index_scans {
    my ($t, $index) = @_;
    return $t->psql(q{SELECT idx_scan FROM pg_stat_user_indexes
                       WHERE schemaname = 'tm' AND indexrelname = $1}, $index);
}

# index_read_since($t, $index, $before): did the index serve a scan since
# index_scans() answered $before (a backend reports its statistics when
# idle, within about a second; up to 10 s when busy)
sub index_read_since {
    my ($t, $index, $before) = @_;
    for (1 .. 150) {
        return 1 if index_scans($t, $index) > $before;
        select undef, undef, undef, 0.1;
    }
    return 0;
}

1;
