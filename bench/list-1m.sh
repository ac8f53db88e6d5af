#!/usr/bin/env bash
# bench/list-1m.sh: latency of the task list on the 1,000,000-task tenant of bench/seed-1m.sh,
# with ONE client (wrk -t1 -c1 --latency) per query, no response cache (every request runs its
# query), one nginx worker.  Prints p50/p99 per query as a Markdown table.  Then, with
# --explain, the plans PostgreSQL chose (auto_explain of the nested EXECUTE) into
# bench/.run-1m/explain.log.  Run bench/seed-1m.sh first; the stack is left up (seed-1m.sh
# --stop stops it).
#
# usage: bash bench/list-1m.sh [-d seconds per query (default 5)] [-w warm-up seconds (default 1)]
#                              [-o regex] [--explain]
#   -w: each query first runs this long unmeasured (0: none).  A PostgreSQL backend's first touch
#       of a shared-buffer page faults it into the process (on this VM ~90 µs a fault of 64 KB:
#       the first run of the 0.9% ranked search on a new connection takes 300 ms for the same
#       24,000 buffer hits a later run reads in 30 ms); nginx keeps its connections for the
#       worker's life, so the measured runs show the steady state, the warm-up the cold one.
#   -o regex: only the rows whose name matches (grep -E)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/1m.sh"

duration=5 warm=1 explain=0 only=
while (($#)); do
    case "$1" in
        -d) duration=${2:?}; shift 2 ;;
        -w) warm=${2:?}; shift 2 ;;
        -o) only=${2:?}; shift 2 ;;
        --explain) explain=1; shift ;;
        *) die "unknown argument $1" ;;
    esac
done

command -v wrk >/dev/null || die "wrk is missing"
tenant_up
due=$(date -u -d '+7 days' +%Y-%m-%dT00:00:00Z)
month=$(date -u -d '-30 days' +%Y-%m-%dT00:00:00Z)
day=$(date -u -d '-1 day' +%Y-%m-%dT00:00:00Z)
overdue=$(date -u -d '-25 days' +%Y-%m-%dT00:00:00Z)
week_ago=$(date -u -d '-7 days' +%Y-%m-%dT00:00:00Z)
year_ago=$(date -u -d '-365 days' +%Y-%m-%dT00:00:00Z)
year_ago_1=$(date -u -d '-364 days' +%Y-%m-%dT00:00:00Z)

# a cursor for the "page 2" rows
page2() {
    curl -gs "$BASE$list?$1" -H "Authorization: Bearer $token" | jq -r .next_cursor
}

queries=(
    "default: newest first|limit=50"
    "default, page 2 (cursor)|limit=50&cursor=$(page2 'limit=50')"
    "status=todo|filter[status]=todo&limit=50"
    "assignee|filter[assignee_id]=$member&limit=50"
    "assignee + status in (todo,in_progress)|filter[assignee_id]=$member&filter[status][in]=todo,in_progress&limit=50"
    "due in the next 7 days, by due date|filter[due_at][gte]=$(date -u +%Y-%m-%dT00:00:00Z)&filter[due_at][lt]=$due&sort=due_at&limit=50"
    "sort=due_at (NULLs last)|sort=due_at&limit=50"
    "sort=-priority,due_at|sort=-priority,due_at&limit=50"
    "sort=-priority,due_at, page 2 (cursor)|sort=-priority,due_at&limit=50&cursor=$(page2 'sort=-priority,due_at&limit=50')"
    "priority=4 by due date|filter[priority]=4&sort=due_at&limit=50"
    "sort=-updated_at|sort=-updated_at&limit=50"
    "sort=title|sort=title&limit=50"
    "sort=status,-priority|sort=status,-priority&limit=50"
    "sort=status,-priority, page 2 (cursor)|sort=status,-priority&limit=50&cursor=$(page2 'sort=status,-priority&limit=50')"
    "sort=status|sort=status&limit=50"
    "sort=-priority|sort=-priority&limit=50"
    "sort=-priority,status,title|sort=-priority,status,title&limit=50"
    "sort=-status,-updated_at|sort=-status,-updated_at&limit=50"
    "assignee, sort=status,-priority|filter[assignee_id]=$member&sort=status,-priority&limit=50"
    "sort=-due_at,created_at (NULLs first)|sort=-due_at,created_at&limit=50"
    "deleted=include, newest first|deleted=include&limit=50"
    "deleted=include, page 2 (cursor)|deleted=include&limit=50&cursor=$(page2 'deleted=include&limit=50')"
    "deleted=include, status=todo|deleted=include&filter[status]=todo&limit=50"
    "deleted=include, sort=due_at|deleted=include&sort=due_at&limit=50"
    "deleted=include, sort=-priority,due_at|deleted=include&sort=-priority,due_at&limit=50"
    "deleted=include, sort=title|deleted=include&sort=title&limit=50"
    "deleted=only, newest first|deleted=only&limit=50"
    "deleted=only, sort=due_at|deleted=only&sort=due_at&limit=50"
    "q=invoice (common) deleted=only by due date|q=invoice&deleted=only&sort=due_at&limit=50"
    "q=invoice payment deleted=only (ranked)|q=invoice+payment&deleted=only&limit=50"
    "q=zeppelin (rare) deleted=only (ranked)|q=zeppelin&deleted=only&limit=50"
    "label=security deleted=only|filter[label]=security&deleted=only&limit=50"
    "q=invoice payment login report deleted=include (ranked, 0.9%)|q=invoice+payment+login+report&deleted=include&limit=50"
    "q=zeppelin (rare) deleted=include by created_at|q=zeppelin&deleted=include&sort=-created_at&limit=50"
    "status=archived + priority=4 (0.25%), sort=title|filter[status]=archived&filter[priority]=4&sort=title&limit=50"
    "status=archived + priority=4, sort=-updated_at|filter[status]=archived&filter[priority]=4&sort=-updated_at&limit=50"
    "completed_at is notnull, sort=due_at|filter[completed_at][is]=notnull&sort=due_at&limit=50"
    "project + status=todo, sort=-updated_at|filter[project_id]=$project&filter[status]=todo&sort=-updated_at&limit=50"
    "project + assignee, sort=title|filter[project_id]=$project&filter[assignee_id]=$member&sort=title&limit=50"
    "assignee + status=archived + priority=4|filter[assignee_id]=$member&filter[status]=archived&filter[priority]=4&limit=50"
    "project + status=archived + priority=4, sort=due_at|filter[project_id]=$project&filter[status]=archived&filter[priority]=4&sort=due_at&limit=50"
    "created in the last 30 days, sort=title|filter[created_at][gte]=$month&sort=title&limit=50"
    "updated in the last day, sort=-priority|filter[updated_at][gte]=$day&sort=-priority&limit=50"
    "priority in (0,4) + status nin (done,archived), sort=-due_at|filter[priority][in]=0,4&filter[status][nin]=done,archived&sort=-due_at&limit=50"
    "assignee is null, sort=due_at|filter[assignee_id][is]=null&sort=due_at&limit=50"
    "label nin (security), sort=title|filter[label][nin]=security&sort=title&limit=50"
    "due_at is null + priority=4, sort=-created_at|filter[due_at][is]=null&filter[priority]=4&limit=50"
    "due before 25 days ago (rare), sort=title|filter[due_at][lt]=$overdue&sort=title&limit=50"
    "parent_id is notnull, sort=-updated_at|filter[parent_id][is]=notnull&sort=-updated_at&limit=50"
    "priority ne 2 + label in (perf,infra), sort=status|filter[priority][ne]=2&filter[label][in]=perf,infra&sort=status&limit=50"
    "label=security|filter[label]=security&limit=50"
    "label in (perf,infra) + status=todo|filter[label][in]=perf,infra&filter[status]=todo&limit=50"
    "label=legal (no task has it)|filter[label]=legal&limit=50"
    "q=zeppelin (rare, ranked)|q=zeppelin&limit=50"
    "q=invoice (common) by created_at|q=invoice&sort=-created_at&limit=50"
    "q=zeppelin (rare) by created_at|q=zeppelin&sort=-created_at&limit=50"
    "q=qwertyuiop (no match) by created_at|q=qwertyuiop&sort=-created_at&limit=50"
    "q=invoice payment (ranked)|q=invoice+payment&limit=50"
    "q=invoice payment login (ranked, 2.5%)|q=invoice+payment+login&limit=50"
    "q=invoice payment login report (ranked, 0.9%)|q=invoice+payment+login+report&limit=50"
    "q=invoice payment login report review (ranked, 0.4%)|q=invoice+payment+login+report+review&limit=50"
    "q=invoice payment login report bill team (ranked, 0.1%)|q=invoice+payment+login+report+bill+team&limit=50"
    "q=\"invoice payment\" (phrase, ranked, 0.4%)|q=%22invoice+payment%22&limit=50"
    "q=invoice payment login report (0.9%) by created_at|q=invoice+payment+login+report&sort=-created_at&limit=50"
    "q=invoice payment login report (0.9%) by due date|q=invoice+payment+login+report&sort=due_at&limit=50"
    "q=invoice payment login report bill team (0.1%) by created_at|q=invoice+payment+login+report+bill+team&sort=-created_at&limit=50"
    "q=\"invoice payment\" (phrase, 0.4%) by created_at|q=%22invoice+payment%22&sort=-created_at&limit=50"
    "q=\"login report bill\" (rare phrase of common words, ranked)|q=%22login+report+bill%22&limit=50"
    "q=\"login report bill\" (rare phrase) by created_at|q=%22login+report+bill%22&sort=-created_at&limit=50"
    "q=\"login report bill\" (rare phrase) by due date|q=%22login+report+bill%22&sort=due_at&limit=50"
    "q=\"invoice payment\" -login (phrase, negation, ranked)|q=%22invoice+payment%22+-login&limit=50"
    "q=\"invoice payment\" deleted=include (phrase, ranked)|q=%22invoice+payment%22&deleted=include&limit=50"
    "q=\"login report bill\" deleted=only (rare phrase)|q=%22login+report+bill%22&deleted=only&limit=50"
    "q=invoice (common) + label=security (ranked)|q=invoice&filter[label]=security&limit=50"
    "q=invoice payment login + status=archived (ranked)|q=invoice+payment+login&filter[status]=archived&limit=50"
    "q=invoice payment + status=todo (ranked, common words and status)|q=invoice+payment&filter[status]=todo&limit=50"
    "q=zeppelin invoice (ranked, a rare word and a common one)|q=zeppelin+invoice&limit=50"
    "q=qwertyuiop invoice (ranked, no match)|q=qwertyuiop+invoice&limit=50"
    "q=six words + label=security (ranked, 0.01%)|q=invoice+payment+login+report+bill+team&filter[label]=security&limit=50"
    "q=six words + status=archived (ranked)|q=invoice+payment+login+report+bill+team&filter[status]=archived&limit=50"
    "q=six words + status=in_progress (ranked, 20%)|q=invoice+payment+login+report+bill+team&filter[status]=in_progress&limit=50"
    "q=six words + status=todo (ranked, 40%)|q=invoice+payment+login+report+bill+team&filter[status]=todo&limit=50"
    "q=seven words (ranked, 0.03%)|q=invoice+payment+login+report+bill+team+review&limit=50"
    "q=six words + project (ranked)|q=invoice+payment+login+report+bill+team&filter[project_id]=$project&limit=50"
    "q=six words + assignee (ranked)|q=invoice+payment+login+report+bill+team&filter[assignee_id]=$member&limit=50"
    "q=six words + priority=4 (ranked)|q=invoice+payment+login+report+bill+team&filter[priority]=4&limit=50"
    "q=six words + label=legal (ranked, no task has the label)|q=invoice+payment+login+report+bill+team&filter[label]=legal&limit=50"
    "q=six words + label=security by created_at|q=invoice+payment+login+report+bill+team&filter[label]=security&sort=-created_at&limit=50"
    "q=six words + label=security by due date|q=invoice+payment+login+report+bill+team&filter[label]=security&sort=due_at&limit=50"
    "q=invoice payment + label=legal (ranked, common words, no task has the label)|q=invoice+payment&filter[label]=legal&limit=50"
    "q=three words + priority=4 (ranked)|q=invoice+payment+login&filter[priority]=4&limit=50"
    "q=four words + label=security (ranked, 0.9% words)|q=invoice+payment+login+report&filter[label]=security&limit=50"
    "q=four words + priority=4 (ranked)|q=invoice+payment+login+report&filter[priority]=4&limit=50"
    "q=five words + label=security (ranked, 0.4% words)|q=invoice+payment+login+report+review&filter[label]=security&limit=50"
    "q=six words + project by due date|q=invoice+payment+login+report+bill+team&filter[project_id]=$project&sort=due_at&limit=50"
    "q=six words + label=security, offset page 2, X-Total-Count|q=invoice+payment+login+report+bill+team&filter[label]=security&sort=title&page=2&per_page=50"
    "q=invoice (common) + label=security by created_at|q=invoice&filter[label]=security&sort=-created_at&limit=50"
    "q=invoice payment + priority=4 + label=security, sort=-updated_at|q=invoice+payment&filter[priority]=4&filter[label]=security&sort=-updated_at&limit=50"
    "q=four words + label=security by due date|q=invoice+payment+login+report&filter[label]=security&sort=due_at&limit=50"
    "q=six words + label in (perf,infra) + status=todo (ranked)|q=invoice+payment+login+report+bill+team&filter[label][in]=perf,infra&filter[status]=todo&limit=50"
    "q=six words + label=security + deleted=include (ranked)|q=invoice+payment+login+report+bill+team&filter[label]=security&deleted=include&limit=50"
    "q=eight words + label=security (ranked)|q=invoice+payment+login+report+bill+team+review+meeting&filter[label]=security&limit=50"
    "q=invoice payment + assignee, ranked offset page 20|q=invoice+payment&filter[assignee_id]=$member&page=20&per_page=50"
    "q=invoice payment (ranked), page 2 (cursor)|q=invoice+payment&limit=50&cursor=$(page2 'q=invoice+payment&limit=50')"
    "completed in the last 7 days, sort=title|filter[completed_at][gte]=$week_ago&sort=title&limit=50"
    "created over two years ago (none), sort=-updated_at|filter[created_at][lt]=2020-01-01T00:00:00Z&sort=-updated_at&limit=50"
    "label=security, sort=-priority|filter[label]=security&sort=-priority&limit=50"
    "q=invoice + status=archived, sort=title|q=invoice&filter[status]=archived&sort=title&limit=50"
    "q=zeppelin deleted=include, sort=title|q=zeppelin&deleted=include&sort=title&limit=50"
    "offset 10,000, sort=title|sort=title&page=201&per_page=50"
    "offset 99,950 (the deepest), default order|page=2000&per_page=50"
    "offset 9,950, sort=status|sort=status&page=200&per_page=50"
    "offset 9,950, status=todo, sort=due_at|filter[status]=todo&sort=due_at&page=200&per_page=50"
    "offset 9,950, assignee, sort=title|filter[assignee_id]=$member&sort=title&page=200&per_page=50"
    "offset 9,950, assignee, sort=due_at|filter[assignee_id]=$member&sort=due_at&page=200&per_page=50"
    "offset 9,950, assignee, sort=-priority|filter[assignee_id]=$member&sort=-priority&page=200&per_page=50"
    "offset 29,950, assignee, sort=title|filter[assignee_id]=$member&sort=title&page=600&per_page=50"
    "offset 9,950, project, sort=title|filter[project_id]=$project&sort=title&page=200&per_page=50"
    "offset 9,950, project, sort=-updated_at|filter[project_id]=$project&sort=-updated_at&page=200&per_page=50"
    "offset 9,950, label=security, sort=title|filter[label]=security&sort=title&page=200&per_page=50"
    "offset 9,950, label=security|filter[label]=security&page=200&per_page=50"
    "offset 950, assignee, sort=title|filter[assignee_id]=$member&sort=title&page=20&per_page=50"
    "offset 950, project, sort=title|filter[project_id]=$project&sort=title&page=20&per_page=50"
    "offset 950, label=security, sort=title|filter[label]=security&sort=title&page=20&per_page=50"
    "offset 1,950, assignee, sort=due_at|filter[assignee_id]=$member&sort=due_at&page=40&per_page=50"
    "offset page 1, label=security, sort=title, X-Total-Count|filter[label]=security&sort=title&page=1&per_page=50"
    "offset page 1, assignee, sort=due_at, X-Total-Count|filter[assignee_id]=$member&sort=due_at&page=1&per_page=50"
    "offset page 1, project, X-Total-Count|filter[project_id]=$project&page=1&per_page=50"
    "offset page 1, q=invoice, X-Total-Count|q=invoice&sort=-created_at&page=1&per_page=50"
    "q=invoice + assignee, sort=title|q=invoice&filter[assignee_id]=$member&sort=title&limit=50"
    "label in (perf,infra) deleted=include, sort=due_at|filter[label][in]=perf,infra&deleted=include&sort=due_at&limit=50"
    "status in (todo,done) + priority gte 2, sort=-updated_at|filter[status][in]=todo,done&filter[priority][gte]=2&sort=-updated_at&limit=50"
    "due_at is notnull, sort=-priority,title|filter[due_at][is]=notnull&sort=-priority,title&limit=50"
    "sort=title,-due_at|sort=title,-due_at&limit=50"
    "sort=due_at,-priority,title|sort=due_at,-priority,title&limit=50"
    "created in one day a year ago, sort=-priority|filter[created_at][gte]=$year_ago&filter[created_at][lt]=$year_ago_1&sort=-priority&limit=50"
    "offset page 3, status=todo, X-Total-Count|filter[status]=todo&page=3&per_page=50"
    "offset page 1, every task, X-Total-Count|page=1&per_page=50"
    "offset page 3, sort=status,-priority|sort=status,-priority&page=3&per_page=50"
    "offset 9,950, label=security, sort=-priority|filter[label]=security&sort=-priority&page=200&per_page=50"
    "offset 9,950, label=security, sort=status|filter[label]=security&sort=status&page=200&per_page=50"
    "offset 9,950, project, sort=status|filter[project_id]=$project&sort=status&page=200&per_page=50"
    "offset 9,950, project, sort=-priority|filter[project_id]=$project&sort=-priority&page=200&per_page=50"
    "offset 9,950, assignee + label=security, sort=title|filter[assignee_id]=$member&filter[label]=security&sort=title&page=200&per_page=50"
    "offset 950, q=invoice (common), newest first|q=invoice&sort=-created_at&page=20&per_page=50"
    "offset 950 (a search's last offset page), q=invoice, by due date|q=invoice&sort=due_at&page=20&per_page=50"
    "offset 9,950, status=todo + label=security, sort=-updated_at|filter[status]=todo&filter[label]=security&sort=-updated_at&page=200&per_page=50"
    "offset 950, label=security, sort=-priority|filter[label]=security&sort=-priority&page=20&per_page=50"
    "offset 950, label=security, sort=status|filter[label]=security&sort=status&page=20&per_page=50"
    "offset 950, assignee + label=security, sort=title|filter[assignee_id]=$member&filter[label]=security&sort=title&page=20&per_page=50"
    "offset 950, q=invoice (common), sort=title|q=invoice&sort=title&page=20&per_page=50"
    "offset 950, status=todo + label=security, sort=-updated_at|filter[status]=todo&filter[label]=security&sort=-updated_at&page=20&per_page=50"
)

# a row to run (-o)
wanted() { [ -z "$only" ] || grep -Eq -- "$only" <<<"$1"; }

printf '| query | req/s | p50 ms | p99 ms | rows | warm-up max ms |\n| --- | ---: | ---: | ---: | ---: | ---: |\n'
for entry in "${queries[@]}"; do
    name=${entry%%|*}
    q=${entry#*|}
    wanted "$name" || continue
    code=$(curl -gs -o "$run/last.json" -w '%{http_code}' "$BASE$list?$q" -H "Authorization: Bearer $token")
    [ "$code" = 200 ] || die "$name: HTTP $code $(head -c 300 "$run/last.json")"
    rows=$(jq '.data | length' "$run/last.json")
    cold=
    if ((warm > 0)); then
        out=$(wrk -t1 -c1 -d"${warm}s" --latency -H "Authorization: Bearer $token" "$BASE$list?$q")
        cold=$(awk '/Latency/ && !/Distribution/ {print $4; exit}' <<<"$out")
    fi
    out=$(wrk -t1 -c1 -d"${duration}s" --latency -H "Authorization: Bearer $token" "$BASE$list?$q")
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) printf "%.2f", v / 1000; else if (v ~ /ms$/) printf "%.2f", v + 0; else printf "%.2f", v * 1000 }'; }
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$rps" "$(ms "$p50")" "$(ms "$p99")" "$rows" \
        "${cold:+$(ms "$cold")}"
done

if ((explain)); then
    # auto_explain logs the plan of every statement, nested EXECUTEs included, for sessions that
    # start after this: restart nginx so that its connections are new
    psql_super taskmgr -c "ALTER DATABASE taskmgr SET session_preload_libraries = 'auto_explain'" \
        -c "ALTER DATABASE taskmgr SET auto_explain.log_min_duration = 0" \
        -c "ALTER DATABASE taskmgr SET auto_explain.log_nested_statements = on" \
        -c "ALTER DATABASE taskmgr SET auto_explain.log_analyze = on" \
        -c "ALTER DATABASE taskmgr SET auto_explain.log_timing = off"
    cleanup
    off=$(stat -c %s "$stackdir/pg.log")
    start_nginx
    : >"$run/explain.log"
    for entry in "${queries[@]}"; do
        name=${entry%%|*}
        q=${entry#*|}
        wanted "$name" || continue
        mark=$(stat -c %s "$stackdir/pg.log")
        curl -gs -o /dev/null "$BASE$list?$q" -H "Authorization: Bearer $token"
        sleep 0.3
        { echo "=== $name: ?$q"; tail -c +"$((mark + 1))" "$stackdir/pg.log"; } >>"$run/explain.log"
    done
    psql_super taskmgr -c "ALTER DATABASE taskmgr RESET ALL"
    say "plans in $run/explain.log"
fi
