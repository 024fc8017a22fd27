#!/usr/bin/env bash
# `radar-deploy up` with no app image (the reference image built inside Docker, then the stack
# deployed) against `up` with the image present (the stack deployed). Prints both wall times and
# their ratio; not a test.
#
# The cold figure is a true cold build: the build stage runs on a builder image of this run's own
# (APP_BUILDER_IMAGE plus one label, so a new image id and no layer of the Docker build cache
# applies), and the app image gets a tag of its own (radar-deploy/radar-app:bench-<pid>). Both,
# and every intermediate image of the build, are removed at the end, also on failure.
#
#   scripts/bench-app-image.sh [ROUNDS]   rounds of the with-image `up` (default 3; the cold
#                                         build runs once: it takes minutes)
#   RADAR_BIN=path/to/radar-deploy        use this binary instead of building a release one
#   APP_BUILDER_IMAGE                     (default radar-offline/rust:bookworm)
#   NGINX_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, APP_INSTANCES   as for scripts/bench-up.sh
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
export APP_IMAGE=radar-deploy/radar-app:bench-$$
builder=${APP_BUILDER_IMAGE:-radar-offline/rust:bookworm}
bench_builder=radar-bench/rust-builder:$$
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

docker image inspect "$builder" >/dev/null 2>&1 \
  || { echo "error: the builder image $builder is missing (scripts/offline-images.sh makes radar-offline/rust:bookworm)" >&2; exit 2; }

bench_setup
project=rdbench-appimage-$$
rd() { env -u APP_BUILDER_IMAGE "$bin" --env-file "$env_file" --project "$project" "$@"; }

# Every image built on top of image id $1 (intermediate images of the classic builder).
descendants() {
  local all
  all=$(docker images -a -q --no-trunc | sort -u)
  [[ -n $all ]] || return 0
  # shellcheck disable=SC2086
  docker image inspect -f '{{.Id}} {{.Parent}}' $all | awk -v root="$1" '
    { parent[$1] = $2 }
    END {
      found[root] = 1; changed = 1
      while (changed) { changed = 0
        for (id in parent) if (!(id in found) && (parent[id] in found)) { found[id] = 1; changed = 1 } }
      for (id in found) if (id != root) print id
    }'
}

cleanup() {
  rd down --volumes >/dev/null 2>&1 || true
  docker rmi "$APP_IMAGE" >/dev/null 2>&1 || true
  local root ids id
  root=$(docker image inspect -f '{{.Id}}' "$bench_builder" 2>/dev/null || true)
  if [[ -n $root ]]; then
    ids=$(descendants "$root")
    # Leaves first; removing one also removes its untagged parents.
    for id in $ids; do docker rmi "$id" >/dev/null 2>&1 || true; done
    for id in $(descendants "$root"); do docker rmi "$id" >/dev/null 2>&1 || true; done
    docker rmi "$bench_builder" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

printf 'FROM %s\nLABEL io.radar-deploy.bench=%s\n' "$builder" "$$" \
  | docker build -q -t "$bench_builder" - >/dev/null
echo "APP_BUILDER_IMAGE=$bench_builder" >>"$env_file"

if docker image inspect "$APP_IMAGE" >/dev/null 2>&1; then
  echo "error: $APP_IMAGE exists already" >&2; exit 2
fi
cold=$(timed rd up --no-verify)
grep -q "^built $APP_IMAGE in" "$work/last.log" \
  || { echo "error: the first up did not build $APP_IMAGE:" >&2; cat "$work/last.log" >&2; exit 2; }
build=$(sed -n "s/^built .* in \([0-9.]*\)s.*/\1/p" "$work/last.log")
printf 'no app image: up %.1fs (of which the image build %.1fs)\n' "$cold" "$build"
rd down --volumes >/dev/null 2>&1

: >"$work/warm"
for ((i = 1; i <= rounds; i++)); do
  t=$(timed rd up --no-verify)
  if grep -q "building $APP_IMAGE" "$work/last.log"; then
    echo "error: up built the image again:" >&2; cat "$work/last.log" >&2; exit 2
  fi
  echo "$t" >>"$work/warm"
  rd down --volumes >/dev/null 2>&1
  printf 'image present, round %d: up %.1fs\n' "$i" "$t"
done
warm=$(median <"$work/warm")

echo
echo "up --no-verify of a $(( ${APP_INSTANCES:-3} + 3 ))-container stack, builder $builder, $(nproc) CPUs:"
printf '  no app image (cold build + deploy): %.1fs\n' "$cold"
printf '  app image present (deploy, median of %d): %ss\n' "$rounds" "$warm"
printf '  ratio: %.1fx\n' "$(echo "$cold / $warm" | bc -l)"
