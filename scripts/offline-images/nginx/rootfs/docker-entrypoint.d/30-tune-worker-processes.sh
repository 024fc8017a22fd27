#!/bin/sh
# Like the official image: with NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE set, set
# worker_processes in nginx.conf to the CPUs this container may use (cgroup v1 or v2 quota,
# else the cpuset, else nproc) instead of every CPU of the host.
set -e
[ -n "${NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE:-}" ] || exit 0
conf=/etc/nginx/nginx.conf
say() { [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$0: $*"; }
[ -w "$conf" ] || { say "info: $conf is not writable, not tuning worker_processes"; exit 0; }

ncpu=$(nproc)
quota= period=
if [ -r /sys/fs/cgroup/cpu.max ]; then                      # cgroup v2
    read -r quota period < /sys/fs/cgroup/cpu.max
    [ "$quota" = max ] && quota=
elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then        # cgroup v1
    quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
    period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
    [ "$quota" -gt 0 ] 2>/dev/null || quota=
fi
if [ -n "$quota" ] && [ -n "$period" ] && [ "$period" -gt 0 ]; then
    n=$(( (quota + period - 1) / period ))
    [ "$n" -lt "$ncpu" ] && ncpu=$n
fi
[ "$ncpu" -ge 1 ] || ncpu=1
sed -i -E "s/^(\s*worker_processes\s+)[^;]+;/\1$ncpu;/" "$conf"
say "info: worker_processes set to $ncpu"
