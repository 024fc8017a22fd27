#!/usr/bin/env bash
# Smoke test of the offline images built by scripts/offline-images.sh (or of any images given
# through NGINX_IMAGE / REDIS_IMAGE / POSTGRES_IMAGE, e.g. the official ones where they can be
# pulled): starts each one the way radar-deploy does and checks the interface it relies on.
# Every container, network and volume it creates carries a unique name and the label
# io.radar-deploy.test=offline-smoke, and is removed on exit, also on failure or Ctrl-C.
#
# usage: scripts/offline-images-smoke.sh [-v]     (exit 0: all checks passed, 1: a check failed,
#                                                  2: environment problem)
set -euo pipefail

offline=${RADAR_OFFLINE_PREFIX:-radar-offline}
NGINX_IMAGE=${NGINX_IMAGE:-$offline/nginx:bookworm}
REDIS_IMAGE=${REDIS_IMAGE:-$offline/redis:bookworm}
POSTGRES_IMAGE=${POSTGRES_IMAGE:-$offline/postgres:bookworm}
verbose=0
[[ ${1:-} == -v ]] && verbose=1

label=io.radar-deploy.test=offline-smoke
run_id=$(date +%s)-$$
p=radar-offline-smoke-$run_id          # prefix of every object name of this run
net=$p-net
pgvol=$p-pgdata
tmp=$(mktemp -d)
failures=0

cleanup() {
  local rc=$?
  local ids
  ids=$(docker ps -aq --filter "label=$label" --filter "name=^/$p-" 2>/dev/null || true)
  [[ -z $ids ]] || docker rm -f -v $ids >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  docker volume rm "$pgvol" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pass() { echo "  ✓ $*"; }
fail() { echo "  ✗ $*"; failures=$((failures + 1)); }
check() { # check "description" command...
  local what=$1; shift
  local out
  if out=$("$@" 2>&1); then
    pass "$what"
    [[ $verbose == 0 || -z $out ]] || sed 's/^/      /' <<<"$out"
  else
    fail "$what"
    sed 's/^/      /' <<<"$out" | tail -n 15
  fi
}
# wait_for SECONDS command...: retry every 0.3 s until the command succeeds or time runs out
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < deadline )) || { "$@" 2>&1 | tail -n 5; return 1; }
    sleep 0.3
  done
}
logs_tail() { docker logs --tail 20 "$1" 2>&1 | sed 's/^/      | /'; }
run() { docker run -d --label "$label" --network "$net" "$@" >/dev/null; }

docker info >/dev/null 2>&1 || { echo "offline-images-smoke: the Docker daemon is not reachable" >&2; exit 2; }
for image in "$NGINX_IMAGE" "$REDIS_IMAGE" "$POSTGRES_IMAGE"; do
  docker image inspect "$image" >/dev/null 2>&1 \
    || { echo "offline-images-smoke: image $image not found (run scripts/offline-images.sh)" >&2; exit 2; }
done
docker network create --label "$label" "$net" >/dev/null
# helpers used inside `check ... bash -c '...'`
export -f wait_for
export label net POSTGRES_IMAGE

# ------------------------------------------------------------------------------------------ nginx
echo "nginx ($NGINX_IMAGE)"
ng=$p-nginx
run --name "$ng" "$NGINX_IMAGE"
# an HTTP GET with nothing but bash, inside the container: prints the status line
http_get() { # container path
  docker exec "$1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/80
    printf "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" "$0" >&3
    head -n 1 <&3' "$2"
}
export -f http_get
if wait_for 20 bash -c "[[ \$(docker exec $ng bash -c 'exec 3<>/dev/tcp/127.0.0.1/80 && echo open') == open ]]"; then
  pass "answers on port 80"
else
  fail "answers on port 80"; logs_tail "$ng"
fi
check "GET / is 200" bash -c "http_get $ng / | grep -q ' 200 '"
check "nginx -t passes" docker exec "$ng" nginx -t
check "runs workers as user nginx (101)" docker exec "$ng" bash -c \
  'for s in /proc/[0-9]*/status; do grep -q "^Name:.*nginx" $s && awk "/^Uid:/{print \$2}" $s; done | sort -u | grep -qx 101'
check "access log goes to docker logs" bash -c "docker logs $ng 2>/dev/null | grep -q '\"GET / HTTP/1.1\" 200'"
# the directives radar-deploy renders: upstream keepalive + least_conn + max_fails, gzip,
# stub_status, proxy_next_upstream, websocket upgrade; then a reload
docker exec -i "$ng" bash -c 'cat > /etc/nginx/conf.d/default.conf' <<'EOF'
upstream app { least_conn; server 127.0.0.1:8081 max_fails=1 fail_timeout=3s; keepalive 32; }
map $http_upgrade $connection_upgrade { default upgrade; '' close; }
server {
    listen 80;
    gzip on; gzip_types application/json text/plain;
    location = /health { access_log off; return 200 "ok\n"; }
    location = /nginx_status { stub_status; allow 127.0.0.1; deny all; }
    location / {
        proxy_http_version 1.1;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Upgrade $http_upgrade;
        proxy_next_upstream error timeout http_502;
        proxy_pass http://app;
    }
}
server { listen 8081; location / { return 200 "backend\n"; } }
EOF
check "nginx -t with upstream keepalive, gzip, stub_status" docker exec "$ng" nginx -t
check "nginx -s reload" docker exec "$ng" nginx -s reload
sleep 0.5
check "GET /health (answered by nginx) is 200" bash -c "http_get $ng /health | grep -q ' 200 '"
check "GET /nginx_status (stub_status) is 200" bash -c "http_get $ng /nginx_status | grep -q ' 200 '"
check "proxied GET through the keepalive upstream is 200" bash -c "http_get $ng /x | grep -q ' 200 '"
check "STOPSIGNAL is SIGQUIT" bash -c "[[ \$(docker inspect -f '{{.Config.StopSignal}}' $ng) == SIGQUIT ]]"
# /etc/nginx/templates/*.template are rendered with the environment into conf.d at start
ngt=$p-nginx-templates
docker create --label "$label" --name "$ngt" -e SMOKE_PORT=8088 "$NGINX_IMAGE" >/dev/null
mkdir -p "$tmp/templates"
printf 'server { listen ${SMOKE_PORT}; location / { return 200 "$host\\n"; } }\n' > "$tmp/templates/smoke.conf.template"
docker cp "$tmp/templates/." "$ngt:/etc/nginx/templates/"
docker start "$ngt" >/dev/null
check "templates: envsubst of defined variables only, into conf.d" bash -c "
  wait_for 20 docker exec $ngt grep -q 'listen 8088;' /etc/nginx/conf.d/smoke.conf &&
  docker exec $ngt grep -qF 'return 200 \"\$host' /etc/nginx/conf.d/smoke.conf &&
  wait_for 10 docker exec $ngt bash -c 'exec 3<>/dev/tcp/127.0.0.1/8088'"
check "docker stop: graceful exit 0 within 5 s" bash -c "
  docker stop -t 5 $ng >/dev/null && [[ \$(docker inspect -f '{{.State.ExitCode}}' $ng) == 0 ]]"

# ------------------------------------------------------------------------------------------ redis
echo "redis ($REDIS_IMAGE)"
rd=$p-redis
redis_pw=smoke-$RANDOM$RANDOM
run --name "$rd" --network-alias redis-master "$REDIS_IMAGE" redis-server --requirepass "$redis_pw" --appendonly yes
rcli() { docker exec "$rd" redis-cli --no-auth-warning -a "$redis_pw" "$@"; }
if wait_for 20 bash -c "[[ \$(docker exec $rd redis-cli --no-auth-warning -a '$redis_pw' ping) == PONG ]]"; then
  pass "redis-cli -a … ping answers PONG"
else
  fail "redis-cli -a … ping answers PONG"; logs_tail "$rd"
fi
check "runs as user redis (999) in /data" bash -c "
  [[ \$(docker exec $rd awk '/^Uid:/{print \$2}' /proc/1/status) == 999 ]] &&
  [[ \$(docker exec $rd redis-cli --no-auth-warning -a '$redis_pw' config get dir | tail -n1) == /data ]]"
check "no password: NOAUTH" bash -c "docker exec $rd redis-cli ping 2>&1 | grep -q NOAUTH"
check "protected-mode no, appendonly yes, logs to stdout" bash -c "
  [[ \$(docker exec $rd redis-cli --no-auth-warning -a '$redis_pw' config get protected-mode | tail -n1) == no ]] &&
  [[ \$(docker exec $rd redis-cli --no-auth-warning -a '$redis_pw' config get appendonly | tail -n1) == yes ]] &&
  docker logs $rd 2>&1 | grep -q 'Ready to accept connections'"
check "docker stop of a redis-server: exit 0 within 5 s" bash -c "
  docker run -d --name $p-redis-stop --label $label $REDIS_IMAGE >/dev/null &&
  wait_for 20 docker exec $p-redis-stop redis-cli ping && docker stop -t 5 $p-redis-stop >/dev/null &&
  [[ \$(docker inspect -f '{{.State.ExitCode}}' $p-redis-stop) == 0 ]]"
check "reachable from another container on the network" docker run --rm --label "$label" --network "$net" \
  "$REDIS_IMAGE" redis-cli --no-auth-warning -h redis-master -a "$redis_pw" set k v

echo "redis-sentinel ($REDIS_IMAGE)"
st=$p-sentinel
mkdir -p "$tmp/redis-sentinel"
cat > "$tmp/redis-sentinel/sentinel.conf" <<EOF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel monitor mymaster redis-master 6379 1
sentinel auth-pass mymaster $redis_pw
sentinel down-after-milliseconds mymaster 5000
sentinel failover-timeout mymaster 10000
EOF
# as radar-deploy does: create, upload the config (root-owned, as an API upload is), start
docker create --label "$label" --network "$net" --name "$st" "$REDIS_IMAGE" \
  redis-sentinel /etc/redis-sentinel/sentinel.conf >/dev/null
docker cp "$tmp/redis-sentinel" "$st:/etc/"
docker start "$st" >/dev/null
if wait_for 20 bash -c "[[ \$(docker exec $st redis-cli -p 26379 ping) == PONG ]]"; then
  pass "sentinel answers ping on 26379"
else
  fail "sentinel answers ping on 26379"; logs_tail "$st"
fi
check "sentinel knows the master" bash -c "wait_for 15 bash -c \"docker exec $st redis-cli -p 26379 sentinel get-master-addr-by-name mymaster | grep -q redis-master\""
check "sentinel rewrote its config file" bash -c "wait_for 10 docker exec $st grep -q '^sentinel myid' /etc/redis-sentinel/sentinel.conf"

# --------------------------------------------------------------------------------------- postgres
echo "postgres ($POSTGRES_IMAGE)"
pg=$p-postgres
pg_user=radar
pg_db=radardb
pg_pw=smoke-$RANDOM-$RANDOM
docker volume create --label "$label" "$pgvol" >/dev/null
mkdir -p "$tmp/secrets"
printf '%s\n' "$pg_pw" > "$tmp/secrets/pg_password"
mkdir -p "$tmp/initdb"
echo 'CREATE TABLE smoke_init (id int);' > "$tmp/initdb/10-table.sql"
pg_create() { # name: a postgres container on the volume, secrets uploaded before start
  docker create --label "$label" --network "$net" --network-alias postgres --name "$1" \
    -e POSTGRES_USER=$pg_user -e POSTGRES_PASSWORD_FILE=/run/secrets/pg_password -e POSTGRES_DB=$pg_db \
    -v "$pgvol:/var/lib/postgresql/data" "$POSTGRES_IMAGE" postgres -c max_connections=200 >/dev/null
  docker cp "$tmp/secrets" "$1:/run/"
  docker cp "$tmp/initdb/." "$1:/docker-entrypoint-initdb.d/"
  docker start "$1" >/dev/null
}
pg_create "$pg"
if wait_for 60 docker exec "$pg" pg_isready -U "$pg_user" -d "$pg_db"; then
  pass "pg_isready -U $pg_user inside the container"
else
  fail "pg_isready -U $pg_user inside the container"; logs_tail "$pg"
fi
# the entrypoint's temporary server also answers pg_isready: wait for the final one
wait_for 30 bash -c "docker logs $pg 2>&1 | grep -q 'init process complete'" || true
wait_for 30 docker exec "$pg" pg_isready -U "$pg_user" -d "$pg_db" -h 127.0.0.1 || true
psql_remote() { # password, sql
  docker run --rm --label "$label" --network "$net" -e PGPASSWORD="$1" -e PGCONNECT_TIMEOUT=5 "$POSTGRES_IMAGE" \
    psql -h postgres -U "$pg_user" -d "$pg_db" -v ON_ERROR_STOP=1 -tAc "$2"
}
export -f psql_remote
export pg_user pg_db
check "psql over TCP from another container with the password" bash -c \
  "psql_remote '$pg_pw' 'select 1' | grep -qx 1"
check "a wrong password is refused" bash -c \
  "! psql_remote wrong-password 'select 1' && psql_remote wrong-password 'select 1' 2>&1 | grep -q 'password authentication failed'"
check "password stored as SCRAM, hba line 'host all all all scram-sha-256'" bash -c "
  docker exec $pg psql -U $pg_user -d $pg_db -tAc \"select rolpassword like 'SCRAM-SHA-256\\\$%' from pg_authid where rolname='$pg_user'\" | grep -qx t &&
  docker exec $pg grep -qE '^host all all all scram-sha-256' /var/lib/postgresql/data/pg_hba.conf"
check "max_connections=200 from the command line, UTF8, listen_addresses='*'" bash -c "
  [[ \$(docker exec $pg psql -U $pg_user -d $pg_db -tAc 'show max_connections') == 200 ]] &&
  [[ \$(docker exec $pg psql -U $pg_user -d $pg_db -tAc 'show server_encoding') == UTF8 ]] &&
  [[ \$(docker exec $pg psql -U $pg_user -d $pg_db -tAc 'show listen_addresses') == '*' ]]"
check "/docker-entrypoint-initdb.d/*.sql ran" docker exec "$pg" psql -U "$pg_user" -d "$pg_db" -tAc 'select count(*) from smoke_init'
check "server runs as postgres (999), PGDATA 0700" docker exec "$pg" bash -c \
  '[[ $(awk "/^Uid:/{print \$2}" /proc/1/status) == 999 && $(stat -c %a /var/lib/postgresql/data) == 700 ]]'
docker exec "$pg" psql -U "$pg_user" -d "$pg_db" -qc 'create table survives (v text); insert into survives values ($$yes$$)' >/dev/null 2>&1 || true

docker restart "$pg" >/dev/null
if wait_for 60 docker exec "$pg" pg_isready -U "$pg_user" -d "$pg_db" -h 127.0.0.1; then
  pass "ready again after restart"
else
  fail "ready again after restart"; logs_tail "$pg"
fi
check "restart did not re-initialise" bash -c "
  [[ \$(docker logs $pg 2>&1 | grep -c 'init process complete') == 1 ]] &&
  docker logs $pg 2>&1 | grep -q 'Skipping initialization' &&
  [[ \$(docker exec $pg psql -U $pg_user -d $pg_db -tAc 'select v from survives') == yes ]]"
# a new container on the same volume with no password at all must start (nothing to initialise)
docker rm -f "$pg" >/dev/null
docker run -d --label "$label" --network "$net" --network-alias postgres --name "$pg-2" \
  -v "$pgvol:/var/lib/postgresql/data" "$POSTGRES_IMAGE" >/dev/null
if wait_for 60 docker exec "$pg-2" pg_isready -U "$pg_user" -d "$pg_db" -h 127.0.0.1; then
  check "a new container on the old volume keeps the data and the password" bash -c \
    "[[ \$(psql_remote '$pg_pw' 'select v from survives') == yes ]]"
else
  fail "a new container on the old volume starts"; logs_tail "$pg-2"
fi
check "docker stop: fast shutdown (SIGINT), exit 0 within 5 s" bash -c "
  docker stop -t 5 $pg-2 >/dev/null && [[ \$(docker inspect -f '{{.State.ExitCode}}' $pg-2) == 0 ]] &&
  docker logs $pg-2 2>&1 | grep -q 'fast shutdown request'"
check "refuses to initialise without a password" bash -c "
  ! out=\$(docker run --rm --label $label $POSTGRES_IMAGE 2>&1) && grep -q 'superuser password is not specified' <<<\"\$out\""

echo
if (( failures )); then
  echo "offline-images-smoke: $failures check(s) FAILED"
  exit 1
fi
echo "offline-images-smoke: all checks passed"
