#!/usr/bin/env bash
# A second Docker daemon on this machine, for tests/integration/drill_daemon.rs: `radar-deploy drill daemon`
# restarts the daemon a stack runs on, and this must never be the machine's own daemon
# (/var/run/docker.sock is never touched: not its configuration, its processes or its images).
# Built like one node of scripts/local-swarm.sh, with no swarm:
#
#   host bridge rdd0 10.236.0.1/24
#   └── netns rdd-1  eth0 10.236.0.11  dockerd -H unix:///run/rdd/docker.sock
#
# A stack on it publishes its ports on 10.236.0.11 (reached from the host over the bridge).
# The daemon's resolver is a dnsmasq on the bridge (10.236.0.1) that knows no name and answers
# at once, negatively, as a host's resolver on a real network does for a name it does not know:
# Docker's DNS forwards the names it does not know (a container not started yet) upstream, and
# an upstream that never answers would stall each such lookup for 10-20 s.
#
# The daemon has its own data root (/var/lib/rdd), exec root (/run/rdd/exec, where it runs its
# own containerd), pid file (/run/rdd/dockerd.pid), log (/run/rdd/dockerd.log), config file
# (/run/rdd/daemon.json, so /etc/docker/daemon.json does not apply) and cgroup parent (rdd-1:
# every process of the daemon, from dockerd down to the containers, is in the freezer cgroup
# rdd-1, so `down` finds whatever a killed daemon left). Its mounts live in a mount namespace
# of its own that outlives each dockerd process (/run/rdd/ns/mnt), as a host's mounts outlive a
# daemon restart: with live-restore, the containers' network namespaces and root filesystems
# must still be there for the restarted daemon. The images the stack needs are copied from the
# main daemon (`docker save | docker load`), as no registry is reachable.
#
# usage: scripts/local-daemon.sh up              start the daemon, copy the images (idempotent)
#        scripts/local-daemon.sh status          what exists
#        scripts/local-daemon.sh restart-daemon  what `systemctl restart docker` does: SIGTERM
#                                                to dockerd (it stops the containers unless
#                                                live-restore is on), wait for it to exit, start
#                                                it again, wait until it answers
#        scripts/local-daemon.sh down            stop the daemon, remove everything
#
# Environment: RDD_LIVE_RESTORE (false|true, default false: the daemon stops the containers
# when it stops and their restart policies bring them back; read by `up` and `restart-daemon`,
# which rewrite the config file), RDD_STORAGE_DRIVER (default overlay2), RDD_IMAGES
# (space-separated; default the offline images and the app image), RDD_TIMEOUT (seconds per
# wait, default 60).
set -euo pipefail

readonly BRIDGE=rdd0
readonly NET=10.236.0
readonly HOST_IP=$NET.1
readonly NODE_IP=$NET.11
readonly NS=rdd-1
readonly VETH=rdd1h
readonly STATE=/var/lib/rdd
readonly RUN=/run/rdd
readonly SOCK=$RUN/docker.sock
readonly PIDFILE=$RUN/dockerd.pid
readonly LOG=$RUN/dockerd.log
readonly CONF=$RUN/daemon.json
readonly EXEC_ROOT=$RUN/exec
readonly MNT_DIR=$RUN/ns
readonly MNT_NS=$MNT_DIR/mnt
readonly CGROUPS=/sys/fs/cgroup
readonly CG=$CGROUPS/freezer/$NS
readonly STORAGE_DRIVER=${RDD_STORAGE_DRIVER:-overlay2}
readonly TIMEOUT=${RDD_TIMEOUT:-60}
readonly LIVE_RESTORE=${RDD_LIVE_RESTORE:-false}
[[ $LIVE_RESTORE == true || $LIVE_RESTORE == false ]] || { echo "local-daemon: error: RDD_LIVE_RESTORE must be true or false, not '$LIVE_RESTORE'" >&2; exit 1; }
# The app image is the one the tests deploy (APP_IMAGE when set); it is built on the main daemon
# (by `radar-deploy up`, see .ci/run), since this daemon has no builder image.
read -r -a IMAGES <<<"${RDD_IMAGES:-radar-offline/nginx:bookworm radar-offline/redis:bookworm radar-offline/postgres:bookworm ${APP_IMAGE:-radar-deploy/radar-app:0.1.0}}"

t0=$SECONDS
say() { printf 'local-daemon: [%ss] %s\n' "$((SECONDS - t0))" "$*"; }
die() { printf 'local-daemon: error: %s\n' "$*" >&2; exit 1; }

dk() { docker -H "unix://$SOCK" "$@"; }
# The daemon the images come from: the one `docker` talks to, unless DOCKER_HOST names this one
# (as it does for the commands run against the stack).
main_dk() {
  if [[ ${DOCKER_HOST:-} == "unix://$SOCK" ]]; then env -u DOCKER_HOST docker "$@"; else docker "$@"; fi
}
answers() { dk info >/dev/null 2>&1; }

# A pid from a file, if that process is alive and its command line names `what`.
live_pid() {
  local file=$1 what=$2 pid
  [[ -s $file ]] || return 1
  pid=$(<"$file")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$what"* ]] || return 1
  echo "$pid"
}
dockerd_pid() { live_pid "$PIDFILE" "$SOCK"; }
containerd_pid() { live_pid "$EXEC_ROOT/containerd/containerd.pid" "$EXEC_ROOT/containerd"; }
dns_pid() { live_pid "$RUN/dns.pid" dnsmasq; }
has_ns() { [[ -e /run/netns/$NS ]]; }
mnt_ns_up() { grep -q " $MNT_NS " /proc/self/mountinfo 2>/dev/null; }

need() {
  [[ $EUID -eq 0 ]] || die "needs root (a network namespace, a bridge, dockerd)"
  local missing=()
  for c in ip nsenter unshare setsid timeout dockerd containerd runc docker dnsmasq; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  ((${#missing[@]} == 0)) || die "missing commands: ${missing[*]} (ip: apt-get install iproute2; dnsmasq: apt-get install dnsmasq-base)"
  [[ -d $CGROUPS/freezer ]] || die "no cgroup v1 freezer at $CGROUPS/freezer (down finds the daemon's processes by it)"
}

# ---- up ----

net_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$HOST_IP/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  has_ns || ip netns add "$NS"
  if ! ip link show "$VETH" >/dev/null 2>&1; then
    ip netns exec "$NS" ip link del eth0 2>/dev/null || true
    ip link add "$VETH" type veth peer name eth0 netns "$NS"
  fi
  ip link set "$VETH" master "$BRIDGE" up
  ip netns exec "$NS" ip link set lo up
  ip netns exec "$NS" ip addr replace "$NODE_IP/24" dev eth0
  ip netns exec "$NS" ip link set eth0 up
  # No default route: no registry is reachable anyway, and without a route an attempt to pull
  # fails at once instead of timing out.
  ip netns exec "$NS" ip route del default 2>/dev/null || true
  say "network: bridge $BRIDGE $HOST_IP/24, daemon's host $NODE_IP"
  if ! dns_pid >/dev/null; then
    # No upstream server, no hosts file: every query is answered at once, negatively.
    dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
      --listen-address="$HOST_IP" --except-interface=lo --pid-file="$RUN/dns.pid" \
      || die "dnsmasq could not listen on $HOST_IP:53"
    say "dns: dnsmasq (pid $(dns_pid || echo '?')) answers the daemon's lookups on $HOST_IP:53"
  fi
}

# The daemon's mount namespace, kept by a bind mount of its file so that it outlives every
# dockerd process (a bind mount of a namespace needs a private mount to live on).
mnt_ns_create() {
  mnt_ns_up && return
  mkdir -p "$MNT_DIR"
  if ! grep -q " $MNT_DIR " /proc/self/mountinfo; then
    mount --bind "$MNT_DIR" "$MNT_DIR"
    mount --make-private "$MNT_DIR"
  fi
  touch "$MNT_NS"
  # Mounts of the host propagate into it, none out of it.
  unshare --mount="$MNT_NS" --propagation slave true
}

write_config() {
  cat >"$CONF" <<EOF
{"storage-driver": "$STORAGE_DRIVER", "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "2"}, "live-restore": $LIVE_RESTORE}
EOF
}

# Starts dockerd in the daemon's network and mount namespaces and waits until it answers.
daemon_start() {
  dockerd_pid >/dev/null && die "dockerd (pid $(dockerd_pid)) runs but does not answer; run down first"
  mkdir -p "$STATE" "$EXEC_ROOT" "$CG"
  write_config
  # Not `ip netns exec`: it remounts /sys, which hides the cgroup mounts dockerd needs. dockerd
  # moves itself into the daemon's cgroup first, so its containerd, the shims and (through
  # --cgroup-parent) the containers are all in it.
  nsenter --net="/run/netns/$NS" --mount="$MNT_NS" unshare --uts \
    setsid bash -c 'echo $$ >"$1/cgroup.procs"; hostname "$2"; shift 2; exec "$@"' _ "$CG" "$NS" \
    dockerd --config-file "$CONF" \
    --data-root "$STATE" --exec-root "$EXEC_ROOT" --pidfile "$PIDFILE" \
    -H "unix://$SOCK" --cgroup-parent "/$NS" \
    --bip "172.29.0.1/24" --userland-proxy=false --dns "$HOST_IP" \
    </dev/null >>"$LOG" 2>&1 &
  local launched=$! deadline=$((SECONDS + TIMEOUT))
  until answers; do
    if ((SECONDS >= deadline)) || ! kill -0 "$launched" 2>/dev/null; then
      tail -n 30 "$LOG" >&2 || true
      die "dockerd exited or did not answer on $SOCK within ${TIMEOUT}s (log above: $LOG)"
    fi
    sleep 0.2
  done
}

daemon_up() {
  if answers; then
    say "dockerd already answers on $SOCK (pid $(dockerd_pid || echo '?'))"
    return
  fi
  mnt_ns_create
  daemon_start
  local driver
  driver=$(dk info --format '{{.Driver}}')
  [[ $driver == "$STORAGE_DRIVER" ]] || die "storage driver is $driver, not $STORAGE_DRIVER"
  say "dockerd pid $(dockerd_pid), containerd pid $(containerd_pid || echo '?'), storage driver $driver, live-restore $(dk info --format '{{.LiveRestoreEnabled}}')"
}

images_up() {
  local missing=() img todo=()
  for img in "${IMAGES[@]}"; do
    main_dk image inspect "$img" >/dev/null 2>&1 || missing+=("$img")
  done
  ((${#missing[@]} == 0)) || die "the main daemon lacks ${missing[*]}: build them with scripts/offline-images.sh (the app image: radar-deploy up)"
  for img in "${IMAGES[@]}"; do
    dk image inspect "$img" >/dev/null 2>&1 || todo+=("$img")
  done
  if ((${#todo[@]} == 0)); then
    say "images: already there"
    return
  fi
  local t=$SECONDS
  main_dk save "${todo[@]}" | dk load -q >"$RUN/load.log" 2>&1 \
    || die "docker save | docker load failed: $(cat "$RUN/load.log")"
  say "images: copied ${todo[*]} from the main daemon in $((SECONDS - t))s"
}

cmd_up() {
  need
  mkdir -p "$STATE" "$RUN"
  net_up
  daemon_up
  images_up
  say "up: DOCKER_HOST=unix://$SOCK; published ports on $NODE_IP"
}

# ---- restart-daemon ----

stop_pid() {
  local pid=$1 what=$2 grace=$3 deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      say "$what (pid $pid) did not stop in ${grace}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
}

cmd_restart_daemon() {
  need
  local pid
  pid=$(dockerd_pid) || die "no dockerd runs on $SOCK: run up first"
  mnt_ns_up || die "the daemon's mount namespace $MNT_NS is gone: run down, then up"
  # dockerd waits for its containers' stop timeouts (nginx: 30 s) before it gives up on them.
  stop_pid "$pid" dockerd 60
  say "dockerd (pid $pid) stopped"
  daemon_start
  say "dockerd (pid $(dockerd_pid)) answers again, live-restore $(dk info --format '{{.LiveRestoreEnabled}}')"
}

# ---- down ----

daemon_pids() {
  [[ -d $CG ]] || return 0
  find "$CG" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u
}

rm_cgroups() {
  local h
  for h in "$CGROUPS"/*/; do
    [[ -d $h$NS ]] || continue
    find "$h$NS" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ ! -d $h$NS ]] || say "warning: cgroup $h$NS not removed"
  done
}

cmd_down() {
  need
  local pid left
  if pid=$(dockerd_pid); then
    stop_pid "$pid" dockerd 60
    say "dockerd (pid $pid) stopped"
  fi
  if pid=$(containerd_pid); then
    stop_pid "$pid" containerd 10
    say "containerd (pid $pid) stopped"
  fi
  # Shims and containers left over (a killed dockerd stops none): all in the daemon's cgroup.
  left=$(daemon_pids)
  if [[ -n $left ]]; then
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    say "killed $(wc -w <<<"$left") leftover processes of the daemon"
    local deadline=$((SECONDS + 10))
    while [[ -n $(daemon_pids) ]] && ((SECONDS < deadline)); do sleep 0.2; done
  fi
  rm_cgroups
  # With no process left in it, the mount namespace (and every mount of the daemon) goes with
  # its file's bind mount.
  if mnt_ns_up; then umount "$MNT_NS"; fi
  if grep -q " $MNT_DIR " /proc/self/mountinfo; then umount "$MNT_DIR"; fi
  if has_ns; then
    ip netns del "$NS"
    say "network namespace $NS removed"
  fi
  ip link del "$VETH" 2>/dev/null || true
  if pid=$(dns_pid); then
    stop_pid "$pid" dnsmasq 5
    say "dns: dnsmasq (pid $pid) stopped"
  fi
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE"
    say "bridge $BRIDGE removed"
  fi
  # The daemon mounted in its own mount namespace, gone now; a mount still visible here would
  # be a bug: refuse to delete under it.
  if grep -qE " ($STATE|$RUN)[/ ]" /proc/self/mounts; then
    grep -E " ($STATE|$RUN)[/ ]" /proc/self/mounts >&2
    die "mounts remain under $STATE or $RUN; not deleting them"
  fi
  rm -rf "$STATE" "$RUN"
  say "down: no daemon, namespace, bridge, cgroup or state directory left"
}

# ---- status ----

cmd_status() {
  local pid line="daemon ($NODE_IP, netns $NS):"
  ip link show "$BRIDGE" >/dev/null 2>&1 && echo "bridge $BRIDGE: present" || echo "bridge $BRIDGE: absent"
  has_ns || line+=" no namespace;"
  mnt_ns_up || line+=" no mount namespace;"
  if pid=$(dockerd_pid); then line+=" dockerd pid $pid;"; else line+=" no dockerd;"; fi
  if pid=$(containerd_pid); then line+=" containerd pid $pid;"; fi
  if answers; then
    line+=" answers on $SOCK, $(dk info --format '{{.Driver}}, live-restore {{.LiveRestoreEnabled}}, {{.Containers}} containers ({{.ContainersRunning}} running)')"
    echo "$line"
    return 0
  fi
  echo "$line"
  return 1
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  restart-daemon) cmd_restart_daemon ;;
  -h|--help|help) sed -n '2,/^set -euo/{/^#/{s/^# \{0,1\}//;p}}' "${BASH_SOURCE[0]}" ;;
  *) die "usage: $0 up|down|status|restart-daemon" ;;
esac
