#!/usr/bin/env bash
# limit-overhead.sh: what the rate limiter adds to a request.
#
# Starts a throw-away Redis and nginx (the release module, worker_processes
# 2, no access log) and runs wrk against the same locations with and without
# "taskmgr_limit": a static file, a proxy_pass to a "return 200" location on
# the same nginx, and the API module's /healthz.  The limit never refuses
# (rate=1000000r/s burst=1000000, one key: every request hits one bucket).
# Then again with Redis stopped (the shared-memory fallback).  Prints a
# Markdown table: requests/s, and the CPU time (user + system, from /proc)
# the nginx workers and Redis spent per request, which is steadier than
# throughput on a machine whose CPUs wrk, nginx and Redis share.  Short
# runs: numbers are indicative.
#
#   bash bench/limit-overhead.sh [-d seconds] [-c connections] [-r runs]
#
# Needs: make build, wrk, redis-server.  Leaves nothing behind.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd -P)
so=$repo/build/modules/ngx_http_taskmgr_module.so
nginx=${TASKMGR_NGINX:-/usr/sbin/nginx}
duration=4
conns=32
runs=2

while [ $# -gt 0 ]; do
    case $1 in
    -d) duration=$2; shift 2 ;;
    -c) conns=$2; shift 2 ;;
    -r) runs=$2; shift 2 ;;
    *) echo "usage: $0 [-d seconds] [-c connections] [-r runs]" >&2; exit 2 ;;
    esac
done

[ -f "$so" ] || { echo "no $so: run make build" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing" >&2; exit 1; }

tmp=$(mktemp -d /tmp/taskmgr-limit-bench.XXXXXX)
chmod 0755 "$tmp"
read -r port redis_port < <(perl -MIO::Socket::INET -e '
    my @s = map { IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
                                        LocalPort => 0, Proto => "tcp")
                  or die "bind: $!\n" } 1 .. 2;
    print join(" ", map { $_->sockport } @s), "\n";')

cleanup() {
    [ -f "$tmp/nginx.pid" ] && kill -QUIT "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
    sleep 0.5
    rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/html" "$tmp/redis"
echo ok > "$tmp/html/file"
echo ok > "$tmp/html/file-limited"

# nginx runs as nobody when started as root: let it read the files
chmod -R a+rX "$tmp"

redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
    --daemonize yes --dir "$tmp/redis" --logfile "$tmp/redis.log" \
    --pidfile "$tmp/redis.pid" >/dev/null

cat > "$tmp/nginx.conf" <<EOF
load_module $so;
worker_processes 2;
error_log $tmp/error.log notice;
pid $tmp/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $tmp/tmp;
    proxy_temp_path $tmp/tmp;
    fastcgi_temp_path $tmp/tmp;
    uwsgi_temp_path $tmp/tmp;
    scgi_temp_path $tmp/tmp;
    taskmgr_redis 127.0.0.1:$redis_port;
    taskmgr_limit_zone bench key=\$binary_remote_addr rate=1000000r/s burst=1000000;
    upstream self { server 127.0.0.1:$port; keepalive 32; }
    server {
        listen 127.0.0.1:$port;
        root $tmp/html;
        location = /file { }
        location = /file-limited { taskmgr_limit zone=bench; }
        location = /proxy {
            proxy_pass http://self/backend; proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /proxy-limited {
            taskmgr_limit zone=bench;
            proxy_pass http://self/backend; proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location = /backend { return 200 "ok\n"; }
        location = /healthz { taskmgr_healthz; }
        location = /healthz-limited { taskmgr_limit zone=bench; taskmgr_healthz; }
    }
}
EOF

"$nginx" -p "$tmp/" -c "$tmp/nginx.conf"
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/file" >/dev/null 2>&1 && break
    sleep 0.1
done

# CPU ticks (user + system) of the nginx workers and of redis-server
ticks() {
    local master p ng=0 rd=0
    master=$(cat "$tmp/nginx.pid")
    for p in $(ps -o pid= --ppid "$master"); do
        ng=$((ng + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    if [ -f "$tmp/redis.pid" ] && kill -0 "$(cat "$tmp/redis.pid")" 2>/dev/null; then
        rd=$(awk '{print $14 + $15}' "/proc/$(cat "$tmp/redis.pid")/stat")
    fi
    echo "$ng $rd"
}

# the best run of $runs: requests/s, nginx CPU us per request, Redis CPU us
# per request
bench() {
    local path=$1 best=0 out rps n ng0 rd0 ng1 rd1 ngus rdus bng=0 brd=0
    local hz
    hz=$(getconf CLK_TCK)
    wrk -t2 -c"$conns" -d1s "http://127.0.0.1:$port$path" >/dev/null
    for _ in $(seq "$runs"); do
        read -r ng0 rd0 < <(ticks)
        out=$(wrk -t2 -c"$conns" -d"${duration}s" "http://127.0.0.1:$port$path")
        read -r ng1 rd1 < <(ticks)
        rps=$(awk '/^Requests\/sec/ {printf "%d", $2}' <<<"$out")
        n=$(awk '/requests in/ {print $1}' <<<"$out")
        ngus=$(awk -v a="$ng0" -v b="$ng1" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", (b - a) * 1e6 / hz / n}')
        rdus=$(awk -v a="$rd0" -v b="$rd1" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", (b - a) * 1e6 / hz / n}')
        if [ "$rps" -gt "$best" ]; then
            best=$rps bng=$ngus brd=$rdus
        fi
    done
    echo "$best $bng $brd"
}

check() {
    curl -fsi "http://127.0.0.1:$port$1" | grep -qi '^RateLimit:' \
        || { echo "no RateLimit header on $1" >&2; exit 1; }
}

row() {
    local what=$1 plain=$2 limited=$3 mode=$4 a ang ard b bng brd
    read -r a ang ard < <(bench "$plain")
    read -r b bng brd < <(bench "$limited")
    awk -v w="$what" -v m="$mode" -v a="$a" -v b="$b" -v ang="$ang" -v bng="$bng" -v brd="$brd" 'BEGIN {
        printf "| %s | %s | %d | %d | %+.0f%% | %.1f | %.1f | %+.1f | %.1f |\n",
               w, m, a, b, (b - a) * 100 / a, ang, bng, bng - ang, brd
    }'
}

echo "wrk -t2 -c$conns, best of $runs runs of ${duration}s; nginx: 2 workers; $(nproc) CPUs shared by wrk, nginx and Redis"
echo
echo "| location | limiter | req/s without | req/s with | throughput | nginx CPU µs/req without | with | added | Redis CPU µs/req |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"

check /file-limited
row 'static file' /file /file-limited redis
row 'proxy_pass' /proxy /proxy-limited redis
row 'API /healthz' /healthz /healthz-limited redis

redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
sleep 0.5
check /file-limited
row 'static file' /file /file-limited 'local (Redis down)'
row 'proxy_pass' /proxy /proxy-limited 'local (Redis down)'

if grep -q '\[alert\]\|\[crit\]\|\[emerg\]' "$tmp/error.log"; then
    echo >&2; grep '\[alert\]\|\[crit\]\|\[emerg\]' "$tmp/error.log" >&2
    exit 1
fi
