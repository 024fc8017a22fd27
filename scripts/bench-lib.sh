# Shared by the bench scripts (sourced, not run): bench_setup, then timed and median.

# Seconds taken by a command; its output is kept only when it fails (then the bench stops).
timed() {
  local start end log=$work/last.log
  start=$(date +%s.%N)
  if ! "$@" >"$log" 2>&1; then
    echo "error: $* failed:" >&2
    cat "$log" >&2
    exit 2
  fi
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

# Sets what every bench needs: $bin (RADAR_BIN, else a release build made now), $work (a
# temp dir) and $env_file in it (from `init`, plus the offline images or the *_IMAGE variables,
# APP_INSTANCES, default 3, and a free HTTP_PORT, also in $port).
bench_setup() {
  bin=${RADAR_BIN:-target/release/radar-deploy}
  if [[ -z ${RADAR_BIN:-} ]]; then
    cargo build --release --quiet --bin radar-deploy
  fi
  work=$(mktemp -d)
  env_file=$work/.env.multi-instance
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" --env-file "$env_file" init >/dev/null
  cat >>"$env_file" <<EOT
NGINX_IMAGE=${NGINX_IMAGE:-radar-offline/nginx:bookworm}
POSTGRES_IMAGE=${POSTGRES_IMAGE:-radar-offline/postgres:bookworm}
REDIS_IMAGE=${REDIS_IMAGE:-radar-offline/redis:bookworm}
APP_IMAGE=${APP_IMAGE:-radar-deploy/radar-app:0.1.0}
APP_BUILDER_IMAGE=${APP_BUILDER_IMAGE:-radar-offline/rust:bookworm}
APP_INSTANCES=${APP_INSTANCES:-3}
HTTP_PORT=$port
EOT
}
