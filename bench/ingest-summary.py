#!/usr/bin/env python3
"""Summary of bench/ingest.sh results: medians (min-max) of every run, ratios to PostgreSQL
measured in the same run, and the goals.

Usage: bench/ingest-summary.py RESULTS.jsonl
"""
import json
import statistics
import sys



def load(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    return rows


def pick(rows, system, mode):
    return [r for r in rows if r.get("system") == system and r.get("mode") == mode]


def get(d, path):
    for k in path.split("."):
        if d is None:
            return None
        d = d.get(k)
    return d


def med(rows, path):
    xs = [get(r, path) for r in rows]
    xs = [x for x in xs if isinstance(x, (int, float))]
    if not xs:
        return None, None, None
    return statistics.median(xs), min(xs), max(xs)


def fmt(m, unit="", digits=0):
    v, lo, hi = m
    if v is None:
        return "n/a"
    f = "{:,.%df}" % digits
    if lo == hi:
        return (f.format(v) + unit).strip()
    return "%s%s (%s – %s)" % (f.format(v), unit, f.format(lo), f.format(hi))


def main():
    path = sys.argv[1]
    rows = load(path)
    machine = next((r for r in rows if r.get("system") == "machine"), {})
    bulk = pick(rows, "graven", "bulk")
    singles = pick(rows, "graven", "single")
    top = max((r["connections"] for r in singles), default=0)
    single = [r for r in singles if r["connections"] == top]
    pg_clients = next((r["clients"] for r in rows if r.get("mode") == "single_row"), None)
    single_pg = [r for r in singles if r["connections"] == pg_clients and r["connections"] != top]
    pg_single = pick(rows, "postgresql", "single_row")
    pg_batch = pick(rows, "postgresql", "batch_txn")
    pg_copy = pick(rows, "postgresql", "copy")
    pg_verify = pick(rows, "postgresql", "verify")

    lines = []
    add = lines.append
    add("| what | median (min – max) over %d runs |" % max(len(bulk), len(single), len(pg_single), 1))
    add("|---|---|")
    if bulk:
        add("| **graven bulk NDJSON**: events/s | **%s** |" % fmt(med(bulk, "events_per_s")))
        add("| bulk: request MB/s (client JSON) | %s |" % fmt(med(bulk, "request_mb_per_s"), digits=1))
        add("| bulk: response bytes per event (receipts) | %s |" % fmt(med(bulk, "response_bytes_per_event")))
        add("| bulk: server CPU, %% of one core | %s |" % fmt(med(bulk, "server.server_cpu_pct")))
        add("| bulk: whole machine busy, %% of one core (of 200) | %s |" % fmt(med(bulk, "server.machine_busy_pct_of_one_core")))
        add("| bulk: events per group commit | %s |" % fmt(med(bulk, "server.events_per_commit")))
        add("| bulk: commit time (mean per commit) | %s |" % fmt(med(bulk, "server.commit_seconds_mean_ms"), " ms", 1))
        add("| bulk: sequencer busy committing, %% of wall | %s |" % fmt(med(bulk, "server.commit_busy_pct")))
        add("| bulk: request latency p50 / p99 | %s / %s |" % (
            fmt(med(bulk, "request_latency_ms.p50"), " ms"), fmt(med(bulk, "request_latency_ms.p99"), " ms")))
        add("| bulk: index catch-up after the last ack | %s |" % fmt(med(bulk, "drain.drain_s"), " s", 1))
        add("| bulk: events/s counting index catch-up | %s |" % fmt(med(bulk, "drain.events_per_s_incl_drain")))
        add("| bulk: server CPU per event, incl. index catch-up | %s |" % fmt(med(bulk, "drain.server_cpu_us_per_event_incl_drain"), " µs", 1))
        add("| bulk: server disk writes per event | %s |" % fmt(
            (lambda xs: (statistics.median(xs), min(xs), max(xs)) if xs else (None, None, None))(
                [r["server"]["server_disk_write_bytes"] / r["events_acked"] for r in bulk
                 if r["server"].get("server_disk_write_bytes") and r["events_acked"]]), " B"))
        add("| bulk: server peak RSS (VmHWM) | %s |" % fmt(
            (lambda xs: (statistics.median(xs), min(xs), max(xs)) if xs else (None, None, None))(
                [(get(r, "drain.server_vmhwm_kb_after_drain") or r["server"]["server_vmhwm_kb"]) / 1024 for r in bulk
                 if r["server"].get("server_vmhwm_kb")]), " MB"))
        add("| bulk: non-201 responses / receipt mismatches | %d / %d |" % (
            sum(r["non_201"] for r in bulk), sum(r["receipt_mismatches"] for r in bulk)))
    if single:
        add("| **graven single event/request**: events/s | **%s** |" % fmt(med(single, "events_per_s")))
        add("| single: latency p50 | %s |" % fmt(med(single, "latency_ms.p50"), " ms", 1))
        add("| single: latency p99 | **%s** |" % fmt(med(single, "latency_ms.p99"), " ms", 1))
        add("| single: latency p99.9 | %s |" % fmt(med(single, "latency_ms.p99_9"), " ms", 1))
        add("| single: events per group commit | %s |" % fmt(med(single, "server.events_per_commit")))
        add("| single: commit time (mean per commit) | %s |" % fmt(med(single, "server.commit_seconds_mean_ms"), " ms", 1))
        add("| single: server CPU / client CPU, %% of one core | %s / %s |" % (
            fmt(med(single, "server.server_cpu_pct")), fmt(med(single, "server.client_cpu_pct"))))
        add("| single: non-201 responses / receipt mismatches | %d / %d |" % (
            sum(r["non_201"] for r in single), sum(r["receipt_mismatches"] for r in single)))
    if single_pg:
        add("| graven single event/request, %d connections (as PG's clients): events/s | %s |" % (
            single_pg[0]["connections"], fmt(med(single_pg, "events_per_s"))))
        add("| single, %d connections: latency p50 / p99 / p99.9 | %s / %s / %s |" % (
            single_pg[0]["connections"], fmt(med(single_pg, "latency_ms.p50"), " ms", 1),
            fmt(med(single_pg, "latency_ms.p99"), " ms", 1), fmt(med(single_pg, "latency_ms.p99_9"), " ms", 1)))
    if pg_single:
        add("| **PostgreSQL (a)** single-row commits, %d clients: rows/s | **%s** |" % (
            pg_single[0]["clients"], fmt(med(pg_single, "rows_per_s"))))
        add("| PG (a) latency p50 / p99 / p99.9 | %s / %s / %s |" % (
            fmt(med(pg_single, "latency_ms.p50"), " ms", 1), fmt(med(pg_single, "latency_ms.p99"), " ms", 1),
            fmt(med(pg_single, "latency_ms.p99_9"), " ms", 1)))
    if pg_batch:
        add("| **PostgreSQL (b)** %d-row transactions, %d clients: rows/s | **%s** |" % (
            pg_batch[0]["rows_per_txn"], pg_batch[0]["clients"], fmt(med(pg_batch, "rows_per_s"))))
    if pg_copy:
        add("| **PostgreSQL (c)** COPY, chain computed client side: rows/s | **%s** |" % fmt(med(pg_copy, "rows_per_s")))
        add("| PG (c) incl. the client-side chaining (Python) | %s |" % fmt(med(pg_copy, "rows_per_s_incl_client_chain")))
    for v in pg_verify:
        add("| PG chain verified in SQL (PostgreSQL %s, %s lock) | %d rows, %d bad hashes, %d broken links, head ok: %s |" % (
            v.get("version", "?").split()[0], v.get("lock", "row"), v["rows"], v["bad_hashes"], v["broken_links"], v["head_ok"]))

    def ratio(a, b):
        return None if not a or not b else a / b

    gb = med(bulk, "events_per_s")[0]
    gs = med(single, "events_per_s")[0]
    ps = med(pg_single, "rows_per_s")[0]
    pb = med(pg_batch, "rows_per_s")[0]
    pc = med(pg_copy, "rows_per_s")[0]
    add("")
    add("| ratio (medians, same run) | value |")
    add("|---|---|")
    for name, r in [
        ("graven bulk / PG 1,000-row transactions", ratio(gb, pb)),
        ("graven bulk / PG COPY", ratio(gb, pc)),
        ("graven single (%s conns) / PG single-row commits (%s clients), throughput" % (top, pg_clients), ratio(gs, ps)),
        ("graven single / PG single-row, both %s connections, throughput" % pg_clients,
         ratio(med(single_pg, "events_per_s")[0], ps)),
        ("graven single / PG single-row, both %s connections, p99 latency (< 1: graven faster)" % pg_clients,
         ratio(med(single_pg, "latency_ms.p99")[0], med(pg_single, "latency_ms.p99")[0])),
    ]:
        add("| %s | %s |" % (name, "n/a" if r is None else "%.2f×" % r))
    add("")
    add("| goal | target | measured (median) | |")
    add("|---|---|---|---|")
    if gb is not None:
        add("| bulk NDJSON, durable | ≥ 250,000 events/s | %s events/s | %s |" % (
            "{:,.0f}".format(gb), "met" if gb >= 250_000 else "**not met** (%.2f× of goal)" % (gb / 250_000)))
    if gs is not None:
        p99 = med(single, "latency_ms.p99")[0]
        ok = gs >= 50_000 and p99 <= 15
        add("| one event per request, %d connections | ≥ 50,000 events/s, p99 ≤ 15 ms | %s events/s, p99 %.1f ms | %s |" % (
            single[0]["connections"], "{:,.0f}".format(gs), p99,
            "met" if ok else "**not met** (%.2f× of the rate goal)" % (gs / 50_000)))
    if machine:
        add("")
        add("machine: %s × %s, load average at start %s, commit %s, %s" % (
            machine.get("nproc"), machine.get("cpu"), " ".join(machine.get("loadavg", [])),
            machine.get("commit"), machine.get("date")))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
