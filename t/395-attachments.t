# Task attachments: streamed uploads (POST .../tasks/{id}/attachments?name=)
# with the size limit (Content-Length and chunked), the allowed types and the
# magic-byte check; the content-addressed store (one file per content); the
# list and the single object with a signed, expiring download_url; the
# download itself (exact bytes and headers) and its refusal when tampered
# with or expired; roles, other tenants, the cap per task, a soft-deleted
# and restored task; no temporary file left behind.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA qw(sha256_hex hmac_sha256_hex);
use File::Find;
use Taskmgr::Test;
use Taskmgr::Load qw(setup_user create_task);

# the one [crit] expected: the store made to fail below
my $t = Taskmgr::Test->new(name => 'attachments',
                           expect_alerts => [qr/\[crit\].* mkdir\(\) ".*" failed \(20: Not a directory\)/]);
$t->start(main_config => 'thread_pool taskmgr_pw threads=2;
    thread_pool taskmgr_att threads=1 max_queue=16;',
          http_config => 'taskmgr_attachment_thread_pool taskmgr_att;
    taskmgr_attachment_max_size 64k;
    taskmgr_attachment_types image/png image/jpeg application/pdf text/plain;
    taskmgr_attachment_url_ttl 120s;');

my $store = $t->dir . '/attachments';
my $temp  = $t->dir . '/tmp_body';

sub uuid4 {
    my $h = join '', map { sprintf '%02x', int rand 256 } 1 .. 16;
    substr($h, 12, 1) = '4';
    return join '-', unpack 'A8 A4 A4 A4 A12', $h;
}

sub uri_escape {
    my ($s) = @_;
    utf8::encode($s);
    $s =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub req {
    my ($method, $path, $u, %o) = @_;
    return $t->request($method => $path, token => $u->{token}, %o);
}

sub upload {
    my ($u, $tid, $name, $type, $bytes, %o) = @_;
    my $ws = $o{ws} // $u->{ws_of_task} // $u->{ws};
    my $q = defined $name ? '?name=' . uri_escape($name) : '';
    return req(POST => "/v1/workspaces/$ws/tasks/$tid/attachments$q", $u,
               headers => { defined $type ? ('Content-Type' => $type) : (),
                            %{ $o{headers} // {} } },
               body => $bytes);
}

sub problem {
    my ($r, $status, $code, $name) = @_;
    is($r->{status}, $status, "$name: $status") or diag $r->{body};
    like($r->{headers}{'content-type'} // '', qr{^application/problem\+json},
         "$name: problem+json");
    is($r->{json} && $r->{json}{code}, $code, "$name: code $code");
}

sub store_files {
    my @f;
    return () unless -d $store;
    find(sub { push @f, $File::Find::name if -f $_ }, $store);
    return sort @f;
}

sub temp_files {
    my @f;
    return () unless -d $temp;
    find(sub { push @f, $File::Find::name if -f $_ }, $temp);
    return @f;
}

sub download {
    my ($url, %o) = @_;
    return $t->request(($o{method} // 'GET') => $url);
}

# alice owns the workspace; bob is a member, carol a viewer; eve is elsewhere
my ($alice, $bob, $carol, $eve) = map { setup_user($t) } 1 .. 4;
my $ws = $alice->{ws};
for ([ $bob, 'member' ], [ $carol, 'viewer' ]) {
    $t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role)
               VALUES ($1, $2, $3)}, $ws, $_->[0]{user_id}, $_->[1]);
}
$_->{ws_of_task} = $ws for $bob, $carol;
my $tid = create_task($t, $alice, 'attach to me');
my $base = "/v1/workspaces/$ws/tasks/$tid/attachments";

my $png = "\x89PNG\r\n\x1a\n" . join('', map { chr($_ % 256) } 0 .. 999);
my $pdf = "%PDF-1.4\n" . ("stream of pdf bytes\n" x 50) . "%%EOF\n";
my $txt = "Notes: caf\xc3\xa9 au lait\nline two\n";

my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;

# ------------------------------------------------------------- uploads ----

my $up = upload($alice, $tid, 'diagram.png', 'image/png', $png);
is($up->{status}, 201, 'png upload: 201') or diag $up->{body};
my $a1 = $up->{json} // {};
like($a1->{id} // '', $UUID, 'png: a UUIDv7 id');
is_deeply([ @$a1{qw(workspace_id task_id name content_type size sha256 created_by)} ],
          [ $ws, $tid, 'diagram.png', 'image/png', length $png, sha256_hex($png),
            $alice->{user_id} ], 'png: the attachment object');
is($up->{headers}{location}, "/v1/workspaces/$ws/attachments/$a1->{id}",
   'png: Location of the attachment');
like($a1->{download_url} // '',
     qr{^/v1/files/\Q$a1->{id}\E/[0-9a-f]{64}\?exp=\d+&type=image/png&name=diagram\.png&sig=[0-9a-f]{64}$},
     'png: a signed download_url');
like($a1->{download_expires_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
     'png: download_expires_at');
my ($exp) = ($a1->{download_url} // '') =~ /exp=(\d+)/;
ok($exp && $exp > time + 60 && $exp <= time + 121, 'png: the link lives taskmgr_attachment_url_ttl');

my $sha = sha256_hex($png);
my $file = "$store/" . substr($sha, 0, 2) . '/' . substr($sha, 2, 2) . "/$sha";
ok(-f $file, 'png: stored content-addressed as ab/cd/<sha256>');
is(-s $file, length $png, 'png: the stored file has every byte');

my $up2 = upload($bob, $tid, 'spec.pdf', 'application/pdf; charset=binary', $pdf);
is($up2->{status}, 201, 'pdf upload by a member (type with parameters): 201')
    or diag $up2->{body};
is($up2->{json}{content_type}, 'application/pdf', 'pdf: the media type without parameters');

my $uname = "r\x{e9}sum\x{e9} notes.txt";
my $up3 = upload($alice, $tid, $uname, 'Text/Plain', $txt);
is($up3->{status}, 201, 'text upload with a UTF-8 name: 201') or diag $up3->{body};
my $uname_bytes = $uname;
utf8::encode($uname_bytes);
my $got_name = $up3->{json}{name} // '';
utf8::encode($got_name) if utf8::is_utf8($got_name);
is($got_name, $uname_bytes, 'text: the name as sent');
is($up3->{json}{content_type}, 'text/plain', 'text: the type in lower case');

# ------------------------------------------------------------- reads ----

my $g = req(GET => "/v1/workspaces/$ws/attachments/$a1->{id}", $carol);
is($g->{status}, 200, 'get by a viewer: 200');
is($g->{json}{sha256}, $sha, 'get: the object');
like($g->{json}{download_url} // '', qr{^/v1/files/\Q$a1->{id}\E/$sha\?}, 'get: a download_url');
like($g->{headers}{'cache-control'} // '', qr/no-store/, 'get: not to be stored (the link expires)');

my $l = req(GET => $base, $carol);
is($l->{status}, 200, 'list by a viewer: 200');
is_deeply([ map { $_->{name} } @{ $l->{json}{data} // [] } ],
          [ 'diagram.png', 'spec.pdf', $uname ], 'list: oldest first')
    or diag $l->{body};
is(scalar(grep { ($_->{download_url} // '') =~ m{^/v1/files/} } @{ $l->{json}{data} // [] }), 3,
   'list: every item has a download_url');

# ------------------------------------------------------------ download ----

my $d = download($a1->{download_url});
is($d->{status}, 200, 'download without a token: 200');
ok($d->{body} eq $png, 'download: the exact bytes');
is($d->{headers}{'content-type'}, 'image/png', 'download: Content-Type');
is($d->{headers}{'content-length'}, length $png, 'download: Content-Length');
is($d->{headers}{'x-content-type-options'}, 'nosniff', 'download: nosniff');
like($d->{headers}{'cache-control'} // '', qr/^private/, 'download: Cache-Control private');
is($d->{headers}{'content-disposition'},
   q{attachment; filename="diagram.png"; filename*=UTF-8''diagram.png},
   'download: Content-Disposition attachment');

my $dt = download($up3->{json}{download_url});
ok($dt->{body} eq $txt, 'text download: the exact bytes');
is($dt->{headers}{'content-disposition'},
   q{attachment; filename="r__sum__ notes.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%20notes.txt},
   'text download: the UTF-8 name encoded, an ASCII fallback');

my $rg = $t->request(GET => $a1->{download_url}, headers => { Range => 'bytes=0-7' });
is($rg->{status}, 206, 'a range of a link: 206');
ok($rg->{body} eq substr($png, 0, 8), 'range: the first 8 bytes');

my $h = download($a1->{download_url}, method => 'HEAD');
is($h->{status}, 200, 'HEAD of a link: 200');
is($h->{body}, '', 'HEAD: no body');

# tampering: each signed part, and the signature itself
my $url = $a1->{download_url};
(my $bad_sig = $url) =~ s/sig=([0-9a-f])/'sig=' . ($1 eq '0' ? '1' : '0')/e;
problem(download($bad_sig), 403, 'forbidden', 'a changed signature');
(my $bad_exp = $url) =~ s/exp=(\d+)/'exp=' . ($1 + 1000)/e;
problem(download($bad_exp), 403, 'forbidden', 'a later expiry');
(my $bad_type = $url) =~ s{type=image/png}{type=text/html};
problem(download($bad_type), 403, 'forbidden', 'another type');
(my $bad_name = $url) =~ s/name=diagram\.png/name=evil.html/;
problem(download($bad_name), 403, 'forbidden', 'another name');
(my $other = $url) =~ s{/v1/files/[^/]+/}{'/v1/files/' . $up2->{json}{id} . '/'}e;
problem(download($other), 403, 'forbidden', "another attachment's id");
(my $no_sig = $url) =~ s/&sig=.*//;
problem(download($no_sig), 403, 'forbidden', 'no signature');
problem(download("/v1/files/$a1->{id}/zz"), 404, 'not_found', 'a path of no file');

# an expired link, signed with the real key: refused
my $key = do {
    open my $fh, '<', $t->secrets . '/attachment_url.key' or die $!;
    local $/;
    my $k = <$fh>;
    $k =~ s/\s+$//;
    $k;
};
my $msg = sub { join "\n", @_ };
my $past = time - 5;
my $expired = "/v1/files/$a1->{id}/$sha?exp=$past&type=image%2Fpng&name=diagram.png&sig="
    . hmac_sha256_hex($msg->($a1->{id}, $sha, $past, 'image/png', 'diagram.png'), $key);
problem(download($expired), 410, 'link_expired', 'an expired link');
my $future = time + 60;
my $minted = "/v1/files/$a1->{id}/$sha?exp=$future&type=image%2Fpng&name=diagram.png&sig="
    . hmac_sha256_hex($msg->($a1->{id}, $sha, $future, 'image/png', 'diagram.png'), $key);
is(download($minted)->{status}, 200, 'a link signed the same way with a later expiry: 200 (the formula)');

# ------------------------------------------------------------ refusals ----

problem(upload($alice, $tid, 'big.txt', 'text/plain', 'a' x (64 * 1024 + 1)),
        413, 'payload_too_large', 'Content-Length over taskmgr_attachment_max_size');
is(upload($alice, $tid, 'edge.txt', 'text/plain', 'b' x (64 * 1024))->{status}, 201,
   'exactly taskmgr_attachment_max_size: 201');

sub chunked_upload {
    my ($u, $name, $type, $bytes, $chunk) = @_;
    my $raw = "POST $base?name=$name HTTP/1.1\r\nHost: localhost\r\n"
        . "Authorization: Bearer $u->{token}\r\nContent-Type: $type\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    for (my $i = 0; $i < length $bytes; $i += $chunk) {
        my $part = substr($bytes, $i, $chunk);
        $raw .= sprintf("%x\r\n%s\r\n", length $part, $part);
    }
    $raw .= "0\r\n\r\n";
    return $t->raw_request($raw);
}

my $big = 'c' x (70 * 1024);
problem(chunked_upload($alice, 'big.txt', 'text/plain', $big, 8192),
        413, 'payload_too_large', 'a chunked body over the limit');
my $chunked_text = "chunked line\n" x 2000;
my $cu = chunked_upload($alice, 'chunked.txt', 'text/plain', $chunked_text, 1000);
is($cu->{status}, 201, 'a chunked body under the limit: 201') or diag $cu->{body};
is($cu->{json} && $cu->{json}{size}, length $chunked_text, 'chunked: every byte counted');
is($cu->{json} && $cu->{json}{sha256}, sha256_hex($chunked_text), 'chunked: hashed while it streamed');

problem(upload($alice, $tid, 'x.gif', 'image/gif', "GIF89a" . ("\0" x 20)),
        415, 'unsupported_media_type', 'a type not in taskmgr_attachment_types');
problem(upload($alice, $tid, 'x.bin', 'application/octet-stream', 'abc'),
        415, 'unsupported_media_type', 'application/octet-stream');
problem(upload($alice, $tid, 'x.png', undef, $png),
        415, 'unsupported_media_type', 'no Content-Type');
problem(upload($alice, $tid, 'fake.png', 'image/png', $pdf),
        415, 'unsupported_media_type', 'a PDF declared as PNG');
problem(upload($alice, $tid, 'fake.pdf', 'application/pdf', $png),
        415, 'unsupported_media_type', 'a PNG declared as PDF');
problem(upload($alice, $tid, 'bin.txt', 'text/plain', "text\0with a NUL"),
        415, 'unsupported_media_type', 'text with a NUL byte');
problem(upload($alice, $tid, 'latin1.txt', 'text/plain', "caf\xe9 au lait"),
        415, 'unsupported_media_type', 'text that is not UTF-8');
problem(upload($alice, $tid, 'j.jpg', 'image/jpeg', "\xff\xd9 not a jpeg"),
        415, 'unsupported_media_type', 'a JPEG without its magic');

for my $case ([ undef, 'no name' ], [ '', 'an empty name' ], [ 'a/b.png', 'a slash' ],
              [ "a\x01b.png", 'a control character' ], [ 'x' x 256, '256 characters' ],
              [ '..', 'a dot-dot name' ], [ "a\\b.png", 'a backslash' ]) {
    my $r = upload($alice, $tid, $case->[0], 'image/png', $png);
    problem($r, 400, 'validation_failed', "bad name: $case->[1]");
}
is(upload($alice, $tid, "\x{e9}" x 255, 'image/png', $png)->{status}, 201,
   'a name of 255 (two-byte) characters: 201');
problem(req(POST => "$base?name=a.png&x=1", $alice, headers => { 'Content-Type' => 'image/png' },
            body => $png), 400, 'validation_failed', 'an unknown query parameter');
problem(req(POST => "$base?name=a.png", $alice, headers => { 'Content-Type' => 'image/png' },
            body => ''), 400, 'validation_failed', 'an empty body');

# roles and tenants
problem(upload($carol, $tid, 'v.png', 'image/png', $png), 403, 'forbidden', 'a viewer uploads');
problem(upload($eve, $tid, 'e.png', 'image/png', $png, ws => $ws), 404, 'not_found',
        'another tenant uploads');
problem(req(GET => $base, $eve), 404, 'not_found', 'another tenant lists');
problem(req(GET => "/v1/workspaces/$ws/attachments/$a1->{id}", $eve), 404, 'not_found',
        'another tenant gets');
problem(req(GET => "/v1/workspaces/$eve->{ws}/attachments/$a1->{id}", $eve), 404, 'not_found',
        "another tenant under its own workspace");
problem(upload($alice, uuid4(), 'n.png', 'image/png', $png), 404, 'not_found', 'an unknown task');
problem(req(GET => "/v1/workspaces/$ws/attachments/" . uuid4(), $alice), 404, 'not_found',
        'an unknown attachment');
problem(req(GET => "/v1/workspaces/$ws/attachments/nope", $alice), 404, 'not_found',
        'a malformed attachment id');
is(req(GET => $base)->{status}, 401, 'no token: 401');

# the refused uploads left nothing behind
is_deeply([ temp_files() ], [], 'no temporary body file is left');

# --------------------------------------------------------- dedupe ----

my $again = upload($bob, $tid, 'copy.png', 'image/png', $png);
is($again->{status}, 201, 'the same content again: 201');
is($again->{json}{sha256}, $sha, 'same content: same sha256');
isnt($again->{json}{id}, $a1->{id}, 'same content: a row of its own');
my @files = store_files();
my %distinct = map { $_ => 1 } map { $_->{sha256} }
    @{ req(GET => $base, $alice)->{json}{data} // [] };
is(scalar(grep { m{/\Q$sha\E$} } @files), 1, 'same content: one file on disk');
is(scalar(@files), scalar(keys %distinct), 'one file per distinct content in the store');

# -------------------------------------------------- delete and restore ----

my $task = "/v1/workspaces/$ws/tasks/$tid";
is(req(DELETE => $task, $alice)->{status}, 204, 'soft delete of the task');
problem(req(GET => $base, $alice), 404, 'not_found', 'list of a deleted task');
problem(req(GET => "/v1/workspaces/$ws/attachments/$a1->{id}", $alice), 404, 'not_found',
        'get of an attachment of a deleted task');
problem(upload($alice, $tid, 'late.png', 'image/png', $png), 404, 'not_found',
        'upload to a deleted task');
is(req(POST => "$task/restore", $alice)->{status}, 200, 'restore the task');
my $back = req(GET => $base, $alice);
is($back->{status}, 200, 'restored: the list answers');
ok((grep { $_->{id} eq $a1->{id} } @{ $back->{json}{data} // [] }), 'restored: the attachment is back');
is(req(GET => "/v1/workspaces/$ws/attachments/$a1->{id}", $alice)->{status}, 200,
   'restored: get answers');

# ------------------------------------------------------ delete ----

my $bobs = $up2->{json}{id};
problem(req(DELETE => "/v1/workspaces/$ws/attachments/$bobs", $carol), 403, 'forbidden',
        'a viewer deletes');
is(req(DELETE => "/v1/workspaces/$ws/attachments/$bobs", $bob)->{status}, 204,
   'the uploader deletes: 204');
problem(req(GET => "/v1/workspaces/$ws/attachments/$bobs", $bob), 404, 'not_found',
        'a deleted attachment');
is(req(DELETE => "/v1/workspaces/$ws/attachments/$a1->{id}", $alice)->{status}, 204,
   'the owner deletes any: 204');

# --------------------------------------------------------- the cap ----

my $tid2 = create_task($t, $alice, 'full');
$t->psql(q{INSERT INTO tm.attachments (workspace_id, task_id, sha256, size, content_type,
                                       name, created_by)
           SELECT $1, $2, $3, 1, 'text/plain', 'f' || g, $4 FROM generate_series(1, 100) g},
         $ws, $tid2, sha256_hex('x'), $alice->{user_id});
problem(upload($alice, $tid2, 'one-more.png', 'image/png', $png), 409, 'too_many_attachments',
        'the 101st attachment of a task');
is(scalar(@{ req(GET => "/v1/workspaces/$ws/tasks/$tid2/attachments", $alice)->{json}{data} // [] }),
   100, 'the list holds the 100');

# ------------------------------------------------ Idempotency-Key ----

{
    my $tid3 = create_task($t, $alice, 'idempotent uploads');
    my $path = "/v1/workspaces/$ws/tasks/$tid3/attachments";
    my $n = 0;
    my $key = sub { "att-$t->{rand}-" . ++$n };
    my $count = sub {
        $t->psql('SELECT count(*) FROM tm.attachments WHERE task_id = $1', $tid3) };
    my $k = $key->();
    my $first = upload($alice, $tid3, 'once.png', 'image/png', $png,
                       ws => $ws, headers => { 'Idempotency-Key' => $k });
    is($first->{status}, 201, 'upload with a key: 201') or diag $first->{body};
    is($first->{headers}{'idempotent-replayed'}, undef, '... not a replay');
    select undef, undef, undef, 1.1;   # a fresh link would now expire a second later
    my $again = upload($alice, $tid3, 'once.png', 'image/png', $png,
                       headers => { 'Idempotency-Key' => $k });
    is($again->{status}, 201, 'the repeat: 201');
    is($again->{headers}{'idempotent-replayed'}, 'true', '... Idempotent-Replayed: true');
    is($again->{body}, $first->{body}, '... the body byte for byte (the same signed link)');
    is($again->{headers}{location}, $first->{headers}{location}, '... the same Location');
    is($count->(), 1, '... one attachment');
    is(download($again->{json}{download_url})->{body}, $png, '... its link downloads the file');

    problem(upload($alice, $tid3, 'once.png', 'image/png', $png . 'x',
                   headers => { 'Idempotency-Key' => $k }), 422, 'validation_failed',
            'the key with other content');
    problem(upload($alice, $tid3, 'twice.png', 'image/png', $png,
                   headers => { 'Idempotency-Key' => $k }), 422, 'validation_failed',
            'the key with another name');
    is($count->(), 1, '... still one attachment');
    is(upload($bob, $tid3, 'once.png', 'image/png', $png,
              headers => { 'Idempotency-Key' => $k })->{status}, 201,
       'the same key of another user: a new upload');
    is($count->(), 2, '... two attachments');

    problem(upload($alice, $tid3, 'bad.png', 'image/png', $png,
                   headers => { 'Idempotency-Key' => 'x' x 256 }), 400, 'validation_failed',
            'a key of 256 characters');
    is($count->(), 2, '... nothing written');

    # the same upload while a claim on its fingerprint is in flight: 409
    my $k2 = $key->();
    my $fp = sha256_hex("POST $path\n\nlater.png\nimage/png\n" . sha256_hex($png) . "\n"
                        . length $png);
    $t->psql(q{INSERT INTO tm.idempotency_keys (user_id, key, fingerprint, token, state,
                                                started_at, expires_at)
               VALUES ($1, $2, $3, gen_random_uuid(), 'in_flight', now(),
                       now() + interval '1 hour')}, $alice->{user_id}, $k2, $fp);
    problem(upload($alice, $tid3, 'later.png', 'image/png', $png,
                   headers => { 'Idempotency-Key' => $k2 }), 409, 'conflict',
            'the same upload while the first is in flight');
    problem(upload($alice, $tid3, 'other.png', 'image/png', $png,
                   headers => { 'Idempotency-Key' => $k2 }), 422, 'validation_failed',
            'another upload under a key in flight');
    is($count->(), 2, '... nothing written');

    # a write that fails (here an SQL error) lets go of its claim: the retry uploads
    my $k3 = $key->();
    $t->psql(q{ALTER TABLE tm.attachments ADD CONSTRAINT tmp_no_fail CHECK (name <> 'fail.png')});
    my $failed = upload($alice, $tid3, 'fail.png', 'image/png', $png,
                        headers => { 'Idempotency-Key' => $k3 });
    $t->psql(q{ALTER TABLE tm.attachments DROP CONSTRAINT tmp_no_fail});
    is($failed->{status}, 422, 'a write that fails: 422') or diag $failed->{body};
    my $retry = upload($alice, $tid3, 'fail.png', 'image/png', $png,
                       headers => { 'Idempotency-Key' => $k3 });
    is($retry->{status}, 201, '... its retry under the key: 201') or diag $retry->{body};
    is($retry->{headers}{'idempotent-replayed'}, undef, '... not a replay');
    is($count->(), 3, '... one more attachment');

    # the file store fails (in the thread pool): a regular file stands where
    # the content's first directory level belongs, so the second level's
    # mkdir() says ENOTDIR (the test may not write in nginx's directories)
    my ($body, $h, $i);
    do { $body = "store me $t->{rand} " . ++$i . "\n"; $h = sha256_hex($body) }
        while -e "$store/" . substr($h, 0, 2);
    my $lvl1 = "$store/" . substr($h, 0, 2);
    my $lvl2 = "$lvl1/" . substr($h, 2, 2);
    open my $fh, '>', $lvl1 or die "$lvl1: $!";
    close $fh;
    my $mark = $t->error_log_size;
    my $k4 = $key->();
    my $sf = upload($alice, $tid3, 'store.txt', 'text/plain', $body,
                    headers => { 'Idempotency-Key' => $k4 });
    problem($sf, 500, 'internal', 'a file that cannot be stored');
    like($sf->{json}{detail} // '', qr/could not be stored/, '... says so');
    my $log = $t->error_log_since($mark);
    like($log, qr/\[crit\].*mkdir\(\) "\Q$lvl2\E" failed \(20: Not a directory\)/,
         '... the log names the call and the directory');
    is($count->(), 3, '... no row');
    is_deeply([ grep { m{/\Q$h\E$} } store_files() ], [], '... no file');
    problem(upload($alice, $tid3, 'store.txt', 'text/plain', $body), 500, 'internal',
            '... again without a key');
    unlink $lvl1 or die "$lvl1: $!";
    my $sr = upload($alice, $tid3, 'store.txt', 'text/plain', $body,
                    headers => { 'Idempotency-Key' => $k4 });
    is($sr->{status}, 201, '... the store mended, the retry under the key: 201')
        or diag $sr->{body};
    is($sr->{headers}{'idempotent-replayed'}, undef, '... not a replay: the claim was let go');
    ok(-f $lvl2 . "/$h", '... the file is at its address');
    is(download($sr->{json}{download_url})->{body}, $body, '... and downloads');
    is($count->(), 4, '... one more attachment');
}

is_deeply([ temp_files() ], [], 'still no temporary body file left');

$t->done;
