#!/usr/bin/env bash
# What `top` costs and how current it is. A benchmark that prints figures; not a test.
#
# One stack (APP_INSTANCES, default 3) under a steady load of about RATE requests/s through nginx
# (wrk with a per-request delay: CONNECTIONS connections, each waiting CONNECTIONS/RATE s between
# requests), then, one after another for SECS seconds each:
#   - `radar-deploy top` (the live view, its output to a file),
#   - `docker logs -f` of nginx to /dev/null (the floor: only reading the same log),
#   - `docker stats` (the reference: what the docker CLI shows of the instances, CPU and memory
#     only, no traffic),
# each one's own CPU use (user + system, from /proc, in % of one core) and the ratio of top's to
# each reference's; then top's refresh figures as it printed them (time to gather one screen,
# and how late nginx's log lines reach it, p95) and `top --format json`'s wall time.
#
#   scripts/bench-top.sh
#   RADAR_BIN=path/to/radar-deploy        use this binary instead of building a release one
#   RATE (2000), CONNECTIONS (24), SECS (30)
#   NGINX_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, APP_IMAGE   images (default: the offline ones)
#
# Needs: docker, wrk (Debian: `apt-get install wrk`), bc, python3. Linux (reads /proc).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in wrk bc python3 docker; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 2; }
done
rate=${RATE:-2000}
connections=${CONNECTIONS:-24}
secs=${SECS:-30}
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
bench_setup
project=rdbench-top-$$
rd() { "$bin" --env-file "$env_file" --project "$project" "$@"; }
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rd --quiet down --volumes >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== up ($(grep ^APP_INSTANCES "$env_file" | tail -1))"
rd --quiet up >/dev/null
nginx=$(docker ps -q --filter "label=com.docker.compose.project=$project" --filter label=io.radar-deploy.role=nginx | head -1)
[[ -n $nginx ]] || nginx=$project-nginx-1

# wrk's delay() runs before each request of a connection: connections/rate seconds apart, less
# the ~2 ms a request takes.
delay_ms=$(echo "$connections * 1000 / $rate - 2" | bc -l)
cat >"$work/pace.lua" <<EOT
function delay() return $delay_ms end
EOT
load_secs=$((secs * 3 + 30))
wrk -t2 -c"$connections" -d"${load_secs}s" -s "$work/pace.lua" "http://127.0.0.1:$port/health/backend" >"$work/wrk.txt" 2>&1 &
pids+=($!)
sleep 3

# CPU seconds (user + system) of a process so far.
cpu_of() { awk '{print ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$1/stat"; }

# Runs a command (its output to the file $1) for $secs seconds in the background and prints its
# CPU use in % of one core.
measure() {
  local out=$1
  shift
  "$@" >"$out" 2>&1 </dev/null &
  local pid=$! start end
  sleep 1
  start=$(cpu_of "$pid")
  sleep "$secs"
  end=$(cpu_of "$pid")
  # Ctrl-C for top (it leaves as it would for a person); docker stats ignores it off a terminal.
  kill -INT "$pid" 2>/dev/null || true
  sleep 1
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "($end - $start) * 100 / $secs" | bc -l | xargs printf '%.1f'
}

rps_now() { # nginx's requests/s over 5 s, from its stub_status
  local a b
  a=$(docker exec "$nginx" curl -s http://127.0.0.1/nginx_status | awk 'NR==3 {print $3}')
  sleep 5
  b=$(docker exec "$nginx" curl -s http://127.0.0.1/nginx_status | awk 'NR==3 {print $3}')
  echo $(((b - a) / 5))
}
echo "== load through nginx: $(rps_now) requests/s (wrk, $connections connections, paced for $rate)"

top_cpu=$(measure "$work/top.txt" "$bin" --env-file "$env_file" --project "$project" top)
logs_cpu=$(measure /dev/null docker logs -f --since 1s "$nginx")
# shellcheck disable=SC2046
stats_cpu=$(measure /dev/null docker stats $(docker ps -q --filter "label=com.docker.compose.project=$project"))

ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }
printf '\n%-52s %8s\n' "own CPU over ${secs} s (% of one core)" ""
printf '  %-50s %7s%%\n' "radar-deploy top" "$top_cpu"
printf '  %-50s %7s%%   top/this %s\n' "docker logs -f (nginx's log only)" "$logs_cpu" "$(ratio "$top_cpu" "${logs_cpu/#0.0/0.1}")"
printf '  %-50s %7s%%   top/this %s\n' "docker stats (CPU and memory only)" "$stats_cpu" "$(ratio "$top_cpu" "${stats_cpu/#0.0/0.1}")"

python3 - "$work/top.txt" <<'PY'
import re, statistics, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
refresh = [float(v) for v in re.findall(r"refreshed in ([\d.]+)ms", text)]
refresh += [float(v) * 1000 for v in re.findall(r"refreshed in ([\d.]+)s", text)]
lag = [float(v) for v in re.findall(r"log lines ([\d.]+)ms late", text)]
lag += [float(v) * 1000 for v in re.findall(r"log lines ([\d.]+)s late", text)]
rps = [float(v) for v in re.findall(r"^nginx\s+([\d.]+) req/s", text, re.M)]
if not refresh:
    sys.exit("error: top printed no screen:\n" + text[-2000:])
print(f"\ntop's screens: {len(refresh)}; its nginx line said {statistics.median(rps):.0f} req/s (median)")
print(f"  time to gather a screen: median {statistics.median(refresh):.0f} ms, max {max(refresh):.0f} ms")
if lag:
    print(f"  nginx's log lines reached top (p95 per screen): median {statistics.median(lag):.1f} ms, max {max(lag):.1f} ms")
PY

# The paced load does not hold its rate on a busy 2-core machine: its rate now, beside the
# snapshots' counts (and top's median above), says which figure moved.
echo "== load through nginx now: $(rps_now) requests/s"
for w in 10 60; do
  start=$(date +%s.%N)
  rd top --format json --window "$w" >"$work/snap.json"
  end=$(date +%s.%N)
  n=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['balancer']['requests'])" "$work/snap.json")
  printf 'top --format json --window %-3s %6.2f s wall (%s requests read back)\n' "$w" "$(echo "$end - $start" | bc -l)" "$n"
done
