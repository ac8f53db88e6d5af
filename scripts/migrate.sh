#!/usr/bin/env bash
# migrate.sh <pg_socket_dir> <pg_port> <dbname>
#
# Applies sql/NNNN_*.sql in order, each once.  Applied versions (the file name
# without .sql, e.g. 0001_init) are recorded in public.schema_migrations.
# Each file runs in one transaction together with its record row, as role
# postgres over the unix socket, so a failing file leaves no trace.  Files must
# therefore not contain BEGIN/COMMIT or statements that cannot run inside a
# transaction block (CREATE INDEX CONCURRENTLY, ...).
#
# TASKMGR_SQL_DIR overrides the directory (default: sql/ of this checkout).
set -euo pipefail
export LC_ALL=C

die() { echo "migrate.sh: error: $*" >&2; exit 1; }

[ $# -eq 3 ] || { echo "usage: $0 <pg_socket_dir> <pg_port> <dbname>" >&2; exit 2; }
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

psql_db -c 'CREATE TABLE IF NOT EXISTS public.schema_migrations (
                version    text PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now())' \
    || die "cannot reach database $db (socket $sockdir, port $port)"

applied=$(psql_db -A -t -c 'SELECT version FROM public.schema_migrations')

shopt -s nullglob
files=("$sqldir"/[0-9][0-9][0-9][0-9]_*.sql)
count=0

for f in "${files[@]}"; do
    v=$(basename "$f" .sql)
    [[ $v =~ ^[0-9]{4}_[A-Za-z0-9_.-]+$ ]] || die "bad migration file name: $f"
    if grep -qxF -- "$v" <<<"$applied"; then
        continue
    fi
    # The advisory lock serialises concurrent migrators; the primary key
    # makes a second application of the same version fail and roll back.
    if ! psql_db --single-transaction \
            -c "SELECT pg_advisory_xact_lock(hashtext('taskmgr.migrate'))" \
            -f "$f" \
            -c "INSERT INTO public.schema_migrations (version) VALUES ('$v')" \
            >/dev/null; then
        die "$v failed in database $db; it was rolled back (nothing of it applied)"
    fi
    echo "migrate.sh: $db: applied $v"
    count=$((count + 1))
done

echo "migrate.sh: $db: up to date ($count applied now, ${#files[@]} migration files)"
