#!/usr/bin/env bash
# ceiling.sh: nginx answering "return 200" with a fixed body of a given file, built in memory on
# every request (as ../shared/bench/run-baselines.sh does for its 12 KB body), measured with the
# same load shape as bench/run.sh: a warm-up, then wrk -t2 -c64, 3 runs of 10 s, median.  This is
# the ceiling the cached list is compared with: the same bytes, no module, no Redis.
#
#   bash bench/ceiling.sh BODY_FILE [-c connections] [-d seconds] [-r runs] [-w warmup]
#
# BODY_FILE must not contain ' $ or \ (it is inlined in nginx.conf).  Port: BENCH_CEILING_PORT
# (default 28095).  Prints one Markdown table row.  Leaves nothing behind.
set -euo pipefail

die() { echo "ceiling.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 BODY_FILE [-c connections] [-d seconds] [-r runs] [-w warmup]"
body_file=$1
shift
conns=64 duration=10 runs=3 warmup=3
while [ $# -gt 0 ]; do
    case $1 in
    -c) conns=$2; shift 2 ;;
    -d) duration=$2; shift 2 ;;
    -r) runs=$2; shift 2 ;;
    -w) warmup=$2; shift 2 ;;
    *) die "unknown argument $1" ;;
    esac
done

nginx=${TASKMGR_NGINX:-/usr/sbin/nginx}
port=${BENCH_CEILING_PORT:-28095}
command -v wrk >/dev/null || die "wrk is missing"
[ -s "$body_file" ] || die "no body in $body_file"
body=$(cat "$body_file")
[[ "$body" != *[\'\$\\]* ]] || die "$body_file contains ' \$ or \\"
(( ${#body} <= 1048576 )) || die "$body_file is larger than 1 MB"

tmp=$(mktemp -d /tmp/taskmgr-ceiling.XXXXXX)
chmod 0755 "$tmp"
mkdir -p "$tmp/tmp"
pidfile=$tmp/nginx.pid
cleanup() {
    if [ -s "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        for _ in $(seq 50); do [ -s "$pidfile" ] || break; sleep 0.1; done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# nginx caps one configuration token at about 4 KB: the body is split into map constants of
# 3 KB that "return" concatenates
part=3072
n=$(( (${#body} + part - 1) / part ))
maps="" vars=""
for ((i = 0; i < n; i++)); do
    maps+="    map \$server_port \$ceiling_$i { default '${body:$((i * part)):$part}'; }"$'\n'
    vars+="\$ceiling_$i"
done
user=""
[ "$(id -u)" -ne 0 ] || user="user nobody nogroup;"
cat >"$tmp/nginx.conf" <<EOF
$user
worker_processes 2;
pid $pidfile;
error_log $tmp/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server_tokens off;
    keepalive_requests 100000;
    client_body_temp_path $tmp/tmp;
$maps
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type application/json;
            return 200 "$vars";
        }
    }
}
EOF
"$nginx" -t -q -p "$tmp/" -c "$tmp/nginx.conf" || die "nginx rejected the configuration"
"$nginx" -p "$tmp/" -c "$tmp/nginx.conf"
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done
got=$(curl -s "http://127.0.0.1:$port/" | wc -c)
[ "$got" -eq "${#body}" ] || die "nginx answered $got bytes, not ${#body}"

wrk -t2 -c"$conns" -d"${warmup}s" "http://127.0.0.1:$port/" >/dev/null
results=()
for ((r = 1; r <= runs; r++)); do
    out=$(wrk -t2 -c"$conns" -d"${duration}s" --latency "http://127.0.0.1:$port/")
    rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    results+=("$rps $p99")
done
median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
all=$(printf '%s\n' "${results[@]}" | awk '{ print $1 }' | sort -n | paste -sd' ')
echo "| nginx return 200 ($(( ${#body} / 1024 )) KB body) | static | ${median% *} | $all | | ${median#* } |"
