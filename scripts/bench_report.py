"""Prints scripts/bench's results as three tables (issue 5's targets with met
or missed; every measurement with its ratio to the baseline measured in the
same round; the drain and memory probes) and the run's notes.

Usage: bench_report.py --mode full|quick|smoke RESULTS WALSTATS EXTRA NOTES
(formats in scripts/bench_measure.sh; the run's metadata in BENCH_*
environment variables). A full run also rewrites the generated part of
docs/benchmarks.md, the chart docs/benchmarks.svg and README.md's headline
rows (scripts/bench_docs.py). A smoke run writes nothing and exits non-zero
unless every measurement produced sane numbers and hit workloads hit.
"""

import os
import statistics
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_chart  # noqa: E402
import bench_docs  # noqa: E402
from bench_results import (  # noqa: E402
    BASELINE, COLD, DIRECT, DRAIN_TARGET, GET1, GET16, HIT_WORKLOADS, MEM, MEMTIER, NC,
    PG_READ, PG_UPSERT, SET1, SET16, TARGETS, TIER, WB, WT, WT_VS_PG, Results, baseline,
    drain_check, drain_summary, idle_summary, read_jsonl, read_tsv, target_check,
)

env = os.environ


def num(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"


def mib(kib):
    return f"{kib / 1024:,.0f} MiB"


def verdict(ok):
    return "not measured" if ok is None else "**met**" if ok else "**missed**"


def targets_table(res, drain, idle):
    """Issue 5's table of targets, each with what this run measured."""
    lines = ["| workload (issue 5) | target | measured | |", "|---|---|---|---|"]
    for workload, config, minimum, what, target in TARGETS:
        text, ok = target_check(res, workload, config, minimum)
        if workload == GET16 and config == TIER and res.get(GET16, NC):
            text += f" (twemproxy here: {res.get(GET16, NC)['ratio']:.2f}×)"
        lines.append(f"| {what} | {target} | {text} | {verdict(ok)} |")
    text, ok = drain_check(drain)
    lines.append("| write-behind drain into PostgreSQL | ≥ 100 k rows/s sustained; the queue "
                 f"empties while the load runs at half that rate | {text} | {verdict(ok)} |")
    mem = []
    if drain:
        mem.append(f"{mib(drain['rss_pending'])} with {drain['pending']:,.0f} pending writes")
    if idle.get(TIER):
        mem.append(f"{mib(idle[TIER]['with'])} with {idle[TIER]['conns']:,} idle connections")
    lines.append("| memory | RSS with 10 k idle connections; RSS with 1 M pending write-behind "
                 f"writes | {'; '.join(mem) or 'not measured'} | reported |")
    return "\n".join(lines)


def results_table(res):
    lines = [
        "| workload | configuration | requests | ops/s (median) | range over rounds "
        "| × baseline | p50 ms | p99 ms | cache hits | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    targets = {(w, c): m for w, c, m, _, _ in TARGETS}
    for workload, config in res.order:
        g = res.get(workload, config)
        is_base = config == baseline(workload)
        ratio = "baseline" if is_base else "?" if g["ratio"] is None else f"{g['ratio']:.2f}"
        spread = f"{g['range'][0]:,.0f}–{g['range'][1]:,.0f}" if g["rounds"] > 1 else "one round"
        hits = "" if g["hit_ratio"] is None else f"{g['hit_ratio']:.1%}"
        target = ""
        if (workload, config) in targets:
            m = targets[(workload, config)]
            _, ok = target_check(res, workload, config, m)
            target = f"≥ {m:.2f}×: {verdict(ok)}"
        lines.append(
            f"| {workload} | {config} | {g['n']:,} | {g['ops']:,.0f} | {spread} | {ratio} | "
            f"{g['p50']:.3f} | {g['p99']:.3f} | {hits} | {target} |"
        )
    return "\n".join(lines)


def drain_memory_table(drain, idle):
    lines = ["| measurement | configuration | median | range over rounds | detail |",
             "|---|---|---:|---:|---|"]
    if drain:
        spread = "–" if not drain["range"] else "{:,.0f}–{:,.0f}".format(*drain["range"])
        lines.append(
            f"| write-behind drain into PostgreSQL, rows/s | {WB} | {num(drain['rate'])} | "
            f"{spread} | {drain['pending']:,.0f} writes queued while PostgreSQL was "
            f"stopped; the queue was empty {num(drain['resume_to_empty'], 1)} s after it resumed "
            f"(target ≥ {DRAIN_TARGET:,}) |")
        lines.append(
            f"| queue empties under a load at half the drain rate | {WB} | "
            f"{drain['emptied']} of {drain['rounds']} round(s) | | offered "
            f"{num(drain['offered'])} SET/s for {env['BENCH_PACE_SECONDS']} s, acknowledged "
            f"{num(drain['acked'])}/s; at most {num(drain['max_pending'])} pending in the second "
            f"half; empty {num(drain['empty_after'], 1)} s after the load |")
        per_write = (drain["rss_pending"] - drain["rss_before"]) * 1024 / max(1, drain["pending"])
        lines.append(
            f"| RSS with {drain['pending']:,.0f} pending writes | {WB} | "
            f"{mib(drain['rss_pending'])} | {mib(drain['rss_range'][0])}–"
            f"{mib(drain['rss_range'][1])} | {mib(drain['rss_before'])} before the first load "
            f"(about {per_write:,.0f} bytes a pending write), {mib(drain['rss_drained'] or 0)} "
            "once the queue had drained |")
    for config, i in idle.items():
        per_conn = (i["with"] - i["before"]) / max(1, i["conns"])
        lines.append(
            f"| RSS with {i['conns']:,} idle connections | {config} | {mib(i['with'])} | "
            f"{mib(i['range'][0])}–{mib(i['range'][1])} | {mib(i['before'])} before the first probe: "
            f"about {per_conn:,.1f} KiB a connection; {i['answered']:,} answered PING |")
    return "\n".join(lines)


def headline_table(res):
    """The README's few rows: the hit path and the write paths."""
    rows = [(GET16, DIRECT), (GET16, NC), (GET16, TIER), (GET16, MEM), (GET1, TIER),
            (SET16, WB), (WT_VS_PG, WT), (COLD, TIER)]
    targets = {(w, c): m for w, c, m, _, _ in TARGETS}
    lines = ["| workload | configuration | ops/s | ratio | p99 ms | target |",
             "|---|---|---:|---:|---:|---|"]
    for workload, config in rows:
        g = res.get(workload, config) if config else None
        if g is None:
            continue
        base = "pgbench" if workload in BASELINE else "direct"
        ratio = "1.00" if config == baseline(workload) else f"{g['ratio']:.2f}× {base}"
        target = ""
        if (workload, config) in targets:
            m = targets[(workload, config)]
            target = f"≥ {m:.2f}×: {verdict(target_check(res, workload, config, m)[1])}"
        lines.append(f"| {workload} | {config} | {g['ops']:,.0f} | {ratio} | {g['p99']:.3f} "
                     f"| {target} |")
    return "\n".join(lines)


def wal_notes(wal_rows, res):
    """Group commit as observed: records per fsync and fsyncs per second."""
    per_workload = defaultdict(list)
    for _, rnd, workload, appends, fsyncs, pending in wal_rows:
        run = res.runs.get((workload, WB), {}).get(int(rnd))
        secs = run[0] / run[1] if run and run[1] else None
        per_workload[workload].append((int(appends), int(fsyncs), int(pending), secs))
    notes = []
    for workload, runs in per_workload.items():
        synced = [r for r in runs if r[1] > 0]
        if not synced:
            continue
        per_sync = statistics.median(a / f for a, f, _, _ in synced)
        note = f"- Write-behind, {workload}: a median of {per_sync:.1f} WAL records per fsync"
        rates = [f / s for _, f, _, s in synced if s]
        if rates:
            rate = statistics.median(rates)
            note += f", {rate:,.0f} fsyncs/s (one every {1000 / rate:.2f} ms)"
        pending = max(p for _, _, p, _ in runs)
        note += (f"; up to {pending:,} writes were still waiting for PostgreSQL when the load ended"
                 if pending else "; PostgreSQL had applied every write when the load ended")
        notes.append(note + ".")
    return notes


def hit_notes(res):
    """A hit workload where not every request was counted as a hit."""
    notes = []
    for workload, config in res.order:
        g = res.get(workload, config)
        if workload in HIT_WORKLOADS and not all_hit(g):
            notes.append(f"- {workload} / {config}: {g['hits']:,} cache hits for "
                         f"{g['requests']:,} requests (hit ratio {num(g['hit_ratio'], 4)}).")
    return notes


def all_hit(g):
    return (g["hit_ratio"] is not None and g["hit_ratio"] >= 0.999
            and g["hits"] >= 0.99 * g["requests"])


def smoke_checks(res, drain, idle, notes):
    """Every configuration and workload ran and produced sane numbers."""
    failures = []

    def check(ok, what):
        if not ok:
            failures.append(what)

    hit_configs = [c for c in (DIRECT, NC, TIER, MEM) if c]
    expected = [(w, c) for w in (GET16, GET1) for c in hit_configs]
    expected += [(SET1, DIRECT), (SET1, WB), (SET1, WT), (SET16, DIRECT), (SET16, WB),
                 (WT_VS_PG, WT), (WT_VS_PG, PG_UPSERT), (COLD, TIER), (COLD, PG_READ)]
    if env.get("BENCH_MEMTIER"):
        expected += [(MEMTIER, DIRECT), (MEMTIER, TIER)]
    for workload, config in expected:
        g = res.get(workload, config)
        check(g is not None, f"{workload} / {config} was not measured")
        if g is None:
            continue
        check(g["ops"] > 0 and g["n"] > 0, f"{workload} / {config}: no throughput")
        check(0 < g["p50"] <= g["p99"], f"{workload} / {config}: p50 {g['p50']} p99 {g['p99']}")
        check(g["ratio"] is not None and g["ratio"] > 0, f"{workload} / {config}: no ratio")
        if workload in HIT_WORKLOADS:
            check(all_hit(g), f"{workload} / {config}: {g['hits']} hits, {g['requests']} requests")
        if workload == COLD and config == TIER:
            check(g["hit_ratio"] is not None and g["hit_ratio"] < 0.5,
                  f"cold GETs were mostly hits ({g['hit_ratio']})")
    check(drain is not None and drain["rate"], "no write-behind drain rate")
    if drain:
        check(drain["pending"] > 0, "no writes were pending while PostgreSQL was stopped")
        check(drain["rss_pending"] > 0 and drain["rss_before"] > 0, "no RSS with pending writes")
        check(drain["all_emptied_after"], "the queue did not empty after the paced load")
        check(drain["acked"] > 0 and drain["pace_errors"] == 0, "the paced load got errors")
    for config in [c for c in (DIRECT, TIER, NC) if c]:
        i = idle.get(config)
        check(i is not None and i["with"] > 0, f"no idle-connection probe of {config}")
        if i:
            check(i["answered"] == i["conns"], f"{config}: {i['answered']} of {i['conns']} PINGs")
    if not NC:
        check(any("nutcracker" in n for n in notes), "twemproxy skipped without a note")
    if not env.get("BENCH_MEMTIER"):
        check(any("memtier_benchmark" in n for n in notes), "memtier skipped without a note")
    for f in failures:
        print(f"smoke: FAILED: {f}", file=sys.stderr)
    if not failures:
        print(f"smoke: ok: {len(expected)} measurements, the drain, the paced load and the "
              "memory probes produced sane numbers; hit workloads hit")
    return 1 if failures else 0


def main():
    args = sys.argv[1:]
    mode = "full"
    if args[:1] == ["--mode"]:
        mode, args = args[1], args[2:]
    results_path, wal_path, extra_path, notes_path = args
    res = Results(read_tsv(results_path))
    extra = read_jsonl(extra_path)
    drain, idle = drain_summary(extra), idle_summary(extra)
    with open(notes_path) as f:
        notes = [f"- {line.strip()}" for line in f if line.strip()]
    notes = wal_notes(read_tsv(wal_path), res) + hit_notes(res) + notes
    notes.append(f"- After the last measurement the write-behind database held "
                 f"{int(env['BENCH_WB_ROWS']):,} rows in `spillway_kv`.")
    tables = {
        "targets": targets_table(res, drain, idle),
        "results": results_table(res),
        "drain_memory": drain_memory_table(drain, idle),
        "headline": headline_table(res),
    }
    for name in ("targets", "results", "drain_memory"):
        print(tables[name] + "\n")
    print("\n".join(notes))
    if mode == "smoke":
        sys.exit(smoke_checks(res, drain, idle, notes))
    if mode == "full":
        docs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
        bench_chart.write(os.path.join(docs, "benchmarks.svg"), res)
        bench_docs.write_doc(os.path.join(docs, "benchmarks.md"), tables, notes)
        bench_docs.write_readme(os.path.join(docs, "..", "README.md"), tables["headline"])
        print("\nwrote docs/benchmarks.md (generated part), docs/benchmarks.svg, README.md's headline rows")


if __name__ == "__main__":
    main()
