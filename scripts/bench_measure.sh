# Sourced by scripts/bench: one measurement of each kind, appending to the
# run's result files:
#
#   RESULTS  round, workload, config, requests, ops/s, p50 ms, p99 ms, cache
#            hits, cache misses (tab-separated; hits/misses empty for SETs)
#   WALSTATS "wb", round, workload, WAL appends, fsyncs, wb_pending at the end
#   EXTRA    one JSON object per line: drain, half-rate load and memory probes
#   NOTES    one line per thing a reader of the table should know

RESULTS=$WORK/results.tsv
WALSTATS=$WORK/wal.tsv
EXTRA=$WORK/extra.jsonl
NOTES=$WORK/notes.txt
: >"$RESULTS"
: >"$WALSTATS"
: >"$EXTRA"
: >"$NOTES"

note() { printf '%s\n' "$*" >>"$NOTES"; }

info_field() { redis-cli -p "$1" info "$2" | tr -d '\r' | sed -n "s/^$3://p"; }

# Waits until the write-behind queue is empty; prints the seconds it took.
wait_drained() {
    local started=$SECONDS pending
    while :; do
        pending=$(info_field "$WB_PORT" writebehind wb_pending)
        [ "$pending" = 0 ] && break
        [ $((SECONDS - started)) -lt "$DRAIN_TIMEOUT" ] ||
            die "write-behind queue still holds $pending writes after ${DRAIN_TIMEOUT}s"
        sleep 0.1
    done
    echo $((SECONDS - started))
}

# MSET key:000000000000 … (redis-benchmark's names for -r) through the
# port, 500 keys a command (one commit each under write-through).
preload() {
    local port=$1 count=$2 fmt=${3:-key:%012d}
    tools mset "$fmt" 0 "$count" | redis-cli -p "$port" --pipe >/dev/null
}

# GETs every preloaded key once, so a cache tier holds them all.
warm() {
    local port=$1 count=$2 fmt=${3:-key:%012d}
    tools gets "$fmt" "$count" | redis-cli -p "$port" --pipe >/dev/null
}

# Drops every cache entry under PREFIX from the shared Redis, so the next
# reads through that spillway instance are misses.
purge_cache() {
    redis-cli -p "$REDIS_PORT" eval "local ks = redis.call('keys', ARGV[1])
        for i = 1, #ks, 5000 do redis.call('unlink', unpack(ks, i, math.min(i + 4999, #ks))) end
        return #ks" 0 "$1*" >/dev/null
}

# "hits misses" so far: Redis's keyspace counters for Redis and twemproxy
# (which passes GETs through), spillway's cache counters otherwise.
hit_counters() {
    local port=$1 s
    if [ "$port" = "$REDIS_PORT" ] || [ "$port" = "${NC_PORT:-}" ]; then
        s=$(redis-cli -p "$REDIS_PORT" info stats | tr -d '\r')
        echo "$(sed -n 's/^keyspace_hits://p' <<<"$s") $(sed -n 's/^keyspace_misses://p' <<<"$s")"
    else
        s=$(redis-cli -p "$port" info cache | tr -d '\r')
        echo "$(sed -n 's/^cache_hits://p' <<<"$s") $(sed -n 's/^cache_misses://p' <<<"$s")"
    fi
}

# Every preloaded key read through the port must come back with its value.
check_values() {
    local port=$1 config=$2 wrong
    wrong=$(tools values "$port" key:%012d "$PRELOAD_KEYS")
    [ "$wrong" = 0 ] || die "$config answered $wrong of the $PRELOAD_KEYS preloaded keys without their value 'xxx'"
}

row() { local IFS=$'\t'; printf '%s\n' "$*" >>"$RESULTS"; }

# measure ROUND WORKLOAD CONFIG PORT N redis-benchmark-args…
measure_rb() {
    local round=$1 workload=$2 config=$3 port=$4 n=$5 drained c0 c1 out err line hits= misses=
    local rps p50 p99
    shift 5
    local get=0 miss=0
    [[ " $* " == *" -t get "* ]] && get=1
    [[ $workload == *cold* ]] && miss=1
    drained=$(wait_drained)
    if [ "$get" -eq 1 ] && [ "$miss" -eq 0 ]; then
        check_values "$port" "$config"
        [ "$port" = "$REDIS_PORT" ] || [ "$port" = "${NC_PORT:-}" ] || warm "$port" "$PRELOAD_KEYS"
    fi
    [ "$miss" -eq 0 ] || purge_cache "miss:"
    [ "$get" -eq 0 ] || c0=$(hit_counters "$port")
    local fsyncs0 appends0
    if [ "$port" = "$WB_PORT" ]; then
        fsyncs0=$(info_field "$port" writebehind wal_fsyncs)
        appends0=$(info_field "$port" writebehind wal_appends)
    fi
    out=$WORK/bench.out
    err=$WORK/bench.err
    redis-benchmark -h 127.0.0.1 -p "$port" -c "$CLIENTS" -n "$n" -q --csv "$@" >"$out" 2>"$err" ||
        die "redis-benchmark failed against $config: $(tail -n 3 "$err")"
    # redis-benchmark reads CONFIG, which spillway and twemproxy do not
    # offer; any other message is worth a note.
    if grep -v -e 'Could not fetch server CONFIG' -e '^$' "$err" >"$err.rest"; then
        note "$workload / $config, round $round: redis-benchmark said: $(head -n 3 "$err.rest" | tr '\n' ' ')"
    fi
    line=$(grep -v '^"test"' "$out" | head -n 1)
    [ -n "$line" ] || die "no result from redis-benchmark against $config"
    # "SET","160000.00","0.182","0.048","0.167","0.295","0.575","1.647"
    IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"${line//\"/}"
    if [ "$get" -eq 1 ]; then
        c1=$(hit_counters "$port")
        hits=$((${c1% *} - ${c0% *}))
        misses=$((${c1#* } - ${c0#* }))
    fi
    row "$round" "$workload" "$config" "$n" "$rps" "$p50" "$p99" "$hits" "$misses"
    log "round $round  $workload  $config: $rps req/s, p50 $p50 ms${hits:+, $hits hits $misses misses} (waited ${drained}s for the queue)"
    if [ "$port" = "$WB_PORT" ]; then
        local pending
        pending=$(info_field "$port" writebehind wb_pending)
        printf 'wb\t%s\t%s\t%s\t%s\t%s\n' "$round" "$workload" \
            $(($(info_field "$port" writebehind wal_appends) - appends0)) \
            $(($(info_field "$port" writebehind wal_fsyncs) - fsyncs0)) "$pending" >>"$WALSTATS"
    fi
}

# measure_pgbench ROUND WORKLOAD CONFIG SCRIPT DATABASE: pgbench with as
# many clients as redis-benchmark, autocommit, prepared statements.
measure_pgbench() {
    local round=$1 workload=$2 config=$3 script=$4 db=$5 out=$WORK/pgbench.out tps n failed p50 p99
    wait_drained >/dev/null
    rm -f "$WORK"/pgbench-log*
    "$PGBENCH" -n -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$CLIENTS" -j 2 -T "$PGBENCH_SECONDS" \
        -M prepared -f "$script" -l --log-prefix="$WORK/pgbench-log" "$db" >"$out" 2>&1 ||
        die "pgbench failed against $db: $(tail -n 5 "$out")"
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -n 1)
    n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    [ -n "$tps" ] && [ -n "$n" ] || die "no result from pgbench: $(tail -n 5 "$out")"
    [ "${failed:-0}" = 0 ] || note "$workload / $config, round $round: $failed pgbench transactions failed"
    read -r p50 p99 < <(tools pglat "$WORK/pgbench-log")
    rm -f "$WORK"/pgbench-log*
    row "$round" "$workload" "$config" "$n" "$tps" "$p50" "$p99" "" ""
    log "round $round  $workload  $config: $tps tx/s, p50 $p50 ms"
}

# measure_memtier ROUND WORKLOAD CONFIG PORT N: memtier_benchmark GETs of
# keys memtier-1 … memtier-PRELOAD_KEYS (preloaded under those names), 50
# connections over 2 threads, pipeline 16. A failure is a note, not fatal.
measure_memtier() {
    local round=$1 workload=$2 config=$3 port=$4 n=$5 json=$WORK/memtier.json result
    local count ops p50 p99 hps mps
    wait_drained >/dev/null
    [ "$port" = "$REDIS_PORT" ] || warm "$port" "$PRELOAD_KEYS" memtier-%d
    rm -f "$json"
    if ! "$MEMTIER" -s 127.0.0.1 -p "$port" --protocol=redis -t 2 -c $((CLIENTS / 2)) --pipeline=16 \
        --ratio=0:1 --key-pattern=R:R --key-prefix=memtier- --key-minimum=0 \
        --key-maximum=$((PRELOAD_KEYS - 1)) --requests=$((n / CLIENTS)) --hide-histogram \
        --json-out-file="$json" >"$WORK/memtier.out" 2>&1; then
        note "$workload / $config, round $round: memtier_benchmark failed: $(tail -n 2 "$WORK/memtier.out" | tr '\n' ' ')"
        return 0
    fi
    if ! result=$(python3 - "$json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["ALL STATS"]
t, g = s["Totals"], s["Gets"]
p = t["Percentile Latencies"]
print(t["Count"], t["Ops/sec"], p["p50.00"], p["p99.00"], g.get("Hits/sec", 0), g.get("Misses/sec", 0))
PY
    ); then
        note "$workload / $config, round $round: memtier_benchmark's JSON was not understood"
        return 0
    fi
    read -r count ops p50 p99 hps mps <<<"$result"
    # Hits and misses per second, as memtier reports them, scaled to counts.
    row "$round" "$workload" "$config" "$count" "$ops" "$p50" "$p99" \
        "$(python3 -c "print(round($hps * $count / max($ops, 1)))")" \
        "$(python3 -c "print(round($mps * $count / max($ops, 1)))")"
    log "round $round  $workload  $config: $ops ops/s, p50 $p50 ms"
}

# Runs one workload against each "config|port|n" in turn, the order rotated
# by the round so that no configuration always goes first. A port of "pg"
# means pgbench with the workload's script.
workload() {
    local round=$1 name=$2 args=$3 i k count config port n
    shift 3
    local specs=("$@")
    count=${#specs[@]}
    for ((i = 0; i < count; i++)); do
        k=$(((i + round - 1) % count))
        IFS='|' read -r config port n <<<"${specs[$k]}"
        case $args in
        pgbench:*)
            IFS=: read -r _ script db <<<"$args"
            measure_pgbench "$round" "$name" "$config" "$script" "$db"
            ;;
        memtier) measure_memtier "$round" "$name" "$config" "$port" "$n" ;;
        *)
            # shellcheck disable=SC2086 # args are redis-benchmark flags
            measure_rb "$round" "$name" "$config" "$port" "$n" $args
            ;;
        esac
    done
}

json_field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$1" "$2"; }

# With PostgreSQL stopped, N_PENDING SETs of distinct keys go into
# write-behind (RSS before, with them queued, and after they drained); then
# PostgreSQL resumes and the queue's drain is timed. Then a paced load at half that rate checks
# that the queue keeps emptying while writes keep coming.
drain_round() {
    local round=$1 rss0 rss1 rss2 pending drain rate pace
    wait_drained >/dev/null
    rss0=$(tools rss "$WB_PID")
    pg_pause
    redis-benchmark -h 127.0.0.1 -p "$WB_PORT" -c "$CLIENTS" -P 16 -n "$N_PENDING" -r 1000000000 \
        -t set -q --csv >"$WORK/bench.out" 2>"$WORK/bench.err" ||
        die "loading writes with PostgreSQL stopped failed: $(tail -n 3 "$WORK/bench.err")"
    pending=$(info_field "$WB_PORT" writebehind wb_pending)
    rss1=$(tools rss "$WB_PID")
    # The tool resumes PostgreSQL itself, so its clock starts at the resume.
    drain=$(tools drain "$WB_PORT" "$DRAIN_TIMEOUT" "$pending" $(pg_pids))
    pg_resume
    log "round $round  drain: $pending writes queued (RSS $((rss0 / 1024)) → $((rss1 / 1024)) MiB): $drain"
    [ "$(json_field "$drain" drained)" = True ] ||
        die "the write-behind queue did not drain within ${DRAIN_TIMEOUT}s after PostgreSQL resumed"
    rss2=$(tools rss "$WB_PID")
    rate=$(json_field "$drain" rows_per_s)
    pace=$(tools pace "$WB_PORT" $((rate / 2 > 100 ? rate / 2 : 100)) "$PACE_SECONDS" "pace:$round")
    log "round $round  half-rate load: $pace"
    printf '{"round": %s, "kind": "drain", "pending": %s, "rss_before_kib": %s, "rss_pending_kib": %s, "rss_drained_kib": %s, "drain": %s, "pace": %s}\n' \
        "$round" "$pending" "$rss0" "$rss1" "$rss2" "$drain" "$pace" >>"$EXTRA"
}

# RSS of each server before and with IDLE_CONNS idle client connections.
idle_round() {
    local round=$1 spec config port pid result
    for spec in "$DIRECT|$REDIS_PORT|$REDIS_PID" "$TIER|$WT_PORT|$WT_PID" ${NC_PID:+"$NC|$NC_PORT|$NC_PID"}; do
        IFS='|' read -r config port pid <<<"$spec"
        result=$(tools idle "$port" "$pid" "$IDLE_CONNS")
        log "round $round  $IDLE_CONNS idle connections to $config: $result"
        printf '{"round": %s, "kind": "idle", "config": "%s", "result": %s}\n' \
            "$round" "$config" "$result" >>"$EXTRA"
    done
}
