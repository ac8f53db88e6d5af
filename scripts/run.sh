#!/usr/bin/env bash
# run.sh: what `make run` calls (after deps and build).
#
# Starts PostgreSQL (25432) and Redis (26379) out of <repo>/.data, migrates
# database `taskmgr`, then runs nginx in the foreground on 127.0.0.1:8080.
# Ctrl-C (or TERM) stops nginx, then PostgreSQL and Redis.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
data=$repo/.data
pg_port=25432
redis_port=26379
nginx=${TASKMGR_NGINX:-/usr/sbin/nginx}
conf=$repo/lua-free-conf/taskmgr.conf
module=$repo/build/modules/ngx_http_taskmgr_module.so

die() { echo "run.sh: error: $*" >&2; exit 1; }

[ -f "$module" ] || die "$module is missing: run 'make build' (or 'make run')"

nginx_pid=
cleaned=0
cleanup() {
    [ $cleaned -eq 1 ] && return
    cleaned=1
    if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
        echo "run.sh: stopping nginx"
        kill -QUIT "$nginx_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$nginx_pid" 2>/dev/null || break
            [ "$_" = 50 ] && kill -TERM "$nginx_pid" 2>/dev/null
            sleep 0.1
        done
        kill -KILL "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    "$repo/scripts/stack.sh" stop "$data" "$pg_port" "$redis_port" || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$repo/scripts/stack.sh" start "$data" "$pg_port" "$redis_port"
"$repo/scripts/migrate.sh" "$data/pgsock" "$pg_port" taskmgr

mkdir -p "$data/nginx/logs" "$data/nginx/tmp"
chmod 0755 "$data/nginx" "$data/nginx/tmp"

"$nginx" -t -q -p "$data/nginx/" -c "$conf" -g 'daemon off;' \
    || die "nginx rejected $conf"

# In the background so that this shell gets INT/TERM at once (a foreground
# child would delay the traps until it exits).
"$nginx" -p "$data/nginx/" -c "$conf" -g 'daemon off;' &
nginx_pid=$!
echo "run.sh: taskmgr on http://127.0.0.1:8080 (logs: $data/nginx/logs/); Ctrl-C stops everything"

rc=0
wait "$nginx_pid" || rc=$?
nginx_pid=
echo "run.sh: nginx exited with status $rc"
exit "$rc"
