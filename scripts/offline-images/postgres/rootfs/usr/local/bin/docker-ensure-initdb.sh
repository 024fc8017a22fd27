#!/usr/bin/env bash
# Like the official image's helper: initialise PGDATA when it is empty, then exit (or run the
# given command), without starting the real server. Called as docker-enforce-initdb.sh it
# insists on an empty PGDATA and fails when a database already exists.
#   docker run --rm -e POSTGRES_PASSWORD=... radar-offline/postgres:bookworm docker-ensure-initdb.sh
set -Eeuo pipefail

source /usr/local/bin/docker-entrypoint.sh

if [[ ${1:-} != postgres ]]; then
	set -- postgres "$@"
fi

docker_setup_env
docker_create_db_directories
if [[ $(id -u) == 0 ]]; then
	exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi

if [[ -z $DATABASE_ALREADY_EXISTS ]]; then
	docker_init_if_needed "$@"
elif [[ $(basename "$0") == docker-enforce-initdb.sh ]]; then
	echo >&2 "$0: error: (e)nforce mode: PGDATA ($PGDATA) already contains a database"
	exit 1
fi
