# Shared by bench/seed-1m.sh and bench/list-1m.sh (sourced): paths, ports, the stack.
# Their own throw-away stack lives in bench/.run-1m/ (gitignored with .run*), apart from
# bench/run.sh's, so the two benchmarks never disturb each other's data.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
run=$repo/bench/.run-1m
stackdir=$run/stack
ngx_prefix=$run/nginx
PG_PORT=${BENCH_1M_PG_PORT:-29432}
REDIS_PORT=${BENCH_1M_REDIS_PORT:-29379}
NGINX_PORT=${BENCH_1M_NGINX_PORT:-29090}
HOST=127.0.0.1
BASE=http://$HOST:$NGINX_PORT
PG_BIN=${TASKMGR_PG_BIN:-/usr/lib/postgresql/15/bin}
NGINX=${TASKMGR_NGINX:-/usr/sbin/nginx}
MODULE=$repo/build/modules/ngx_http_taskmgr_module.so
WS_SQL="md5('1m-ws')::uuid"

say() { printf '[%s %s] %s\n' "$(basename "$0")" "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
stack() { "$repo/scripts/stack.sh" "$1" "$stackdir" "$PG_PORT" "$REDIS_PORT"; }
psql_super() {   # psql_super <db> [args]
    local db=$1
    shift
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$stackdir/pgsock" -p "$PG_PORT" -U postgres -d "$db" "$@"
}
