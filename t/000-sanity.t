# Sanity: the module loads, nginx answers, the harness works end to end.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Taskmgr::Test;

my $t = Taskmgr::Test->new;
run_blocks($t);

__DATA__

=== TEST 1: liveness
--- request
GET /healthz
--- error_code: 200

=== TEST 2: an unknown path under /v1 without a token is 401 problem+json
--- request
GET /v1/no-such-thing-{{rand}}
--- error_code: 401
--- response_headers
Content-Type: ~^application/problem\+json
X-Request-Id: ~\S
--- no_error_log
[alert]
[crit]
