#!/usr/bin/env bash
# overhead.sh: what the rate limiter and the revocation check add to a real API request.
#
# Sets up the bench stack once (bench/run.sh --keep: PostgreSQL, Redis, data, nginx), then for
# each variant of lua-free-conf/taskmgr.conf (as shipped; without the limits; without the
# revocation check; without both) restarts nginx with that configuration and loads the cached
# list and get scenarios (wrk -t2 -c64, the peer harness's scenario.lua and tokens), several
# alternating rounds. Besides requests/s it reads the CPU time (user + system, /proc) that the
# nginx workers, Redis and PostgreSQL spent per request: on a machine whose two CPUs wrk, nginx,
# Redis and other work share, that is steadier than throughput. Prints a Markdown table of the
# medians over the rounds, and the added cost of each feature relative to the variant without it.
#
#   bash bench/overhead.sh [-d seconds] [-r rounds] [-s list,get]
#
# Needs make build, wrk, jq. Stops what it started.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
bench=$repo/bench
duration=8 rounds=3 scenarios=list,get
while [ $# -gt 0 ]; do
    case $1 in
    -d) duration=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    -s) scenarios=$2; shift 2 ;;
    *) echo "usage: $0 [-d seconds] [-r rounds] [-s list,get]" >&2; exit 2 ;;
    esac
done
((duration <= 10)) || duration=10

say() { printf '[bench/overhead.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

run=$bench/.run
mkdir -p "$run"
say "setting up the stack (bench/run.sh --keep, a 1 s list run)"
bash "$bench/run.sh" --keep --no-smoke -s list -d 1 -w 0 -r 1 >"$run/overhead-setup.log" 2>&1 \
    || { tail -20 "$run/overhead-setup.log" >&2; exit 1; }
trap 'bash "$bench/run.sh" --stop >/dev/null 2>&1 || true' EXIT

prefix=$run/nginx
conf=$prefix/nginx.conf
base_conf=$run/overhead-base.conf
cp "$conf" "$base_conf"
port=$(sed -n 's/^ *listen 127\.0\.0\.1:\([0-9]*\);.*/\1/p' "$conf" | head -1)
url=http://127.0.0.1:$port
lua=$(cd "$repo/../shared/bench/lib" && pwd -P)/scenario.lua
tokens=$run/overhead-tokens.txt
"$run/harness/login-tokens.sh" "$url" "$run/creds.txt" >"$tokens" 2>/dev/null \
    || { echo "login-tokens.sh failed" >&2; exit 1; }
redis_pid=$(pgrep -f "redis-server .*:${BENCH_REDIS_PORT:-27379}" | head -1)

variant_conf() {   # variant_conf NAME: writes the variant's nginx.conf
    cp "$base_conf" "$conf"
    case $1 in
    shipped) ;;
    no-limit) sed -i -E 's/^( *)taskmgr_limit zone=[a-z]+;/\1# overhead.sh: no limit/' "$conf" ;;
    no-revocation) sed -i -E 's/^( *)taskmgr_auth_revocation +on;/\1taskmgr_auth_revocation off;/' "$conf" ;;
    neither) sed -i -E -e 's/^( *)taskmgr_limit zone=[a-z]+;/\1# overhead.sh: no limit/' \
                       -e 's/^( *)taskmgr_auth_revocation +on;/\1taskmgr_auth_revocation off;/' "$conf" ;;
    esac
}

nginx_pid=""
start_nginx() {
    if [ -n "$nginx_pid" ]; then
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    pkill -f "nginx: master process .*$prefix" 2>/dev/null || true
    sleep 0.3
    /usr/sbin/nginx -p "$prefix/" -c "$conf" -g 'daemon off;' >>"$prefix/logs/stderr.log" 2>&1 &
    nginx_pid=$!
    for _ in $(seq 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ] && return 0
        sleep 0.1
    done
    echo "nginx did not become ready" >&2
    exit 1
}

cpu_ticks() {   # user + system clock ticks of the processes given
    local t=0 p v
    for p in "$@"; do
        # a PostgreSQL backend may end between the listing and the read
        v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

workers() { pgrep -P "$nginx_pid" -f 'nginx: worker' | tr '\n' ' '; }
pg_pids() { pgrep -u "$(stat -c %U "$run/stack/pg")" -x postgres | tr '\n' ' '; }

hz=$(getconf CLK_TCK)
results=$run/overhead-results.txt
: >"$results"
variants="shipped no-limit no-revocation neither"

for ((round = 1; round <= rounds; round++)); do
    for v in $variants; do
        variant_conf "$v"
        start_nginx
        for s in ${scenarios//,/ }; do
            # warm the cache and the connections
            wrk -t2 -c64 -d2s -s "$lua" "$url" -- "$s" "$tokens" >/dev/null 2>&1 || true
            w=$(workers) pg=$(pg_pids)
            w0=$(cpu_ticks $w) r0=$(cpu_ticks "$redis_pid") p0=$(cpu_ticks $pg)
            out=$(wrk -t2 -c64 -d"${duration}s" --timeout 5s -s "$lua" "$url" -- "$s" "$tokens" 2>&1)
            w1=$(cpu_ticks $w) r1=$(cpu_ticks "$redis_pid") p1=$(cpu_ticks $pg)
            c0=0 c1=$(((w1 - w0) + (r1 - r0) + (p1 - p0)))
            json=$(sed -n 's/^WRKJSON //p' <<<"$out" | tail -1)
            reqs=$(jq -r '.requests' <<<"$json")
            rps=$(jq -r '.rps | floor' <<<"$json")
            errs=$(jq -r '.err_status + .err_connect + .err_read + .err_write + .err_timeout' <<<"$json")
            per() { awk -v t="$1" -v hz="$hz" -v n="$reqs" 'BEGIN { printf "%.1f", n ? t * 1e6 / hz / n : 0 }'; }
            us=$(per $((c1 - c0)))
            usn=$(per $((w1 - w0)))
            usr=$(per $((r1 - r0)))
            echo "$v $s $rps $us $errs $usn $usr" >>"$results"
            say "round $round: $v $s: $rps req/s, $us µs CPU/req (nginx $usn, Redis $usr), $errs errors"
        done
    done
done

echo
echo "wrk -t2 -c64, $rounds rounds of ${duration}s per variant and scenario, alternating; medians."
echo "CPU: user + system time of the nginx workers, Redis and PostgreSQL per request."
echo
echo "| scenario | variant | req/s | CPU µs/req | nginx | Redis | errors |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
declare -A cpu
for s in ${scenarios//,/ }; do
    for v in $variants; do
        r=$(awk -v v="$v" -v s="$s" '$1 == v && $2 == s { print $3 }' "$results" | median)
        u=$(awk -v v="$v" -v s="$s" '$1 == v && $2 == s { print $4 }' "$results" | median)
        e=$(awk -v v="$v" -v s="$s" '$1 == v && $2 == s { e += $5 } END { print e + 0 }' "$results")
        un=$(awk -v v="$v" -v s="$s" '$1 == v && $2 == s { print $6 }' "$results" | median)
        ur=$(awk -v v="$v" -v s="$s" '$1 == v && $2 == s { print $7 }' "$results" | median)
        cpu[$s.$v]=$u
        echo "| $s | $v | $r | $u | $un | $ur | $e |"
    done
done
echo
for s in ${scenarios//,/ }; do
    awk -v s="$s" -v a="${cpu[$s.shipped]}" -v nl="${cpu[$s.no-limit]}" -v nr="${cpu[$s.no-revocation]}" \
        -v n="${cpu[$s.neither]}" 'BEGIN {
        printf "- %s: the limiter adds %.1f µs (%+.0f%%) to a request with the revocation check, %.1f µs (%+.0f%%) without it; ", s, a - nl, (a - nl) * 100 / nl, nr - n, (nr - n) * 100 / n
        printf "the revocation check adds %.1f µs (%+.0f%%) with the limiter, %.1f µs (%+.0f%%) without it\n", a - nr, (a - nr) * 100 / nr, nl - n, (nl - n) * 100 / n
    }'
done
