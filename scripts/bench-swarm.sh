#!/usr/bin/env bash
# Time to a verified stack: `radar-deploy up` (one host) against `radar-deploy up --target swarm`
# (the daemon's swarm), both including their `verify`, and, as the Swarm reference,
# `docker stack deploy` of the stack file `render --target swarm` writes, timed until every
# service has all its tasks running (Swarm counts a task with a healthcheck as running once
# it is healthy); it verifies nothing. Same images, same healthchecks. Runs alternate, so a
# machine that gets busier or quieter affects all alike. Prints medians and ratios; not a test.
#
#   scripts/bench-swarm.sh [ROUNDS]       (default 3)
#   RADAR_BIN=path/to/radar-deploy        use this binary instead of building a release one
#   APP_INSTANCES                         (default 3)
#
# When the daemon is not in a swarm, a single-node swarm is initialised on loopback and left
# again at the end. Do not run it beside other Docker tests: while a Docker 20.10 daemon joins
# or leaves a swarm, container names on bridge networks briefly stop resolving.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

bench_setup
project=rdbench-swarm-$$
ref_project=rdbench-stack-$$

joined=no
if [[ $(docker info --format '{{.Swarm.LocalNodeState}}') != active ]]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  joined=yes
fi

rd() { "$bin" --env-file "$env_file" --project "$project" --quiet "$@"; }
# The reference deploy: the rendered stack file with its external secrets and node labels,
# created by hand as its header says.
"$bin" --env-file "$env_file" --project "$ref_project" render --target swarm --out "$work/stack" >/dev/null
stack_file=$work/stack/docker-stack.multi-instance.yml
node=$(docker info --format '{{.Swarm.NodeID}}')
ref_up() {
  (
    set -a
    # shellcheck disable=SC1090
    . "$env_file"
    set +a
    cd "$work/stack"
    grep -o 'docker node update .*<node>' "$stack_file" | sed "s/<node>/$node/" | bash >/dev/null
    grep -o 'printf %s "$[A-Z_]*" | docker secret create [^ ]* -' "$stack_file" | bash >/dev/null
    docker stack deploy -c "$stack_file" "$ref_project" >/dev/null
    while docker service ls --filter "label=com.docker.stack.namespace=$ref_project" \
      --format '{{.Replicas}}' | awk -F/ '$1 != $2 || NF != 2 {bad=1} END {exit !bad}'; do
      sleep 0.2
    done
  )
}
ref_down() {
  docker stack rm "$ref_project" >/dev/null 2>&1 || true
  while [[ -n $(docker ps -aq --filter "label=com.docker.stack.namespace=$ref_project") ]]; do sleep 0.5; done
  docker secret ls -q --filter "name=${ref_project}_" | xargs -r docker secret rm >/dev/null 2>&1 || true
  docker network rm "${ref_project}_default" >/dev/null 2>&1 || true
  docker volume ls -q --filter "label=com.docker.stack.namespace=$ref_project" | xargs -r docker volume rm >/dev/null 2>&1 || true
}

cleanup() {
  rd down --volumes >/dev/null 2>&1 || true
  rd down --target swarm --volumes >/dev/null 2>&1 || true
  ref_down
  if [[ $joined == yes ]]; then docker swarm leave --force >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT


: >"$work/single"; : >"$work/swarm"; : >"$work/ref"
for ((i = 1; i <= rounds; i++)); do
  s=$(timed rd up); echo "$s" >>"$work/single"
  rd down --volumes >/dev/null 2>&1
  w=$(timed rd up --target swarm); echo "$w" >>"$work/swarm"
  rd down --target swarm --volumes >/dev/null 2>&1
  r=$(timed ref_up); echo "$r" >>"$work/ref"
  ref_down
  printf 'round %d: single-host up+verify %.2fs | swarm up+verify %.2fs | docker stack deploy (converged, unverified) %.2fs\n' "$i" "$s" "$w" "$r"
done

single=$(median <"$work/single"); swarm=$(median <"$work/swarm"); ref=$(median <"$work/ref")
echo
echo "medians over $rounds rounds (${APP_INSTANCES:-3} app instances):"
printf '  radar-deploy up --target swarm (verified) %ss vs single-host up (verified) %ss: ratio %.2fx\n' "$swarm" "$single" "$(echo "$swarm / $single" | bc -l)"
printf '  radar-deploy up --target swarm (verified) %ss vs docker stack deploy (converged) %ss: ratio %.2fx\n' "$swarm" "$ref" "$(echo "$swarm / $ref" | bc -l)"
