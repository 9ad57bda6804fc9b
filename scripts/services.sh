#!/usr/bin/env bash
# Local services for the endurance coach: Postgres (>= 15, with pgvector) and Redis on loopback.
#
#   bash scripts/services.sh [up]   start (or reuse) the services and write their URLs to .env
#   bash scripts/services.sh down   stop what `up` started
#   bash scripts/services.sh env    print the service lines of .env
#
# `up` picks, per service: the URL the user exported (DATABASE_URL / REDIS_URL); else a Docker
# engine through docker-compose.yml when `docker info` answers; else local server binaries,
# installed with apt when missing (pgvector is built from Debian's source package).
# Local server data lives outside git under /var/lib/endurance-coach/<hash of project path>/
# (override with COACH_SERVICES_DIR); non-root users fall back to ~/.local/state/endurance-coach/.
#
# Security: the first `up` generates two random passwords ([A-Za-z0-9], 32 characters) into <state>/secrets
# (mode 0600) and .env (mode 0600, also in DATABASE_URL / REDIS_URL): Postgres uses scram-sha-256 for every
# connection (a cluster made earlier with `trust` is upgraded: password set, pg_hba.conf rewritten, reloaded);
# Redis runs as the `redis` user with `requirepass` and CONFIG disabled, its settings in a 0600 file (so the
# password is never on a command line). Postgres commits durably (fsync, synchronous_commit, full_page_writes on);
# Redis keeps an append-only file fsynced on every write.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_FILE="$ROOT/.env"
HASH=$(printf %s "$ROOT" | sha256sum | cut -c1-12)
if [[ -n ${COACH_SERVICES_DIR:-} ]]; then STATE=$COACH_SERVICES_DIR
elif [[ $EUID -eq 0 ]]; then STATE=/var/lib/endurance-coach/$HASH
else STATE=${XDG_STATE_HOME:-$HOME/.local/state}/endurance-coach/$HASH
fi
PG_DIR=$STATE/pg REDIS_DIR=$STATE/redis LOG_DIR=$STATE/logs PORTS_FILE=$STATE/ports
REDIS_PID=$REDIS_DIR/redis.pid REDIS_CONF=$REDIS_DIR/redis.conf SECRETS=$STATE/secrets
# Redis persistence: the append-only file fsynced on every write, so a turn the coach acknowledged (its messages
# XADDed to the outbox stream) survives a machine crash before the drain moves it to Postgres (`everysec` could
# lose the last second). Written beside the pidfile when Redis starts; a server started with another policy (or by
# an older script, with no such file) is restarted with this one, its data kept.
REDIS_FSYNC=always
REDIS_FSYNC_FILE=$REDIS_DIR/appendfsync
export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes

say() { echo "services: $*"; }
warn() { echo "services: WARNING: $*" >&2; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

# ---------- helpers ----------
APT_UPDATED=
apt_install() {  # apt_install PKG... (root only; `apt-get update` at most once per run)
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then die "need root and apt-get to install: $*"; fi
  [[ -n $APT_UPDATED ]] || { say "apt-get update"; apt-get update -q >/dev/null; APT_UPDATED=1; }
  say "apt-get install $*"
  apt-get install -y -q --no-install-recommends "$@" >/dev/null
}
as_pg() {  # run a command as the postgres user (initdb/postgres refuse root); cwd / so it is readable
  if [[ $EUID -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
port_free() {  # port_free PORT: true when nothing listens on 127.0.0.1:PORT
  python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}
new_password() {  # 32 random characters of [A-Za-z0-9]: safe in a URL without encoding
  python3 -c 'import secrets, string; a = string.ascii_letters + string.digits; print("".join(secrets.choice(a) for _ in range(32)))'
}
load_secrets() {  # sets PG_PASSWORD / REDIS_PASSWORD: from <state>/secrets, else .env, else new; saves them (0600)
  PG_PASSWORD='' REDIS_PASSWORD=''
  if [[ -f $SECRETS ]]; then
    PG_PASSWORD=$(sed -n 's/^PG_PASSWORD=\([A-Za-z0-9]*\)$/\1/p' "$SECRETS" | tail -n1)
    REDIS_PASSWORD=$(sed -n 's/^REDIS_PASSWORD=\([A-Za-z0-9]*\)$/\1/p' "$SECRETS" | tail -n1)
  fi
  [[ -n $PG_PASSWORD ]] || PG_PASSWORD=$(env_value COACH_PG_PASSWORD | grep -xE '[A-Za-z0-9]+' || true)
  [[ -n $REDIS_PASSWORD ]] || REDIS_PASSWORD=$(env_value COACH_REDIS_PASSWORD | grep -xE '[A-Za-z0-9]+' || true)
  [[ -n $PG_PASSWORD ]] || { PG_PASSWORD=$(new_password); say "generated a Postgres password"; }
  [[ -n $REDIS_PASSWORD ]] || { REDIS_PASSWORD=$(new_password); say "generated a Redis password"; }
  mkdir -p "$STATE"
  (umask 077; printf 'PG_PASSWORD=%s\nREDIS_PASSWORD=%s\n' "$PG_PASSWORD" "$REDIS_PASSWORD" >"$SECRETS.tmp")
  chmod 600 "$SECRETS.tmp"; mv "$SECRETS.tmp" "$SECRETS"
}
new_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pick_port() {  # pick_port REMEMBERED AVOID: the remembered port when still free, else a new free one
  local p=$1
  if [[ -n $p ]] && port_free "$p"; then echo "$p"; return; fi
  while p=$(new_port); [[ $p == "$2" ]]; do :; done
  echo "$p"
}
env_value() { [[ -f $ENV_FILE ]] && sed -n "s/^$1=//p" "$ENV_FILE" | tail -n1 || true; }
env_mode() { [[ -f $ENV_FILE ]] && sed -n 's/^# services: mode=\([a-z+]*\).*/\1/p' "$ENV_FILE" | tail -n1 || true; }

hide_password() { sed -E 's#//([^:/@]*):[^@/]*@#//\1:***@#' <<<"$1"; }

write_env() {  # write_env MODE: replace our lines in .env (mode 0600: it holds passwords), keep the user's lines
  local tmp; tmp=$(mktemp "$ROOT/.env.XXXXXX")  # mktemp: mode 0600
  [[ -f $ENV_FILE ]] && grep -vE '^(export )?(DATABASE_URL|REDIS_URL|COACH_PG_PASSWORD|COACH_REDIS_PASSWORD)=|^# services: ' \
    "$ENV_FILE" >"$tmp" || true
  { echo "# services: mode=$1 data=$DATA_NOTE (written by scripts/services.sh)"
    echo "DATABASE_URL=$DATABASE_URL"
    echo "REDIS_URL=$REDIS_URL"
    # For docker-compose.yml (it reads .env): the servers' passwords.
    [[ -z ${PG_PASSWORD:-} ]] || echo "COACH_PG_PASSWORD=$PG_PASSWORD"
    [[ -z ${REDIS_PASSWORD:-} ]] || echo "COACH_REDIS_PASSWORD=$REDIS_PASSWORD"; } >>"$tmp"
  chmod 600 "$tmp"; mv "$tmp" "$ENV_FILE"
  say "wrote $ENV_FILE (mode 0600): DATABASE_URL=$(hide_password "$DATABASE_URL") REDIS_URL=$(hide_password "$REDIS_URL")"
}

docker_ready() {  # a Docker engine answers and the compose v2 plugin exists (sets COMPOSE)
  timeout 5 docker info >/dev/null 2>&1 || return 1
  docker compose version >/dev/null 2>&1 || { warn "Docker answers but has no 'docker compose' plugin"; return 1; }
  COMPOSE=(docker compose -f "$ROOT/docker-compose.yml")
}

# ---------- local binaries ----------
find_pg_bin() {  # newest /usr/lib/postgresql/<ver>/bin with a server, version >= 15
  local v
  for v in $(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -rn); do
    [[ $v =~ ^[0-9]+$ && $v -ge 15 && -x /usr/lib/postgresql/$v/bin/postgres && -x /usr/lib/postgresql/$v/bin/initdb ]] \
      && { echo "/usr/lib/postgresql/$v/bin"; return; }
  done
  return 1
}

apt_mirror() {  # the Debian mirror the machine's own apt sources use
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n' \
      | grep -v security | head -n1 || true)
  [[ -n $m ]] || m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | sed -nE 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' | grep -v security | head -n1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

build_pgvector() {  # Debian 12 has no pgvector package: build trixie's source package against our server
  [[ $EUID -eq 0 ]] || { warn "not root: cannot install pgvector"; return 1; }
  apt_install "postgresql-server-dev-$1" make gcc || return 1
  local tmp rc=0; tmp=$(mktemp -d)
  build_pgvector_in "$tmp" "$2" || rc=1
  rm -rf "$tmp"
  return $rc
}

build_pgvector_in() {  # build_pgvector_in TMPDIR PG_CONFIG
  local tmp=$1 pg_config=$2 mirror src; mirror=$(apt_mirror)
  mkdir -p "$tmp/lists/partial"
  echo "deb-src $mirror trixie main" >"$tmp/sources.list"
  # A private sources list and lists dir: the system's apt state stays untouched.
  local opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/nonexistent
              -o "Dir::State::Lists=$tmp/lists" -o APT::Sandbox::User=root)
  say "building pgvector from Debian's source package ($mirror trixie)"
  apt-get "${opts[@]}" update -q >/dev/null || return 1
  (cd "$tmp" && apt-get "${opts[@]}" source -q --download-only pgvector >/dev/null) || return 1
  tar -xf "$tmp"/pgvector_*.orig.tar.* -C "$tmp" || return 1
  src=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d -name 'pgvector*' | head -n1)
  # OPTFLAGS="" avoids -march=native, so the library also runs on other CPUs.
  make -s -C "$src" OPTFLAGS="" PG_CONFIG="$pg_config" >/dev/null 2>&1 || return 1
  make -s -C "$src" OPTFLAGS="" PG_CONFIG="$pg_config" install >/dev/null || return 1
}

psql_local() {  # the password through the environment (never on a command line)
  PGPASSWORD=$PG_PASSWORD PGOPTIONS="-c client_min_messages=warning" \
    "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"
}
# Postgres's durable defaults, stated: an acknowledged commit survives a crash (no fsync=off etc. here).
PG_DURABLE="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
# Postgres's own cache: a quarter of the machine's memory, as its documentation advises ("Resource Consumption":
# 25% of the memory is a reasonable starting value), kept between the 128 MB default and 8 GB. The default makes
# every read of a large archive's postings and HNSW index a copy from the OS cache (README, recall at scale).
shared_buffers_mb() {
  local kb; kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || true)
  local mb=$(( ${kb:-0} / 4096 )); (( mb < 128 )) && mb=128; (( mb > 8192 )) && mb=8192; echo "$mb"
}
PG_MEMORY="-c shared_buffers=$(shared_buffers_mb)MB"

hba_has_trust() { as_pg grep -qE '^[[:space:]]*[^#[:space:]].*[[:space:]]trust[[:space:]]*$' "$PG_DIR/pg_hba.conf"; }

secure_postgres() {  # a cluster made earlier with trust: set the password, then scram-sha-256 everywhere
  hba_has_trust || return 0
  say "upgrading $PG_DIR from trust to scram-sha-256 (password in $SECRETS)"
  # On stdin, not on a command line; password_encryption is scram-sha-256 (the default since Postgres 14).
  psql_local -d postgres <<<"SET password_encryption = 'scram-sha-256'; ALTER USER postgres PASSWORD '$PG_PASSWORD';"
  as_pg sed -i -E '/^[[:space:]]*#/! s/[[:space:]]trust[[:space:]]*$/ scram-sha-256/' "$PG_DIR/pg_hba.conf"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" reload >/dev/null
  sleep 0.5
}

restart_postgres_if_unsafe() {  # a server started by an older script with fsync=off etc.: restart it durably
  local unsafe
  unsafe=$(psql_local -d postgres -c "SELECT count(*) FROM pg_settings
    WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes') AND setting = 'off'")
  [[ $unsafe == 0 ]] && return 0
  say "Postgres runs with fsync/synchronous_commit/full_page_writes off: restarting it with durable commits"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$LOG_DIR/postgres.log" -m fast -w restart -o \
    "-h 127.0.0.1 -p $PG_PORT -k $PG_DIR $PG_DURABLE $PG_MEMORY" >/dev/null || die "Postgres did not restart, see $LOG_DIR/postgres.log"
}

local_postgres() {
  PG_BIN=$(find_pg_bin) || { apt_install postgresql-15 || apt_install postgresql; PG_BIN=$(find_pg_bin); } \
    || die "no Postgres >= 15 server binaries found or installable"
  local ver; ver=$(basename "$(dirname "$PG_BIN")")
  local control=/usr/share/postgresql/$ver/extension/vector.control
  [[ -f $control ]] || build_pgvector "$ver" "$PG_BIN/pg_config" \
    || warn "pgvector could not be installed: recall will use full-text ranking only"

  [[ $EUID -ne 0 ]] || id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
  mkdir -p "$PG_DIR" "$LOG_DIR"
  chmod 755 "$STATE" "$LOG_DIR"; chmod 700 "$PG_DIR"
  touch "$LOG_DIR/postgres.log"
  [[ $EUID -ne 0 ]] || chown postgres "$PG_DIR" "$LOG_DIR/postgres.log"
  as_pg test -r "$PG_DIR" -a -w "$PG_DIR" \
    || die "the postgres user cannot use $PG_DIR (e.g. a folder under /root); set COACH_SERVICES_DIR elsewhere"
  if [[ ! -f $PG_DIR/PG_VERSION ]]; then
    say "initdb $PG_DIR (Postgres $ver, scram-sha-256)"
    local pwfile; pwfile=$(umask 077; mktemp "$STATE/pwfile.XXXXXX")
    echo "$PG_PASSWORD" >"$pwfile"
    [[ $EUID -ne 0 ]] || chown postgres "$pwfile"
    as_pg "$PG_BIN/initdb" -D "$PG_DIR" -U postgres --auth=scram-sha-256 --pwfile="$pwfile" -E UTF8 >/dev/null \
      || { rm -f "$pwfile"; die "initdb failed"; }
    rm -f "$pwfile"
  fi
  [[ $(cat "$PG_DIR/PG_VERSION") == "$ver" ]] || die "$PG_DIR holds Postgres $(cat "$PG_DIR/PG_VERSION") data, binaries are $ver"

  if as_pg "$PG_BIN/pg_ctl" status -D "$PG_DIR" >/dev/null 2>&1; then
    PG_PORT=$(sed -n 4p "$PG_DIR/postmaster.pid")
    say "Postgres already running on 127.0.0.1:$PG_PORT, reusing it"
  else
    PG_PORT=$(pick_port "${SAVED_PG_PORT:-}" "${SAVED_REDIS_PORT:-}")
    say "starting Postgres $ver on 127.0.0.1:$PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$LOG_DIR/postgres.log" -w start -o \
      "-h 127.0.0.1 -p $PG_PORT -k $PG_DIR $PG_DURABLE $PG_MEMORY" \
      >/dev/null || die "Postgres did not start, see $LOG_DIR/postgres.log"
  fi
  secure_postgres
  psql_local -d postgres -c "SELECT 1" >/dev/null \
    || die "cannot connect to Postgres with the password in $SECRETS (delete $PG_DIR to start afresh)"
  restart_postgres_if_unsafe
  [[ -n $(psql_local -d postgres -c "SELECT 1 FROM pg_database WHERE datname='coach'") ]] \
    || { say "creating database coach"; psql_local -d postgres -c "CREATE DATABASE coach"; }
  if [[ -f $control ]]; then
    psql_local -d coach -c "CREATE EXTENSION IF NOT EXISTS vector" \
      || warn "CREATE EXTENSION vector failed: recall will use full-text ranking only"
  fi
  DATABASE_URL=postgresql://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/coach
}

redis_running() {  # our redis-server is alive per its pidfile
  local pid; pid=$(cat "$REDIS_PID" 2>/dev/null) || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -q redis "/proc/$pid/comm" 2>/dev/null
}

stop_redis() {
  local pid; pid=$(cat "$REDIS_PID")
  kill "$pid"  # SIGTERM: Redis flushes its append-only file and exits
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

redis_ping() {  # redis_ping PORT [PASSWORD]: the answer to PING (the password through the environment)
  if [[ -n ${2:-} ]]; then REDISCLI_AUTH=$2 redis-cli --no-auth-warning -p "$1" ping 2>/dev/null || true
  else redis-cli -p "$1" ping 2>/dev/null || true; fi
}

local_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  # Run as the `redis` user (Debian's redis-server package creates it), never as root.
  local as_redis=()
  if [[ $EUID -eq 0 ]]; then
    id redis >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin redis
    as_redis=(runuser -u redis --)
  fi
  mkdir -p "$REDIS_DIR" "$LOG_DIR"
  touch "$LOG_DIR/redis.log"
  # The password and the disabled CONFIG in a file only the redis user reads (not on the command line).
  (umask 077; printf 'requirepass %s\nrename-command CONFIG ""\n' "$REDIS_PASSWORD" >"$REDIS_CONF.tmp")
  mv "$REDIS_CONF.tmp" "$REDIS_CONF"
  chmod 700 "$REDIS_DIR"; chmod 600 "$REDIS_CONF"
  [[ $EUID -ne 0 ]] || chown redis: "$REDIS_DIR" "$REDIS_CONF"
  if redis_running; then  # redis-server's process title is "redis-server 127.0.0.1:PORT"
    local pid; pid=$(cat "$REDIS_PID")
    REDIS_PORT=$(tr '\0' ' ' <"/proc/$pid/cmdline" | grep -oE ':[0-9]+' | head -n1 | tr -d :)
    if [[ $(stat -c %u "/proc/$pid") == 0 && $EUID -eq 0 ]] || [[ $(redis_ping "$REDIS_PORT") == PONG ]] \
        || [[ $(redis_ping "$REDIS_PORT" "$REDIS_PASSWORD") != PONG ]]; then
      say "Redis on 127.0.0.1:$REDIS_PORT runs as root or without our password: restarting it"
      stop_redis
    elif [[ $(cat "$REDIS_FSYNC_FILE" 2>/dev/null) != "$REDIS_FSYNC" ]]; then
      say "Redis on 127.0.0.1:$REDIS_PORT was started without fsync on every write: restarting it durably"
      stop_redis
    else
      say "Redis already running on 127.0.0.1:$REDIS_PORT, reusing it"
    fi
  fi
  if ! redis_running; then
    REDIS_PORT=$(pick_port "${REDIS_PORT:-${SAVED_REDIS_PORT:-}}" "${PG_PORT:-}")
    say "starting Redis on 127.0.0.1:$REDIS_PORT${as_redis:+ as user redis}"
    # Its data, log and pid file belong to the user it runs as (files an older root Redis left included).
    [[ $EUID -ne 0 ]] || chown -R redis: "$REDIS_DIR" "$LOG_DIR/redis.log"
    # Append-only file, fsynced on every write (REDIS_FSYNC): the app keeps a durable outbox in a Redis Stream.
    (cd / && "${as_redis[@]}" redis-server "$REDIS_CONF" --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
      --appendonly yes --appendfsync "$REDIS_FSYNC" --daemonize yes \
      --pidfile "$REDIS_PID" --logfile "$LOG_DIR/redis.log" --dir "$REDIS_DIR" >/dev/null)
    printf '%s' "$REDIS_FSYNC" >"$REDIS_FSYNC_FILE"
  fi
  local i
  for i in $(seq 50); do
    [[ $(redis_ping "$REDIS_PORT" "$REDIS_PASSWORD") == PONG ]] && break
    [[ $i -lt 50 ]] || die "Redis does not answer, see $LOG_DIR/redis.log"
    sleep 0.2
  done
  REDIS_URL=redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0
}

# ---------- commands ----------
up() {
  # URLs exported by the user win; values that merely echo our own .env (e.g. after `. ./.env`) do not count.
  local user_db='' user_redis='' prev; prev=$(env_mode)
  [[ -n ${DATABASE_URL:-} && ( $prev == user || $DATABASE_URL != "$(env_value DATABASE_URL)" ) ]] && user_db=1
  [[ -n ${REDIS_URL:-} && ( $prev == user || $REDIS_URL != "$(env_value REDIS_URL)" ) ]] && user_redis=1
  if [[ -n $user_db && -n $user_redis ]]; then
    say "using DATABASE_URL and REDIS_URL from the environment; starting nothing"
    DATA_NOTE=user-managed; write_env user; return
  fi
  [[ -n $user_db ]] && say "using DATABASE_URL from the environment"
  [[ -n $user_redis ]] && say "using REDIS_URL from the environment"

  load_secrets
  if docker_ready; then
    # docker-compose.yml reads the passwords from the environment (or .env).
    export COACH_PG_PASSWORD=$PG_PASSWORD COACH_REDIS_PASSWORD=$REDIS_PASSWORD
    local svcs=(); [[ -n $user_db ]] || svcs+=(postgres); [[ -n $user_redis ]] || svcs+=(redis)
    say "Docker engine answers: docker compose up ${svcs[*]} (reuses running containers)"
    "${COMPOSE[@]}" up -d --wait "${svcs[@]}" || die "docker compose up failed"
    if [[ -z $user_db ]]; then
      "${COMPOSE[@]}" exec -T postgres psql -U postgres -d coach -qc "CREATE EXTENSION IF NOT EXISTS vector" \
        || warn "CREATE EXTENSION vector failed: recall will use full-text ranking only"
      # A volume made before passwords (POSTGRES_PASSWORD applies only to a new one): set it, no trust over TCP.
      "${COMPOSE[@]}" exec -T -u postgres postgres psql -U postgres -d postgres -q \
        <<<"ALTER USER postgres PASSWORD '$PG_PASSWORD';" || die "could not set the Postgres password"
      "${COMPOSE[@]}" exec -T -u postgres postgres sh -c \
        'sed -i -E "/^[[:space:]]*#/! s/^(host.*)[[:space:]]trust[[:space:]]*$/\1 scram-sha-256/" "$PGDATA/pg_hba.conf" \
         && psql -U postgres -qc "SELECT pg_reload_conf()" >/dev/null' || warn "could not rewrite pg_hba.conf"
      DATABASE_URL=postgresql://postgres:$PG_PASSWORD@127.0.0.1:${COACH_PG_PORT:-54329}/coach
    fi
    [[ -n $user_redis ]] || REDIS_URL=redis://:$REDIS_PASSWORD@127.0.0.1:${COACH_REDIS_PORT:-63799}/0
    DATA_NOTE=docker-volumes; write_env docker; return
  fi

  say "no Docker engine answers: using local server binaries; data in $STATE"
  mkdir -p "$STATE"
  # The postgres user must traverse the parents too (e.g. under a strict root umask).
  [[ $EUID -ne 0 || -n ${COACH_SERVICES_DIR:-} ]] || chmod 755 "$(dirname "$STATE")"
  # shellcheck disable=SC1090
  [[ -f $PORTS_FILE ]] && . "$PORTS_FILE"
  # (plain `if`s: a function called as `a || f` would run with `set -e` switched off)
  if [[ -z $user_db ]]; then local_postgres; fi
  if [[ -z $user_redis ]]; then local_redis; fi
  printf 'SAVED_PG_PORT=%s\nSAVED_REDIS_PORT=%s\n' "${PG_PORT:-${SAVED_PG_PORT:-}}" \
    "${REDIS_PORT:-${SAVED_REDIS_PORT:-}}" >"$PORTS_FILE"
  DATA_NOTE=$STATE; write_env local
  say "data folder: $STATE (logs in $LOG_DIR)"
}

down() {
  local mode; mode=$(env_mode)
  if [[ $mode == docker ]]; then
    if docker_ready; then say "docker compose down"; "${COMPOSE[@]}" down || warn "docker compose down failed"
    else warn "no Docker engine answers: cannot stop the containers"; fi
  fi
  if redis_running; then
    say "stopping Redis (pid $(cat "$REDIS_PID"))"
    stop_redis
  fi
  local pg_bin
  if pg_bin=$(find_pg_bin) && [[ -f $PG_DIR/PG_VERSION ]] \
      && as_pg "$pg_bin/pg_ctl" status -D "$PG_DIR" >/dev/null 2>&1; then
    say "stopping Postgres ($PG_DIR)"
    as_pg "$pg_bin/pg_ctl" -D "$PG_DIR" -m fast -w stop >/dev/null
  fi
  [[ $mode == user ]] && say "DATABASE_URL/REDIS_URL are user-provided: nothing of theirs to stop"
  say "down (data kept in $STATE)"
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  env) grep -E '^(DATABASE_URL|REDIS_URL)=' "$ENV_FILE" 2>/dev/null || die "no .env yet: run \`make services\`" ;;
  *) die "usage: $0 [up|down|env]" ;;
esac
