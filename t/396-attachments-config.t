# Attachment directives: what nginx refuses at start ([emerg] naming the
# problem), and how a configuration without the store or without a link key
# behaves.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test;

my $t = Taskmgr::Test->new(name => 'attachments_config');

open my $fh, '>', $t->dir . '/short.key' or die $!;
print {$fh} ('k' x 31) . "\n";
close $fh or die $!;

run_blocks($t, no_done => 1);

# TEST 10 (the last block) is still running: its start-up said why links will
# not survive a reload
my $stderr = do { local (@ARGV, $/) = ($t->dir . '/nginx.stderr'); <> } // '';
like($t->error_log . $stderr, qr/\[warn\].*taskmgr_attachment_url_key_file is not set: download links are signed with a random key of this configuration/,
     'without a key file: a start-up warning');

$t->done;

__DATA__

=== TEST 1: the default configuration serves the files location (control)
--- request
GET /v1/files/00000000-0000-7000-8000-000000000000/0000000000000000000000000000000000000000000000000000000000000000
--- error_code: 403
--- response_json_like: {"code":"forbidden"}

=== TEST 2: a type whose content cannot be checked is refused
--- must_die
--- http_config
taskmgr_attachment_types image/png image/svg+xml;
--- error_log
[emerg]
taskmgr_attachment_types: "image/svg+xml" is not a type whose content can be checked

=== TEST 3: a link key shorter than 32 bytes is refused
--- must_die
--- http_config
taskmgr_attachment_url_key_file %%TESTDIR%%/short.key;
--- error_log
[emerg]
must hold at least 32 bytes

=== TEST 4: a link lifetime of 0 is refused
--- must_die
--- http_config
taskmgr_attachment_url_ttl 0s;
--- error_log
[emerg]
taskmgr_attachment_url_ttl must be between 1s and 7d

=== TEST 5: the store is defined once
--- must_die
--- http_config
taskmgr_attachment_path %%TESTDIR%%/a1;
taskmgr_attachment_path %%TESTDIR%%/a2;
--- error_log
[emerg]
"taskmgr_attachment_path" directive is duplicate

=== TEST 6: the files are stored by a thread pool that must exist
--- must_die
--- http_config
taskmgr_attachment_thread_pool nosuch;
--- error_log
[emerg]
unknown thread pool "nosuch"

=== TEST 7: the collection's interval is off or 100ms..24h
--- must_die
--- http_config
taskmgr_attachment_gc 10ms;
--- error_log
[emerg]
taskmgr_attachment_gc takes "off" or an interval between 100ms and 24h, not "10ms"

=== TEST 8: the collection's grace is at least a second
--- must_die
--- http_config
taskmgr_attachment_gc_grace 0s;
--- error_log
[emerg]
taskmgr_attachment_gc_grace must be between 1s and 365d

=== TEST 9: without taskmgr_attachment_path attachments are off: downloads 404
--- http_config
# no taskmgr_attachment_path here
--- request
GET /v1/files/00000000-0000-7000-8000-000000000000/0000000000000000000000000000000000000000000000000000000000000000?exp=1&type=text%2Fplain&name=a&sig=00
--- error_code: 404
--- response_json_like: {"code":"not_found","detail":"attachments are not enabled"}

=== TEST 10: without a key file, links are signed with a random key and nginx says so
--- http_config
# no taskmgr_attachment_url_key_file here
--- request
GET /healthz
--- error_code: 200
