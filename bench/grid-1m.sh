#!/usr/bin/env bash
# bench/grid-1m.sh: a sweep for slow combinations on the 1,000,000-task tenant of bench/seed-1m.sh.
# Every combination of a search (none, common and rare words, six words, a phrase), filters
# (statuses, priorities, labels, assignee, project, dates, pairs of them, deleted tasks), a sort
# (ranked or default, and seven sorts) and a page (the first 50, or offset page 3 with
# X-Total-Count): one unmeasured request, then -n requests on one kept-alive connection (curl's
# time_total, one client, one nginx worker).  Prints the combinations whose slowest request took at
# least -t ms, slowest first, and a count of them all; a combination that is not 200 stops it.
# list-1m.sh times chosen rows more exactly (wrk, p50/p99); this finds the rows worth choosing.
#
# usage: bash bench/grid-1m.sh [-n requests (default 5)] [-t ms (default 30)] [-o regex]
#   -o regex: only the combinations whose query string matches (grep -E)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/1m.sh"

n=5 threshold=30 only=
while (($#)); do
    case "$1" in
        -n) n=${2:?}; shift 2 ;;
        -t) threshold=${2:?}; shift 2 ;;
        -o) only=${2:?}; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
((n >= 1 && n <= 100)) || die "-n takes 1..100"

tenant_up
today=$(date -u +%Y-%m-%dT00:00:00Z)
week=$(date -u -d '+7 days' +%Y-%m-%dT00:00:00Z)

searches=(
    ""
    "q=invoice"
    "q=invoice+payment"
    "q=invoice+payment+login+report"
    "q=invoice+payment+login+report+bill+team"
    "q=zeppelin"
    "q=%22invoice+payment%22"
)
filters=(
    ""
    "filter[status]=todo"
    "filter[status]=in_progress"
    "filter[status]=archived"
    "filter[priority]=4"
    "filter[priority][in]=0,4"
    "filter[label]=security"
    "filter[label][in]=perf,infra"
    "filter[label][ne]=security"
    "filter[assignee_id]=$member"
    "filter[project_id]=$project"
    "filter[due_at][gte]=$today&filter[due_at][lt]=$week"
    "filter[status]=todo&filter[label]=security"
    "filter[assignee_id]=$member&filter[priority]=4"
    "filter[project_id]=$project&filter[status]=archived"
    "filter[label]=security&filter[priority]=4"
    "deleted=include"
    "deleted=only"
)
sorts=("" "sort=-updated_at" "sort=due_at" "sort=title" "sort=-priority" "sort=status" "sort=-created_at"
       "sort=-priority,due_at")
pages=("limit=50" "page=3&per_page=50")

set -f   # the filters' brackets are no globs
out=$(mktemp)
trap 'rm -f "$out"; cleanup' EXIT
total=0
for s in "${searches[@]}"; do
    for f in "${filters[@]}"; do
        for o in "${sorts[@]}"; do
            for p in "${pages[@]}"; do
                q=$(printf '%s&' $s $f $o $p)
                q=${q%&}
                [ -z "$only" ] || grep -Eq -- "$only" <<<"$q" || continue
                code=$(curl -gs -o "$run/last.json" -w '%{http_code}' "$BASE$list?$q" \
                       -H "Authorization: Bearer $token")
                [ "$code" = 200 ] || die "?$q: HTTP $code $(head -c 300 "$run/last.json")"
                urls=()
                for ((i = 0; i < n; i++)); do urls+=(-o /dev/null "$BASE$list?$q"); done
                # one connection, n transfers: the slowest and the median, in ms
                curl -gs -w '%{time_total}\n' -H "Authorization: Bearer $token" "${urls[@]}" \
                    | sort -g | awk -v q="$q" -v t="$threshold" '
                        { v[NR] = $1 * 1000 }
                        END { med = v[int((NR + 1) / 2)]; if (v[NR] >= t) printf "%.1f\t%.1f\t%s\n", v[NR], med, q }
                      ' >>"$out"
                total=$((total + 1))
            done
        done
    done
done

printf '| slowest ms | median ms | query |\n| ---: | ---: | --- |\n'
sort -rg "$out" | awk -F'\t' '{ gsub(/\|/, "\\|", $3); printf "| %s | %s | `%s` |\n", $1, $2, $3 }'
say "$total combinations, $(wc -l <"$out") with a request of $threshold ms or more" \
    "($(awk -F'\t' '$1 >= 50' "$out" | wc -l) of 50 ms or more)"
