#!/bin/sh
# Entrypoint of radar-offline/redis, modelled on the official redis image's behaviour:
#  - a first argument that is an option (-x, --x) or a config file (*.conf) means redis-server;
#  - run as root with redis-server or redis-sentinel: files under the working directory (/data)
#    not owned by redis are chowned to it, then the entrypoint re-executes itself as user redis;
#  - the official binary is compiled with protected mode OFF by default; Debian's is not, so
#    redis-server gets `--protected-mode no` unless its config file sets protected-mode itself
#    (placed right after the config file, so later command-line options still win — exactly the
#    semantics of a compiled-in default);
#  - umask 0077 unless a different umask was set.
# Sentinel: the official image runs redis-sentinel as root (its entrypoint only steps down for
# redis-server). Here it runs as redis too, so a config file it must rewrite (and the directory
# holding it, where Redis writes the temporary file it renames over the config) is handed to
# redis first. When that directory is a system directory (/, /etc, ...) it is left alone and
# sentinel runs as root, exactly as in the official image.
set -e

if [ "${1#-}" != "${1:-}" ] || [ "${1%.conf}" != "${1:-}" ]; then
    set -- redis-server "$@"
fi

# The config file argument of redis-server/redis-sentinel, if any (the first argument after the
# command, when it is an existing file and not an option).
config_file() {
    if [ $# -ge 2 ] && [ "${2#-}" = "$2" ] && [ -f "$2" ]; then
        echo "$2"
    fi
}

if { [ "${1:-}" = redis-server ] || [ "${1:-}" = redis-sentinel ]; } && [ "$(id -u)" = 0 ]; then
    step_down=1
    find . \! -user redis -exec chown redis '{}' +
    if [ "$1" = redis-sentinel ]; then
        conf=$(config_file "$@")
        if [ -n "$conf" ]; then
            dir=$(dirname "$(readlink -f "$conf")")
            case $dir in
                /|/etc|/usr|/usr/*|/var|/bin|/sbin|/lib|/lib64|/proc|/sys|/dev|/run|/tmp|/root|/home)
                    step_down= ;;
                *)
                    chown redis "$dir" "$conf" ;;
            esac
        fi
    fi
    if [ -n "$step_down" ]; then
        exec gosu redis "$0" "$@"
    fi
fi

if [ "${1:-}" = redis-server ]; then
    conf=$(config_file "$@")
    if [ -z "$conf" ] || ! grep -qE '^[[:space:]]*protected-mode[[:space:]]' "$conf"; then
        shift
        if [ -n "$conf" ]; then
            shift
            set -- redis-server "$conf" --protected-mode no "$@"
        else
            set -- redis-server --protected-mode no "$@"
        fi
    fi
fi

if [ "$(umask)" = 0022 ]; then
    umask 0077
fi

exec "$@"
