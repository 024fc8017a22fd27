#!/usr/bin/env bash
# Backup and restore of a database of ROWS rows (default 1 000 000: a table of an int key and
# a 32-character text, from generate_series), and what clients see through nginx meanwhile.
# Prints: the table's size, `backup`'s time and file size, `restore --yes`'s time, and the
# outcomes (200 / 503 / other) of a steady load on /api/session through nginx during the
# restore. A benchmark that prints figures; not a test.
#
#   scripts/bench-backup.sh [ROWS]
#   RADAR_BIN=path/to/radar-deploy        use this binary instead of building a release one
#   CLIENTS                               concurrent curl loops during the restore (default 4)
#   NGINX_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, APP_IMAGE   images (default: the offline ones)
set -euo pipefail
cd "$(dirname "$0")/.."

rows=${1:-1000000}
clients=${CLIENTS:-4}
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
APP_INSTANCES=${APP_INSTANCES:-2}
bench_setup
project=rdbench-backup-$$
rd() { "$bin" --env-file "$env_file" --project "$project" --quiet "$@"; }
psql_() {
  docker exec "$project-postgres-1" bash -c 'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -XtAc "$1"' psql "$1"
}
cleanup() {
  [[ -f $work/stop ]] || touch "$work/stop"
  rd down --volumes >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

rd up --no-verify >/dev/null
psql_ "create table bench(id int primary key, body text);
       insert into bench select g, md5(g::text) from generate_series(1, $rows) g" >/dev/null
echo "table: $(psql_ "select count(*) from bench") rows, $(psql_ "select pg_size_pretty(pg_total_relation_size('bench'))") with its index"

file=$work/bench.radar-backup
took=$(timed rd backup --out "$file")
echo "backup:  $took s   ($bin backup --out FILE)"
echo "file:    $(stat -c %s "$file") bytes"
# The reference: the same dump by hand (docker exec pg_dump -Fc > file), with no checksum, no
# manifest, no Redis keys and no atomic rename; the ratio is what radar-deploy's file costs.
ref_start=$(date +%s.%N)
docker exec "$project-postgres-1" bash -c 'pg_dump -U "$POSTGRES_USER" -d "$POSTGRES_DB" --format=custom' >"$work/reference.dump"
ref=$(echo "$(date +%s.%N) - $ref_start" | bc -l)
echo "reference: $ref s   (docker exec … pg_dump --format=custom > file: $(stat -c %s "$work/reference.dump") bytes)"
echo "backup / reference: $(echo "$took / $ref" | bc -l | cut -c1-4)x"

# The file check alone: `restore` without --yes checks the whole file, then refuses (exit 2).
start=$(date +%s.%N)
if rd restore "$file" >/dev/null 2>&1; then echo "error: restore without --yes did not refuse" >&2; exit 2; fi
echo "check:   $(echo "$(date +%s.%N) - $start" | bc -l) s   ($bin restore FILE, refused without --yes after checking every entry)"

# A steady load: each client asks /api/session (Redis, through an instance) back to back on
# fresh connections and writes one status code per line.
for i in $(seq "$clients"); do
  (
    while [[ ! -f $work/stop ]]; do
      curl -s -o /dev/null -m 5 -w '%{http_code}\n' "http://127.0.0.1:$port/api/session" || true
    done >"$work/codes.$i"
  ) &
done
sleep 2
touch "$work/load-started"
echo "restore: $(timed rd restore "$file" --yes) s   ($bin restore FILE --yes)"
sleep 2
touch "$work/stop"
wait
echo "rows after restore: $(psql_ "select count(*) from bench")"
cat "$work"/codes.* | awk -v c="$clients" '
  { n[$1 == "200" ? "200" : ($1 == "503" ? "503" : "other")]++ ; t++ }
  END { printf "requests during the load (%d clients, 2 s before and after the restore): %d; 200: %d, 503: %d, other: %d\n", c, t, n["200"], n["503"], n["other"] }'
