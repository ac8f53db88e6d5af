# API keys: POST /v1/api-keys shows the key once (tmk_ + 256 bits), stores
# its SHA-256; GET lists the caller's keys without secrets; DELETE ends one.
# "Authorization: Bearer tmk_…" works in the access phase (looked up in
# PostgreSQL through the pool) for its workspace only (another one: 404;
# the account, keys, the workspace list: 403), with its role at most (and at
# most the creator's current role); unknown, expired or deleted: 401.
# last_used_at moves at most once a minute.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Digest::SHA ();
use Taskmgr::Test;

my $t    = Taskmgr::Test->new;
my $rand = $t->{rand};
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
my $TS   = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

$t->start;

sub register {
    my ($name) = @_;
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => "$name-$rand\@example.com", password => "pass phrase of $name $rand",
        name => $name });
    is($r->{status}, 201, "register $name") or diag($r->{body});
    my $tok = $r->{json}{access_token};
    my $ws = $t->request(GET => '/v1/workspaces', token => $tok)->{json}{data}[0]{id};
    return { uid => $r->{json}{user}{id}, tok => $tok, ws => $ws };
}

my $alice = register('alice');
my $bob   = register('bob');

# alice owns A (personal) and B; she is a viewer in bob's C
my $A = $alice->{ws};
my $B = $t->request(POST => '/v1/workspaces', token => $alice->{tok},
                    body => { name => 'B' })->{json}{id};
my $C = $bob->{ws};
$t->psql(q{INSERT INTO tm.workspace_members (workspace_id, user_id, role) VALUES ($1, $2, 'viewer')},
         $C, $alice->{uid});
$t->redis_cli('DEL', "tmk:{$C}:gen", "tmk:{$alice->{uid}}:gen");

sub create_key {
    my (%b) = @_;
    return $t->request(POST => '/v1/api-keys', token => $alice->{tok}, body => \%b);
}

# ---------------------------------------------------------------------------
# create

my $r = create_key(name => 'ci', workspace_id => $A, role => 'member');
is($r->{status}, 201, 'POST /v1/api-keys: 201') or diag($r->{body});
my $key = $r->{json}{key};
my $kid = $r->{json}{id};
like($key, qr/^tmk_[A-Za-z0-9_-]{43}$/, 'the key: tmk_ and 256 bits in base64url');
like($kid, $UUID, 'id');
is($r->{headers}{location}, "/v1/api-keys/$kid", 'Location');
like($r->{headers}{'cache-control'} // '', qr/no-store/, 'no-store');
is_deeply([ sort keys %{ $r->{json} } ],
          [qw(created_at expires_at id key last_used_at name prefix role workspace_id)], 'fields');
is($r->{json}{name}, 'ci', 'name');
is($r->{json}{workspace_id}, $A, 'workspace_id');
is($r->{json}{role}, 'member', 'role');
is($r->{json}{prefix}, substr($key, 0, 12), 'prefix: the first 12 characters');
like($r->{json}{created_at}, $TS, 'created_at');
ok(!defined $r->{json}{expires_at} && !defined $r->{json}{last_used_at}, 'no expiry, never used');
is($t->psql('SELECT key_hash FROM tm.api_keys WHERE id = $1', $kid), Digest::SHA::sha256_hex($key),
   'PostgreSQL holds the SHA-256 of the key');
is($t->psql(q{SELECT count(*) FROM tm.api_keys k WHERE row_to_json(k)::text LIKE '%' || $1 || '%'},
            substr($key, 12)), 0, '... and not the key');

is(create_key(workspace_id => $A, role => 'member')->{status}, 422, 'no name: 422');
is(create_key(name => 'x', workspace_id => $A, role => 'root')->{status}, 422, 'unknown role: 422');
is(create_key(name => 'x', workspace_id => 'nope', role => 'member')->{status}, 422, 'bad workspace_id: 422');
is(create_key(name => 'x', workspace_id => $A, role => 'member', scope => 1)->{status}, 400,
   'unknown field: 400');
is(create_key(name => 'n' x 201, workspace_id => $A, role => 'member')->{status}, 422, 'name of 201: 422');
$r = create_key(name => 'x', workspace_id => $A, role => 'member', expires_at => '2020-01-01T00:00:00Z');
is($r->{status}, 422, 'expires_at in the past: 422');
is($r->{json}{code}, 'validation_failed', '... validation_failed');
$r = create_key(name => 'x', workspace_id => '00000000-0000-7000-8000-000000000000', role => 'member');
is($r->{status}, 404, 'an unknown workspace: 404');
$r = create_key(name => 'x', workspace_id => $C, role => 'member');
is($r->{status}, 403, 'a role above the creator\'s (viewer in C): 403');
is($r->{json}{code}, 'forbidden', '... forbidden');
$r = $t->request(POST => '/v1/api-keys', token => $bob->{tok},
                 body => { name => 'x', workspace_id => $A, role => 'viewer' });
is($r->{status}, 404, 'a workspace of another tenant: 404');
is($t->request(POST => '/v1/api-keys', body => { name => 'x', workspace_id => $A, role => 'viewer' })->{status},
   401, 'without a token: 401');

my $kv;
my $kc = create_key(name => 'reader', workspace_id => $C, role => 'viewer')->{json}{key};
ok($kc, 'a viewer key for C');
$r = create_key(name => 'admin of B', workspace_id => $B, role => 'admin',
                expires_at => '2099-01-01T00:00:00.123Z');
is($r->{status}, 201, 'an admin key for B with an expiry');
is($r->{json}{expires_at}, '2099-01-01T00:00:00.123Z', '... expires_at');
my $kb = $r->{json}{key};
my $kb_id = $r->{json}{id};

# ---------------------------------------------------------------------------
# use

sub with_key { my ($k, $m, $p, %o) = @_; $t->request($m => $p, token => $k, %o) }

$r = with_key($key, GET => "/v1/workspaces/$A/tasks");
is($r->{status}, 200, 'the key lists tasks of its workspace') or diag($r->{body});
$r = with_key($key, POST => "/v1/workspaces/$A/tasks", body => { title => 'from ci' });
is($r->{status}, 201, 'a member key creates a task') or diag($r->{body});
my $task = $r->{json}{id};
is($r->{json}{created_by}, $alice->{uid}, '... on behalf of its creator');
is(with_key($key, PATCH => "/v1/workspaces/$A/tasks/$task", body => { status => 'done' })->{status}, 200,
   '... updates it');
is(with_key($key, GET => "/v1/workspaces/$A/tasks/$task")->{status}, 200, '... reads it');
$r = with_key($key, GET => "/v1/workspaces/$A/tasks");
is_deeply([ map { $_->{id} } @{ $r->{json}{data} // [] } ], [ $task ], '... lists it');
$r = with_key($key, GET => "/v1/workspaces/$A");
is($r->{status}, 200, 'the workspace itself');
is($r->{json}{role}, 'member', '... with the key\'s role (the creator is owner)');
is(with_key($key, GET => "/v1/workspaces/" . uc($A) . "/tasks")->{status}, 200,
   'the workspace id in upper case is the same workspace');

for my $p ("/v1/workspaces/$B", "/v1/workspaces/$B/tasks", "/v1/workspaces/$C/tasks") {
    $r = with_key($key, GET => $p);
    is($r->{status}, 404, "another workspace of the creator ($p): 404");
    is($r->{json}{code}, 'not_found', '... not_found');
}
is(with_key($key, POST => "/v1/workspaces/$B/tasks", body => { title => 'x' })->{status}, 404,
   'writing to another workspace: 404');
for my $c ([ GET => '/v1/workspaces' ], [ POST => '/v1/workspaces', body => { name => 'x' } ],
           [ GET => '/v1/me' ], [ GET => '/v1/auth/sessions' ], [ POST => '/v1/auth/logout' ],
           [ POST => '/v1/auth/logout-all' ], [ POST => '/v1/auth/mfa/totp' ],
           [ GET => '/v1/api-keys' ], [ DELETE => "/v1/api-keys/$kid" ],
           [ POST => '/v1/api-keys', body => { name => 'x', workspace_id => $A, role => 'viewer' } ]) {
    my ($m, $p, %o) = @$c;
    $r = with_key($key, $m, $p, %o);
    is($r->{status}, 403, "$m $p with a key: 403");
    is($r->{json}{code}, 'forbidden', '... forbidden');
}
is($t->psql('SELECT count(*) FROM tm.api_keys WHERE id = $1', $kid), 1, 'the key was not deleted by itself');

# the viewer key: reads only
is(with_key($kc, GET => "/v1/workspaces/$C/tasks")->{status}, 200, 'a viewer key reads');
$r = with_key($kc, POST => "/v1/workspaces/$C/tasks", body => { title => 'x' });
is($r->{status}, 403, 'a viewer key cannot create');
$r = with_key($kv = create_key(name => 'v', workspace_id => $A, role => 'viewer')->{json}{key},
              POST => "/v1/workspaces/$A/tasks", body => { title => 'x' });
is($r->{status}, 403, 'a viewer key of an owner cannot create either');
is(with_key($kv, PATCH => "/v1/workspaces/$A/tasks/$task", body => { title => 'x' })->{status}, 403,
   '... nor update');
is(with_key($kv, DELETE => "/v1/workspaces/$A/tasks/$task")->{status}, 403, '... nor delete');
is(with_key($kv, GET => "/v1/workspaces/$A/tasks/$task")->{status}, 200, '... but reads');

# the admin key of B follows its creator's role down
$r = with_key($kb, POST => "/v1/workspaces/$B/tasks", body => { title => 'in B' });
is($r->{status}, 201, 'the admin key writes in B');
my $btask = $r->{json}{id};
$t->psql(q{UPDATE tm.workspace_members SET role = 'viewer' WHERE workspace_id = $1 AND user_id = $2},
         $B, $alice->{uid});
is(with_key($kb, PATCH => "/v1/workspaces/$B/tasks/$btask", body => { title => 'y' })->{status}, 403,
   'the creator demoted to viewer: the key cannot write either');
is(with_key($kb, POST => "/v1/workspaces/$B/tasks", body => { title => 'z' })->{status}, 403,
   '... nor create');

# not keys
$r = with_key('tmk_' . ('A' x 43), GET => "/v1/workspaces/$A/tasks");
is($r->{status}, 401, 'an unknown key: 401');
like($r->{headers}{'www-authenticate'} // '', qr/invalid_token/, '... WWW-Authenticate invalid_token');
is(with_key('tmk_x', GET => "/v1/workspaces/$A/tasks")->{status}, 401, 'a short one: 401');
is(with_key(substr($key, 0, -1), GET => "/v1/workspaces/$A/tasks")->{status}, 401, 'a truncated one: 401');

# expired
$t->psql(q{UPDATE tm.api_keys SET expires_at = now() - interval '1 second' WHERE id = $1}, $kb_id);
is(with_key($kb, GET => "/v1/workspaces/$B/tasks")->{status}, 401, 'an expired key: 401');

# ---------------------------------------------------------------------------
# list, last_used_at

$r = $t->request(GET => '/v1/api-keys', token => $alice->{tok});
is($r->{status}, 200, 'GET /v1/api-keys');
my @d = @{ $r->{json}{data} };
is(scalar @d, 4, 'four keys');
is_deeply([ map { $_->{name} } @d ], [ 'v', 'admin of B', 'reader', 'ci' ], 'newest first');
unlike($r->{body}, qr/"key"|hash|\Q$key\E/, 'no secret, no hash');
like($d[3]{last_used_at} // '', $TS, 'last_used_at set by use');
is(scalar @{ $t->request(GET => '/v1/api-keys', token => $bob->{tok})->{json}{data} }, 0, 'bob sees none of them');

my $lu = $t->psql('SELECT last_used_at FROM tm.api_keys WHERE id = $1', $kid);
with_key($key, GET => "/v1/workspaces/$A/tasks");
is($t->psql('SELECT last_used_at FROM tm.api_keys WHERE id = $1', $kid), $lu,
   'last_used_at moves at most once a minute');
$t->psql(q{UPDATE tm.api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = $1}, $kid);
my $old = $t->psql('SELECT last_used_at FROM tm.api_keys WHERE id = $1', $kid);
with_key($key, GET => "/v1/workspaces/$A/tasks");
my $new = $t->psql('SELECT last_used_at > $2::timestamptz FROM tm.api_keys WHERE id = $1', $kid, $old);
is($new, 't', '... and after a minute it moves');

# ---------------------------------------------------------------------------
# delete

is($t->request(DELETE => "/v1/api-keys/$kid", token => $bob->{tok})->{status}, 404,
   'another user\'s key: 404');
is($t->request(DELETE => '/v1/api-keys/nope', token => $alice->{tok})->{status}, 404, 'a malformed id: 404');
is(with_key($key, GET => "/v1/workspaces/$A/tasks")->{status}, 200, 'the key still works');
$r = $t->request(DELETE => "/v1/api-keys/$kid", token => $alice->{tok});
is($r->{status}, 204, 'DELETE /v1/api-keys/{id}: 204');
is(with_key($key, GET => "/v1/workspaces/$A/tasks")->{status}, 401, 'a deleted key: 401 at once');
is(with_key($key, GET => "/v1/workspaces/$A/tasks/$task")->{status}, 401, '... for cached reads too');
is($t->request(DELETE => "/v1/api-keys/$kid", token => $alice->{tok})->{status}, 404, 'again: 404');

# keys are not sessions: not listed, not ended by logout-all
my $k2 = create_key(name => 'survivor', workspace_id => $A, role => 'viewer')->{json}{key};
$r = $t->request(GET => '/v1/auth/sessions', token => $alice->{tok});
unlike($r->{body}, qr/API key/, 'keys are not in the session list');
is(scalar @{ $r->{json}{data} }, 1, '... only the login');
is($t->request(POST => '/v1/auth/logout-all', token => $alice->{tok})->{status}, 204, 'logout-all');
is(with_key($k2, GET => "/v1/workspaces/$A/tasks")->{status}, 200, 'the key outlives logout-all');
is($t->request(GET => "/v1/workspaces/$A/tasks", token => $alice->{tok})->{status}, 401,
   '... the access token does not');
sleep 1;    # rva revokes tokens issued in an earlier second
$alice->{tok} = $t->request(POST => '/v1/auth/login', body => {
    email => "alice-$rand\@example.com", password => "pass phrase of alice $rand" })->{json}{access_token};

# JWTs are untouched by all this
is($t->request(GET => "/v1/workspaces/$A/tasks", token => $alice->{tok})->{status}, 200, 'the JWT still works');

unlike($t->error_log, qr/\Q$key\E|\Q$kc\E|\Q$kb\E/, 'no key in the error log');
unlike($t->access_log, qr/\Q$key\E/, 'no key in the access log');

$t->done;
