#!/usr/bin/env bash
# Entrypoint of radar-offline/postgres. Written for this project; it reproduces the behaviour of
# the official postgres image's docker-entrypoint.sh (same variables, same steps, same messages
# where tools look for them):
#
#   POSTGRES_PASSWORD   superuser password (required on an empty PGDATA unless
#                       POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER       superuser name (default postgres)
#   POSTGRES_DB         database created at init (default: POSTGRES_USER)
#   POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD
#   each of the first four can instead be read from a file: NAME_FILE=/run/secrets/...
#
# `postgres ...` (or only options): as root, PGDATA and /var/run/postgresql are prepared and
# handed to postgres, and the script re-runs itself as postgres. On an empty PGDATA it runs
# initdb (the password through --pwfile), appends `host all all all <method>` to pg_hba.conf
# (method: POSTGRES_HOST_AUTH_METHOD, default the server's password_encryption, i.e.
# scram-sha-256), starts a temporary server that listens on the unix socket only, creates
# POSTGRES_DB, runs /docker-entrypoint-initdb.d/* (*.sh run or sourced, *.sql, *.sql.gz|xz|zst
# fed to psql), stops it, and finally execs the real server. Other commands run as given.
set -Eeo pipefail

# read VAR or VAR_FILE (not both) into VAR, with an optional default
env_or_file() {
	local name=$1 default=${2:-} file_name="${1}_FILE"
	if [[ -n ${!name:-} && -n ${!file_name:-} ]]; then
		echo >&2 "error: both $name and $file_name are set (but are exclusive)"
		exit 1
	fi
	local value=$default
	if [[ -n ${!name:-} ]]; then
		value=${!name}
	elif [[ -n ${!file_name:-} ]]; then
		value=$(< "${!file_name}")
	fi
	export "$name=$value"
	unset "$file_name"
}

# true when this file is sourced by another script (docker-ensure-initdb.sh) rather than run
_is_sourced() {
	[[ ${#FUNCNAME[@]} -ge 2 && ${FUNCNAME[0]} == _is_sourced && ${FUNCNAME[1]} == source ]]
}

docker_setup_env() {
	env_or_file POSTGRES_PASSWORD
	env_or_file POSTGRES_USER postgres
	env_or_file POSTGRES_DB "$POSTGRES_USER"
	env_or_file POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=}"
	declare -g DATABASE_ALREADY_EXISTS=
	# PG_VERSION is what marks an initialised data directory
	if [[ -s $PGDATA/PG_VERSION ]]; then
		DATABASE_ALREADY_EXISTS=true
	fi
}

docker_create_db_directories() {
	local uid; uid=$(id -u)
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA" || :
	mkdir -p /var/run/postgresql || :
	chmod 03775 /var/run/postgresql || :
	if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		if [[ $uid == 0 ]]; then
			find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +
		fi
		chmod 700 "$POSTGRES_INITDB_WALDIR"
	fi
	if [[ $uid == 0 ]]; then
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
	fi
}

docker_verify_minimum_env() {
	if (( ${#POSTGRES_PASSWORD} >= 100 )); then
		echo >&2 "WARNING: POSTGRES_PASSWORD has 100 or more characters; psql via PGPASSWORD cannot use it."
	fi
	if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
		cat >&2 <<-'EOE'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.
		EOE
		exit 1
	fi
	if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
		echo >&2 'WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust": anyone who can reach'
		echo >&2 '         the Postgres port can connect without a password.'
	fi
}

docker_init_database_dir() {
	# initdb needs the current uid in the passwd database; fake it with nss_wrapper if possible
	local uid gid lib
	uid=$(id -u); gid=$(id -g)
	if ! getent passwd "$uid" &>/dev/null; then
		for lib in {/usr,}/lib{/*,}/libnss_wrapper.so; do
			if [[ -s $lib ]]; then
				NSS_WRAPPER_PASSWD=$(mktemp); NSS_WRAPPER_GROUP=$(mktemp)
				export LD_PRELOAD=$lib NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
				echo "postgres:x:$uid:$gid:PostgreSQL:$PGDATA:/bin/false" > "$NSS_WRAPPER_PASSWD"
				echo "postgres:x:$gid:" > "$NSS_WRAPPER_GROUP"
				break
			fi
		done
	fi
	if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
		set -- --waldir "$POSTGRES_INITDB_WALDIR" "$@"
	fi
	# POSTGRES_INITDB_ARGS is shell words (may be quoted), hence eval; the password goes through
	# a pipe, never the command line (a trailing newline because initdb rejects an empty file)
	eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"' "$@"'
	if [[ ${LD_PRELOAD:-} == */libnss_wrapper.so ]]; then
		rm -f "$NSS_WRAPPER_PASSWD" "$NSS_WRAPPER_GROUP"
		unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
	fi
}

pg_setup_hba_conf() {
	[[ ${1:-} == postgres ]] && shift
	local method
	method=$(postgres -C password_encryption "$@")
	: "${POSTGRES_HOST_AUTH_METHOD:=$method}"
	{
		echo
		if [[ $POSTGRES_HOST_AUTH_METHOD == trust ]]; then
			echo '# warning trust is enabled for all connections'
		fi
		echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
	} >> "$PGDATA/pg_hba.conf"
}

# a server for the init steps: unix socket only, never reachable over TCP
docker_temp_server_start() {
	[[ ${1:-} == postgres ]] && shift
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

docker_temp_server_stop() {
	PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

docker_process_sql() {
	local cmd=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [[ -n $POSTGRES_DB ]]; then
		cmd+=(--dbname "$POSTGRES_DB")
	fi
	PGHOST= PGHOSTADDR= "${cmd[@]}" "$@"
}

docker_setup_db() {
	local exists
	exists=$(POSTGRES_DB= docker_process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
		SELECT 1 FROM pg_database WHERE datname = :'db' ;
	EOSQL
	)
	if [[ -z $exists ]]; then
		POSTGRES_DB= docker_process_sql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db" ;
		EOSQL
		echo
	fi
}

docker_process_init_files() {
	# init scripts may use "${psql[@]}", as with the official image
	psql=(docker_process_sql)
	echo
	local f
	for f; do
		case $f in
			*.sh)
				if [[ -x $f ]]; then
					echo "$0: running $f"; "$f"
				else
					echo "$0: sourcing $f"; . "$f"
				fi ;;
			*.sql)     echo "$0: running $f"; docker_process_sql -f "$f"; echo ;;
			*.sql.gz)  echo "$0: running $f"; gunzip -c "$f" | docker_process_sql; echo ;;
			*.sql.xz)  echo "$0: running $f"; xzcat "$f" | docker_process_sql; echo ;;
			*.sql.zst) echo "$0: running $f"; zstd -dc "$f" | docker_process_sql; echo ;;
			*)         echo "$0: ignoring $f" ;;
		esac
		echo
	done
}

# options that make postgres print something and exit: no initialisation for those
_pg_want_help() {
	local arg
	for arg; do
		case $arg in
			-'?'|--help|--describe-config|-V|--version) return 0 ;;
		esac
	done
	return 1
}

# initialise PGDATA if it is empty (as the postgres user)
docker_init_if_needed() {
	if [[ -z $DATABASE_ALREADY_EXISTS ]]; then
		docker_verify_minimum_env
		# fails early (permissions) rather than leaving a half-initialised PGDATA
		ls /docker-entrypoint-initdb.d/ > /dev/null
		docker_init_database_dir
		pg_setup_hba_conf "$@"
		# for psql when POSTGRES_INITDB_ARGS asks for password auth on local connections too
		export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
		docker_temp_server_start "$@"
		docker_setup_db
		docker_process_init_files /docker-entrypoint-initdb.d/*
		docker_temp_server_stop
		unset PGPASSWORD
		printf '\nPostgreSQL init process complete; ready for start up.\n\n'
	else
		printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
	fi
}

_main() {
	# only options: they are for the server
	if [[ ${1:0:1} == - ]]; then
		set -- postgres "$@"
	fi
	if [[ ${1:-} == postgres ]] && ! _pg_want_help "$@"; then
		docker_setup_env
		docker_create_db_directories
		if [[ $(id -u) == 0 ]]; then
			exec gosu postgres "${BASH_SOURCE[0]}" "$@"
		fi
		docker_init_if_needed "$@"
	fi
	exec "$@"
}

if ! _is_sourced; then
	_main "$@"
fi
