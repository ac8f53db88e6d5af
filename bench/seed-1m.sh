#!/usr/bin/env bash
# bench/seed-1m.sh: one tenant with 1,000,000 tasks (bench/seed-1m.sql) in a throw-away stack
# under bench/.run-1m/ (PostgreSQL 127.0.0.1:29432, Redis 29379), for bench/list-1m.sh.
# Recreates the database, migrates it (sql/), seeds and ANALYZEs; prints the time taken.
# The stack stays up for list-1m.sh; `bash bench/seed-1m.sh --stop` stops it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/1m.sh"

if [ "${1:-}" = --stop ]; then
    [ -d "$stackdir" ] && stack stop
    exit 0
fi

mkdir -p "$run"
stack start >&2
# enough memory to build the GIN indexes of a million rows without spilling much
psql_super postgres -c "ALTER SYSTEM SET shared_buffers = '512MB'" \
    -c "ALTER SYSTEM SET maintenance_work_mem = '512MB'" -c "ALTER SYSTEM SET work_mem = '16MB'" \
    -c "ALTER SYSTEM SET max_wal_size = '4GB'"
if [ "$(psql_super postgres -tAc 'SELECT pg_reload_conf(); SELECT count(*) FROM pg_settings WHERE pending_restart' | tail -1)" != 0 ]; then
    stack stop >&2
    stack start >&2
fi

say "recreating database taskmgr"
psql_super postgres -c 'DROP DATABASE IF EXISTS taskmgr WITH (FORCE)' -c 'CREATE DATABASE taskmgr'
"$repo/scripts/migrate.sh" "$stackdir/pgsock" "$PG_PORT" taskmgr >&2

say "seeding 1,000,000 tasks"
t0=$SECONDS
psql_super taskmgr -f "$repo/bench/seed-1m.sql"
# the seed's own VACUUM leaves most pages not all-visible (session 8: 1,865 of
# 85,203): the seed commits asynchronously (synchronous_commit = off) and
# VACUUM marks no page whose inserter's commit is not flushed yet; index-only
# scans then fetch the heap (an offset page through a label: 117 ms instead
# of 27).  A second one, once the commit is flushed, marks them all
psql_super taskmgr -c 'VACUUM tm.tasks' >/dev/null
psql_super taskmgr -tAc "SELECT relallvisible || ' of ' || relpages || ' pages all-visible'
                           FROM pg_class WHERE oid = 'tm.tasks'::regclass" \
    | sed 's/^/tm.tasks: /' >&2
say "seeded in $((SECONDS - t0)) s"
psql_super taskmgr -tAc "SELECT pg_size_pretty(pg_total_relation_size('tm.tasks'))" \
    | sed 's/^/tm.tasks with indexes: /' >&2
