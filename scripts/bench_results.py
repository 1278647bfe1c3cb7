"""What scripts/bench measured, as medians over rounds: the configuration
names, which measurement each workload's ratios are taken against, issue
5's targets, and the summaries of the drain and memory probes. Formats of
the raw files are described in scripts/bench_measure.sh."""

import json
import os
import statistics
from collections import defaultdict

env = os.environ
DIRECT, NC, TIER, MEM = env["BENCH_DIRECT"], env["BENCH_NC"], env["BENCH_TIER"], env["BENCH_MEM"]
WB, WT = env["BENCH_WB"], env["BENCH_WT"]
PG_UPSERT, PG_READ = env["BENCH_PG_UPSERT"], env["BENCH_PG_READ"]

GET16, GET1 = "GET hits -P 16", "GET hits -P 1"
SET1, SET16 = "SET -P 1", "SET -P 16"
WT_VS_PG = "SET -c 50, write-through vs PostgreSQL"
COLD = "GET cold keys -c 50"
MEMTIER = "GET hits -P 16, memtier_benchmark"
# Each workload's ratios are to this configuration in the same round.
BASELINE = {WT_VS_PG: PG_UPSERT, COLD: PG_READ}
HIT_WORKLOADS = (GET16, GET1, MEMTIER)

# Issue 5's targets: (workload, config, minimum ratio, workload and target
# in the words).
TARGETS = [
    (GET16, TIER, 0.65, "cache-hit GET, Redis cache tier, `-c 50 -P 16`",
     "≥ 0.65× direct Redis (twemproxy: 0.31×; measured ceiling 0.71×)"),
    (GET16, MEM, 0.90, "cache-hit GET, memory cache tier, `-c 50 -P 16`", "≥ 0.9× direct Redis"),
    (GET1, TIER, 0.95, "cache-hit GET, Redis cache tier, `-c 50 -P 1`",
     "≥ 0.95× direct Redis throughput, p50 within 0.1 ms of direct"),
    (SET16, WB, 0.40, "write-behind SET, `fsync = always`, Redis tier, `-c 50 -P 16`",
     "≥ 0.4× direct Redis SET, which does not fsync at all"),
    (WT_VS_PG, WT, 3.0, "write-through SET, `-c 50`",
     "≥ 3× pgbench single-row upserts at the same concurrency"),
    (COLD, TIER, 0.70, "cache-miss GET (cold keys), `-c 50`", "≥ 0.7× pgbench primary-key reads"),
]
DRAIN_TARGET = 100_000
# A p50 of a hit-path GET at -P 1 may exceed direct Redis's by this much.
P50_SLACK_MS = 0.1


def read_tsv(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Results:
    """Per (workload, config): per round (n, ops/s, p50, p99, hits, misses)."""

    def __init__(self, rows):
        self.runs = defaultdict(dict)
        self.order = []
        for rnd, workload, config, n, ops, p50, p99, hits, misses in rows:
            key = (workload, config)
            if key not in self.order:
                self.order.append(key)
            self.runs[key][int(rnd)] = (
                int(n), float(ops), float(p50), float(p99),
                int(hits) if hits else None, int(misses) if misses else None,
            )
        workloads = list(dict.fromkeys(w for w, _ in self.order))
        self.order.sort(key=lambda k: (workloads.index(k[0]), k[1] != baseline(k[0])))

    def get(self, workload, config):
        """Medians over the rounds, the ratio to the baseline as the median
        of per-round ratios (drift between rounds cancels), hit counts."""
        runs = self.runs.get((workload, config))
        if not runs:
            return None
        base = self.runs.get((workload, baseline(workload)), {})
        ratios = [runs[r][1] / base[r][1] for r in runs if r in base and base[r][1] > 0]
        hits = sum(r[4] or 0 for r in runs.values())
        looked = hits + sum(r[5] or 0 for r in runs.values())
        ops = [r[1] for r in runs.values()]
        return {
            "ops": med(ops),
            "range": (min(ops), max(ops)),
            "rounds": len(runs),
            "p50": med(r[2] for r in runs.values()),
            "p99": med(r[3] for r in runs.values()),
            "ratio": med(ratios),
            "hit_ratio": hits / looked if looked else None,
            "n": int(med(r[0] for r in runs.values())),
            "hits": hits,
            "requests": sum(r[0] for r in runs.values()),
        }


def baseline(workload):
    return BASELINE.get(workload, DIRECT)


def target_check(res, workload, config, minimum):
    """(measured text, met) for one of TARGETS; met is None if not measured."""
    got = res.get(workload, config)
    if got is None or got["ratio"] is None:
        return "not measured", None
    text = f"{got['ratio']:.2f}× {'pgbench' if workload in BASELINE else 'direct'}"
    ok = got["ratio"] >= minimum
    if workload == GET1:
        gap = got["p50"] - res.get(workload, DIRECT)["p50"]
        text += f", p50 {gap * 1000:+.0f} µs vs direct"
        ok = ok and gap <= P50_SLACK_MS
    if workload == COLD and got["hit_ratio"] is not None:
        text += f" ({got['hit_ratio']:.1%} cache hits)"
    return text, ok


def drain_summary(extra):
    """The write-behind drain and half-rate load probes, over the rounds."""
    drains = [e for e in extra if e["kind"] == "drain"]
    if not drains:
        return None
    rates = [e["drain"].get("rows_per_s") for e in drains if e["drain"].get("rows_per_s")]
    paces = [e["pace"] for e in drains]
    return {
        "rate": med(rates),
        "range": (min(rates), max(rates)) if rates else None,
        "pending": med(e["pending"] for e in drains),
        "resume_to_empty": med(e["drain"].get("resume_to_empty_s") for e in drains),
        # Before the first load: later rounds start with the memory the
        # allocator kept from the previous backlog (rss_drained).
        "rss_before": drains[0]["rss_before_kib"],
        "rss_drained": med(e.get("rss_drained_kib") for e in drains),
        "rss_pending": med(e["rss_pending_kib"] for e in drains),
        "rss_range": (min(e["rss_pending_kib"] for e in drains),
                      max(e["rss_pending_kib"] for e in drains)),
        "emptied": sum(bool(p["emptied_during_load"]) for p in paces),
        "reached": sum(bool(p["reached_rate"]) for p in paces),
        "rounds": len(drains),
        "offered": med(p["offered_per_s"] for p in paces),
        "acked": med(p["acked_per_s"] for p in paces),
        "max_pending": max((p["max_pending_second_half"] or 0) for p in paces),
        "empty_after": max((p["empty_after_load_s"] or 0) for p in paces),
        "all_emptied_after": all(p["empty_after_load_s"] is not None for p in paces),
        "pace_errors": sum(p["errors"] for p in paces),
    }


def drain_check(drain):
    """(measured text, met) for the drain target: the rate, and the queue
    emptying during a load at half that rate in every round."""
    if drain is None or drain["rate"] is None:
        return "not measured", None
    text = (f"{drain['rate']:,.0f} rows/s; at half that rate the queue emptied in "
            f"{drain['emptied']} of {drain['rounds']} round(s)")
    if drain["reached"] < drain["rounds"]:
        text += (f", but the load reached half the drain rate in only {drain['reached']} "
                 f"(acknowledged {drain['acked']:,.0f} of {drain['offered']:,.0f} SET/s)")
    ok = drain["emptied"] == drain["reached"] == drain["rounds"]
    return text, drain["rate"] >= DRAIN_TARGET and ok


def idle_summary(extra):
    """RSS before and with the idle connections, per configuration."""
    by_config = defaultdict(list)
    for e in extra:
        if e["kind"] == "idle":
            by_config[e["config"]].append(e["result"])
    return {
        config: {
            "conns": rs[0]["conns"],
            "answered": min(r["answered"] for r in rs),
            # The first probe's baseline: later ones start with what the
            # server kept from the previous probe's connections.
            "before": min(r["rss_before_kib"] for r in rs),
            "with": med(r["rss_kib"] for r in rs),
            "range": (min(r["rss_kib"] for r in rs), max(r["rss_kib"] for r in rs)),
        }
        for config, rs in by_config.items()
    }
