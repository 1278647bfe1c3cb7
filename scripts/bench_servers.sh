# Sourced by scripts/bench: finding the tools, the temporary directory on a
# real disk, starting and stopping the private servers (redis-server,
# PostgreSQL, twemproxy, spillway), pausing PostgreSQL, and cleaning up
# every process and file on exit. Expects REPO and MODE to be set.

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
    printf 'scripts/bench: %s\n' "$*" >&2
    exit 1
}

has_pg_server() { [ -x "$1/initdb" ] && [ -x "$1/postgres" ] && [ -x "$1/pg_ctl" ]; }

# The directory holding initdb, postgres and pg_ctl: $SPILLWAY_TEST_PG_BIN
# (as scripts/test sets it), else from PATH, else Debian's newest
# /usr/lib/postgresql/*/bin.
find_pg_bin() {
    local initdb dir
    if [ -n "${SPILLWAY_TEST_PG_BIN:-}" ] && has_pg_server "$SPILLWAY_TEST_PG_BIN"; then
        echo "$SPILLWAY_TEST_PG_BIN"
        return 0
    fi
    if initdb=$(command -v initdb); then
        dir=$(dirname "$(readlink -f "$initdb")")
        if has_pg_server "$dir"; then
            echo "$dir"
            return 0
        fi
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if has_pg_server "$dir"; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

for tool in redis-server redis-cli redis-benchmark python3 cargo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/test installs the servers)"
done
PG_BIN=$(find_pg_bin) || die "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found"
PSQL=$PG_BIN/psql
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "psql not found"
PGBENCH=$PG_BIN/pgbench
[ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench) ||
    die "pgbench not found (Debian: postgresql-contrib or postgresql-client; scripts/test installs it)"
# Optional peers: measured when installed, skipped with a note otherwise.
NUTCRACKER=$(PATH=$PATH:/usr/sbin:/usr/local/sbin command -v nutcracker || true)
MEMTIER=$(command -v memtier_benchmark || true)

# PostgreSQL refuses to run as root: as root, its commands run as postgres.
PG_AS=()
if [ "$(id -u)" -eq 0 ]; then
    id -u postgres >/dev/null 2>&1 || die "running as root needs a system user 'postgres' (scripts/test creates it)"
    PG_AS=(runuser -u postgres --)
fi

# A temporary directory on a real disk: $TMPDIR or /tmp unless it is a RAM
# file system, else target/ inside the repository.
real_disk() {
    case $(stat -f -c %T "$1" 2>/dev/null) in
    tmpfs | ramfs | "") return 1 ;;
    *) return 0 ;;
    esac
}
PARENT=${TMPDIR:-/tmp}
if ! real_disk "$PARENT"; then
    mkdir -p "$REPO/target"
    PARENT=$REPO/target
    real_disk "$PARENT" || die "neither \$TMPDIR nor target/ is on a real disk"
fi

# Idle connections need a descriptor each, in this script's tools and in
# the server: raise the soft limit as far as the hard one allows.
HARD_NOFILE=$(ulimit -Hn)
if [ "$HARD_NOFILE" = unlimited ] || [ "$HARD_NOFILE" -gt 65536 ]; then HARD_NOFILE=65536; fi
ulimit -n "$HARD_NOFILE"

WORK=
REDIS_PID=
NC_PID=
PG_DATA=
PG_PAUSED=0
SPILLWAY_PIDS=()

stop_pid() {
    local pid=$1 waited=0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    [ "$PG_PAUSED" -eq 0 ] || pg_resume
    # spillway first: a write-behind drain retries while PostgreSQL is gone.
    for pid in "${SPILLWAY_PIDS[@]}"; do stop_pid "$pid"; done
    [ -n "$NC_PID" ] && stop_pid "$NC_PID"
    [ -n "$REDIS_PID" ] && stop_pid "$REDIS_PID"
    if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        "${PG_AS[@]}" "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t 30 >/dev/null 2>&1
    fi
    if [ -n "$WORK" ]; then
        # A failure shows the servers' last words; an interrupt does not.
        if [ "$status" -ne 0 ] && [ "$status" -ne 130 ] && [ "$status" -ne 143 ]; then
            for f in "$WORK"/*.log "$WORK"/*/*.log; do
                [ -s "$f" ] || continue
                printf -- '--- last lines of %s\n' "${f#"$WORK"/}" >&2
                tail -n 15 "$f" >&2
            done
        fi
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

WORK=$(mktemp -d "$PARENT/spillway-bench.XXXXXX")
chmod 755 "$WORK"

tools() { python3 "$REPO/scripts/bench_tools.py" "$@"; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until PING on the port answers PONG, or the process is gone.
wait_ready() {
    local port=$1 pid=$2 what=$3 tries=0
    until [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; do
        kill -0 "$pid" 2>/dev/null || die "$what exited while starting"
        tries=$((tries + 1))
        [ "$tries" -lt 300 ] || die "$what did not answer PING within 30 s"
        sleep 0.1
    done
}

start_redis() {
    REDIS_PORT=$(free_port)
    mkdir "$WORK/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --maxclients 20000 --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" >/dev/null 2>&1 &
    REDIS_PID=$!
    wait_ready "$REDIS_PORT" "$REDIS_PID" redis-server
    log "redis-server on port $REDIS_PORT"
}

psql_db() { "$PSQL" -X -q -A -t -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -c "$2"; }

# Stock settings (fsync on, synchronous_commit on), loopback only; room for
# every spillway pool plus pgbench's clients.
start_postgres() {
    PG_PORT=$(free_port)
    mkdir "$WORK/pg"
    [ "${#PG_AS[@]}" -eq 0 ] || chown postgres:postgres "$WORK/pg"
    "${PG_AS[@]}" env LC_ALL=C "$PG_BIN/initdb" -D "$WORK/pg/data" -A trust -U postgres -E UTF8 \
        --locale=C >"$WORK/pg/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$WORK/pg/initdb.log")"
    PG_DATA=$WORK/pg/data
    "${PG_AS[@]}" env LC_ALL=C "$PG_BIN/pg_ctl" start -D "$PG_DATA" -w -t 60 -l "$WORK/pg/postgres.log" \
        -o "-p $PG_PORT -h 127.0.0.1 -k $WORK/pg -c max_connections=300" >/dev/null ||
        die "postgres did not start"
    log "postgres on port $PG_PORT ($(psql_db postgres 'SHOW fsync') fsync, data in $PG_DATA)"
}

# The postmaster and its children: stopped together, PostgreSQL answers
# nothing (as if the machine hung) but loses nothing.
pg_pids() {
    local pm
    pm=$(head -n 1 "$PG_DATA/postmaster.pid")
    echo "$pm" $(tools children "$pm")
}
pg_pause() {
    PG_PAUSED=1
    kill -STOP $(pg_pids)
}
pg_resume() {
    kill -CONT $(pg_pids) 2>/dev/null || true
    PG_PAUSED=0
}

# start_spillway NAME [SPILLWAY__KEY=value…]: starts spillway in $WORK/NAME
# with its own database spillway_NAME, the Redis cache tier under the prefix
# NAME: unless the settings say otherwise; sets NAME_PORT and NAME_PID.
start_spillway() {
    local name=$1 port
    shift
    port=$(free_port)
    mkdir "$WORK/$name"
    psql_db postgres "CREATE DATABASE spillway_$name" >/dev/null
    (cd "$WORK/$name" && exec env -i PATH="$PATH" HOME="${HOME:-/}" RUST_LOG=warn \
        SPILLWAY__SERVER__LISTEN="127.0.0.1:$port" \
        SPILLWAY__CACHE__BACKEND=redis \
        SPILLWAY__CACHE__URL="redis://127.0.0.1:$REDIS_PORT" \
        SPILLWAY__CACHE__KEY_PREFIX="$name:" \
        SPILLWAY__DATABASE__URL="postgres://postgres@127.0.0.1:$PG_PORT/spillway_$name" \
        "$@" "$SPILLWAY_BIN" >"$WORK/$name/spillway.log" 2>&1) &
    SPILLWAY_PIDS+=($!)
    printf -v "${name^^}_PID" %s "$!"
    printf -v "${name^^}_PORT" %s "$port"
    wait_ready "$port" "$!" "spillway ($name)"
}

# twemproxy in front of the private Redis, one server connection, as its
# documentation recommends for a single backend.
start_twemproxy() {
    NC_PORT=$(free_port)
    mkdir "$WORK/nutcracker"
    cat >"$WORK/nutcracker/nutcracker.yml" <<EOF
bench:
  listen: 127.0.0.1:$NC_PORT
  redis: true
  hash: fnv1a_64
  distribution: ketama
  preconnect: true
  server_connections: 1
  servers:
   - 127.0.0.1:$REDIS_PORT:1
EOF
    "$NUTCRACKER" -c "$WORK/nutcracker/nutcracker.yml" -s "$(free_port)" -a 127.0.0.1 \
        -o "$WORK/nutcracker/nutcracker.log" >/dev/null 2>&1 &
    NC_PID=$!
    wait_ready "$NC_PORT" "$NC_PID" nutcracker
    log "twemproxy ($("$NUTCRACKER" --version 2>&1 | sed -n 's/.*nutcracker-//p' | head -n 1)) on port $NC_PORT"
}
