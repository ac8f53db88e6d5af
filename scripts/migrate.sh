#!/usr/bin/env bash
# migrate.sh [--repair] <pg_socket_dir> <pg_port> <dbname>
#
# Applies sql/NNNN_*.sql in order, each once.  Applied versions (the file name
# without .sql, e.g. 0001_init) are recorded in public.schema_migrations with
# the SHA-256 of the file as applied.  Each file runs in one transaction
# together with its record row, as role postgres over the unix socket, so a
# failing file leaves no trace.  Files must therefore not contain BEGIN/COMMIT
# or statements that cannot run inside a transaction block (CREATE INDEX
# CONCURRENTLY, ...).
#
# Before applying anything it checks the files against the records and stops,
# applying nothing, when
#   - an applied file has changed since (its SHA-256 differs): a migration that
#     has run is never edited; write a new one;
#   - an applied version has no file any more (removed or renamed);
#   - a file not applied yet sorts before the newest applied version: it would
#     run after migrations that were written after it.
# Records without a checksum (written before checksums were kept) take the
# file's current one.  --repair records the current checksum of every changed
# applied file instead of refusing (after an edit known to be harmless, such
# as a comment), and applies nothing.
#
# TASKMGR_SQL_DIR overrides the directory (default: sql/ of this checkout).
set -euo pipefail
export LC_ALL=C

die() { echo "migrate.sh: error: $*" >&2; exit 1; }
usage() { echo "usage: $0 [--repair] <pg_socket_dir> <pg_port> <dbname>" >&2; exit 2; }

repair=0
if [ "${1:-}" = --repair ]; then
    repair=1
    shift
fi
[ $# -eq 3 ] || usage
sockdir=$1
port=$2
db=$3

here=$(cd "$(dirname "$0")" && pwd -P)
sqldir=${TASKMGR_SQL_DIR:-$here/../sql}
PSQL=${TASKMGR_PG_BIN:-/usr/lib/postgresql/15/bin}/psql

[ -d "$sqldir" ] || die "no migration directory $sqldir"

# NOTICEs (e.g. "already exists, skipping") are noise here.
export PGOPTIONS='-c client_min_messages=warning'

psql_db() {
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -p "$port" -U postgres -d "$db" "$@"
}

# The checksum column came after the table: add it where it is missing.
psql_db -c 'CREATE TABLE IF NOT EXISTS public.schema_migrations (
                version    text PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now(),
                checksum   text)' \
        -c 'ALTER TABLE public.schema_migrations ADD COLUMN IF NOT EXISTS checksum text' \
    || die "cannot reach database $db (socket $sockdir, port $port)"

# version|checksum (empty: none recorded), in version order
records=$(psql_db -A -t -F '|' -c \
    'SELECT version, coalesce(checksum, $$$$) FROM public.schema_migrations ORDER BY version')

declare -A recorded=()
newest=
while IFS='|' read -r v sum; do
    [ -n "$v" ] || continue
    recorded[$v]=$sum
    newest=$v
done <<<"$records"

shopt -s nullglob
files=("$sqldir"/[0-9][0-9][0-9][0-9]_*.sql)

declare -A present=()
declare -A file_sum=()
pending=()
problems=()
changed=()
unrecorded=()

for f in "${files[@]}"; do
    v=$(basename "$f" .sql)
    [[ $v =~ ^[0-9]{4}_[A-Za-z0-9_.-]+$ ]] || die "bad migration file name: $f"
    present[$v]=1
    sum=$(sha256sum -- "$f") || die "cannot read $f"
    sum=${sum%% *}
    file_sum[$v]=$sum
    if [ -n "${recorded[$v]+set}" ]; then
        if [ -z "${recorded[$v]}" ]; then
            unrecorded+=("$v")
        elif [ "${recorded[$v]}" != "$sum" ]; then
            changed+=("$v")
        fi
    elif [[ -n $newest && $v < $newest ]]; then
        problems+=("$v is not applied but sorts before $newest, which is: give it a number after $newest")
    else
        pending+=("$f")
    fi
done

for v in "${!recorded[@]}"; do
    [ -n "${present[$v]+set}" ] \
        || problems+=("$v was applied but $sqldir/$v.sql is gone (removed or renamed)")
done

if [ $repair -eq 1 ]; then
    for v in "${changed[@]}"; do
        psql_db -v v="$v" -v sum="${file_sum[$v]}" -f - \
            <<<"UPDATE public.schema_migrations SET checksum = :'sum' WHERE version = :'v'" \
            || die "cannot record the checksum of $v"
        echo "migrate.sh: $db: recorded the current checksum of $v (it changed since it was applied)"
    done
    echo "migrate.sh: $db: repaired (${#changed[@]} checksums recorded, nothing applied)"
    exit 0
fi

for v in "${changed[@]}"; do
    problems+=("$v changed since it was applied (checksum ${recorded[$v]:0:12}…, file ${file_sum[$v]:0:12}…): write a new migration instead, or run with --repair if the edit is harmless")
done

if [ ${#problems[@]} -gt 0 ]; then
    for p in "${problems[@]}"; do
        echo "migrate.sh: $db: $p" >&2
    done
    die "$db: ${#problems[@]} problem(s) with the migration files; nothing applied"
fi

for v in "${unrecorded[@]}"; do
    psql_db -v v="$v" -v sum="${file_sum[$v]}" -f - \
        <<<"UPDATE public.schema_migrations SET checksum = :'sum' WHERE version = :'v' AND checksum IS NULL" \
        || die "cannot record the checksum of $v"
done
[ ${#unrecorded[@]} -eq 0 ] \
    || echo "migrate.sh: $db: recorded the checksums of ${#unrecorded[@]} migrations applied before checksums were kept"

# record_of <version>: its recorded checksum, empty when not recorded
record_of() {
    psql_db -A -t -v v="$1" -f - \
        <<<"SELECT coalesce(checksum, 'none') FROM public.schema_migrations WHERE version = :'v'"
}

count=0
for f in "${pending[@]}"; do
    v=$(basename "$f" .sql)
    # The advisory lock serialises concurrent migrators; the primary key
    # makes a second application of the same version fail and roll back.
    if ! errs=$(psql_db --single-transaction \
            -v v="$v" -v sum="${file_sum[$v]}" \
            -c "SELECT pg_advisory_xact_lock(hashtext('taskmgr.migrate'))" \
            -f "$f" \
            -f - \
            <<<"INSERT INTO public.schema_migrations (version, checksum) VALUES (:'v', :'sum')" \
            2>&1 >/dev/null); then
        # Another migrator that started at the same time applied it first.
        if [ "$(record_of "$v" 2>/dev/null || true)" = "${file_sum[$v]}" ]; then
            echo "migrate.sh: $db: $v was applied meanwhile by another migrator"
            continue
        fi
        printf '%s\n' "$errs" >&2
        die "$v failed in database $db; it was rolled back (nothing of it applied)"
    fi
    [ -z "$errs" ] || printf '%s\n' "$errs" >&2
    echo "migrate.sh: $db: applied $v"
    count=$((count + 1))
done

echo "migrate.sh: $db: up to date ($count applied now, ${#files[@]} migration files)"
