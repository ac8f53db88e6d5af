# Security headers and CORS (ngx_http_taskmgr_headers_module): the headers
# on every answer of a location, also the 401/404/429/5xx of the modules
# and nginx's own error pages; HSTS only over TLS; CORS for allow-listed
# origins only; preflights answered before the rate limiter and the token
# check.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;
use Taskmgr::Test qw(run_blocks free_port);

my $t = Taskmgr::Test->new;
my $d = $t->dir;

system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
       . "-keyout $d/tls.key -out $d/tls.crt 2>/dev/null") == 0
    or BAIL_OUT('openssl req failed');
chmod 0644, "$d/tls.key", "$d/tls.crt";

my ($tls, $tls0) = (free_port(), free_port());
$t->var(tls => $tls);
$t->var(uid => '0195d0a4-6b1e-7c2a-9f00-1234567890ab');
$t->var(tok => $t->jwt({ sub => '0195d0a4-6b1e-7c2a-9f00-1234567890ab' }));
$t->var(zone => "cors$t->{rand}");

my $http = <<"EOF";
taskmgr_limit_zone cors$t->{rand} key=\$binary_remote_addr rate=1r/m burst=0;
server {
    listen 127.0.0.1:$tls ssl;
    ssl_certificate     $d/tls.crt;
    ssl_certificate_key $d/tls.key;
    taskmgr_security_headers on;
    taskmgr_security_hsts_max_age 1d;
    location / { taskmgr_healthz; }
}
server {
    listen 127.0.0.1:$tls0 ssl;
    ssl_certificate     $d/tls.crt;
    ssl_certificate_key $d/tls.key;
    taskmgr_security_headers on;
    taskmgr_security_hsts_max_age 0;
    location / { taskmgr_healthz; }
}
EOF

my $conf = <<'EOF';
taskmgr_security_headers on;
taskmgr_cors_origins https://app.example.com http://localhost:3000;
taskmgr_cors_credentials on;
location = /healthz { taskmgr_healthz; }
location = /v1/limited {
    taskmgr_limit zone=%%ZONE%%;
    taskmgr_auth_jwt on;
    taskmgr_api;
}
location /v1/ { taskmgr_auth_jwt on; taskmgr_api; }
location = /any { taskmgr_cors_origins *; taskmgr_cors_credentials off; taskmgr_healthz; }
location = /nocors { taskmgr_cors_origins off; taskmgr_healthz; }
location = /nosec { taskmgr_security_headers off; taskmgr_healthz; }
location = /custom {
    taskmgr_cors_methods "GET";
    taskmgr_cors_headers "Authorization";
    taskmgr_cors_expose_headers "X-Request-Id";
    taskmgr_cors_max_age 60s;
    taskmgr_healthz;
}
location = /boom { return 500; }
location = /rv503 {
    taskmgr_auth_jwt on;
    taskmgr_auth_revocation_fallback refuse;
    taskmgr_healthz;
}
location = /badgw { proxy_pass http://127.0.0.1:1; }
location = /proxied { proxy_pass http://127.0.0.1:%%PORT%%/backend; }
location = /backend {
    taskmgr_security_headers off;
    taskmgr_cors_origins off;
    add_header X-Frame-Options SAMEORIGIN;
    return 200 "backend\n";
}
EOF
$conf =~ s/%%ZONE%%/cors$t->{rand}/;

$t->start(config => $conf, http_config => $http);

# HSTS only over TLS (curl: HTTP::Tiny needs IO::Socket::SSL, not core)
sub curl_headers {
    my ($port) = @_;
    my $out = `curl -sk -D - -o /dev/null https://127.0.0.1:$port/healthz`;
    return $out;
}
{
    my $h = curl_headers($tls);
    like($h, qr/^HTTP\/1\.1 200/m, 'TLS: 200');
    like($h, qr/^Strict-Transport-Security: max-age=86400\r?$/mi, 'TLS: Strict-Transport-Security max-age=86400');
    like($h, qr/^X-Frame-Options: DENY\r?$/mi, 'TLS: the other headers too');
    my $h0 = curl_headers($tls0);
    like($h0, qr/^HTTP\/1\.1 200/m, 'TLS, max-age 0: 200');
    unlike($h0, qr/Strict-Transport-Security/i, 'TLS, max-age 0: no Strict-Transport-Security');
}

# one value per header where a backend set its own
{
    my $r = $t->request(GET => '/proxied');
    is($r->{status}, 200, 'proxied: 200');
    is($r->{headers}{'x-frame-options'}, 'SAMEORIGIN', "proxied: the backend's X-Frame-Options is kept, not doubled");
    is($r->{headers}{'x-content-type-options'}, 'nosniff', 'proxied: the missing ones are added');
}

# a 503 of the auth module (revocation check refused while Redis is down)
{
    $t->redis_stop;
    my $r = $t->request(GET => '/rv503', token => $t->var('tok'),
                        headers => { Origin => 'https://app.example.com' });
    $t->redis_start;
    is($r->{status}, 503, 'auth 503: status');
    is($r->{headers}{'retry-after'}, '1', 'auth 503: Retry-After');
    is($r->{headers}{'access-control-allow-origin'}, 'https://app.example.com', 'auth 503: CORS');
    is($r->{headers}{'x-frame-options'}, 'DENY', 'auth 503: security headers');
    is($r->{headers}{'content-security-policy'}, "default-src 'none'; frame-ancestors 'none'",
       'auth 503: CSP');
}

run_blocks($t, config => $conf, http_config => $http);

__DATA__

=== TEST 1: security headers on a plain answer, no Origin: no CORS but Vary
--- request
GET /healthz
--- error_code: 200
--- response_headers
X-Content-Type-Options: nosniff
X-Frame-Options: DENY
Content-Security-Policy: default-src 'none'; frame-ancestors 'none'
Referrer-Policy: no-referrer
Vary: Origin
!Strict-Transport-Security
!Access-Control-Allow-Origin
!Access-Control-Allow-Credentials

=== TEST 2: an allowed origin
--- request
GET /healthz
--- more_headers
Origin: https://app.example.com
--- error_code: 200
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
Access-Control-Allow-Credentials: true
Access-Control-Expose-Headers: ETag, Link, Location, Retry-After, X-Request-Id, X-Total-Count, X-Total-Count-Capped, RateLimit, RateLimit-Policy
Vary: Origin
!Access-Control-Allow-Methods

=== TEST 3: the second allowed origin (with a port)
--- request
GET /healthz
--- more_headers
Origin: http://localhost:3000
--- error_code: 200
--- response_headers
Access-Control-Allow-Origin: http://localhost:3000

=== TEST 4: a disallowed origin gets no CORS header
--- request
GET /healthz
--- more_headers
Origin: https://evil.example.com
--- error_code: 200
--- response_headers
!Access-Control-Allow-Origin
!Access-Control-Allow-Credentials
!Access-Control-Expose-Headers
Vary: Origin
X-Frame-Options: DENY

=== TEST 5: exact match only: a suffix, another scheme, another port, a trailing slash
--- request
GET /healthz
--- more_headers
Origin: https://app.example.com.evil.net
--- error_code: 200
--- response_headers
!Access-Control-Allow-Origin

=== TEST 6: exact match only: http instead of https
--- request
GET /healthz
--- more_headers
Origin: http://app.example.com
--- error_code: 200
--- response_headers
!Access-Control-Allow-Origin

=== TEST 7: exact match only: another port
--- request
GET /healthz
--- more_headers
Origin: http://localhost:3001
--- error_code: 200
--- response_headers
!Access-Control-Allow-Origin

=== TEST 8: exact match only: "null"
--- request
GET /healthz
--- more_headers
Origin: null
--- error_code: 200
--- response_headers
!Access-Control-Allow-Origin

=== TEST 9: preflight from an allowed origin: 204 at the edge, no token needed
--- request
OPTIONS /v1/workspaces
--- more_headers
Origin: https://app.example.com
Access-Control-Request-Method: POST
Access-Control-Request-Headers: authorization, content-type
--- error_code: 204
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
Access-Control-Allow-Credentials: true
Access-Control-Allow-Methods: GET, POST, PATCH, DELETE
Access-Control-Allow-Headers: Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, X-Request-Id
Access-Control-Max-Age: 600
Vary: Origin
X-Content-Type-Options: nosniff
!WWW-Authenticate
!Content-Type
--- response_body
--- no_error_log
taskmgr: JWT rejected

=== TEST 10: preflights are answered before the rate limiter (rate=1r/m burst=0, three in a row)
--- request
OPTIONS /v1/limited
--- more_headers
Origin: https://app.example.com
Access-Control-Request-Method: GET
--- repeat: 3
--- error_code: 204
--- response_headers
!X-RateLimit-Limit
!RateLimit
Access-Control-Allow-Origin: https://app.example.com

=== TEST 11: preflight from a disallowed origin: 403, no CORS headers
--- request
OPTIONS /v1/workspaces
--- more_headers
Origin: https://evil.example.com
Access-Control-Request-Method: DELETE
--- error_code: 403
--- response_headers
Content-Type: application/problem+json
!Access-Control-Allow-Origin
!Access-Control-Allow-Methods
!Access-Control-Allow-Credentials
X-Frame-Options: DENY
--- response_json_like: {"code":"forbidden","status":403}

=== TEST 12: OPTIONS with Origin but no Access-Control-Request-Method is no preflight: the token check runs
--- request
OPTIONS /v1/workspaces
--- more_headers
Origin: https://app.example.com
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
Access-Control-Allow-Origin: https://app.example.com

=== TEST 13: a 401 of the auth module carries the security and CORS headers
--- request
GET /v1/limited
--- more_headers
Origin: https://app.example.com
--- error_code: 401
--- response_headers
WWW-Authenticate: Bearer
Access-Control-Allow-Origin: https://app.example.com
Access-Control-Allow-Credentials: true
Access-Control-Expose-Headers: ~Retry-After
X-Content-Type-Options: nosniff
Content-Security-Policy: default-src 'none'; frame-ancestors 'none'
Referrer-Policy: no-referrer

=== TEST 14: a 429 of the limit module carries them too
--- request
GET /v1/limited
--- more_headers
Origin: https://app.example.com
--- error_code: 429
--- response_headers
Retry-After: ~^\d+$
Access-Control-Allow-Origin: https://app.example.com
X-Frame-Options: DENY
Referrer-Policy: no-referrer

=== TEST 15: a 404 of the API carries them
--- request
GET /v1/no-such-thing
--- token: tok
--- more_headers
Origin: https://app.example.com
--- error_code: 404
--- response_headers
Content-Type: application/problem+json
Access-Control-Allow-Origin: https://app.example.com
X-Content-Type-Options: nosniff

=== TEST 16: nginx's own 500 page carries them
--- request
GET /boom
--- more_headers
Origin: https://app.example.com
--- error_code: 500
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
X-Frame-Options: DENY
Content-Security-Policy: default-src 'none'; frame-ancestors 'none'

=== TEST 17: a 502 of proxy_pass carries them
--- request
GET /badgw
--- more_headers
Origin: https://app.example.com
--- error_code: 502
--- response_headers
Access-Control-Allow-Origin: https://app.example.com
X-Content-Type-Options: nosniff

=== TEST 18: "*" without credentials
--- request
GET /any
--- more_headers
Origin: https://whoever.example.org
--- error_code: 200
--- response_headers
Access-Control-Allow-Origin: *
!Access-Control-Allow-Credentials

=== TEST 19: preflight under "*"
--- request
OPTIONS /any
--- more_headers
Origin: https://whoever.example.org
Access-Control-Request-Method: GET
--- error_code: 204
--- response_headers
Access-Control-Allow-Origin: *
Access-Control-Allow-Methods: GET, POST, PATCH, DELETE

=== TEST 20: taskmgr_cors_origins off removes the inherited CORS
--- request
GET /nocors
--- more_headers
Origin: https://app.example.com
--- error_code: 200
--- response_headers
!Access-Control-Allow-Origin
!Vary
X-Frame-Options: DENY

=== TEST 21: a preflight where CORS is off is no preflight (the location's own 405)
--- request
OPTIONS /nocors
--- more_headers
Origin: https://app.example.com
Access-Control-Request-Method: GET
--- error_code: 405
--- response_headers
!Access-Control-Allow-Origin

=== TEST 22: taskmgr_security_headers off: no security headers, CORS stays
--- request
GET /nosec
--- more_headers
Origin: https://app.example.com
--- error_code: 200
--- response_headers
!X-Frame-Options
!X-Content-Type-Options
!Content-Security-Policy
!Referrer-Policy
Access-Control-Allow-Origin: https://app.example.com

=== TEST 23: custom methods, headers, exposed headers and max age
--- request
OPTIONS /custom
--- more_headers
Origin: https://app.example.com
Access-Control-Request-Method: GET
--- error_code: 204
--- response_headers
Access-Control-Allow-Methods: GET
Access-Control-Allow-Headers: Authorization
Access-Control-Max-Age: 60

=== TEST 24: custom exposed headers
--- request
GET /custom
--- more_headers
Origin: https://app.example.com
--- error_code: 200
--- response_headers
Access-Control-Expose-Headers: X-Request-Id

=== TEST 25: no HSTS on a plain connection
--- request
GET /healthz
--- error_code: 200
--- response_headers
!Strict-Transport-Security

=== TEST 26: "*" with credentials is refused at start-up
--- must_die
--- config
taskmgr_cors_origins *;
taskmgr_cors_credentials on;
location / { taskmgr_healthz; }
--- error_log
"taskmgr_cors_origins *" cannot be used with "taskmgr_cors_credentials on"

=== TEST 27: an origin with a path
--- must_die
--- config
taskmgr_cors_origins https://app.example.com/;
location / { taskmgr_healthz; }
--- error_log
invalid CORS origin "https://app.example.com/"

=== TEST 28: an origin in upper case
--- must_die
--- config
taskmgr_cors_origins https://App.example.com;
location / { taskmgr_healthz; }
--- error_log
invalid CORS origin "https://App.example.com"

=== TEST 29: another scheme
--- must_die
--- config
taskmgr_cors_origins ftp://app.example.com;
location / { taskmgr_healthz; }
--- error_log
invalid CORS origin "ftp://app.example.com"

=== TEST 30: "*" among other origins
--- must_die
--- config
taskmgr_cors_origins * https://app.example.com;
location / { taskmgr_healthz; }
--- error_log
CORS origin "*" cannot be combined with others
