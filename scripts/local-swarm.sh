#!/usr/bin/env bash
# A Docker Swarm of several nodes on this one machine, for tests/integration/swarm_two_nodes.rs and
# tests/integration/swarm_three_nodes.rs: RD2N_NODES (default 2, at most 9) more Docker daemons, each in its
# own network namespace, joined to a host bridge, the first a manager and the others workers.
# The machine's own daemon (/var/run/docker.sock) is never touched: not its swarm, its
# configuration or its processes.
#
#   host bridge rd2n0 10.231.0.1/24
#   ├── netns rd2n-1  eth0 10.231.0.11  dockerd -H unix:///run/rd2n/node1.sock  swarm manager
#   ├── netns rd2n-2  eth0 10.231.0.12  dockerd -H unix:///run/rd2n/node2.sock  swarm worker
#   └── ...           (node N: rd2n-N, 10.231.0.1N, nodeN.sock, a worker)
#
# The nodes' resolver is a dnsmasq on the bridge (10.231.0.1) that knows no name and answers at
# once, as a node's resolver on a real network does for a name it does not know: Docker's DNS
# forwards every name Swarm does not list (a task not yet healthy, or on a lost node) upstream,
# and without an answering resolver each such lookup takes 10-20 s, long enough to stall Redis
# Sentinel, which resolves names in its one event loop.
#
# Each daemon has its own data root (/var/lib/rd2n/nodeN), exec root (/run/rd2n/nodeN, where it
# runs its own containerd), pid file (/run/rd2n/nodeN.pid), log (/run/rd2n/nodeN.log), config
# file (so /etc/docker/daemon.json does not apply) and cgroup parent (rd2n-N: every process of
# the node, from dockerd down to the containers, is in the freezer cgroup rd2n-N). The images
# the stack needs are copied from the main daemon (`docker save | docker load`), as no registry
# is reachable.
#
# usage: scripts/local-swarm.sh up          build the nodes and the swarm (idempotent)
#        scripts/local-swarm.sh status      what exists, the swarm's nodes
#        scripts/local-swarm.sh lose-node N node N (a worker) vanishes as in a power cut: its
#                                           processes are frozen, its link goes down, then they
#                                           are killed
#        scripts/local-swarm.sh down        stop the daemons started here (of any node count),
#                                           remove everything
#
# Environment: RD2N_NODES (default 2), RD2N_STORAGE_DRIVER (default overlay2), RD2N_IMAGES
# (space-separated; default the offline images and the app image), RD2N_TIMEOUT (seconds per
# wait, default 60).
set -euo pipefail

readonly BRIDGE=rd2n0
readonly NET=10.231.0
readonly HOST_IP=$NET.1
readonly STATE=/var/lib/rd2n
readonly RUN=/run/rd2n
readonly COUNT=${RD2N_NODES:-2}
[[ $COUNT =~ ^[2-9]$ ]] || { echo "local-swarm: error: RD2N_NODES must be 2 to 9, not '$COUNT'" >&2; exit 1; }
read -r -a NODES <<<"$(seq -s ' ' 1 "$COUNT")"
readonly NODES
readonly CGROUPS=/sys/fs/cgroup
readonly STORAGE_DRIVER=${RD2N_STORAGE_DRIVER:-overlay2}
readonly TIMEOUT=${RD2N_TIMEOUT:-60}
# The app image is the one the tests deploy (APP_IMAGE when set); it is built on the main daemon
# (by `radar-deploy up`, see .ci/run), since the nodes have no builder image.
read -r -a IMAGES <<<"${RD2N_IMAGES:-radar-offline/base:bookworm radar-offline/nginx:bookworm radar-offline/redis:bookworm radar-offline/postgres:bookworm ${APP_IMAGE:-radar-deploy/radar-app:0.1.0}}"
# The bridged traffic between the nodes passes the host's FORWARD chain (br_netfilter), whose
# policy the main daemon set to DROP: this rule lets it through, and only it.
readonly FWD_RULE=(FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment rd2n -j ACCEPT)

t0=$SECONDS
say() { printf 'local-swarm: [%ss] %s\n' "$((SECONDS - t0))" "$*"; }
die() { printf 'local-swarm: error: %s\n' "$*" >&2; exit 1; }

ns() { echo "rd2n-$1"; }
ip_of() { echo "$NET.$((10 + $1))"; }
sock() { echo "$RUN/node$1.sock"; }
pidfile() { echo "$RUN/node$1.pid"; }
veth_host() { echo "rd2n$1h"; }
dk() { local n=$1; shift; docker -H "unix://$(sock "$n")" "$@"; }

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
dockerd_pid() { live_pid "$(pidfile "$1")" "$(sock "$1")"; }
containerd_pid() { live_pid "$RUN/node$1/containerd/containerd.pid" "$RUN/node$1/containerd"; }

# A TCP connection to $2:$3 from netns $1 (the host's when empty).
reach() {
  local in=()
  [[ -z $1 ]] || in=(ip netns exec "$1")
  "${in[@]}" timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>/dev/null
}
has_ns() { [[ -e /run/netns/$(ns "$1") ]]; }
answers() { dk "$1" info >/dev/null 2>&1; }

need() {
  [[ $EUID -eq 0 ]] || die "needs root (network namespaces, a bridge, dockerd)"
  local missing=()
  for c in ip iptables nsenter unshare setsid timeout dockerd containerd runc docker dnsmasq; do
    command -v "$c" >/dev/null || missing+=("$c")
  done
  ((${#missing[@]} == 0)) || die "missing commands: ${missing[*]} (ip: apt-get install iproute2; dnsmasq: apt-get install dnsmasq-base)"
  [[ -d $CGROUPS/freezer ]] || die "no cgroup v1 freezer at $CGROUPS/freezer (lose-node needs it)"
}

# ---- up ----

net_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$HOST_IP/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  iptables -C "${FWD_RULE[@]}" 2>/dev/null || iptables -I "${FWD_RULE[@]:0:1}" 1 "${FWD_RULE[@]:1}"
  for n in "${NODES[@]}"; do
    local ns vh
    ns=$(ns "$n") vh=$(veth_host "$n")
    has_ns "$n" || ip netns add "$ns"
    if ! ip link show "$vh" >/dev/null 2>&1; then
      ip netns exec "$ns" ip link del eth0 2>/dev/null || true
      ip link add "$vh" type veth peer name eth0 netns "$ns"
    fi
    ip link set "$vh" master "$BRIDGE" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr replace "$(ip_of "$n")/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    # No default route: no registry is reachable anyway, and without a route a node's attempt
    # to pull (Swarm tries before using the local image) fails at once instead of timing out.
    ip netns exec "$ns" ip route del default 2>/dev/null || true
  done
  local n ips=()
  for n in "${NODES[@]}"; do ips+=("$(ip_of "$n")"); done
  say "network: bridge $BRIDGE $HOST_IP/24, nodes ${ips[*]}"
  dns_up
}

dns_pid() { live_pid "$RUN/dns.pid" dnsmasq; }

# No upstream server, no hosts file: every query is answered at once, negatively.
dns_up() {
  dns_pid >/dev/null && return
  dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
    --listen-address="$HOST_IP" --except-interface=lo --pid-file="$RUN/dns.pid" \
    || die "dnsmasq could not listen on $HOST_IP:53"
  say "dns: dnsmasq (pid $(dns_pid || echo '?')) answers the nodes' lookups on $HOST_IP:53"
}

daemon_up() {
  local n=$1 ns cg
  ns=$(ns "$n") cg=$CGROUPS/freezer/$(ns "$n")
  if answers "$n"; then
    say "node $n: dockerd already answers on $(sock "$n") (pid $(dockerd_pid "$n" || echo '?'))"
    return
  fi
  dockerd_pid "$n" >/dev/null && die "node $n: dockerd (pid $(dockerd_pid "$n")) runs but does not answer; run down first"
  mkdir -p "$STATE/node$n" "$RUN/node$n" "$cg"
  cat >"$RUN/node$n.json" <<EOF
{"storage-driver": "$STORAGE_DRIVER", "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "2"}}
EOF
  # In the node's network namespace, and in a mount namespace of its own (mounts propagate into
  # it, none out of it: the node's mounts vanish with its last process). Not `ip netns exec`:
  # it remounts /sys, which hides the cgroup mounts dockerd needs. dockerd moves itself into
  # the node's cgroup first, so its containerd, the shims and (through --cgroup-parent) the
  # containers are all in it.
  nsenter --net="/run/netns/$ns" unshare --mount --propagation slave --uts \
    setsid bash -c 'echo $$ >"$1/cgroup.procs"; hostname "$2"; shift 2; exec "$@"' _ "$cg" "$ns" \
    dockerd --config-file "$RUN/node$n.json" \
    --data-root "$STATE/node$n" --exec-root "$RUN/node$n" --pidfile "$(pidfile "$n")" \
    -H "unix://$(sock "$n")" --cgroup-parent "/$(ns "$n")" \
    --bip "172.30.$n.1/24" --userland-proxy=false --dns "$HOST_IP" \
    </dev/null >"$RUN/node$n.log" 2>&1 &
  local launched=$! deadline=$((SECONDS + TIMEOUT))
  until answers "$n"; do
    if ((SECONDS >= deadline)) || ! kill -0 "$launched" 2>/dev/null; then
      tail -n 30 "$RUN/node$n.log" >&2 || true
      die "node $n: dockerd exited or did not answer on $(sock "$n") within ${TIMEOUT}s (log above: $RUN/node$n.log)"
    fi
    sleep 0.5
  done
  local driver
  driver=$(dk "$n" info --format '{{.Driver}}')
  [[ $driver == "$STORAGE_DRIVER" ]] || die "node $n: storage driver is $driver, not $STORAGE_DRIVER"
  say "node $n: dockerd pid $(dockerd_pid "$n"), containerd pid $(containerd_pid "$n" || echo '?'), storage driver $driver"
}

images_up() {
  local offline_log=/tmp/offline.log missing=() n img
  for img in "${IMAGES[@]}"; do
    docker image inspect "$img" >/dev/null 2>&1 || missing+=("$img")
  done
  ((${#missing[@]} == 0)) || die "the main daemon lacks ${missing[*]}: build them with scripts/offline-images.sh${offline_log:+ (see $offline_log)}"
  local todo=()
  for n in "${NODES[@]}"; do
    for img in "${IMAGES[@]}"; do
      if ! dk "$n" image inspect "$img" >/dev/null 2>&1; then todo+=("$n"); break; fi
    done
  done
  if ((${#todo[@]} == 0)); then
    say "images: already on every node"
    return
  fi
  local t=$SECONDS tar=$STATE/images.tar
  docker save -o "$tar" "${IMAGES[@]}"
  say "images: saved ${#IMAGES[@]} images from the main daemon ($(du -m "$tar" | cut -f1) MB) in $((SECONDS - t))s"
  t=$SECONDS
  local pids=()
  for n in "${todo[@]}"; do
    dk "$n" load -q -i "$tar" >"$RUN/node$n.load.log" 2>&1 &
    pids+=($!)
  done
  local i
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || die "node ${todo[$i]}: docker load failed: $(cat "$RUN/node${todo[$i]}.load.log")"
  done
  rm -f "$tar"
  say "images: loaded into node(s) ${todo[*]} in $((SECONDS - t))s"
}

swarm_up() {
  local state
  state=$(dk 1 info --format '{{.Swarm.LocalNodeState}}')
  if [[ $state != active ]]; then
    dk 1 swarm init --advertise-addr "$(ip_of 1)" --listen-addr "$(ip_of 1):2377" \
      --default-addr-pool 10.232.0.0/16 --default-addr-pool-mask-length 24 >/dev/null
    say "swarm: initialised on node 1 ($(ip_of 1):2377)"
  fi
  # The swarm port of node 1 from the host and from each worker: the bridge carries traffic
  # (the host's FORWARD chain lets it through), before a join would time out obscurely.
  reach "" "$(ip_of 1)" 2377 || die "the host cannot reach node 1's swarm port $(ip_of 1):2377"
  local n token=""
  for n in "${NODES[@]:1}"; do
    reach "$(ns "$n")" "$(ip_of 1)" 2377 \
      || die "node $n cannot reach node 1's swarm port $(ip_of 1):2377 over $BRIDGE (host FORWARD chain? br_netfilter?)"
    state=$(dk "$n" info --format '{{.Swarm.LocalNodeState}}')
    if [[ $state != active ]]; then
      [[ -n $token ]] || token=$(dk 1 swarm join-token -q worker)
      dk "$n" swarm join --advertise-addr "$(ip_of "$n")" --listen-addr "$(ip_of "$n"):2377" \
        --token "$token" "$(ip_of 1):2377" >/dev/null
      say "swarm: node $n joined as a worker"
    fi
  done
  local deadline=$((SECONDS + TIMEOUT)) ready
  while :; do
    ready=$(dk 1 node ls --format '{{.Status}}' | grep -c '^Ready$' || true)
    ((ready == COUNT)) && break
    ((SECONDS < deadline)) || { dk 1 node ls >&2; die "swarm: $ready of $COUNT nodes Ready after ${TIMEOUT}s"; }
    sleep 1
  done
  say "swarm: $COUNT nodes Ready (manager $(ip_of 1), workers ${NODES[*]:1})"
}

# vxlan between the nodes: a service with one task on each node, each task fetching a page
# from every task's address on the overlay network.
overlay_check() {
  local svc=rd2n-overlay-check net=rd2n-overlay-check deadline t=$SECONDS
  dk 1 service rm "$svc" >/dev/null 2>&1 || true
  dk 1 network rm "$net" >/dev/null 2>&1 || true
  dk 1 network create -d overlay "$net" >/dev/null
  dk 1 service create -d -q --no-resolve-image --name "$svc" --network "$net" --replicas "$COUNT" \
    --replicas-max-per-node 1 --endpoint-mode dnsrr "${IMAGES[0]}" \
    sh -c 'mkdir -p /var/log/nginx /var/lib/nginx && hostname >/var/www/html/index.html && exec nginx -g "daemon off;"' >/dev/null
  deadline=$((SECONDS + TIMEOUT))
  local ok=0 out=""
  while ((SECONDS < deadline)); do
    if [[ $(dk 1 service ps "$svc" --filter desired-state=running --format '{{.CurrentState}}' | grep -c '^Running') == "$COUNT" ]]; then
      local n c
      ok=1
      for n in "${NODES[@]}"; do
        c=$(dk "$n" ps -q --filter "label=com.docker.swarm.service.name=$svc")
        [[ -n $c ]] || { ok=0; break; }
        out=$(dk "$n" exec "$c" sh -c 'for a in $(getent ahostsv4 tasks.'"$svc"' | cut -d" " -f1 | sort -u); do curl -sf -m 3 "http://$a/" || echo "no answer from $a"; done' 2>&1) || true
        if [[ $(grep -vc 'no answer' <<<"$out") != "$COUNT" ]]; then ok=0; break; fi
      done
      ((ok)) && break
    fi
    sleep 1
  done
  dk 1 service rm "$svc" >/dev/null 2>&1 || true
  ((ok)) || die "overlay: the $COUNT tasks of $svc (one per node) could not reach each other within ${TIMEOUT}s${out:+: $out} (vxlan between the network namespaces? UDP 4789 on $BRIDGE?)"
  deadline=$((SECONDS + 20))
  until dk 1 network rm "$net" >/dev/null 2>&1 || ((SECONDS >= deadline)); do sleep 1; done
  say "overlay: a task on each node reaches the other over vxlan (checked in $((SECONDS - t))s)"
}

cmd_up() {
  need
  mkdir -p "$STATE" "$RUN"
  net_up
  for n in "${NODES[@]}"; do daemon_up "$n"; done
  images_up
  swarm_up
  overlay_check
  say "up: DOCKER_HOST=unix://$(sock 1) is the manager"
}

# ---- lose-node ----

# Every pid in the node's freezer cgroup and its children.
node_pids() {
  local cg=$CGROUPS/freezer/$(ns "$1")
  [[ -d $cg ]] || return 0
  find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u
}

freeze() {
  local cg=$CGROUPS/freezer/$(ns "$1") want=$2
  [[ -d $cg ]] || return 0
  echo "$want" >"$cg/freezer.state"
}

cmd_lose_node() {
  need
  local n=${1:-}
  [[ $n =~ ^[2-9]$ ]] || die "lose-node: only a worker (node 2 to 9) can be lost; node 1 is the only manager"
  [[ -d $CGROUPS/freezer/$(ns "$n") ]] || die "node $n is not up"
  # Frozen first, so no process of the node notices what follows and says goodbye; then the
  # link goes down, so not even the node's kernel answers (no TCP reset, no ICMP): to its peers
  # it is silent, as after a power cut. Then everything of the node is killed and reaped.
  freeze "$n" FROZEN
  ip link set "$(veth_host "$n")" down
  local pids
  pids=$(node_pids "$n")
  # shellcheck disable=SC2086
  [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
  freeze "$n" THAWED
  local deadline=$((SECONDS + TIMEOUT))
  while [[ -n $(node_pids "$n") ]]; do
    ((SECONDS < deadline)) || die "node $n: processes still alive: $(node_pids "$n" | tr '\n' ' ')"
    sleep 0.2
  done
  say "node $n lost: $(wc -w <<<"$pids") processes frozen, cut off and killed (dockerd, containerd, shims, containers)"
}

# ---- down ----

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
    sleep 0.2
  done
}

rm_cgroups() {
  local name=$1 h
  for h in "$CGROUPS"/*/; do
    [[ -d $h$name ]] || continue
    find "$h$name" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ ! -d $h$name ]] || say "warning: cgroup $h$name not removed"
  done
}

# The nodes that left anything behind, whatever RD2N_NODES was when they were built.
present_nodes() {
  local n
  for n in 1 2 3 4 5 6 7 8 9; do
    if has_ns "$n" || [[ -e $(pidfile "$n") || -d $CGROUPS/freezer/$(ns "$n") ]] \
      || ip link show "$(veth_host "$n")" >/dev/null 2>&1; then
      echo "$n"
    fi
  done
}

cmd_down() {
  need
  local n pid
  for n in $(present_nodes); do
    freeze "$n" THAWED
    if pid=$(dockerd_pid "$n"); then
      stop_pid "$pid" "node $n dockerd" 30
      say "node $n: dockerd (pid $pid) stopped"
    fi
    if pid=$(containerd_pid "$n"); then
      stop_pid "$pid" "node $n containerd" 10
      say "node $n: containerd (pid $pid) stopped"
    fi
    # Shims and containers left over (a killed dockerd stops none): all in the node's cgroup.
    local left
    left=$(node_pids "$n")
    if [[ -n $left ]]; then
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
      say "node $n: killed $(wc -w <<<"$left") leftover processes of the node"
      local deadline=$((SECONDS + 10))
      while [[ -n $(node_pids "$n") ]] && ((SECONDS < deadline)); do sleep 0.2; done
    fi
    rm_cgroups "$(ns "$n")"
    if has_ns "$n"; then
      ip netns del "$(ns "$n")"
      say "node $n: network namespace $(ns "$n") removed"
    fi
    ip link del "$(veth_host "$n")" 2>/dev/null || true
  done
  if pid=$(dns_pid); then
    stop_pid "$pid" dnsmasq 5
    say "dns: dnsmasq (pid $pid) stopped"
  fi
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link del "$BRIDGE"
    say "bridge $BRIDGE removed"
  fi
  while iptables -C "${FWD_RULE[@]}" 2>/dev/null; do iptables -D "${FWD_RULE[@]}"; done
  # The daemons mounted in their own mount namespaces, gone with them; a mount
  # still visible here would be a bug: refuse to delete under it.
  if grep -qE " ($STATE|$RUN)[/ ]" /proc/self/mounts; then
    grep -E " ($STATE|$RUN)[/ ]" /proc/self/mounts >&2
    die "mounts remain under $STATE or $RUN; not deleting them"
  fi
  rm -rf "$STATE" "$RUN"
  say "down: no daemon, namespace, bridge, cgroup or state directory of the nodes left"
}

# ---- status ----

cmd_status() {
  local n pid up=0
  ip link show "$BRIDGE" >/dev/null 2>&1 && echo "bridge $BRIDGE: present" || echo "bridge $BRIDGE: absent"
  for n in "${NODES[@]}"; do
    local line="node $n ($(ip_of "$n"), netns $(ns "$n")):"
    has_ns "$n" || line+=" no namespace;"
    if pid=$(dockerd_pid "$n"); then line+=" dockerd pid $pid;"; else line+=" no dockerd;"; fi
    if pid=$(containerd_pid "$n"); then line+=" containerd pid $pid;"; fi
    if answers "$n"; then
      line+=" answers on $(sock "$n"), $(dk "$n" info --format '{{.Driver}}, swarm {{.Swarm.LocalNodeState}}, {{.Containers}} containers')"
      up=$((up + 1))
    fi
    echo "$line"
  done
  if answers 1 && [[ $(dk 1 info --format '{{.Swarm.ControlAvailable}}') == true ]]; then
    dk 1 node ls
  fi
  ((up == ${#NODES[@]}))
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  lose-node) cmd_lose_node "${2:-}" ;;
  -h|--help|help) sed -n '2,/^set -euo/{/^#/{s/^# \{0,1\}//;p}}' "${BASH_SOURCE[0]}" ;;
  *) die "usage: $0 up|down|status|lose-node N" ;;
esac
