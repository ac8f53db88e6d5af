#!/usr/bin/env bash
# stack.sh start|stop|status <datadir> <pg_port> <redis_port>
#
# Runs a private PostgreSQL 15 and Redis for taskmgr out of <datadir>; no
# system service is touched.  Layout of <datadir>:
#
#   secrets/          0700, owner = invoking user
#     jwt.key           64 random bytes, hex (no newline), 0600
#     cursor.key        48 random bytes, hex: HMAC key of task list cursors
#     mfa.key           32 random bytes, hex: seals TOTP secrets, 0600
#     attachment_url.key 48 random bytes, hex: HMAC key of attachment links
#     pg_app_password   password of role taskmgr_app, 0600
#   pg/               PostgreSQL cluster (initdb once), owner = pg user
#   pg/taskmgr.conf   port, socket dir, ... (rewritten on every start)
#   pgsock/           unix socket dir, 0700, owner = pg user
#   pg.log            PostgreSQL log
#   redis/            Redis working dir;  redis.pid, redis.log beside it
#
# PostgreSQL refuses to run as root, so as root both daemons run as the system
# user `taskmgr` (created here); otherwise as the current user.  Superuser SQL
# goes through the unix socket as role `postgres` (trust, socket dir 0700);
# TCP on 127.0.0.1 needs a password (scram-sha-256).
set -euo pipefail

PG_BIN=${TASKMGR_PG_BIN:-/usr/lib/postgresql/15/bin}
SVC_USER=taskmgr
APP_ROLE=taskmgr_app
APP_DB=taskmgr

die() { echo "stack.sh: error: $*" >&2; exit 1; }
say() { echo "stack.sh: $*"; }

usage() {
    echo "usage: $0 start|stop|status <datadir> <pg_port> <redis_port>" >&2
    exit 2
}

[ $# -eq 4 ] || usage
cmd=$1
datadir=$2
pg_port=$3
redis_port=$4

case $cmd in start|stop|status) ;; *) usage ;; esac
[[ $pg_port =~ ^[0-9]+$ ]] && [[ $redis_port =~ ^[0-9]+$ ]] || usage

if [ "$cmd" = start ]; then
    mkdir -p "$datadir"
fi
if [ ! -d "$datadir" ]; then
    echo "postgres: stopped (no $datadir)"
    echo "redis: stopped (no $datadir)"
    [ "$cmd" = status ] && exit 3
    exit 0
fi
datadir=$(cd "$datadir" && pwd -P)

pgdata=$datadir/pg
sockdir=$datadir/pgsock
secrets=$datadir/secrets
pg_log=$datadir/pg.log
redis_dir=$datadir/redis
redis_pid=$datadir/redis.pid
redis_log=$datadir/redis.log

is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1

# The OS user that owns and runs the daemons.  As root: `taskmgr`, or the
# owner of an existing cluster if that is some other non-root user.
if [ $is_root -eq 1 ]; then
    pg_user=$SVC_USER
    if [ -d "$pgdata" ]; then
        owner=$(stat -c %U "$pgdata")
        [ "$owner" != root ] && [ "$owner" != UNKNOWN ] && pg_user=$owner
    fi
else
    pg_user=$(id -un)
fi

# Run a command as the pg user, from a directory it can enter.
as_pg() {
    if [ $is_root -eq 1 ]; then
        (cd / && runuser -u "$pg_user" -- "$@")
    else
        "$@"
    fi
}

ensure_user() {
    [ $is_root -eq 1 ] || return 0
    getent passwd "$pg_user" >/dev/null && return 0
    say "creating system user $pg_user"
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$pg_user" \
        || getent passwd "$pg_user" >/dev/null \
        || die "could not create user $pg_user"
}

# The pg user must be able to reach <datadir>; report the first parent that
# blocks it (e.g. /root is 0700).
check_traversable() {
    [ $is_root -eq 1 ] || return 0
    as_pg test -x "$datadir" && return 0
    local d=$datadir blocker=$datadir
    while [ "$d" != / ]; do
        d=$(dirname "$d")
        as_pg test -x "$d" || blocker=$d
    done
    die "OS user '$pg_user' (which runs PostgreSQL and Redis) cannot enter $datadir:" \
        "$blocker is not searchable by others.  Move the checkout below a" \
        "world-searchable directory (e.g. /srv or /opt) or run: chmod o+x $blocker"
}

gen_hex() {   # gen_hex <bytes>
    od -An -v -tx1 -N "$1" /dev/urandom | tr -d ' \n'
}

ensure_secrets() {
    (
        umask 077
        mkdir -p "$secrets"
        chmod 0700 "$secrets"
        local f
        for f in jwt.key:64 mfa.key:32 pg_app_password:24 cursor.key:48 attachment_url.key:48; do
            local name=${f%%:*} bytes=${f##*:}
            if [ ! -s "$secrets/$name" ]; then
                gen_hex "$bytes" > "$secrets/$name.tmp"
                mv -f "$secrets/$name.tmp" "$secrets/$name"
                say "generated $secrets/$name"
            fi
            chmod 0600 "$secrets/$name"
        done
    )
}

# A directory owned by the pg user with the given mode.
pg_dir() {   # pg_dir <path> <mode>
    mkdir -p "$1"
    [ $is_root -eq 1 ] && chown "$pg_user:" "$1"
    chmod "$2" "$1"
}

# A file the pg user can write, created if missing.
pg_file() {
    [ -e "$1" ] || : > "$1"
    [ $is_root -eq 1 ] && chown "$pg_user:" "$1"
    chmod 0640 "$1"
}

# ------------------------------------------------------------ PostgreSQL --

pg_running() {
    [ -f "$pgdata/PG_VERSION" ] || return 1
    as_pg "$PG_BIN/pg_ctl" -D "$pgdata" status >/dev/null 2>&1
}

pg_running_port() {
    sed -n 4p "$pgdata/postmaster.pid" 2>/dev/null || true
}

pg_init() {
    [ -f "$pgdata/PG_VERSION" ] && return 0
    if [ -d "$pgdata" ] && [ -n "$(ls -A "$pgdata")" ]; then
        die "$pgdata is not empty but holds no PostgreSQL cluster"
    fi
    pg_dir "$pgdata" 0700
    # initdb wants a superuser password when host auth uses passwords.  It is
    # never used (the socket is trust, TCP logins are for taskmgr_app) and not
    # kept: the file lives in the pg user's private socket dir for a moment.
    local pwfile=$sockdir/.initdb-pw
    (umask 077; gen_hex 24 > "$pwfile")
    [ $is_root -eq 1 ] && chown "$pg_user:" "$pwfile"
    say "initdb $pgdata (as $pg_user)"
    if ! as_pg "$PG_BIN/initdb" -D "$pgdata" -U postgres \
            --auth-local=trust --auth-host=scram-sha-256 \
            --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
            > "$datadir/initdb.log" 2>&1; then
        rm -f "$pwfile"
        cat "$datadir/initdb.log" >&2
        die "initdb failed"
    fi
    rm -f "$pwfile"
    echo "include = 'taskmgr.conf'    # written by scripts/stack.sh" >> "$pgdata/postgresql.conf"
}

pg_write_conf() {
    local conf=$pgdata/taskmgr.conf
    cat > "$conf.tmp" <<EOF
# Written by scripts/stack.sh on every start; edits are lost.
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$sockdir'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 256MB
password_encryption = scram-sha-256
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_messages = warning
EOF
    [ $is_root -eq 1 ] && chown "$pg_user:" "$conf.tmp"
    chmod 0600 "$conf.tmp"
    mv -f "$conf.tmp" "$conf"
}

psql_super() {   # psql_super <db> [psql args...]: superuser over the socket
    local db=$1
    shift
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -p "$pg_port" -U postgres -d "$db" "$@"
}

pg_setup_roles() {
    local pw
    pw=$(cat "$secrets/pg_app_password")
    pw=${pw%%[[:space:]]*}
    [[ $pw =~ ^[A-Za-z0-9._~+/=-]+$ ]] \
        || die "$secrets/pg_app_password: only [A-Za-z0-9._~+/=-] allowed"
    # The password travels on stdin, never on a command line.
    psql_super postgres <<EOF
\\set app_pw '$pw'
SELECT format('CREATE ROLE %I LOGIN', '$APP_ROLE')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$APP_ROLE') \\gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', '$APP_ROLE', :'app_pw') \\gexec
SELECT format('CREATE DATABASE %I OWNER postgres', '$APP_DB')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$APP_DB') \\gexec
EOF
}

pg_start() {
    if [ ${#sockdir} -gt 90 ]; then
        die "socket dir path too long for a unix socket: $sockdir"
    fi
    pg_dir "$sockdir" 0700
    pg_init
    if pg_running; then
        local p
        p=$(pg_running_port)
        [ "$p" = "$pg_port" ] \
            || die "PostgreSQL of $datadir already runs on port $p, not $pg_port"
        say "postgres already running (port $pg_port)"
    else
        pg_write_conf
        pg_file "$pg_log"
        say "starting postgres on 127.0.0.1:$pg_port"
        if ! as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -l "$pg_log" -w -t 60 -s start; then
            tail -n 30 "$pg_log" >&2 || true
            die "PostgreSQL did not start (log: $pg_log)"
        fi
    fi
    pg_setup_roles
}

pg_stop() {
    if pg_running; then
        say "stopping postgres"
        as_pg "$PG_BIN/pg_ctl" -D "$pgdata" -m fast -w -t 60 -s stop \
            || die "PostgreSQL did not stop (log: $pg_log)"
    fi
}

# ----------------------------------------------------------------- Redis --

redis_pid_alive() {   # prints the pid of our running redis-server
    local pid
    pid=$(cat "$redis_pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    grep -q '^redis-server' "/proc/$pid/comm" 2>/dev/null || return 1
    grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && return 1
    echo "$pid"
}

redis_ping() {
    [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]
}

redis_start() {
    local pid
    if pid=$(redis_pid_alive); then
        redis_ping || die "Redis (pid $pid) of $datadir does not answer on port $redis_port"
        say "redis already running (port $redis_port)"
        return 0
    fi
    pg_dir "$redis_dir" 0700
    rm -f "$redis_pid"
    pg_file "$redis_pid"
    pg_file "$redis_log"
    say "starting redis on 127.0.0.1:$redis_port"
    (cd "$redis_dir" && as_pg redis-server \
        --bind 127.0.0.1 --port "$redis_port" \
        --save '' --appendonly no --daemonize yes \
        --pidfile "$redis_pid" --logfile "$redis_log" --dir "$redis_dir") \
        || die "redis-server failed (log: $redis_log)"
    local i
    for i in $(seq 1 100); do
        if pid=$(redis_pid_alive) && redis_ping; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$redis_log" >&2 || true
    die "Redis did not come up on port $redis_port (log: $redis_log)"
}

redis_stop() {
    local pid i
    pid=$(redis_pid_alive) || { rm -f "$redis_pid"; return 0; }
    say "stopping redis"
    redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1 \
        || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        redis_pid_alive >/dev/null || { rm -f "$redis_pid"; return 0; }
        [ "$i" = 50 ] && kill -TERM "$pid" 2>/dev/null
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$redis_pid"
}

# ------------------------------------------------------------------ main --

case $cmd in
start)
    ensure_user
    chmod 0755 "$datadir"
    check_traversable
    ensure_secrets
    pg_start
    redis_start
    say "up: postgres 127.0.0.1:$pg_port (socket $sockdir), redis 127.0.0.1:$redis_port"
    ;;
stop)
    pg_stop
    redis_stop
    ;;
status)
    rc=0
    if pg_running; then
        echo "postgres: running (port $(pg_running_port), data $pgdata, socket $sockdir)"
    else
        echo "postgres: stopped"
        rc=3
    fi
    if pid=$(redis_pid_alive); then
        if redis_ping; then
            echo "redis: running (pid $pid, port $redis_port)"
        else
            echo "redis: running (pid $pid) but not answering on port $redis_port"
            rc=3
        fi
    else
        echo "redis: stopped"
        rc=3
    fi
    exit $rc
    ;;
esac
