#!/usr/bin/env bash
# Runs each fault drill ROUNDS times against one stack (brought up here, removed at the end)
# and prints a table: fault → failed requests / longest gap / time to verified (min / median /
# max over the rounds), and for `drill instance` the time from healthy to serving through
# nginx again (a crashed instance back in rotation). Not a test: timings are noisy.
#
#   scripts/bench-drills.sh [ROUNDS]      (default 3)
#   DRILLS="instance nginx"               only these (default: every single-host drill)
#   DURATION=S                            each drill's --duration (default 8)
#   RADAR_BIN=path/to/radar-deploy        use this binary instead of building a release one
#   NGINX_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, APP_IMAGE   images (default: the offline ones)
#
# A new drill is one more word in the default DRILLS below and, if it needs flags of its
# own, one more line in drill_args.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
drills=${DRILLS:-instance postgres nginx redis network memory}
duration=${DURATION:-8}
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

bench_setup
project=rdbench-drills-$$
rd() { "$bin" --env-file "$env_file" --project "$project" --no-color "$@"; }
cleanup() {
  rd down --volumes >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Flags beyond --duration, per drill. The budgets are left at their defaults: the table
# shows what the defaults are judged against.
drill_args() {
  case $1 in
    network) echo "--cut-secs 5" ;;
    *) echo "" ;;
  esac
}

printf "up: %.2fs\n" "$(timed rd up --no-verify --timeout 300)"
for d in $drills; do
  for ((i = 1; i <= rounds; i++)); do
    json=$work/$d-$i.json
    # shellcheck disable=SC2046 # the flags are words
    rd drill "$d" --duration "$duration" $(drill_args "$d") --format json >"$json" 2>"$work/$d-$i.log" || true
    if ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$json" 2>/dev/null; then
      echo "error: drill $d (round $i) wrote no report:" >&2
      cat "$work/$d-$i.log" >&2
      exit 2
    fi
    # One line per run: failed, longest gap (any client), worst client's gap, time to
    # verified, serving − healthy (instance), passed. Times in seconds; "-" when absent.
    python3 - "$json" >>"$work/$d.rows" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
rc = r["recovery"]
s = lambda ms: "-" if ms is None else "%.2f" % (ms / 1000)
worst = max([g["ms"] for g in r["client_gaps"]] or [0])
back = None
if rc.get("serving_after_ms") is not None and rc.get("healthy_after_ms") is not None:
    back = rc["serving_after_ms"] - rc["healthy_after_ms"]
print(r["failures"]["total"], s(r["longest_gap"]["ms"]), s(worst),
      s(rc.get("verified_after_ms")), s(back) if r["drill"] == "instance" else "-",
      "pass" if r["passed"] else "FAIL")
EOF
    printf 'drill %-8s round %d: %s\n' "$d" "$i" "$(tail -1 "$work/$d.rows")"
  done
done

# min / median / max of column N of a drill's rows ("-" when never measured).
spread() {
  local vals
  vals=$(awk -v c="$2" '$c != "-" {print $c}' "$work/$1.rows")
  if [[ -z $vals ]]; then echo "-"; return; fi
  local mid
  mid=$(median <<<"$vals")
  [[ $2 == 1 ]] && mid=${mid%.00} # request counts: whole unless the median falls between two
  printf '%s / %s / %s' "$(sort -g <<<"$vals" | head -1)" "$mid" "$(sort -g <<<"$vals" | tail -1)"
}

echo
echo "$rounds rounds each, --duration $duration, $(( ${APP_INSTANCES:-3} + 3 ))-container stack (min / median / max):"
printf '| %-8s | %-18s | %-24s | %-24s | %-24s | %-6s |\n' fault "failed requests" "longest gap, any (s)" "worst client gap (s)" "time to verified (s)" passed
printf '|%s|%s|%s|%s|%s|%s|\n' ---------- -------------------- -------------------------- -------------------------- -------------------------- --------
for d in $drills; do
  passed=$(grep -c ' pass$' "$work/$d.rows" || true)
  printf '| %-8s | %-18s | %-24s | %-24s | %-24s | %s/%s    |\n' "$d" "$(spread "$d" 1)" "$(spread "$d" 2)" "$(spread "$d" 3)" "$(spread "$d" 4)" "$passed" "$rounds"
done
if [[ " $drills " == *" instance "* ]]; then
  echo
  echo "drill instance: serving through nginx − healthy again (s): $(spread instance 5)"
fi
