#!/usr/bin/env bash
# Builds registry-free stand-ins for the official nginx, redis and postgres images, for machines
# that reach a Debian mirror but no image registry (see docs/design.md §9):
#
#   radar-offline/base:bookworm      debootstrap --variant=minbase rootfs, `docker import`ed
#   radar-offline/nginx:bookworm     behaves like nginx:stable-bookworm
#   radar-offline/redis:bookworm     behaves like redis:7.2-bookworm
#   radar-offline/postgres:bookworm  behaves like postgres:15-bookworm
#   radar-offline/thirdparty-web:bookworm  Python's http.server from Debian's packages: an app
#                                    that knows nothing of radar-deploy (own paths, port, user)
#   radar-offline/rust:bookworm      stands in for rust:1-bookworm as APP_BUILDER_IMAGE: its own
#                                    minbase rootfs (gcc, libc6-dev), this machine's Rust toolchain
#                                    where the official image has it, and the reference app's
#                                    crates vendored (containers here reach no crates registry)
#
# The thin images are built from scripts/offline-images/{nginx,redis,postgres}/. The reference
# app's image itself is built by `radar-deploy up` (with APP_BUILDER_IMAGE=radar-offline/rust:bookworm).
# Idempotent: an image is rebuilt only when it is missing, when its build inputs changed (a hash
# of them is stored in a label) or with --force. Needs root (debootstrap, chroot) and a Docker
# daemon. The Debian mirror is the one apt on this machine is configured with.
#
# usage: scripts/offline-images.sh [--force] [--no-app] [-q]
#        (RADAR_OFFLINE_PREFIX=name builds name/{base,nginx,redis,postgres,rust}:bookworm instead)
set -euo pipefail

usage() {
  sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p}}' "${BASH_SOURCE[0]}"
  cat <<'EOF'
  --force    rebuild every image, even when it exists and is up to date
  --no-app   do not make the app's builder image (radar-offline/rust:bookworm)
  -q         less output
EOF
}

force=0
app=1
quiet=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    --no-app) app=0 ;;
    -q|--quiet) quiet=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "offline-images: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
contexts=$here/offline-images
suite=bookworm
# RADAR_OFFLINE_PREFIX names another set of images (e.g. to time a cold build, or to build a
# candidate without moving the tags that running tests use).
prefix=${RADAR_OFFLINE_PREFIX:-radar-offline}
base_image=$prefix/base:$suite
label=io.radar-deploy.offline
hash_label=io.radar-deploy.offline.inputs
# Debian packages of the base rootfs. postgresql pulls locales (en_US.UTF-8 is generated, as the
# official postgres image does); gosu is what the official images use to drop root; gettext-base
# gives envsubst for nginx templates; xz-utils/zstd let postgres init scripts be compressed;
# libnss-wrapper lets postgres initdb run under an arbitrary --user, as in the official image.
packages=(nginx-light redis-server redis-sentinel postgresql curl ca-certificates
          gosu locales gettext-base xz-utils zstd less libnss-wrapper)

log() { [[ $quiet == 1 ]] || echo "offline-images: [${SECONDS}s] $*" >&2; }
die() { echo "offline-images: error: $*" >&2; exit 2; }

[[ $prefix =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] \
  || die "RADAR_OFFLINE_PREFIX='$prefix' is not a valid image repository name"

# The legacy builder works with every docker CLI/daemon pair seen here (no buildx plugin needed).
export DOCKER_BUILDKIT=0

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable (is it running? DOCKER_HOST=${DOCKER_HOST:-unset})"

# One build at a time on this machine: a second run (another test suite, another engineer)
# waits for the first and then finds the images up to date.
lock=${TMPDIR:-/tmp}/radar-offline-images.lock
exec 9>>"$lock"
if ! flock -n 9; then
  log "another offline-images run holds $lock; waiting for it"
  flock 9
fi

# The label value of an existing image, or nothing when the image does not exist.
image_inputs() {
  docker image inspect -f "{{ index .Config.Labels \"$hash_label\" }}" "$1" 2>/dev/null || true
}

hash_stdin() { sha256sum | cut -c1-16; }

# ---------------------------------------------------------------- base image (debootstrap + import)

# Everything that decides the content of the rootfs; the customisation below is part of this file,
# so the file's own hash is part of it too.
base_inputs=$( { echo "$suite"; printf '%s\n' "${packages[@]}"; sed -n '/^# >>> rootfs/,/^# <<< rootfs/p' "${BASH_SOURCE[0]}"; } | hash_stdin)

mirror_uri() {
  # The URI of the main Debian archive, as apt on this machine already uses it (deb822 .sources
  # files or one-line sources.list). Never hard-code a host name here.
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | sed -E 's/\[[^]]*\] *//' || true
  } | awk '{print $2}' | grep -v -- '-security' | grep -E '/debian/?$' | head -n1 || true
}

work=
cleanup() {
  local rc=$?
  if [[ -n $work && -d $work ]]; then
    # debootstrap mounts proc/sys inside the target; a failed run can leave them mounted.
    local m
    for m in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
      umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$work"
  fi
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# >>> rootfs (everything between these markers is hashed into the base image's inputs label)
renumber_user() { # rootfs user new-uid
  local r=$1 name=$2 new=$3 old
  old=$(chroot "$r" id -u "$name") || return 0
  [[ $old != "$new" ]] || return 0
  chroot "$r" usermod -u "$new" "$name" >/dev/null
  find "$r" -xdev -uid "$old" -exec chown -h "$new" {} +
}
renumber_group() { # rootfs group new-gid
  local r=$1 name=$2 new=$3 old
  old=$(chroot "$r" getent group "$name" | cut -d: -f3) || return 0
  [[ -n $old && $old != "$new" ]] || return 0
  chroot "$r" groupmod -g "$new" "$name"
  find "$r" -xdev -gid "$old" -exec chgrp -h "$new" {} +
}
customise_rootfs() {
  local r=$1
  # The distribution's main cluster is not wanted: the entrypoint creates one in $PGDATA.
  rm -rf "$r"/var/lib/postgresql/[0-9]* "$r"/etc/postgresql/[0-9]*
  sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
    "$r"/etc/postgresql-common/createcluster.conf
  # The official images' user ids where the packages chose others: postgres 999:999 (as in the
  # postgres image; the redis image moves it aside for its redis 999:999) and the ssl-cert group
  # off gid 101, which the nginx image needs for its nginx group.
  renumber_group "$r" ssl-cert 998
  renumber_group "$r" postgres 999
  renumber_user "$r" postgres 999
  # en_US.UTF-8, like the official postgres image (which sets LANG=en_US.utf8).
  echo 'en_US.UTF-8 UTF-8' > "$r"/etc/locale.gen
  chroot "$r" locale-gen >/dev/null
  # No daemons may be started by package scripts inside a container build.
  printf '#!/bin/sh\nexit 101\n' > "$r"/usr/sbin/policy-rc.d
  chmod 0755 "$r"/usr/sbin/policy-rc.d
  # Nothing that names this machine or its mirror goes into the image.
  printf '# offline image: no package sources configured\n' > "$r"/etc/apt/sources.list
  rm -f "$r"/etc/resolv.conf "$r"/etc/hostname
  : > "$r"/etc/resolv.conf
  echo localhost > "$r"/etc/hostname
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$r"/etc/hosts
  # Smaller: apt caches and lists, logs, docs (copyright files stay), man pages, translations.
  rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/var/cache/debconf/*-old \
         "$r"/var/log/* "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/lintian \
         "$r"/var/cache/man "$r"/tmp/* "$r"/var/tmp/* "$r"/root/.bash_history
  find "$r"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  find "$r"/usr/share/doc -mindepth 1 -type d -empty -delete
  find "$r"/usr/share/locale -mindepth 1 -maxdepth 1 -type d -not -name 'en*' -exec rm -rf {} +
  mkdir -p "$r"/var/lib/apt/lists/partial "$r"/var/cache/apt/archives/partial
}
# <<< rootfs

build_base() {
  command -v debootstrap >/dev/null || {
    [[ $(id -u) == 0 ]] || die "debootstrap is not installed and this is not root (run as root, or apt-get install debootstrap)"
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } \
      || die "could not install debootstrap with apt-get"
  }
  [[ $(id -u) == 0 ]] || die "debootstrap needs root"
  local mirror; mirror=$(mirror_uri)
  [[ -n $mirror ]] || die "no Debian mirror found in apt's sources (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list)"

  # /var/tmp rather than /tmp: the rootfs needs device nodes and exec, which a tmpfs /tmp may forbid.
  work=$(mktemp -d /var/tmp/radar-offline.XXXXXX)
  local rootfs=$work/rootfs
  local pkglist; pkglist=$(IFS=,; echo "${packages[*]}")
  log "debootstrap $suite (minbase + ${packages[*]}) from the configured apt mirror; about a minute"
  # Two stages, so that dpkg can skip its per-file fsync (force-unsafe-io) while installing: a
  # rootfs that is thrown away on failure needs no crash safety, and this saves a lot of time.
  if ! { debootstrap --foreign --variant=minbase --components=main --include="$pkglist" \
           "$suite" "$rootfs" "$mirror" &&
         mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d" &&
         echo force-unsafe-io > "$rootfs/etc/dpkg/dpkg.cfg.d/zz-radar-offline-build" &&
         { log "debootstrap second stage (installing)" 2>&3; } &&
         chroot "$rootfs" /debootstrap/debootstrap --second-stage; } 3>&2 >"$work/debootstrap.out" 2>&1; then
    tail -n 30 "$work/debootstrap.out" >&2
    [[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (output above)"
  fi
  rm -f "$rootfs/etc/dpkg/dpkg.cfg.d/zz-radar-offline-build"
  customise_rootfs "$rootfs"

  log "importing the rootfs as $base_image"
  tar -C "$rootfs" --numeric-owner --xattrs --exclude='./dev/*' --exclude='./proc/*' \
      --exclude='./sys/*' --exclude='./debootstrap' -cf - . \
    | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --change "LABEL $label=true" \
        --change "LABEL $hash_label=$base_inputs" \
        --message "debootstrap $suite minbase: ${packages[*]}" \
        - "$base_image" >/dev/null
  cleanup
  work=
}

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
superseded=()   # ids of images this run replaced, children first

if [[ $force == 1 || $(image_inputs "$base_image") != "$base_inputs" ]]; then
  old_base=$(image_id "$base_image")
  build_base
else
  log "$base_image is up to date"
fi

# ---------------------------------------------------------------- thin images (docker build)

base_id=$(docker image inspect -f '{{.Id}}' "$base_image")

# The three builds are independent: run them side by side (the legacy builder spends most of its
# time committing layers, not on CPU), then report every failure.
builds=()
for svc in nginx redis postgres; do
  ctx=$contexts/$svc
  image=$prefix/$svc:$suite
  [[ -f $ctx/Dockerfile ]] || die "missing build context $ctx/Dockerfile"
  # Inputs: every file of the context (names, modes and contents) and the base image id.
  inputs=$( { echo "$base_id"
              (cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum
               find . -type f -printf '%p %m\n' | sort); } | hash_stdin)
  if [[ $force == 0 && $(image_inputs "$image") == "$inputs" ]]; then
    log "$image is up to date"
    continue
  fi
  log "building $image"
  old=$(image_id "$image")
  [[ -z $old ]] || superseded+=("$old")
  [[ -n $work ]] || work=$(mktemp -d /var/tmp/radar-offline.XXXXXX)
  # $label=true is inherited from the base image (one --label less = one layer commit less)
  docker build --pull=false --force-rm --build-arg "BASE_IMAGE=$base_image" \
    --label "$hash_label=$inputs" -t "$image" "$ctx" >"$work/$svc.log" 2>&1 &
  builds+=("$svc:$!")
done
failed=()
for b in "${builds[@]}"; do
  svc=${b%%:*}
  if ! wait "${b#*:}"; then
    cat "$work/$svc.log" >&2
    failed+=("$prefix/$svc:$suite")
  fi
done
[[ -z ${old_base:-} ]] || superseded+=("$old_base")
(( ${#failed[@]} == 0 )) || die "docker build failed for ${failed[*]} (output above)"
for svc in nginx redis postgres; do
  [[ $(docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$prefix/$svc:$suite") == true ]] \
    || die "$prefix/$svc:$suite lacks the label $label=true"
done

# The images this run replaced, children before parents, once nothing is tagged with them and
# no container uses them (a container of an older image keeps it; nothing else is touched).
for id in "${superseded[@]}"; do
  if [[ $(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null) == 0 ]]; then
    docker rmi "$id" >/dev/null 2>&1 || true
  fi
done

# ---------------------------------------------------------------- a third-party app (thirdparty-web)

# radar-offline/thirdparty-web:bookworm: Python's http.server from Debian's packages, an app that
# knows nothing of radar-deploy (tests/integration/own_app.rs). The .debs are fetched on this
# machine (`apt-get download`, from the mirror apt is configured with) into a copy of the context:
# containers here reach no package registry. python3.11-minimal and the stdlib, and the libraries
# of theirs the base image lacks.
web_image=$prefix/thirdparty-web:$suite
web_packages=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libexpat1 libncursesw6
              libnsl2 libsqlite3-0 media-types)
web_ctx=$contexts/thirdparty-web
# Inputs: the context's files, the base image id and the exact .deb files apt would fetch (their
# names carry the versions), so a security update of python3.11 rebuilds the image.
web_inputs=$( { echo "$base_id"
                (cd "$web_ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum
                 find . -type f -printf '%p %m\n' | sort)
                apt-get download --print-uris "${web_packages[@]}" 2>/dev/null | awk '{print $2, $4}' | sort
              } | hash_stdin)
if [[ $force == 0 && $(image_inputs "$web_image") == "$web_inputs" ]]; then
  log "$web_image is up to date"
else
  log "building $web_image"
  old_web=$(image_id "$web_image")
  [[ -n $work ]] || work=$(mktemp -d /var/tmp/radar-offline.XXXXXX)
  cp -r "$web_ctx" "$work/thirdparty-web"
  mkdir -p "$work/thirdparty-web/debs"
  (cd "$work/thirdparty-web/debs" && apt-get download -q -o APT::Sandbox::User=root "${web_packages[@]}") \
    >"$work/thirdparty-web.log" 2>&1 \
    || { cat "$work/thirdparty-web.log" >&2; die "apt-get download failed for $web_image (output above)"; }
  docker build --pull=false --force-rm --build-arg "BASE_IMAGE=$base_image" \
    --label "$hash_label=$web_inputs" -t "$web_image" "$work/thirdparty-web" >>"$work/thirdparty-web.log" 2>&1 \
    || { cat "$work/thirdparty-web.log" >&2; die "docker build failed for $web_image (output above)"; }
  rm -rf "$work/thirdparty-web"
  [[ -z $old_web ]] || docker rmi "$old_web" >/dev/null 2>&1 || true
fi

# ---------------------------------------------------------------- builder image (APP_BUILDER_IMAGE)

rust_image=$prefix/rust:$suite
root=$(cd "$here/.." && pwd)
# What the official rust image brings that building the reference app statically needs: a C
# toolchain for linking (gcc pulls binutils, which has readelf) and glibc's static libraries.
rust_packages=(gcc libc6-dev ca-certificates)

# >>> rust (everything between these markers is hashed into the builder image's inputs label)
# The official image's layout: the toolchain under $RUSTUP_HOME/toolchains/<version>-<host>,
# cargo's home /usr/local/cargo with the tools on PATH. Only bin/ and lib/ of this machine's
# toolchain (its sysroot) are copied: no docs, no rustup.
install_toolchain() { # rootfs
  local r=$1 sysroot version host tc
  sysroot=$(cd "$root" && rustc --print sysroot)
  version=$(cd "$root" && rustc -vV | sed -n 's/^release: //p')
  host=$(cd "$root" && rustc -vV | sed -n 's/^host: //p')
  tc=/usr/local/rustup/toolchains/$version-$host
  mkdir -p "$r$tc" "$r"/usr/local/cargo/bin
  cp -a "$sysroot/bin" "$sysroot/lib" "$r$tc/"
  rm -rf "$r$tc"/lib/rustlib/src "$r$tc"/lib/rustlib/*/analysis
  local tool
  for tool in cargo rustc rustdoc; do
    if [[ -x $r$tc/bin/$tool ]]; then ln -s "$tc/bin/$tool" "$r/usr/local/cargo/bin/$tool"; fi
  done
  echo "$version"
}
# The reference app's dependencies, vendored on this machine (which reaches the crates registry), from
# the same manifest and lock file the build context carries (app/ alone, outside the
# workspace), and a cargo config that replaces the crates registry with them and never asks the network.
vendor_app_crates() { # rootfs scratch-dir
  local r=$1 tmp=$2/app-src
  mkdir -p "$tmp"
  cp -r "$root/app/Cargo.toml" "$root/app/src" "$tmp/"
  cp "$root/Cargo.lock" "$tmp/"
  (cd "$tmp" && cargo vendor --quiet "$r/usr/local/cargo/vendor" >/dev/null)
  cat > "$r"/usr/local/cargo/config.toml <<'EOT'
# Offline builder image (scripts/offline-images.sh): crates come from the vendored copy only.
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "/usr/local/cargo/vendor"

[net]
offline = true
EOT
}
customise_rust_rootfs() {
  local r=$1
  # Nothing that names this machine or its mirror goes into the image.
  printf '# offline image: no package sources configured\n' > "$r"/etc/apt/sources.list
  rm -f "$r"/etc/resolv.conf "$r"/etc/hostname
  : > "$r"/etc/resolv.conf
  echo localhost > "$r"/etc/hostname
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$r"/etc/hosts
  rm -rf "$r"/var/cache/apt/* "$r"/var/lib/apt/lists/* "$r"/var/log/* "$r"/usr/share/man/* \
         "$r"/usr/share/info/* "$r"/tmp/* "$r"/var/tmp/*
  find "$r"/usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  mkdir -p "$r"/var/lib/apt/lists/partial "$r"/var/cache/apt/archives/partial
}
# <<< rust

rust_inputs() {
  { echo "$suite"; printf '%s\n' "${rust_packages[@]}"
    (cd "$root" && rustc -vV)
    sha256sum "$root/Cargo.lock" "$root/app/Cargo.toml" | cut -d' ' -f1
    sed -n '/^# >>> rust/,/^# <<< rust/p' "${BASH_SOURCE[0]}"; } | hash_stdin
}

build_rust() {
  local inputs=$1
  command -v rustc >/dev/null && command -v cargo >/dev/null \
    || die "$rust_image copies this machine's Rust toolchain: rustc and cargo must be on PATH"
  [[ $(id -u) == 0 ]] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  local mirror; mirror=$(mirror_uri)
  [[ -n $mirror ]] || die "no Debian mirror found in apt's sources (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list)"
  cleanup
  work=$(mktemp -d /var/tmp/radar-offline.XXXXXX)
  local rootfs=$work/rootfs pkglist version
  pkglist=$(IFS=,; echo "${rust_packages[*]}")
  log "debootstrap $suite (minbase + ${rust_packages[*]}) for $rust_image"
  if ! { debootstrap --foreign --variant=minbase --components=main --include="$pkglist" \
           "$suite" "$rootfs" "$mirror" &&
         mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d" &&
         echo force-unsafe-io > "$rootfs/etc/dpkg/dpkg.cfg.d/zz-radar-offline-build" &&
         chroot "$rootfs" /debootstrap/debootstrap --second-stage; } >"$work/debootstrap.out" 2>&1; then
    tail -n 30 "$work/debootstrap.out" >&2
    die "debootstrap failed for $rust_image (output above)"
  fi
  rm -f "$rootfs/etc/dpkg/dpkg.cfg.d/zz-radar-offline-build"
  customise_rust_rootfs "$rootfs"
  log "copying this machine's Rust toolchain and vendoring the reference app's crates"
  version=$(install_toolchain "$rootfs")
  vendor_app_crates "$rootfs" "$work" || die "cargo vendor failed for the reference app (app/)"
  log "importing the rootfs as $rust_image (Rust $version)"
  tar -C "$rootfs" --numeric-owner --xattrs --exclude='./dev/*' --exclude='./proc/*' \
      --exclude='./sys/*' --exclude='./debootstrap' -cf - . \
    | docker import \
        --change 'ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo' \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "ENV RUST_VERSION=$version" \
        --change 'CMD ["bash"]' \
        --change "LABEL $label=true" \
        --change "LABEL $hash_label=$inputs" \
        --message "debootstrap $suite minbase: ${rust_packages[*]}; Rust $version; vendored crates of the reference app" \
        - "$rust_image" >/dev/null
  cleanup
  work=
}

if [[ $app == 1 ]]; then
  inputs=$(rust_inputs)
  if [[ $force == 1 || $(image_inputs "$rust_image") != "$inputs" ]]; then
    old_rust=$(image_id "$rust_image")
    build_rust "$inputs"
    # The replaced image, once no container uses it (a build in progress keeps it).
    [[ -z $old_rust ]] || docker rmi "$old_rust" >/dev/null 2>&1 || true
  else
    log "$rust_image is up to date"
  fi
fi

if [[ $quiet == 0 ]]; then
  images=(base nginx redis postgres thirdparty-web)
  [[ $app == 0 ]] || images+=(rust)
  for svc in "${images[@]}"; do
    docker image inspect -f "  $prefix/$svc:$suite {{.Size}}" "$prefix/$svc:$suite" \
      | awk '{printf "  %-32s %4d MB\n", $1, $2 / 1000000}' >&2
  done
fi
cat <<EOF
NGINX_IMAGE=$prefix/nginx:$suite
REDIS_IMAGE=$prefix/redis:$suite
POSTGRES_IMAGE=$prefix/postgres:$suite
EOF
[[ $app == 0 ]] || echo "APP_BUILDER_IMAGE=$rust_image"
