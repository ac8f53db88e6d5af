#!/usr/bin/env bash
# test.sh <module.so> [asan]: what `make test` / `make test-asan` call.
#
# Starts PostgreSQL and Redis on free ports in a throw-away directory, builds
# the template database taskmgr_tpl from sql/, runs `prove -r t/` against the
# module, then stops everything and removes the directory, also when a test
# fails or the run is interrupted.  Exit status: prove's.
#
# Environment: T="t/foo.t ..." (default t/), VERBOSE=1 (prove -v),
# TASKMGR_TEST_LEAVE=1 (keep the directory, logs and nginx.conf files).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
die() { echo "test.sh: error: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 <module.so> [asan]" >&2; exit 2; }
[ -f "$1" ] || die "no module at $1 (run make build)"
so=$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")
mode=${2:-}
case $mode in ''|asan) ;; *) die "unknown mode $mode" ;; esac

tmp=$(mktemp -d /tmp/taskmgr-test.XXXXXX)
chmod 0755 "$tmp"        # the pg user must be able to enter it
stack=$tmp/stack

# Two free ports: bind port 0, read what the kernel picked.
read -r pg_port redis_port < <(perl -MIO::Socket::INET -e '
    my @s = map { IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                        LocalPort => 0, Proto => "tcp")
                  or die "bind: $!\n" } 1 .. 2;
    print join(" ", map { $_->sockport } @s), "\n";')

cleaned=0
cleanup() {
    local rc=$?
    [ $cleaned -eq 1 ] && return
    cleaned=1
    # nginx instances a killed test file left behind
    local pidfile pid
    for pidfile in "$tmp"/*/nginx.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile" 2>/dev/null || true)
        [[ $pid =~ ^[0-9]+$ ]] && grep -q nginx "/proc/$pid/comm" 2>/dev/null \
            && kill -KILL "$pid" 2>/dev/null || true
    done
    "$repo/scripts/stack.sh" stop "$stack" "$pg_port" "$redis_port" >/dev/null 2>&1 \
        || echo "test.sh: warning: stopping the stack failed" >&2
    if [ "${TASKMGR_TEST_LEAVE:-0}" = 1 ]; then
        echo "test.sh: left $tmp (TASKMGR_TEST_LEAVE=1)"
    else
        rm -rf "$tmp"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$repo/scripts/stack.sh" start "$stack" "$pg_port" "$redis_port" >/dev/null

/usr/lib/postgresql/15/bin/psql -X -q -v ON_ERROR_STOP=1 -h "$stack/pgsock" -p "$pg_port" \
    -U postgres -d postgres -c 'CREATE DATABASE taskmgr_tpl'
"$repo/scripts/migrate.sh" "$stack/pgsock" "$pg_port" taskmgr_tpl

if [ "$(id -u)" -eq 0 ]; then
    pg_user=$(stat -c %U "$stack/pg")
else
    pg_user=$(id -un)
fi

export TASKMGR_TEST_MODULE=$so
export TASKMGR_TEST_NGINX=${TASKMGR_TEST_NGINX:-/usr/sbin/nginx}
export TASKMGR_TEST_PG_PORT=$pg_port
export TASKMGR_TEST_PG_SOCKDIR=$stack/pgsock
export TASKMGR_TEST_PG_DATADIR=$stack/pg
export TASKMGR_TEST_PG_USER=$pg_user
export TASKMGR_TEST_REDIS_PORT=$redis_port
export TASKMGR_TEST_SECRETS=$stack/secrets
export TASKMGR_TEST_TEMPLATE_DB=taskmgr_tpl
export TASKMGR_TEST_TMPDIR=$tmp
if [ "$mode" = asan ]; then
    export TASKMGR_TEST_ASAN=1
else
    unset TASKMGR_TEST_ASAN
fi

prove_args=(-r -I "$repo/t/lib")
[ "${VERBOSE:-0}" = 1 ] && prove_args+=(-v)
read -r -a files <<<"${T:-t/}"

cd "$repo"
echo "test.sh: module $so${mode:+ ($mode)}; postgres :$pg_port, redis :$redis_port, dir $tmp"
rc=0
prove "${prove_args[@]}" "${files[@]}" || rc=$?
exit $rc
