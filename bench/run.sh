#!/usr/bin/env bash
# bench/run.sh: what `make bench` runs (after deps and build). See bench/README.md.
#
# Starts a throw-away stack under bench/.run/ (PostgreSQL 127.0.0.1:27432, Redis 127.0.0.1:27379,
# nginx with the taskmgr module on 127.0.0.1:28090), recreates and seeds the database with the
# peer harness's data shape, logs 16 users in through POST /v1/auth/login and loads the API with
# the peer harness's run-target.sh (smoke checks, then list, get, create at 64 connections).
# Everything it started is stopped at the end (unless --keep), also on failure or Ctrl-C.
#
# usage: bash bench/run.sh [options]
#   --quick              1 s warm-up and one 2 s run per scenario: checks the harness, measures nothing
#   --with-peers         first run the peer harness (run-peers.sh: baselines/ceilings, Express,
#                        Fastify; ~15 min, ~2 min with --quick), then ours, in the same session
#   --rss                after the scenarios, the memory check: VmRSS of every nginx worker before
#                        and after a fixed number of GET-one-task requests
#   --rss-only           the memory check only (no scenarios, no smoke checks)
#   --rss-requests N     requests of the memory check (default 1000000)
#   --rss-warmup N       requests before the first reading (default 20000; 0 = none)
#   --keep               leave PostgreSQL, Redis and nginx running at the end
#   --stop               stop a stack an earlier --keep left running, then exit
#   --access-log         keep nginx's access log on (default: access_log off)
#   --no-limit           without the rate limits (to measure what the limiter costs)
#   --no-cache           with taskmgr_cache off
#   --no-revocation      with taskmgr_auth_revocation off (to measure what the check costs)
# passed to run-target.sh:
#   -s, --scenarios LIST   list,get,create (default all three)
#   -d, --duration SECS    measured seconds per run (default 10, at most 10)
#   -w, --warmup SECS      warm-up seconds per scenario (default 3)
#   -r, --repeat N         measured runs per scenario (default 3; the row shows the median run)
#   -c, --connections N    wrk connections (default 64)
#   -t, --threads N        wrk threads (default 2)
#       --redis-port N     Redis whose commands are counted per request (default: ours, 27379)
#       --no-smoke         skip the functional smoke checks
#   -h, --help
#
# Environment: BENCH_PG_PORT, BENCH_REDIS_PORT, BENCH_NGINX_PORT (ports), TASKMGR_NGINX (nginx
# binary, default /usr/sbin/nginx), PEER_BENCH_DIR (peer harness, default ../shared/bench).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
bench=$repo/bench
run=$bench/.run
stackdir=$run/stack
ngx_prefix=$run/nginx
results=$run/results

PG_PORT=${BENCH_PG_PORT:-27432}
REDIS_PORT=${BENCH_REDIS_PORT:-27379}
NGINX_PORT=${BENCH_NGINX_PORT:-28090}
HOST=127.0.0.1
BASE=http://$HOST:$NGINX_PORT

PG_BIN=${TASKMGR_PG_BIN:-/usr/lib/postgresql/15/bin}
NGINX=${TASKMGR_NGINX:-/usr/sbin/nginx}
MODULE=$repo/build/modules/ngx_http_taskmgr_module.so
CONF_SRC=$repo/lua-free-conf/taskmgr.conf
PEER_BENCH=${PEER_BENCH_DIR:-$repo/../shared/bench}

# Every seeded user has this password (the template user's argon2id hash is copied to all).
BENCH_PASSWORD="bench-password-0123456789"
TEMPLATE_EMAIL="bench-template@example.test"

# The peer harness's PostgreSQL settings (its env.sh), so that both sides run on the same
# database configuration. Durability stays at the defaults: fsync and synchronous_commit on.
PG_TUNING=(shared_buffers=512MB effective_cache_size=4GB work_mem=8MB maintenance_work_mem=256MB
           wal_buffers=16MB max_wal_size=4GB checkpoint_timeout=15min)

say() { printf '[bench/run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
usage() { sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

quick=0 with_peers=0 rss=0 scenarios_on=1 keep=0 stop_only=0 access_log=0 no_limit=0 no_cache=0 no_revocation=0
rss_requests=1000000 rss_warmup=20000
target_opts=() redis_stats_port=$REDIS_PORT repeat_opt=""
while (($#)); do
  case "$1" in
    --quick) quick=1; shift ;;
    --with-peers) with_peers=1; shift ;;
    --rss) rss=1; shift ;;
    --rss-only) rss=1; scenarios_on=0; shift ;;
    --rss-requests) rss_requests=${2:?}; shift 2 ;;
    --rss-warmup) rss_warmup=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    --stop) stop_only=1; shift ;;
    --access-log) access_log=1; shift ;;
    --no-limit) no_limit=1; shift ;;
    --no-cache) no_cache=1; shift ;;
    --no-revocation) no_revocation=1; shift ;;
    -s|--scenarios|-d|--duration|-w|--warmup|-c|--connections|-t|--threads)
      target_opts+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    -r|--repeat) target_opts+=("$1" "${2:?$1 needs a value}"); repeat_opt=$2; shift 2 ;;
    --redis-port) redis_stats_port=${2:?}; shift 2 ;;
    --no-smoke) target_opts+=("$1"); shift ;;
    -h|--help) usage 0 ;;
    *) say "unknown argument $1"; usage ;;
  esac
done
[[ $rss_requests =~ ^[1-9][0-9]*$ ]] || die "--rss-requests must be a positive integer"
[[ $rss_warmup =~ ^[0-9]+$ ]] || die "--rss-warmup must be a non-negative integer"

psql_super() {   # psql_super <db> [args]: superuser over the unix socket of our cluster
    local db=$1
    shift
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$stackdir/pgsock" -p "$PG_PORT" -U postgres -d "$db" "$@"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Our nginx master: from the pid file, only when it is an nginx process.
nginx_master_pid() {
    local pid
    pid=$(cat "$ngx_prefix/logs/nginx.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    grep -q '^nginx' "/proc/$pid/comm" 2>/dev/null || return 1
    echo "$pid"
}

stop_nginx() {   # stop_nginx <pid>: graceful (QUIT), then TERM, then KILL, by pid only
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    say "stopping nginx (master pid $pid)"
    kill -QUIT "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        ((i == 50)) && kill -TERM "$pid" 2>/dev/null
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}

stack() { "$repo/scripts/stack.sh" "$1" "$stackdir" "$PG_PORT" "$REDIS_PORT"; }

# ------------------------------------------------------------------ --stop ----
if ((stop_only)); then
    if pid=$(nginx_master_pid); then stop_nginx "$pid"; fi
    [ -d "$stackdir" ] && stack stop
    exit 0
fi

# ----------------------------------------------------------- preconditions ----
[ -f "$MODULE" ] || die "$MODULE is missing: run 'make build' (or 'make bench')"
for t in wrk jq curl redis-cli "$NGINX" "$PG_BIN/psql"; do
    command -v "$t" >/dev/null || die "$t is missing (make deps)"
done
[ -d "$PEER_BENCH" ] || die "no peer harness at $PEER_BENCH (set PEER_BENCH_DIR)"
PEER_BENCH=$(cd "$PEER_BENCH" && pwd -P)
for f in run-target.sh login-tokens.sh lib/common.sh lib/harness.sh lib/scenario.lua; do
    [ -r "$PEER_BENCH/$f" ] || die "the peer harness has no $f ($PEER_BENCH)"
done
if ((with_peers)); then
    [ -w "$PEER_BENCH" ] || die "--with-peers: run-peers.sh writes its state into $PEER_BENCH/.run/, which this user cannot write"
fi

mkdir -p "$run"

# A stack an earlier --keep left behind: its nginx goes (it is ours: our pid file, an nginx
# process); PostgreSQL and Redis are reused by stack.sh.
if pid=$(nginx_master_pid); then
    say "an nginx from an earlier run is still up (pid $pid): stopping it"
    stop_nginx "$pid"
fi
port_open "$NGINX_PORT" && die "port $NGINX_PORT is taken by another process (BENCH_NGINX_PORT)"
st=$(stack status 2>/dev/null || true)
if ! grep -q '^postgres: running' <<<"$st" && port_open "$PG_PORT"; then
    die "port $PG_PORT is taken by another process (BENCH_PG_PORT)"
fi
if ! grep -q '^redis: running' <<<"$st" && port_open "$REDIS_PORT"; then
    die "port $REDIS_PORT is taken by another process (BENCH_REDIS_PORT)"
fi

nginx_pid=
cleaned=0
cleanup() {
    local rc=$?
    ((cleaned)) && return
    cleaned=1
    if ((keep)); then
        say "--keep: nginx $BASE (pid ${nginx_pid:-?}), PostgreSQL $HOST:$PG_PORT (socket $stackdir/pgsock, user postgres, db taskmgr), Redis $HOST:$REDIS_PORT"
        say "--keep: creds in $run/creds.txt (password $BENCH_PASSWORD); stop with: bash bench/run.sh --stop"
        exit $rc
    fi
    [ -n "$nginx_pid" ] && stop_nginx "$nginx_pid"
    stack stop >&2 || say "warning: stopping PostgreSQL/Redis failed"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t_start=$SECONDS
rm -rf "$results"
mkdir -p "$results"

# ------------------------------------------------------ PostgreSQL + Redis ----
stack start >&2

# Same PostgreSQL settings as the peer harness; restart only when a setting needs it.
pg_tune() {
    local kv sql="" pending
    for kv in "${PG_TUNING[@]}"; do
        sql+="ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}';"$'\n'
    done
    psql_super postgres <<<"$sql"
    psql_super postgres -tAc 'SELECT pg_reload_conf()' >/dev/null
    sleep 0.3
    pending=$(psql_super postgres -tAc 'SELECT count(*) FROM pg_settings WHERE pending_restart')
    if [ "$pending" != 0 ]; then
        say "restarting PostgreSQL for shared_buffers/wal_buffers"
        stack stop >&2
        stack start >&2
    fi
}
pg_tune
durability=$(psql_super postgres -tAc "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'max_wal_size')")
say "PostgreSQL: $durability"

say "recreating database taskmgr"
psql_super postgres -c 'DROP DATABASE IF EXISTS taskmgr WITH (FORCE)' -c 'CREATE DATABASE taskmgr'
"$repo/scripts/migrate.sh" "$stackdir/pgsock" "$PG_PORT" taskmgr >&2
redis-cli -h "$HOST" -p "$REDIS_PORT" flushall >/dev/null

# ------------------------------------------------------------------- nginx ----
# lua-free-conf/taskmgr.conf with our ports and absolute paths; every taskmgr directive kept.
gen_conf() {
    local out=$1 tmp=$1.tmp secrets=$stackdir/secrets
    cp "$CONF_SRC" "$tmp"
    subst() {   # subst <ERE matching exactly one line> <replacement line>
        local n
        n=$(grep -cE -- "$1" "$tmp" || true)
        [ "$n" = 1 ] || die "$CONF_SRC: expected one line matching '$1', found $n (update bench/run.sh)"
        sed -i -E "s|$1|$2|" "$tmp"
    }
    subst '^load_module .*ngx_http_taskmgr_module\.so;' "load_module $MODULE;"
    subst 'listen 127\.0\.0\.1:8080;' "listen $HOST:$NGINX_PORT;"
    subst 'port=25432' "port=$PG_PORT"
    subst 'taskmgr_redis 127\.0\.0\.1:26379;' "taskmgr_redis 127.0.0.1:$REDIS_PORT;"
    # the limits stay on (their Redis call is part of the cost measured) but
    # never trigger (like the peers' RATE_LIMIT_MAX, which is 1,000,000 a minute)
    subst '(taskmgr_limit_zone ip +key=[^ ]+) +rate=[^ ]+ burst=[0-9]+' '\1 rate=1000000r/s burst=1000000'
    subst '(taskmgr_limit_zone user +key=[^ ]+) +rate=[^ ]+ burst=[0-9]+' '\1 rate=1000000r/s burst=1000000'
    subst '(taskmgr_limit_zone auth +key=[^ ]+) +rate=[^ ]+ burst=[0-9]+' '\1 rate=1000000r/s burst=1000000'
    subst 'taskmgr_pg_password_file [^;]*;' "taskmgr_pg_password_file $secrets/pg_app_password;"
    subst 'taskmgr_auth_jwt_key_file [^;]*;' "taskmgr_auth_jwt_key_file $secrets/jwt.key;"
    subst 'taskmgr_cursor_secret_file [^;]*;' "taskmgr_cursor_secret_file $secrets/cursor.key;"
    subst 'taskmgr_mfa_key_file [^;]*;' "taskmgr_mfa_key_file $secrets/mfa.key;"
    subst 'taskmgr_password_blocklist [^;]*;' "taskmgr_password_blocklist $repo/data/password-blocklist.txt;"
    subst 'taskmgr_attachment_url_key_file [^;]*;' "taskmgr_attachment_url_key_file $secrets/attachment_url.key;"
    if ((access_log == 0)); then
        subst '^( *)access_log logs/access\.log taskmgr;' '\1access_log off;   # bench/run.sh: no access log while measuring'
    fi
    if ((no_limit)); then
        subst '^( *)taskmgr_limit zone=ip;' '\1# bench/run.sh --no-limit'
        subst '^( *)taskmgr_limit zone=user;' '\1#'
        subst '^( *)taskmgr_limit zone=auth;' '\1#'
    fi
    if ((no_revocation)); then
        subst '^( *)taskmgr_auth_revocation +on;' '\1taskmgr_auth_revocation off;   # bench/run.sh --no-revocation'
    fi
    if ((no_cache)); then
        subst '^( *)taskmgr_cache +on;' '\1taskmgr_cache off;   # bench/run.sh --no-cache'
    fi
    { echo "# Generated by bench/run.sh from lua-free-conf/taskmgr.conf; edits are lost."
      cat "$tmp"; } >"$out"
    rm -f "$tmp"
}
mkdir -p "$ngx_prefix/logs" "$ngx_prefix/tmp"
chmod 0755 "$ngx_prefix" "$ngx_prefix/tmp"
gen_conf "$ngx_prefix/nginx.conf"
"$NGINX" -t -q -p "$ngx_prefix/" -c "$ngx_prefix/nginx.conf" -g 'daemon off;' \
    || die "nginx rejected $ngx_prefix/nginx.conf"
"$NGINX" -p "$ngx_prefix/" -c "$ngx_prefix/nginx.conf" -g 'daemon off;' \
    >>"$ngx_prefix/logs/stderr.log" 2>&1 &
nginx_pid=$!
ready=0
for ((i = 0; i < 200; i++)); do
    kill -0 "$nginx_pid" 2>/dev/null || break
    if [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$BASE/readyz" 2>/dev/null)" = 200 ]; then
        ready=1
        break
    fi
    sleep 0.1
done
if ((ready == 0)); then
    tail -n 20 "$ngx_prefix/logs/error.log" "$ngx_prefix/logs/stderr.log" >&2 2>/dev/null || true
    die "nginx did not become ready on $BASE (logs: $ngx_prefix/logs/)"
fi
nworkers=$(ps -o pid= --ppid "$nginx_pid" | wc -l)
say "nginx up on $BASE (master $nginx_pid, $nworkers workers, access_log $( ((access_log)) && echo on || echo off))"

# -------------------------------------------------------------------- seed ----
say "registering the template user through POST /v1/auth/register"
body=$(jq -cn --arg e "$TEMPLATE_EMAIL" --arg p "$BENCH_PASSWORD" '{email: $e, password: $p, name: "Bench template"}')
resp=$(curl -sS -m 30 -H 'Content-Type: application/json' -d "$body" -w '\n%{http_code}' "$BASE/v1/auth/register") \
    || die "register request failed"
code=${resp##*$'\n'}
[ "$code" = 201 ] || die "register answered $code: ${resp%$'\n'*}"

say "seeding (bench/seed.sql)"
t0=$SECONDS
psql_super taskmgr -v template_email="$TEMPLATE_EMAIL" -f "$bench/seed.sql" >"$results/seed.txt"
sed 's/^/    /' "$results/seed.txt" >&2
psql_super taskmgr -c CHECKPOINT
say "seeded in $((SECONDS - t0)) s"

# Credentials "email password workspace_id task_id|-" for login-tokens.sh: 16 workspaces spread
# over the 200 and a writer (owner/admin/member) of each, the same (user, workspace) pairs as the
# peer harness's tokens. make_creds - : task "-" (login-tokens.sh takes the newest task);
# make_creds newest: the newest seeded task, whatever create runs added since.
make_creds() {
    local task="'-'" out=$2
    [ "$1" = newest ] && task="(SELECT t.id::text FROM tm.tasks t
        WHERE t.workspace_id = m.workspace_id AND t.deleted_at IS NULL
          AND t.title NOT LIKE 'wrk-bench:%' ORDER BY t.created_at DESC, t.id DESC LIMIT 1)"
    psql_super taskmgr -tA -F ' ' -v pw="$BENCH_PASSWORD" >"$out" <<EOF
SELECT u.email, :'pw', m.workspace_id, $task
  FROM generate_series(1, 16) AS g
  JOIN tm.workspace_members m
    ON m.workspace_id = md5('ws:' || (g * 12 - 5))::uuid
   AND m.user_id = md5('user:' || ((g * 12 - 6) * 5 + 1 + g % 4))::uuid
  JOIN tm.users u ON u.id = m.user_id
 WHERE m.role <> 'viewer'
 ORDER BY g;
EOF
    [ "$(grep -c . "$out")" = 16 ] || die "expected 16 lines in $out"
}
make_creds - "$run/creds.txt"

# run-target.sh and login-tokens.sh keep their state in <their dir>/.run/. Run them through
# symlinks in bench/.run/harness/ whose .run/ is bench/.run/: the peer harness stays untouched
# (it may be read-only, or in use by a peer run), tokens and raw wrk output stay here.
h=$run/harness
mkdir -p "$h"
ln -sfn "$PEER_BENCH/run-target.sh" "$h/run-target.sh"
ln -sfn "$PEER_BENCH/login-tokens.sh" "$h/login-tokens.sh"
ln -sfn "$PEER_BENCH/lib" "$h/lib"
ln -sfn .. "$h/.run"

# ------------------------------------------------------------------- peers ----
peer_rows=""
if ((with_peers)); then
    say "running the peer harness first: $PEER_BENCH/run-peers.sh (~15 min; ~2 min with --quick)"
    popts=(--results "$run/peers-results.md")
    ((quick)) && popts+=(--quick)
    [ -n "$repeat_opt" ] && popts+=(--repeat "$repeat_opt")
    "$PEER_BENCH/run-peers.sh" "${popts[@]}" >"$results/peers.out" || die "run-peers.sh failed (see $results/peers.out)"
    cp "$PEER_BENCH/.run/results/rows.md" "$run/peers-rows.md"
    peer_rows=$run/peers-rows.md
    # its idle minutes left our cluster cold: checkpoint again before measuring ours
    psql_super taskmgr -c CHECKPOINT
fi

# ---------------------------------------------------------------- scenarios ----
rows=$run/rows.md
: >"$rows"
smoke_line="not run"
if ((scenarios_on)); then
    topts=(-n taskmgr -o "$rows")
    ((quick)) && topts+=(-w 1 -d 2 -r 1)
    topts+=("${target_opts[@]}")
    [ -n "$redis_stats_port" ] && topts+=(--redis-port "$redis_stats_port")
    say "run-target.sh ${topts[*]} $BASE -- login-tokens.sh $BASE creds.txt"
    "$h/run-target.sh" "${topts[@]}" "$BASE" -- "$h/login-tokens.sh" "$BASE" "$run/creds.txt" \
        >"$results/target.out" || die "run-target.sh failed (see above)"
    smoke_line=$(sed -n 's/^taskmgr|//p' "$results/smoke.txt" 2>/dev/null | tail -n 1)
fi

# ------------------------------------------------------------- memory check ----
worker_rss() {   # "pid rss_kB" per nginx worker (children of our master)
    local p
    for p in $(ps -o pid= --ppid "$nginx_pid"); do
        grep -q '^nginx' "/proc/$p/comm" 2>/dev/null || continue
        echo "$p $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo '?')"
    done
}

# count_run <requests> <label>: GET one task <requests> times with count.lua; prints WRKJSON
count_run() {
    local n=$1 label=$2 threads=2 conns=64 cap donef pid i json
    donef=$results/rss-$label.done
    : >"$donef"
    cap=$((n / 500 + 60))   # seconds; only a safety net, the script stops itself
    ((conns > n)) && conns=$n
    ((threads > conns)) && threads=$conns
    say "memory check: $label, $n requests (wrk -t$threads -c$conns, GET one task)"
    wrk -t"$threads" -c"$conns" -d"${cap}s" --timeout 5s -s "$bench/lib/count.lua" "$BASE" \
        -- "$run/tokens-rss.txt" "$n" "$threads" "$donef" >"$results/rss-$label.txt" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$(grep -c '^done' "$donef")" -ge "$threads" ]; then
            kill -INT "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$pid" || true
    json=$(sed -n 's/^WRKJSON //p' "$results/rss-$label.txt" | tail -n 1)
    [ -n "$json" ] || die "wrk gave no result (see $results/rss-$label.txt)"
    sent=$(awk '/^done/ {s += $2} END {print s + 0}' "$donef")
    ((sent >= n)) || say "WARNING: only $sent of $n requests were sent before the ${cap}s cap"
    echo "$json"
}

rss_report=""
if ((rss)); then
    # Fresh tokens (access tokens live 15 minutes), the same users, and the task the scenarios
    # used: the newest seeded one (the create scenario has added newer, shorter tasks since).
    make_creds newest "$run/creds-rss.txt"
    "$h/login-tokens.sh" "$BASE" "$run/creds-rss.txt" >"$run/tokens-rss.txt"
    mapfile -t r0 < <(worker_rss)
    ((${#r0[@]} > 0)) || die "no nginx workers found under master $nginx_pid"
    if ((rss_warmup > 0)); then
        count_run "$rss_warmup" warmup >/dev/null
    fi
    mapfile -t r1 < <(worker_rss)
    t_rss=$SECONDS
    json=$(count_run "$rss_requests" measure)
    mapfile -t r2 < <(worker_rss)
    secs=$((SECONDS - t_rss))
    rss_report=$(
        echo "Memory check: $rss_requests requests of GET one task (wrk, 64 connections) after a warm-up of $rss_warmup, ${secs} s; wrk: $(jq -r '"\(.requests) completed, \(.rps | floor) req/s, p99 \(.p99_ms) ms, non-2xx \(.err_status), socket errors \(.err_connect + .err_read + .err_write + .err_timeout)"' <<<"$json")"
        echo
        echo "| worker pid | VmRSS before warm-up | after warm-up | after $rss_requests requests | difference | within ±2 MB |"
        echo "| ---: | ---: | ---: | ---: | ---: | --- |"
        for line in "${r1[@]}"; do
            read -r p a <<<"$line"
            s=$(printf '%s\n' "${r0[@]}" | awk -v p="$p" '$1 == p {print $2}')
            b=$(printf '%s\n' "${r2[@]}" | awk -v p="$p" '$1 == p {print $2}')
            if [ -z "$b" ]; then
                echo "| $p | ${s:-?} kB | $a kB | GONE (worker exited) | – | no |"
                continue
            fi
            d=$((b - a))
            ok=yes; ((d > 2048 || d < -2048)) && ok=no
            echo "| $p | ${s:-?} kB | $a kB | $b kB | $(awk -v d="$d" 'BEGIN {printf "%+d kB (%+.2f MB)", d, d / 1024}') | $ok |"
        done
        for line in "${r2[@]}"; do
            read -r p b <<<"$line"
            printf '%s\n' "${r1[@]}" | awk -v p="$p" '$1 == p {f = 1} END {exit !f}' \
                || echo "| $p | – | – | $b kB | NEW worker (one was respawned) | no |"
        done
    )
fi

# ----------------------------------------------------------------- report ----
header='| target | scenario | req/s (median) | req/s min–max | p50 ms | p99 ms | non-2xx | socket errors | avg bytes/resp | redis cmds/req |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'

# Targets of the issue, against the peer rows of this session (--with-peers) or, failing that,
# the peer harness's RESULTS.md (an earlier session: indicative only).
targets() {
    local ref=$1 refnote=$2
    awk -F'|' -v refnote="$refnote" '
        function t(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
        FNR == NR { if (t($2) == "raw SQL of list (prepared)") ceil = t($4) + 0
                    if (t($2) == "fastify") fast[t($3)] = t($4) + 0
                    next }
        t($2) == "taskmgr" { sc = t($3); rps[sc] = t($4) + 0; p99[sc] = t($7); bad[sc] = t($8) + t($9) }
        END {
            if (!length(rps)) exit
            print "Targets (64 connections, durability defaults; peers/ceiling: " refnote "):"
            print ""
            if ("list" in rps) {
                if (ceil > 0) printf "- list >= 60%% of the raw prepared-SQL list ceiling (%d req/s): %d req/s = %.0f%% -> %s\n", ceil, rps["list"], 100 * rps["list"] / ceil, (rps["list"] >= 0.6 * ceil ? "MET" : "MISSED")
                else print "- list >= 60% of the prepared-SQL ceiling: no ceiling row to compare with"
            }
            split("get create", s, " ")
            for (i = 1; i <= 2; i++) if (s[i] in rps) {
                if (fast[s[i]] > 0) printf "- %s >= 2x Fastify (%d req/s): %d req/s = %.2fx -> %s\n", s[i], fast[s[i]], rps[s[i]], rps[s[i]] / fast[s[i]], (rps[s[i]] >= 2 * fast[s[i]] ? "MET" : "MISSED")
                else printf "- %s >= 2x Fastify: no Fastify row to compare with\n", s[i]
            }
            split("list get create", s, " ")
            for (i = 1; i <= 3; i++) if (s[i] in rps) { sc = s[i]
                printf "- p99 < 20 ms, %s: %s ms -> %s%s\n", sc, p99[sc], (p99[sc] + 0 < 20 ? "MET" : "MISSED"), (bad[sc] > 0 ? " (INVALID run: non-2xx or socket errors)" : "") }
        }' "$ref" "$rows"
}

report=$run/results.md
{
    echo "# taskmgr benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo
    ((quick)) && { echo "**--quick: 2 s runs, a harness check, not a measurement.**"; echo; }
    echo "- nproc $(nproc); $(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1); $("$NGINX" -v 2>&1 | sed 's/nginx version: //'), $nworkers workers; PostgreSQL: $durability"
    echo "- data: 1,000 users, 200 workspaces x 5 members, 100,000 tasks (bench/seed.sql); 16 users logged in through POST /v1/auth/login"
    echo "- smoke checks: $smoke_line"
    echo
    if ((scenarios_on)); then
        echo "$header"
        [ -n "$peer_rows" ] && cat "$peer_rows"
        cat "$rows"
        echo
        if [ -n "$peer_rows" ]; then
            targets "$peer_rows" "measured in this session"
        elif [ -r "$PEER_BENCH/RESULTS.md" ]; then
            targets "$PEER_BENCH/RESULTS.md" "from $PEER_BENCH/RESULTS.md, an EARLIER session; use --with-peers for a real comparison"
        fi
        echo
    fi
    [ -n "$rss_report" ] && { echo "$rss_report"; echo; }
    echo "Raw output: $results/ (wrk runs, tokens, smoke, seed); nginx logs: $ngx_prefix/logs/"
} >"$report"
echo
cat "$report"
say "done in $((SECONDS - t_start)) s; report in $report"
