#!/usr/bin/env bash
# Builds the reference app (`radar-app`) as a fully static binary and packages it FROM scratch as
# radar-deploy/radar-app:<version> and :latest (DESIGN.md §5, §9).
#
# Idempotent: the image carries the sha256 of the binary and of the Dockerfile in labels; when an
# image with the same two digests already exists, the docker build is skipped (only the tags are
# refreshed). Cargo itself rebuilds nothing when the sources did not change.
#
# Environment: CARGO_TARGET_DIR (honoured), RADAR_APP_IMAGE (default radar-deploy/radar-app).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target=x86_64-unknown-linux-gnu
image="${RADAR_APP_IMAGE:-radar-deploy/radar-app}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
digest_label=io.radar-deploy.app.binary-sha256
dockerfile_label=io.radar-deploy.app.dockerfile-sha256

# crt-static links glibc statically: the binary runs in an empty image, and glibc's resolver
# still resolves container names on a user-defined network (seen here, DESIGN.md §9).
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --target "$target" --bin radar-app

binary="${CARGO_TARGET_DIR:-$root/target}/$target/release/radar-app"
[[ -x "$binary" ]] || { echo "build-app-image: $binary was not built" >&2; exit 2; }
if command -v readelf >/dev/null && readelf -l "$binary" | grep -q 'Requesting program interpreter'; then
    echo "build-app-image: $binary is dynamically linked; it cannot run FROM scratch" >&2
    exit 2
fi

digest="$(sha256sum "$binary" | cut -d' ' -f1)"
dockerfile="$root/scripts/app-image/Dockerfile"
dockerfile_digest="$(sha256sum "$dockerfile" | cut -d' ' -f1)"
existing="$(docker image inspect \
    --format "{{ index .Config.Labels \"$digest_label\" }} {{ index .Config.Labels \"$dockerfile_label\" }}" \
    "$image:$version" 2>/dev/null || true)"
if [[ "$existing" == "$digest $dockerfile_digest" ]]; then
    docker tag "$image:$version" "$image:latest"
    echo "build-app-image: $image:$version is up to date (binary sha256 $digest)"
    exit 0
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/radar-app"
cp "$dockerfile" "$context/Dockerfile"
mkdir -p "$context/var/log/app"
docker build \
    --build-arg "VERSION=$version" \
    --label "$digest_label=$digest" \
    --label "$dockerfile_label=$dockerfile_digest" \
    --tag "$image:$version" \
    --tag "$image:latest" \
    "$context"
echo "build-app-image: built $image:$version and $image:latest (binary sha256 $digest)"
