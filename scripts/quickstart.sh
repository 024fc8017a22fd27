#!/usr/bin/env bash
# From a fresh clone to a running, verified stack on the built-in defaults:
# build radar-deploy, provide the images (official ones when a registry answers, otherwise
# built offline from Debian packages), write the env file if there is none, deploy. The
# reference app's image is built by `up` itself, inside Docker, with APP_BUILDER_IMAGE.
set -euo pipefail
cd "$(dirname "$0")/.."

env_file=${RADAR_ENV_FILE:-.env.multi-instance}
say() { printf '==> %s\n' "$*"; }

say "building radar-deploy (release)"
cargo build --release --quiet --bin radar-deploy
bin=target/release/radar-deploy

if [[ ! -f $env_file ]]; then
  say "writing $env_file with generated secrets"
  "$bin" --env-file "$env_file" init
fi

# Sets NAME=value in the env file, replacing an existing assignment.
set_var() {
  local name=$1 value=$2 tmp
  tmp=$(mktemp "$env_file.XXXXXX")
  grep -v "^${name}=" "$env_file" > "$tmp" || true
  printf '%s=%s\n' "$name" "$value" >> "$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$env_file"
}

# The image each service will use: the env file's choice, else the default.
image_of() {
  local name=$1 default=$2 v
  v=$(grep -E "^${name}=" "$env_file" | tail -n1 | cut -d= -f2- | tr -d "'\"")
  printf '%s' "${v:-$default}"
}

offline=0
for pair in NGINX_IMAGE=nginx:stable-bookworm REDIS_IMAGE=redis:7.2-bookworm POSTGRES_IMAGE=postgres:15-bookworm; do
  image=$(image_of "${pair%%=*}" "${pair#*=}")
  if docker image inspect "$image" >/dev/null 2>&1; then continue; fi
  say "pulling $image"
  if ! timeout 300 docker pull --quiet "$image"; then
    say "no registry answered for $image: building offline images from Debian packages"
    offline=1
    break
  fi
done

if (( offline )); then
  scripts/offline-images.sh
  set_var NGINX_IMAGE radar-offline/nginx:bookworm
  set_var REDIS_IMAGE radar-offline/redis:bookworm
  set_var POSTGRES_IMAGE radar-offline/postgres:bookworm
  set_var APP_BUILDER_IMAGE radar-offline/rust:bookworm
fi

say "deploying"
exec "$bin" --env-file "$env_file" up "$@"
