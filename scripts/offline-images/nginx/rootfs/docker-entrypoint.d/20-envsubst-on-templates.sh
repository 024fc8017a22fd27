#!/bin/sh
# Like the official image: every $NGINX_ENVSUBST_TEMPLATE_DIR/**/*$NGINX_ENVSUBST_TEMPLATE_SUFFIX
# (default /etc/nginx/templates/*.template) is rendered with envsubst into
# $NGINX_ENVSUBST_OUTPUT_DIR (default /etc/nginx/conf.d), keeping the relative path and dropping
# the suffix. Only variables defined in the environment are substituted (so nginx's own $vars
# survive); NGINX_ENVSUBST_FILTER (a regex) narrows the set further.
set -e
say() { [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$0: $*"; }

template_dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
output_dir=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
filter=${NGINX_ENVSUBST_FILTER:-}

[ -d "$template_dir" ] || exit 0
if [ ! -w "$output_dir" ]; then
    say "ERROR: $template_dir exists, but $output_dir is not writable"
    exit 0
fi

defined=$(env | cut -d= -f1 | grep -E -- "${filter:-.}" | sed 's/^/${/; s/$/}/' | tr '\n' ' ')
find "$template_dir" -follow -type f -name "*$suffix" -print | while IFS= read -r template; do
    rel=${template#"$template_dir/"}
    out="$output_dir/${rel%"$suffix"}"
    mkdir -p "$(dirname "$out")"
    say "Running envsubst on $template to $out"
    envsubst "$defined" < "$template" > "$out"
done
