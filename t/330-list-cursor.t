# Keyset cursors of the task list: walks while rows are inserted between
# pages (no duplicate, no gap), microsecond timestamps, cursors signed with
# taskmgr_cursor_secret_file (a cursor forged with the key is honoured, one
# with another key, tampered, truncated or issued for another sort, filter,
# search or deleted mode is 400 naming cursor), the key across reloads, and
# the cache never answering one query with another's page.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA ();
use JSON::PP ();
use MIME::Base64 ();
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user wait_until);

my $t = Taskmgr::Test->new(name => 'list_cursor');
my $dir = $t->dir;
my $KEY = 'k' x 40;

sub spew { my ($f, $s) = @_; open my $fh, '>', $f or die "$f: $!"; print $fh $s; close $fh; }
spew("$dir/cursor.key", "$KEY\n");
spew("$dir/other.key", ('o' x 40) . "\n");
spew("$dir/short.key", "tooshort\n");
chmod 0644, "$dir/cursor.key", "$dir/other.key", "$dir/short.key";

# a key shorter than 32 bytes is refused at start
run_blocks($t, no_done => 1, blocks => <<'BLOCKS');
=== TEST 1: a cursor key shorter than 32 bytes: nginx does not start
--- must_die
--- http_config
taskmgr_cursor_secret_file %%TESTDIR%%/short.key;
--- error_log
[emerg]
must hold a key of at least 32 bytes
BLOCKS

my $HTTP = "taskmgr_cursor_secret_file $dir/cursor.key; taskmgr_cache on; taskmgr_cache_ttl 60s; "
         . "taskmgr_redis_timeout 2s;";
$t->start(http_config => $HTTP);

my $u = setup_user($t);
my $ws = $u->{ws};

sub b64url {
    my $s = MIME::Base64::encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return MIME::Base64::decode_base64($s);
}

sub get {
    my ($q, %h) = @_;
    return $t->request(GET => "/v1/workspaces/$ws/tasks?$q", token => $u->{token},
                       headers => \%h);
}

sub create {
    my (%b) = @_;
    my $r = $t->request(POST => "/v1/workspaces/$ws/tasks", token => $u->{token}, body => \%b);
    die "create: $r->{status} $r->{body}" unless $r->{status} == 201;
    return $r->{json}{id};
}

sub oracle {
    my ($where, $order) = @_;
    my $out = $t->psql("SELECT id FROM tm.tasks t WHERE t.workspace_id = \$1 AND "
                       . "t.deleted_at IS NULL AND ($where) ORDER BY $order", $ws);
    return [ grep { length } split /\n/, $out ];
}

# a cursor signed with $key: what nginx would issue for canon/sort/values
sub forge {
    my ($key, $sort, $canon, @values) = @_;
    my $p = chr(1) . chr(length $sort) . $sort
        . substr(Digest::SHA::sha256($canon), 0, 16) . chr(scalar @values);
    for my $v (@values) {
        $p .= defined $v ? pack('n', length $v) . $v : "\xff\xff";
    }
    return b64url($p . Digest::SHA::hmac_sha256($p, $key));
}

my $u2 = setup_user($t);
$t->psql(q{INSERT INTO tm.tasks (workspace_id, title, status, priority, due_at,
                                 created_by, created_at)
           SELECT $1, 'seed' || lpad(i::text, 3, '0'),
                  (ARRAY['todo', 'done'])[i % 2 + 1], i % 5,
                  CASE WHEN i % 4 = 0 THEN NULL
                       ELSE '2026-01-01 00:00:00+00'::timestamptz + (i % 6) * interval '1 day' END,
                  $2,
                  -- microseconds apart, several in one millisecond
                  '2026-02-01 00:00:00+00'::timestamptz + i * interval '3 microseconds'
             FROM generate_series(1, 40) i}, $ws, $u->{user_id});

# --- walks in microsecond order: the cursor keeps the exact value --------
for my $q ('', 'sort=created_at', 'sort=-created_at,title') {
    my $order = $q eq 'sort=created_at' ? 't.created_at ASC, t.id ASC'
              : $q eq '' ? 't.created_at DESC, t.id DESC'
              : 't.created_at DESC, t.title ASC, t.id ASC';
    my (@ids, $c);
    for (1 .. 100) {
        my $r = get("limit=3&$q" . (defined $c ? "&cursor=$c" : ''));
        is($r->{status}, 200, "µs walk '$q': 200") or last;
        push @ids, map { $_->{id} } @{ $r->{json}{data} };
        $c = $r->{json}{next_cursor} // last;
    }
    is_deeply(\@ids, oracle('true', $order), "µs walk '$q': every row once, in order");
}

# --- inserts between pages: no duplicate, no gap --------------------------
for my $case (
    [ '', 't.created_at DESC, t.id DESC' ],
    [ 'sort=title', 't.title ASC, t.id ASC' ],
    [ 'sort=-priority,due_at', 't.priority DESC, t.due_at ASC NULLS LAST, t.id ASC' ],
    [ 'sort=due_at&filter[status]=todo', 't.due_at ASC NULLS LAST, t.id ASC', "t.status = 'todo'" ],
) {
    my ($q, $order, $where) = @$case;
    $where //= 'true';
    my $before = oracle($where, $order);
    my (@ids, $c, $n);
    for my $page (1 .. 100) {
        my $r = get("limit=4&$q" . (defined $c ? "&cursor=$c" : ''));
        is($r->{status}, 200, "walk with inserts '$q' page $page: 200") or last;
        push @ids, map { $_->{id} } @{ $r->{json}{data} };
        $c = $r->{json}{next_cursor} // last;
        # rows that sort before, among and after the ones already read
        $n++;
        create(title => "seed000 new $n", priority => 4, status => 'todo');
        create(title => "seed999 new $n", priority => 0, status => 'todo',
               due_at => '2025-01-01T00:00:00.000Z');
        create(title => "seed020 new $n", priority => 2, status => 'todo',
               due_at => '2026-01-03T00:00:00.000Z');
    }
    my %count;
    $count{$_}++ for @ids;
    is(scalar(grep { $count{$_} > 1 } keys %count), 0, "walk with inserts '$q': no duplicate");
    is(scalar(grep { !$count{$_} } @$before), 0, "walk with inserts '$q': every earlier row seen");
    my $after = oracle($where, $order);
    my %pos;
    @pos{@$after} = 0 .. $#$after;
    is_deeply(\@ids, [ sort { $pos{$a} <=> $pos{$b} } @ids ],
              "walk with inserts '$q': in the final order");
}

# --- forged with the configured key: honoured; with another key: 400 ------
{
    my $rows = $t->psql(q{SELECT created_at, id FROM tm.tasks WHERE workspace_id = $1
                          AND deleted_at IS NULL ORDER BY created_at DESC, id DESC
                          OFFSET 9 LIMIT 1}, $ws);
    my ($ts, $id) = split /\|/, $rows;
    my $canon = 's=11:-created_at;d=0;';
    my $c = forge($KEY, '-created_at', $canon, $ts, $id);
    my $r = get("limit=5&cursor=$c");
    is($r->{status}, 200, 'a cursor signed with the configured key: 200') or diag $r->{body};
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ],
              [ @{ oracle('true', 't.created_at DESC, t.id DESC') }[10 .. 14] ],
              '... and the page starts after its row');

    # the same through the general path (a filter that matches everything)
    $r = get("limit=5&filter[status][ne]=archived&cursor="
             . forge($KEY, '-created_at', 's=11:-created_at;d=0;f0.1=8:archived;', $ts, $id));
    is($r->{status}, 200, 'a signed cursor of a filtered list: 200') or diag $r->{body};
    is_deeply([ map { $_->{id} } @{ $r->{json}{data} } ],
              [ @{ oracle('true', 't.created_at DESC, t.id DESC') }[10 .. 14] ],
              '... the same page');

    for my $bad (
        [ 'signed with another key', forge('x' x 40, '-created_at', $canon, $ts, $id) ],
        [ 'no signature', b64url(substr(b64url_decode($c), 0, -32)) ],
        [ 'signature of another cursor', b64url(substr(b64url_decode($c), 0, -32)
                                                . substr(b64url_decode(forge($KEY, '-created_at', $canon, $ts, p0())), -32)) ],
    ) {
        my $r2 = get("limit=5&cursor=$bad->[1]");
        is($r2->{status}, 400, "cursor $bad->[0]: 400");
        is($r2->{json}{errors}[0]{field}, 'cursor', "cursor $bad->[0]: names cursor");
        is($r2->{json}{errors}[0]{message}, 'malformed or tampered',
           "cursor $bad->[0]: malformed or tampered");
    }

    # a signed cursor whose values are not what a row gives: still refused
    $r = get('limit=5&cursor=' . forge($KEY, '-created_at', $canon, $ts, 'not-a-uuid'));
    is($r->{status}, 400, 'a signed cursor without an id: 400');
    $r = get('limit=5&cursor=' . forge($KEY, '-created_at', $canon, $ts));
    is($r->{status}, 400, 'a signed cursor with a value missing: 400');
}

sub p0 { '00000000-0000-7000-8000-000000000000' }

# --- every byte matters ---------------------------------------------------
{
    my $r = get('limit=2&sort=-priority,due_at&filter[status]=todo');
    my $c = $r->{json}{next_cursor};
    ok(defined $c, 'a cursor of a filtered, sorted list');
    my $raw = b64url_decode($c);
    my $bad = 0;
    for my $i (0 .. length($raw) - 1) {
        my $x = $raw;
        substr($x, $i, 1) = chr(ord(substr($x, $i, 1)) ^ 0x20);
        my $r2 = get('limit=2&sort=-priority,due_at&filter[status]=todo&cursor=' . b64url($x));
        $bad++ unless $r2->{status} == 400 && ($r2->{json}{errors}[0]{field} // '') eq 'cursor';
    }
    is($bad, 0, 'a change to any one of the ' . length($raw) . ' bytes: 400 naming cursor');
    for my $cut (1, 10, length($raw) - 1) {
        my $r2 = get('limit=2&sort=-priority,due_at&filter[status]=todo&cursor='
                     . b64url(substr($raw, 0, $cut)));
        is($r2->{status}, 400, "cursor cut to $cut bytes: 400");
    }

    # issued for another query: 400 naming cursor, never another page
    for my $m (
        [ 'sort=priority,due_at&filter[status]=todo', 'was issued for another sort' ],
        [ 'sort=-priority&filter[status]=todo', 'was issued for another sort' ],
        [ 'filter[status]=todo', 'was issued for another sort' ],
        [ 'sort=-priority,due_at&filter[status]=done', 'was issued for other filters, search or deleted' ],
        [ 'sort=-priority,due_at&filter[status][eq]=todo&filter[priority][gte]=0',
          'was issued for other filters, search or deleted' ],
        [ 'sort=-priority,due_at', 'was issued for other filters, search or deleted' ],
        [ 'sort=-priority,due_at&filter[status]=todo&deleted=include',
          'was issued for other filters, search or deleted' ],
        [ 'sort=-priority,due_at&filter[status]=todo&q=seed001',
          'was issued for other filters, search or deleted' ],
    ) {
        my $r2 = get("limit=2&$m->[0]&cursor=$c");
        is($r2->{status}, 400, "cursor used with $m->[0]: 400");
        is($r2->{json}{errors}[0]{field}, 'cursor', "cursor used with $m->[0]: names cursor");
        is($r2->{json}{errors}[0]{message}, $m->[1], "cursor used with $m->[0]: $m->[1]");
    }

    # the same query in another spelling, and another limit: accepted
    my $r3 = get("filter%5Bstatus%5D%5Beq%5D=todo&limit=7&sort=-priority,due_at&cursor=$c");
    is($r3->{status}, 200, 'the same query spelt differently and another limit: 200')
        or diag $r3->{body};

    # a q cursor is bound to its q
    my $rq = get('limit=1&q=seed001+or+seed002+or+seed003');
    my $qc = $rq->{json}{next_cursor};
    ok(defined $qc, 'a cursor of a ranked search');
    my $rq2 = get("limit=1&q=seed001&cursor=$qc");
    is($rq2->{status}, 400, 'a search cursor with another q: 400');
}

# --- the key across reloads -----------------------------------------------
{
    my $c = get('limit=2')->{json}{next_cursor};
    ok($t->reload(http_config => $HTTP), 'reload with the same key file');
    is(get("limit=2&cursor=$c")->{status}, 200, 'the cursor survives a reload');
    ok($t->reload(http_config => "taskmgr_cursor_secret_file $dir/other.key;"),
       'reload with another key file');
    # the old worker may still take a connection for a moment
    my $r;
    wait_until(5, sub { $r = get("limit=2&cursor=$c"); $r->{status} == 400 });
    is($r->{status}, 400, 'a cursor of the old key: 400');
    is($r->{json}{errors}[0]{field}, 'cursor', '... naming cursor');
    ok($t->reload(http_config => $HTTP), 'back to the first key');
}

# --- the cache never answers one query with another's page ----------------
{
    sub until_hit {
        my ($q) = @_;
        my $r;
        wait_until(15, sub { $r = get($q); ($r->{headers}{'x-cache'} // '') eq 'HIT' });
        return $r;
    }
    my @queries = (
        'limit=3', 'limit=4', 'limit=3&filter[status]=todo', 'limit=3&filter[status]=done',
        'limit=3&filter[status][ne]=todo', 'limit=3&sort=title', 'limit=3&sort=-title',
        'limit=3&q=seed001', 'limit=3&q=seed002', 'limit=3&deleted=only',
        'limit=3&filter[label]=a', 'limit=3&filter[label]=b',
    );
    my %body;
    for my $q (@queries) {
        my $r = until_hit($q);
        is($r->{headers}{'x-cache'}, 'HIT', "cache: '$q' is cached");
        $body{$q} = $r->{body};
        my $again = get($q);
        is($again->{body}, $r->{body}, "cache: '$q' answers the same bytes");
    }
    for my $st (qw(todo done)) {
        my $j = JSON::PP->new->decode($body{"limit=3&filter[status]=$st"});
        is_deeply([ map { $_->{status} } @{ $j->{data} } ], [ ($st) x 3 ],
                  "cache: the cached page of filter[status]=$st holds $st tasks");
    }
    {
        my $j = JSON::PP->new->decode($body{'limit=3&filter[status][ne]=todo'});
        ok(!grep({ $_->{status} eq 'todo' } @{ $j->{data} }),
           'cache: the cached page of [ne]=todo holds no todo task');
    }
    isnt($body{'limit=3&filter[status]=todo'}, $body{'limit=3&filter[status]=done'},
         'cache: two filters, two pages');
    isnt($body{'limit=3&sort=title'}, $body{'limit=3&sort=-title'}, 'cache: two sorts, two pages');
    isnt($body{'limit=3&q=seed001'}, $body{'limit=3&q=seed002'}, 'cache: two searches, two pages');
    isnt($body{'limit=3'}, $body{'limit=3&deleted=only'}, 'cache: deleted=only is its own page');

    # page 2 by cursor is not page 1
    my $p1 = get('limit=3&sort=title');
    my $c = $p1->{json}{next_cursor};
    my $p2 = until_hit("limit=3&sort=title&cursor=$c");
    isnt($p2->{body}, $p1->{body}, 'cache: the page after a cursor is its own entry');
    is($p2->{json}{data}[0]{title}, $t->psql(q{SELECT title FROM tm.tasks WHERE workspace_id = $1
        AND deleted_at IS NULL ORDER BY title, id OFFSET 3 LIMIT 1}, $ws),
       'cache: ... and holds the right rows');

    # offset pages are not cached (X-Total-Count is not kept)
    my $o = get('page=1&per_page=3');
    ok(!exists $o->{headers}{'x-cache'}, 'offset pages bypass the cache');
    ok(defined $o->{headers}{'x-total-count'}, '... and carry X-Total-Count');
}

$t->done;
