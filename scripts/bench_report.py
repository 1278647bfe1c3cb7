"""Turns scripts/bench's raw results into one Markdown table and, when given
an output path, the whole of docs/benchmarks.md.

Usage: bench_report.py RESULTS WAL NOTES [OUT]; the run's metadata comes in
BENCH_* environment variables set by scripts/bench.

RESULTS: round, workload, config, requests, req/s, p50 ms, p99 ms (tab-separated).
WAL: "wb", round, workload, WAL appends, WAL fsyncs, wb_pending at the end.
"""

import os
import statistics
import sys
from collections import defaultdict

env = os.environ
DIRECT = env["BENCH_DIRECT"]
WB = env["BENCH_WB"]
WT = env["BENCH_WT"]
TIER = env["BENCH_TIER"]

# Issue 5's targets, as ratios to direct Redis in the same run.
TARGETS = {
    ("SET -P 16", WB): 0.40,
    ("GET -P 16, hits", TIER): 0.65,
    ("GET -P 1, hits", TIER): 0.95,
}


def read_tsv(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def table(rows):
    by_key = defaultdict(dict)  # (workload, config) -> round -> (rps, p50, p99)
    order = []
    requests = {}
    for rnd, workload, config, n, rps, p50, p99 in rows:
        key = (workload, config)
        if key not in order:
            order.append(key)
        by_key[key][int(rnd)] = (float(rps), float(p50), float(p99))
        requests[key] = int(n)
    # Direct Redis first within each workload, then the order measured.
    workloads = list(dict.fromkeys(w for w, _ in order))
    order.sort(key=lambda k: (workloads.index(k[0]), k[1] != DIRECT))

    lines = [
        "| workload | configuration | requests | req/s (median) | range over rounds | × direct Redis | p50 ms | p99 ms | target (issue 5) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for workload, config in order:
        runs = by_key[(workload, config)]
        direct = by_key.get((workload, DIRECT), {})
        rps = [r[0] for r in runs.values()]
        ratios = [runs[r][0] / direct[r][0] for r in runs if r in direct and direct[r][0] > 0]
        ratio = statistics.median(ratios) if ratios else None
        p50 = statistics.median(r[1] for r in runs.values())
        p99 = statistics.median(r[2] for r in runs.values())
        spread = f"{min(rps):,.0f}–{max(rps):,.0f}" if len(rps) > 1 else "one round"
        target = TARGETS.get((workload, config))
        if target is None:
            target_text = ""
        elif ratio is None:
            target_text = f"≥ {target:.2f}×"
        else:
            target_text = f"≥ {target:.2f}×: {'met' if ratio >= target else 'missed'}"
        lines.append(
            f"| {workload} | {config} | {requests[(workload, config)]:,} | "
            f"{statistics.median(rps):,.0f} | {spread} | "
            f"{'1.00' if config == DIRECT else f'{ratio:.2f}' if ratio is not None else '?'} | "
            f"{p50:.3f} | {p99:.3f} | {target_text} |"
        )
    return "\n".join(lines)


def wal_notes(wal_rows, result_rows):
    """Group commit as observed: records per fsync and fsyncs per second."""
    seconds = {}
    for rnd, workload, config, n, rps, _, _ in result_rows:
        if config == WB:
            seconds[(rnd, workload)] = int(n) / float(rps)
    per_workload = defaultdict(list)
    for _, rnd, workload, appends, fsyncs, pending in wal_rows:
        per_workload[workload].append(
            (int(appends), int(fsyncs), int(pending), seconds.get((rnd, workload)))
        )
    notes = []
    for workload, runs in per_workload.items():
        synced = [r for r in runs if r[1] > 0]
        if not synced:
            continue
        per_sync = statistics.median(a / f for a, f, _, _ in synced)
        rates = [f / s for _, f, _, s in synced if s]
        note = f"- Write-behind, {workload}: a median of {per_sync:.1f} WAL records per fsync"
        if rates:
            rate = statistics.median(rates)
            note += f", {rate:,.0f} fsyncs/s (one every {1000 / rate:.2f} ms)"
        pending = max(p for _, _, p, _ in runs)
        if pending:
            note += f"; up to {pending:,} writes were still waiting for PostgreSQL when the load ended"
        else:
            note += "; PostgreSQL had applied every write by the time the load ended"
        notes.append(note + ".")
    return notes


def machine_note():
    before = int(env["BENCH_BUSY_BEFORE"])
    after = int(env["BENCH_BUSY_AFTER"])
    text = (
        f"Before the run the cores were {before} % busy (load average {env['BENCH_LOAD_BEFORE']}), "
        f"after it {after} %."
    )
    if max(before, after) >= 10:
        text += (
            f" Other processes were using the machine: these numbers come from a shared "
            f"{env['BENCH_CORES']}-core machine, and that load may have changed during "
            "the run (see the range over rounds). Ratios within a round are more "
            "trustworthy than absolute rates."
        )
    return text


def document(table_md, notes):
    return f"""# Benchmarks

Throughput of spillway next to direct Redis, measured in one run on one
machine, with the command that produced it. Regenerate with `scripts/bench`
(a full run takes a few minutes; `scripts/bench --quick` is a smoke check
that prints the table without writing this file).

## Latest run

- Command: `{env['BENCH_COMMAND'].strip()}`
- Date: {env['BENCH_DATE']}, spillway commit {env['BENCH_COMMIT']} (release build)
- Machine: {env['BENCH_CORES']} cores (`nproc`), {env['BENCH_CPU']};
  one `fdatasync` of a small append on the WAL's disk took {env['BENCH_FDATASYNC_US']} µs
  before the run and {env['BENCH_FDATASYNC_US_AFTER']} µs after it (median over a second)
- Versions: redis-server {env['BENCH_REDIS']}, PostgreSQL {env['BENCH_PG']}, redis-benchmark from the same Redis
- {machine_note()}
- Measured part of the run: {env['BENCH_ELAPSED']} s, {env['BENCH_ROUNDS']} round(s).

{table_md}

How to read it:

- Every configuration is measured with `redis-benchmark -c {env['BENCH_CLIENTS']} -q --csv` on
  loopback, with the requests per measurement in the table (sized so each
  takes a few seconds). SETs spread over 100 k keys (`-r 100000`), GETs read
  a preloaded keyspace of 10 k keys (`-r 10000`).
- req/s is the median over the rounds; "× direct Redis" is the median of the
  per-round ratios to direct Redis measured in the same round, so that drift
  of the machine between rounds cancels out. p50 and p99 are medians of
  redis-benchmark's own percentiles.
- Direct Redis does not fsync at all (`--save '' --appendonly no`).
  Write-behind acknowledges a SET after its WAL record is fsynced
  (`fsync = always`, group commit); write-through acknowledges it after the
  PostgreSQL transaction commits (stock settings: `fsync = on`,
  `synchronous_commit = on`).
- Both spillway processes use one private redis-server as the cache tier
  (separate key prefixes) and one private PostgreSQL cluster (separate
  databases); all three servers run on the same {env['BENCH_CORES']} cores as the load
  generator. The WAL and PostgreSQL's data are on a real disk ({env['BENCH_WAL_FS']}), never tmpfs.
- Before every measurement the script waits until the write-behind queue is
  empty (`wb_pending:0`), so PostgreSQL catching up with an earlier run does
  not slow the next. The configurations take turns, the order rotated each
  round. The GET rows for spillway read through the write-through process
  after one GET of every preloaded key; the script checks that every request
  was a cache hit and notes below when one was not.

Observed during the run:

{chr(10).join(notes) if notes else "- Nothing unusual."}

## Not measured yet

The full harness of issue 5 is later work. This run does not yet measure:
the in-process (memory) cache tier, cache-miss GETs, PostgreSQL's own rates
with `pgbench` (the write-through and cache-miss targets are relative to
them), the sustained drain rate of write-behind into PostgreSQL, twemproxy as
a peer proxy, `memtier_benchmark`, memory (RSS with 10 k idle connections
and with 1 M pending writes), a chart of throughput and p99, or profiles
explaining the missed targets.
"""


def main():
    results, wal, notes_path = sys.argv[1:4]
    out = sys.argv[4] if len(sys.argv) > 4 else ""
    result_rows = read_tsv(results)
    table_md = table(result_rows)
    print(table_md)
    notes = wal_notes(read_tsv(wal), result_rows)
    with open(notes_path) as f:
        notes += [f"- {line.strip()}" for line in f if line.strip()]
    notes.append(
        f"- After the last measurement the write-behind database held "
        f"{int(env['BENCH_WB_ROWS']):,} rows in `spillway_kv`."
    )
    for note in notes:
        print(note)
    if out:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        with open(out, "w") as f:
            f.write(document(table_md, notes))


if __name__ == "__main__":
    main()
