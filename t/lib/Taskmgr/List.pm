package Taskmgr::List;

# Shared helpers of the task list tests (t/325 to t/335): every page of a list
# through the API, the ids an SQL oracle answers (and the oracles of a
# ranked and of a sorted search), and whether an index of tm.tasks served a
# scan.
#
#     use Taskmgr::List qw(list_walk psql_ids index_scans index_read_since);
#     my $ids = list_walk($t, $ws, $token, 'q=needle&limit=50');   # [ids] or undef
#     offset_pages($t, $ws, $token, 'q=needle&sort=title', $want, 40);  # checks
#     capped_pages($t, $ws, $token, 'q=needle&sort=title', $want, 1, 3);   # checks
#     my $want = psql_ids($t, 'SELECT id FROM tm.tasks t WHERE ...', $ws);
#     $want = rank_oracle($t, $ws, "t.status = 'todo'", 'quartz meadow');
#     $want = list_oracle($t, $ws, 'true', 'quartz meadow', 't.title ASC, t.id ASC');
#     my $before = index_scans($t, 'tasks_search_recent_idx');
#     my $reads = reads_tracker($t, $ws, $token, 'tasks_search_idx');
#     my ($status, $rows, $d) = @{ $reads->('q=needle&limit=50') };  # $d->{seq}, ...
#     ok(index_read_since($t, 'tasks_search_recent_idx', $before));

use strict;
use warnings;

use Exporter 'import';
use Test::More ();

our @EXPORT_OK = qw(list_walk offset_pages capped_pages psql_ids rank_oracle list_oracle
                    index_scans index_read_since reads_tracker live_expected);

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

# offset_pages($t, $ws, $token, $query, $want, $per): checks every offset
# page of $query (page size $per), then the one past the last, against the
# oracle's ids $want: the status, an exact X-Total-Count, the rows and
# whether a next page is linked
sub offset_pages {
    my ($t, $ws, $token, $q, $want, $per) = @_;
    my $pages = int((@$want + $per - 1) / $per);
    for my $page (1 .. $pages + 1) {
        my $r = $t->request(GET => "/v1/workspaces/$ws/tasks?$q&page=$page&per_page=$per", token => $token);
        Test::More::is($r->{status}, 200, "$q, offset page $page") or do { Test::More::diag($r->{body}); next };
        Test::More::is($r->{headers}{'x-total-count'}, scalar @$want, '... X-Total-Count: every match');
        Test::More::ok(!exists $r->{headers}{'x-total-count-capped'}, '... exact');
        # (indexes within the oracle's list: a slice past its end in grep
        # would lengthen it)
        my @slice = @$want[ grep { $_ <= $#$want } ($page - 1) * $per .. $page * $per - 1 ];
        Test::More::is_deeply([ map { $_->{id} } @{ $r->{json}{data} // [] } ], \@slice, "... the oracle's rows");
        Test::More::is(defined $r->{headers}{link}, $page < $pages,
                       '... ' . ($page < $pages ? 'a' : 'no') . ' next page');
    }
}

# capped_pages($t, $ws, $token, $query, $want, @pages): offset pages of 50
# of a search with more than 1,000 matches ($want, the oracle's ids): 200,
# the capped X-Total-Count (1000) and the oracle's rows on each page asked
sub capped_pages {
    my ($t, $ws, $token, $q, $want, @pages) = @_;
    for my $page (@pages) {
        my $r = $t->request(GET => "/v1/workspaces/$ws/tasks?$q&page=$page&per_page=50", token => $token);
        Test::More::is($r->{status}, 200, "$q, page $page: 200");
        Test::More::is($r->{headers}{'x-total-count'}, 1000, '... X-Total-Count: 1000');
        Test::More::is($r->{headers}{'x-total-count-capped'}, 'true', '... capped');
        Test::More::is_deeply([ map { $_->{id} } @{ $r->{json}{data} // [] } ],
                              [ @$want[ ($page - 1) * 50 .. $page * 50 - 1 ] ], "... the oracle's rows");
    }
}

# psql_ids($t, $sql, @binds): the lines psql answers, empty ones left out
sub psql_ids {
    my ($t, $sql, @binds) = @_;
    return [ grep { length } split /\n/, $t->psql($sql, @binds) ];
}

# rank_oracle($t, $ws, $where, $words): a ranked search's rows (the 200
# newest live tasks of the workspace with the words and $where, ranked,
# ties by id); $where and $words are SQL text the test writes
sub rank_oracle {
    my ($t, $ws, $where, $q) = @_;
    return psql_ids($t, qq{SELECT id FROM (SELECT * FROM tm.tasks t
                                            WHERE t.workspace_id = \$1 AND t.deleted_at IS NULL
                                              AND t.search @@ websearch_to_tsquery('english', '$q')
                                              AND $where
                                            ORDER BY t.created_at DESC, t.id DESC LIMIT 200) t
                            ORDER BY ts_rank(t.search, websearch_to_tsquery('english', '$q')) DESC,
                                     t.id DESC}, $ws);
}

# list_oracle($t, $ws, $where, $words, $order): every live task of the
# workspace with the words ('': any task) and $where, in $order
sub list_oracle {
    my ($t, $ws, $where, $q, $order) = @_;
    my $match = $q eq '' ? 'true' : "t.search @@ websearch_to_tsquery('english', '$q')";
    return psql_ids($t, qq{SELECT id FROM tm.tasks t
                            WHERE t.workspace_id = \$1 AND t.deleted_at IS NULL
                              AND $match AND $where ORDER BY $order}, $ws);
}

# live_expected($t, $ws, $conds, $args, $q): the live tasks of the workspace
# the planner expects to pass $conds (tm.live_expected, as task_find asks
# it: $2 the filters' values, a text array literal or undef; $3 the search)
sub live_expected {
    my ($t, $ws, $conds, $args, $q) = @_;
    return $t->psql(q{SELECT tm.live_expected($1::uuid, $2, $3::text[], $4)}, $ws, $conds, $args, $q);
}

# index_scans($t, $index): the scans an index of schema tm has served
sub index_scans {
    my ($t, $index) = @_;
    return $t->psql(q{SELECT idx_scan FROM pg_stat_user_indexes
                       WHERE schemaname = 'tm' AND indexrelname = $1}, $index);
}

# reads_tracker($t, $ws, $token, @indexes): a sub that makes one request,
# GET /v1/workspaces/$ws/tasks?$query, and answers [status, rows, {name =>
# scans}]: the scans each index of schema tm, and "seq" the sequential scans
# of tm.tasks, served since the previous request's (or since the tracker was
# made), read 11 s after the request (a backend reports its statistics when
# idle: within 10 s).  Run such requests one after the other, after every
# other request of the test.
sub reads_tracker {
    my ($t, $ws, $token, @indexes) = @_;
    my $scans = sub {
        sleep 11;
        return { seq => $t->psql(q{SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'tm.tasks'::regclass}),
                 map { $_ => index_scans($t, $_) } @indexes };
    };
    my %seen = %{ $scans->() };
    return sub {
        my ($q) = @_;
        my $r = $t->request(GET => "/v1/workspaces/$ws/tasks?$q", token => $token);
        my $now = $scans->();
        my %d = map { $_ => $now->{$_} - $seen{$_} } keys %$now;
        %seen = %$now;
        return [ $r->{status}, scalar @{ $r->{json}{data} // [] }, \%d ];
    };
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
