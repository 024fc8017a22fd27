#!/bin/sh
# Entrypoint of radar-offline/nginx, modelled on the official nginx image's behaviour:
# when the command is nginx (or nginx-debug), run the hooks in /docker-entrypoint.d/ in version
# order first: executable *.sh are run, executable *.envsh are sourced (so they can export
# variables), anything else is skipped. NGINX_ENTRYPOINT_QUIET_LOGS=1 silences these messages.
# Any other command is executed as is.
set -e

say() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$0: $*"
}

if [ "${1:-}" = nginx ] || [ "${1:-}" = nginx-debug ]; then
    hooks=$(find /docker-entrypoint.d/ -follow -mindepth 1 -type f 2>/dev/null | sort -V)
    if [ -n "$hooks" ]; then
        say "/docker-entrypoint.d/ is not empty, will attempt to perform configuration"
        say "Looking for shell scripts in /docker-entrypoint.d/"
        # a here-document, not a pipe: sourced *.envsh must change this shell's environment
        while IFS= read -r hook; do
            case $hook in
                *.envsh)
                    if [ -x "$hook" ]; then say "Sourcing $hook"; . "$hook"
                    else say "Ignoring $hook, not executable"; fi ;;
                *.sh)
                    if [ -x "$hook" ]; then say "Launching $hook"; "$hook"
                    else say "Ignoring $hook, not executable"; fi ;;
                *) say "Ignoring $hook" ;;
            esac
        done <<HOOKS
$hooks
HOOKS
        say "Configuration complete; ready for start up"
    else
        say "No files found in /docker-entrypoint.d/, skipping configuration"
    fi
    # Debian's nginx binary is /usr/sbin/nginx; nginx-debug is an alias for it here.
    if [ "$1" = nginx-debug ] && ! command -v nginx-debug >/dev/null 2>&1; then
        shift
        set -- nginx "$@"
    fi
fi

exec "$@"
