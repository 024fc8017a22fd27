#!/bin/sh
# Like the official image: when the kernel offers IPv6 and the stock default.conf is unchanged,
# make it listen on [::]:80 as well.
set -e
conf=/etc/nginx/conf.d/default.conf
say() { [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$0: $*"; }

[ -f /proc/net/if_inet6 ] || { say "info: IPv6 not available"; exit 0; }
[ -f "$conf" ] || { say "info: $conf is not a file or does not exist"; exit 0; }
[ -w "$conf" ] || { say "info: can not modify $conf (read-only file system?)"; exit 0; }
if ! grep -q 'radar-offline stock default.conf' "$conf" || grep -q '\[::\]:80' "$conf"; then
    say "info: $conf differs from the packaged version"
    exit 0
fi
sed -i -E 's,listen       80;,listen       80;\n    listen  [::]:80;,' "$conf"
say "info: Enabled listen on IPv6 in $conf"
