#!/usr/bin/env bash
# Cold and no-op `radar-deploy up` against `docker compose up -d --wait` on the Compose file
# `radar-deploy render` writes for the same configuration: same images, same healthchecks.
# Runs alternate (compose, radar-deploy, compose, ...) so a machine that gets busier or
# quieter affects both alike. Prints the median times and their ratios; not a test.
#
#   scripts/bench-up.sh [ROUNDS]          (default 3)
#   RADAR_BIN=path/to/radar-deploy        use this binary instead of building a release one
#   NGINX_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, APP_IMAGE   images (default: the offline ones)
#   APP_INSTANCES                         (default 3: a six-container stack)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
docker compose version >/dev/null 2>&1 || {
  echo "error: docker compose v2 is needed for the comparison (../shared/tools/install-compose-v2.sh)" >&2
  exit 2
}

bench_setup
rd_project=rdbench-rd-$$
co_project=rdbench-compose-$$
"$bin" --env-file "$env_file" --project "$co_project" render --out "$work/docker" >/dev/null
compose_file=$work/docker/docker-compose.multi-instance.yml

rd() { "$bin" --env-file "$env_file" --project "$rd_project" --quiet "$@"; }
co() { docker compose --env-file "$env_file" -f "$compose_file" -p "$co_project" "$@"; }

cleanup() {
  rd down --volumes >/dev/null 2>&1 || true
  co down --volumes --timeout 30 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT


cleanup_stacks() {
  rd down --volumes >/dev/null 2>&1 || true
  co down --volumes --timeout 30 >/dev/null 2>&1 || true
}

: >"$work/co_cold"; : >"$work/rd_cold"; : >"$work/co_noop"; : >"$work/rd_noop"
cleanup_stacks
for ((i = 1; i <= rounds; i++)); do
  t=$(timed co up -d --wait); echo "$t" >>"$work/co_cold"
  t2=$(timed co up -d --wait); echo "$t2" >>"$work/co_noop"
  co down --volumes --timeout 30 >/dev/null 2>&1
  r=$(timed rd up --no-verify); echo "$r" >>"$work/rd_cold"
  r2=$(timed rd up --no-verify); echo "$r2" >>"$work/rd_noop"
  rd down --volumes >/dev/null 2>&1
  printf 'round %d: compose cold %.2fs no-op %.2fs | radar-deploy cold %.2fs no-op %.2fs\n' "$i" "$t" "$t2" "$r" "$r2"
done

co_cold=$(median <"$work/co_cold"); rd_cold=$(median <"$work/rd_cold")
co_noop=$(median <"$work/co_noop"); rd_noop=$(median <"$work/rd_noop")
echo
echo "medians over $rounds rounds ($(( ${APP_INSTANCES:-3} + 3 ))-container stack):"
printf '  cold:  radar-deploy %ss  compose %ss  ratio %.2fx (target <= 0.5x)\n' "$rd_cold" "$co_cold" "$(echo "$rd_cold / $co_cold" | bc -l)"
printf '  no-op: radar-deploy %ss  compose %ss  ratio %.2fx (target <= 0.2x)\n' "$rd_noop" "$co_noop" "$(echo "$rd_noop / $co_noop" | bc -l)"
