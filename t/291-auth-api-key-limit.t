# A per-user limit zone keyed on $jwt_sub$taskmgr_api_key_digest (as the
# shipped configuration does): a token counts in its user's bucket; an API
# key, whose user is known only in the access phase, in a bucket of its own
# (the first half of its SHA-256), from the first request on, an unknown
# key too; the key never appears in Redis.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA ();
use Taskmgr::Test;

my $t = Taskmgr::Test->new;
$t->start(http_config => <<'EOF');
    taskmgr_limit_zone peruser key=$jwt_sub$taskmgr_api_key_digest rate=1r/m burst=9;
    taskmgr_limit zone=peruser;
    # the digest, logged (empty values as "-")
    log_format keylog '$uri key=$taskmgr_api_key_digest sub=$jwt_sub';
    access_log %%TESTDIR%%/keys.log keylog;
EOF

sub remaining { $_[0]{headers}{'x-ratelimit-remaining'} }

my $rand = $t->{rand};
my $reg = $t->request(POST => '/v1/auth/register', body => {
    email => "keylimit-$rand\@example.com", password => "pass phrase of $rand",
    name => 'Key Limit' });
is($reg->{status}, 201, 'register (no token: not in the zone)') or diag $reg->{body};
ok(!defined remaining($reg), '... no RateLimit headers on it');
my $tok = $reg->{json}{access_token};

my $w = $t->request(GET => '/v1/workspaces', token => $tok);
is(remaining($w), 9, 'the token: its user\'s bucket, 9 left');
my $ws = $w->{json}{data}[0]{id};

my @keys;
for my $n (1, 2) {
    my $k = $t->request(POST => '/v1/api-keys', token => $tok,
                        body => { name => "limited $n", workspace_id => $ws, role => 'member' });
    is($k->{status}, 201, "API key $n: 201") or diag $k->{body};
    push @keys, $k->{json}{key};
}
is(remaining($t->request(GET => '/v1/workspaces', token => $tok)), 6,
   'the token after two more requests: 6 left');

my $list = "/v1/workspaces/$ws/tasks";
my @r = map { $t->request(GET => $list, token => $keys[0]) } 1 .. 10;
is_deeply([ map { $_->{status} } @r ], [ (200) x 10 ], 'key 1: ten requests pass');
is_deeply([ map { remaining($_) } @r ], [ reverse 0 .. 9 ],
          'key 1: a bucket of its own, 9 down to 0');
my $over = $t->request(GET => $list, token => $keys[0]);
is($over->{status}, 429, 'key 1: the eleventh is 429');
is($over->{json} && $over->{json}{code}, 'rate_limited', '... rate_limited');
ok($over->{headers}{'retry-after'}, '... with Retry-After');

my $k2 = $t->request(GET => $list, token => $keys[1]);
is($k2->{status}, 200, 'key 2: 200');
is(remaining($k2), 9, 'key 2: its own bucket, 9 left');
is(remaining($t->request(GET => '/v1/workspaces', token => $tok)), 5,
   'the token: not charged by the keys, 5 left');

my $bogus = 'tmk_' . ('A' x 43);
my $b = $t->request(GET => $list, token => $bogus);
is($b->{status}, 401, 'an unknown key: 401');
is(remaining($b), 9, '... counted in a bucket of its own');

# what the variable holds, and that no key reaches Redis
# (the log line is written after the answer: wait for the last request's)
my $log = '';
for (1 .. 50) {
    $log = do { local (@ARGV, $/) = ($t->dir . '/keys.log'); <> } // '';
    last if $log =~ /key=[0-9a-f]{32} sub=-\n\z/ && ($log =~ tr/\n//) >= 16;
    select undef, undef, undef, 0.1;
}
my $d1 = substr(Digest::SHA::sha256_hex($keys[0]), 0, 32);
# (logged after the access phase: the key's user is known by then)
like($log, qr{^\Q$list\E key=\Q$d1\E sub=\Q$reg->{json}{user}{id}\E$}m,
     '$taskmgr_api_key_digest: 32 hex digits of SHA-256');
like($log, qr{^/v1/workspaces key=- sub=[0-9a-f-]{36}$}m, '... empty for a token');
unlike($log, qr/tmk_/, '... the key itself is never in it');
my $redis = $t->redis_cli('KEYS', '*');
like($redis, qr/^tmk:\{peruser:[0-9a-f]+\}:rl$/m, 'Redis holds the buckets');
unlike($redis, qr/tmk_|\Q$d1\E|\Q@{[ Digest::SHA::sha256_hex($keys[0]) ]}\E/,
       'Redis holds neither the key nor its digest');

$t->done;
