#!/usr/bin/env bash
# What HTTPS at the front door costs. A benchmark that prints figures; not a test.
#
# 1. One stack (APP_INSTANCES, default 2), first with TLS_MODE=off, then the same stack with
#    TLS_MODE=files (a CA and an ECDSA P-256 leaf for app.radar.test made here with openssl):
#    `wrk` through nginx on nginx's own /health (nginx and TLS alone) and /health/backend
#    (through to an instance), over HTTP, then over HTTPS:
#      - keep-alive: requests/s, mean and 99th-percentile latency;
#      - a new connection per request (`Connection: close`): over HTTPS every request is a full
#        TLS handshake (nginx keeps no session tickets and wrk resumes no session);
#    and each HTTPS/HTTP ratio. (With TLS on, plain HTTP redirects everything but /health, so
#    the HTTP figures are taken before it is turned on: same instances, same nginx image.)
# 2. Time to first certificate with TLS_MODE=acme against Debian's pebble on this machine
#    (validating through the stack's own nginx): a fresh `up --no-verify` with TLS_MODE=acme,
#    its wall time, when (from its start) the certificate was issued, and the same fresh `up`
#    with TLS off, as a ratio (medians of RUNS of each, alternated).
#
#   scripts/bench-https.sh
#   RADAR_BIN=path/to/radar-deploy        use this binary instead of building a release one
#   DURATION                              seconds of each wrk run (default 10)
#   CONNECTIONS, THREADS                  wrk's -c and -t (default 16 and 2)
#   RUNS                                  fresh `up`s of each kind for part 2 (default 3)
#   NGINX_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, APP_IMAGE   images (default: the offline ones)
#
# Needs: docker, openssl, curl, bc, python3, wrk (Debian: `apt-get install wrk`) and, for the
# ACME part, pebble and pebble-challtestsrv (Debian: `apt-get install pebble`).
# wrk speaks HTTP/1.1 only, also over TLS: the HTTPS figures are HTTP/1.1 over TLS 1.3.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in wrk openssl curl bc python3 pebble pebble-challtestsrv; do
  if ! command -v "$tool" >/dev/null; then
    echo "error: $tool is missing (Debian: apt-get install ${tool/pebble-challtestsrv/pebble})" >&2
    exit 2
  fi
done

duration=${DURATION:-10}
runs=${RUNS:-3}
connections=${CONNECTIONS:-16}
threads=${THREADS:-2}
host=app.radar.test
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
APP_INSTANCES=${APP_INSTANCES:-2}
bench_setup
project=rdbench-https-$$
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
https_port=$(free_port)
current_env=$env_file
rd() { "$bin" --env-file "$current_env" --project "$project" "$@"; }
pids=()
cleanup() {
  rd --quiet down --volumes >/dev/null 2>&1 || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- a CA and a leaf for app.radar.test (ECDSA P-256, as most sites now serve) ---
pki=$work/pki
mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout ca.key -out ca.pem -subj "/CN=radar-deploy bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout leaf.key -out leaf.csr -subj "/CN=$host"
  printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$host" >leaf.ext
  openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile leaf.ext -out leaf.pem
) >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log" >&2; exit 2; }

env_files=$work/files.env
cp "$env_file" "$env_files"
cat >>"$env_files" <<EOT
TLS_MODE=files
PUBLIC_HOSTS=$host
HTTPS_PORT=$https_port
TLS_CERT_FILE=$pki/leaf.pem
TLS_KEY_FILE=$pki/leaf.key
ACME_CA_FILE=$pki/ca.pem
EOT

# wrk's figures: "req/s mean_latency p99_latency errors" (latencies as wrk prints them).
bench() {
  local url=$1
  shift
  local out
  out=$(wrk --latency -t"$threads" -c"$connections" -d"${duration}s" "$@" "$url")
  local rps mean p99 errors
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  mean=$(awk '$1 == "Latency" {print $2; exit}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
  echo "$rps $mean $p99 $errors"
}

# Latency in ms from wrk's "1.23ms", "456.00us", "1.02s".
ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 }
    else print v }'
}

ratio() { echo "scale=3; $1 / $2" | bc -l | sed 's/^\./0./'; }

declare -A figures
measure() { # name url [wrk args...]
  local name=$1
  shift
  figures[$name]=$(bench "$@")
  read -r rps mean p99 errors <<<"${figures[$name]}"
  printf '  %-44s %10s req/s   mean %8s   p99 %8s   errors %s\n' "$name" "$rps" "$mean" "$p99" "$errors"
}

compare() { # label https_name http_name

  read -r a_rps a_mean a_p99 _ <<<"${figures[$2]}"
  read -r b_rps b_mean b_p99 _ <<<"${figures[$3]}"
  printf '  %-44s req/s %sx   mean latency %sx   p99 %sx\n' "$1" \
    "$(ratio "$a_rps" "$b_rps")" "$(ratio "$(ms "$a_mean")" "$(ms "$b_mean")")" \
    "$(ratio "$(ms "$a_p99")" "$(ms "$b_p99")")"
}

echo "wrk -t$threads -c$connections -d${duration}s, $APP_INSTANCES instances, $(nproc) cores (shared: other load on this machine shows in the figures)"

# --- 1. the same stack over HTTP, then over HTTPS ---
timed rd up --no-verify >/dev/null
http=http://127.0.0.1:$port
echo "HTTP (TLS_MODE=off):"
measure "HTTP  /health          keep-alive" "$http/health"
measure "HTTP  /health/backend  keep-alive" "$http/health/backend"
measure "HTTP  /health          new connection each" "$http/health" -H "Connection: close"
measure "HTTP  /health/backend  new connection each" "$http/health/backend" -H "Connection: close"

current_env=$env_files
files_up=$(timed rd up)
code=$(curl -sS -o /dev/null -w '%{http_code} %{ssl_verify_result}' --cacert "$pki/ca.pem" \
  --resolve "$host:$https_port:127.0.0.1" "https://$host:$https_port/health/backend")
[[ $code == "200 0" ]] || { echo "error: HTTPS /health/backend answered '$code'" >&2; exit 2; }
echo "HTTPS (TLS_MODE=files, ECDSA P-256 leaf; \`up\` from TLS off to on, verified over HTTPS: $(printf '%.1f' "$files_up") s):"
https=https://127.0.0.1:$https_port
measure "HTTPS /health          keep-alive" "$https/health" -H "Host: $host"
measure "HTTPS /health/backend  keep-alive" "$https/health/backend" -H "Host: $host"
measure "HTTPS /health          new handshake each" "$https/health" -H "Host: $host" -H "Connection: close"
measure "HTTPS /health/backend  new handshake each" "$https/health/backend" -H "Host: $host" -H "Connection: close"
echo "HTTPS / HTTP:"
compare "/health          keep-alive" "HTTPS /health          keep-alive" "HTTP  /health          keep-alive"
compare "/health/backend  keep-alive" "HTTPS /health/backend  keep-alive" "HTTP  /health/backend  keep-alive"
compare "/health          new connection each" "HTTPS /health          new handshake each" "HTTP  /health          new connection each"
compare "/health/backend  new connection each" "HTTPS /health/backend  new handshake each" "HTTP  /health/backend  new connection each"
# openssl's own count of full handshakes (no request), one connection at a time.
s_time=$(openssl s_time -connect "127.0.0.1:$https_port" -new -time 5 2>/dev/null |
  awk '/connections in .* real seconds/ {print $1 / $4}' | head -1)
echo "  openssl s_time -new (one at a time, no resumption): ${s_time:-?} handshakes/s"
rd --quiet down --volumes >/dev/null

# --- 2. time to first certificate against pebble ---
pebble_dir=$work/pebble
mkdir -p "$pebble_dir"
(
  cd "$pebble_dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout ca.key -out ca.pem -subj "/CN=bench ACME directory CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout key.pem -out cert.csr -subj "/CN=127.0.0.1"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >cert.ext
  openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile cert.ext -out cert.pem
) >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log" >&2; exit 2; }
dir_port=$(free_port)
mgmt_port=$(free_port)
dns_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$pebble_dir/config.json" <<EOT
{"pebble": {"listenAddress": "127.0.0.1:$dir_port", "managementListenAddress": "127.0.0.1:$mgmt_port",
 "certificate": "$pebble_dir/cert.pem", "privateKey": "$pebble_dir/key.pem",
 "httpPort": $port, "tlsPort": $(free_port), "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOT
# The mock DNS answers every name with 127.0.0.1, where the stack's HTTP_PORT is published.
pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns_port" \
  -http01 "" -https01 "" -tlsalpn01 "" -management "127.0.0.1:$(free_port)" \
  >"$pebble_dir/challtestsrv.log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
  pebble -config "$pebble_dir/config.json" -dnsserver "127.0.0.1:$dns_port" \
  >"$pebble_dir/pebble.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf --cacert "$pebble_dir/ca.pem" "https://127.0.0.1:$mgmt_port/roots/0" >/dev/null 2>&1 && break
  sleep 0.1
done
# Trusted: pebble's directory and (for the HTTPS check after) its issuing CA.
{
  cat "$pebble_dir/ca.pem"
  curl -sSf --cacert "$pebble_dir/ca.pem" "https://127.0.0.1:$mgmt_port/roots/0"
  curl -sSf --cacert "$pebble_dir/ca.pem" "https://127.0.0.1:$mgmt_port/intermediates/0"
} >"$pebble_dir/trusted.pem"
env_acme=$work/acme.env
cp "$env_file" "$env_acme"
cat >>"$env_acme" <<EOT
TLS_MODE=acme
PUBLIC_HOSTS=$host
HTTPS_PORT=$https_port
ACME_DIRECTORY_URL=https://127.0.0.1:$dir_port/dir
ACME_CA_FILE=$pebble_dir/trusted.pem
EOT
# Fresh `up --no-verify`s, alternately with TLS off and TLS_MODE=acme (each on new volumes, so
# a new ACME account and the placeholder every time), RUNS of each; medians.
: >"$work/off.times"
: >"$work/acme.times"
: >"$work/stack.times"
: >"$work/issued.times"
: >"$work/order.times"
for _ in $(seq "$runs"); do
  current_env=$env_file
  timed rd up --no-verify >>"$work/off.times"
  rd --quiet down --volumes >/dev/null
  current_env=$env_acme
  # Each line of `up`'s output stamped with the seconds since it started.
  start=$(date +%s.%N)
  if ! rd up --no-verify 2>&1 | while IFS= read -r line; do
    printf '%s %s\n' "$(echo "$(date +%s.%N) - $start" | bc -l)" "$line"
  done >"$work/acme-up.log" || ! grep -q "certificate issued" "$work/acme-up.log"; then
    echo "error: up with TLS_MODE=acme failed:" >&2
    cat "$work/acme-up.log" "$pebble_dir/pebble.log" >&2
    exit 2
  fi
  tail -1 "$work/acme-up.log" | awk '{print $1}' >>"$work/acme.times"
  awk '/ is up: / {print $1; exit}' "$work/acme-up.log" >>"$work/stack.times"
  awk '/certificate issued/ {print $1; exit}' "$work/acme-up.log" >>"$work/issued.times"
  grep -o 'issued in [0-9.]*s' "$work/acme-up.log" | head -1 | tr -dc '0-9.\n' >>"$work/order.times"
  issuer=$(openssl s_client -connect "127.0.0.1:$https_port" -servername "$host" </dev/null 2>/dev/null |
    openssl x509 -noout -issuer)
  rd --quiet down --volumes >/dev/null
done
off_up=$(median <"$work/off.times")
acme_up=$(median <"$work/acme.times")
echo "Time to first certificate (TLS_MODE=acme, pebble on this machine, fresh stack, up --no-verify; medians of $runs):"
printf '  stack up (placeholder certificate) after    %6.1f s\n' "$(median <"$work/stack.times")"
printf '  certificate issued and nginx reloaded after %6.1f s   (the ACME order itself: %s s)\n' "$(median <"$work/issued.times")" "$(median <"$work/order.times")"
printf '  up with TLS_MODE=acme                       %6.1f s   (served: %s)\n' "$acme_up" "$issuer"
printf '  the same fresh up with TLS off              %6.1f s\n' "$off_up"
printf '  acme / off                                  %6sx\n' "$(ratio "$acme_up" "$off_up")"
