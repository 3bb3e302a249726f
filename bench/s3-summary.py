#!/usr/bin/env python3
"""Summary of bench/s3.sh results: medians (min-max over runs) per backend and phase, the
ratio S3/local, and S3 requests per 1,000 events (or proofs).

Usage: bench/s3-summary.py RESULTS.jsonl
"""
import json
import statistics
import sys


def get(d, path):
    for k in path.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def med(rows, path):
    xs = [get(r, path) for r in rows]
    xs = [x for x in xs if isinstance(x, (int, float))]
    if not xs:
        return None
    return statistics.median(xs), min(xs), max(xs)


def fmt(m, digits=0):
    if m is None:
        return "-"
    v, lo, hi = m
    s = f"{v:,.{digits}f}"
    if lo != hi:
        s += f" ({lo:,.{digits}f}-{hi:,.{digits}f})"
    return s


def main(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    machine = next((r for r in rows if r.get("system") == "machine"), {})
    rows = [r for r in rows if r.get("system") == "graven"]
    runs = len({r["run"] for r in rows})
    print(f"# S3 (SeaweedFS {machine.get('object_store', '?')}, same machine) vs local disk")
    print(f"commit {machine.get('commit')}, {machine.get('nproc')} cores ({machine.get('cpu')}), "
          f"load at start {' '.join(machine.get('loadavg', []))}, {runs} run(s), medians (min-max)")
    print(f"bulk {machine.get('bulk')}, single {machine.get('single')}, proofs {machine.get('proofs')}")
    print()

    def pick(backend, phase):
        return [r for r in rows if r["backend"] == backend and r["phase"] == phase]

    metrics = [
        ("bulk", "events/s", "events_per_s", 0),
        ("bulk", "request p50 ms", "request_latency_ms.p50", 1),
        ("bulk", "request p99 ms", "request_latency_ms.p99", 1),
        ("bulk", "events/s incl. index catch-up", "drain.events_per_s_incl_drain", 0),
        ("bulk", "server CPU us/event incl. catch-up", "drain.server_cpu_us_per_event_incl_drain", 2),
        ("bulk", "server CPU % (during requests)", "server.server_cpu_pct", 0),
        ("bulk", "weed CPU %", "weed_cpu_pct", 0),
        ("single", "events/s", "events_per_s", 0),
        ("single", "p50 ms", "latency_ms.p50", 2),
        ("single", "p99 ms", "latency_ms.p99", 2),
        ("single", "events/commit", "server.events_per_commit", 1),
        ("single", "server CPU %", "server.server_cpu_pct", 0),
        ("single", "weed CPU %", "weed_cpu_pct", 0),
        ("catchup", "seconds to serve and index the log", "wall_s", 1),
        ("proofs-cold", "proofs/s", "proofs_per_s", 0),
        ("proofs-cold", "p50 ms", "latency_ms.p50", 2),
        ("proofs-cold", "p99 ms", "latency_ms.p99", 2),
        ("proofs-cold", "server CPU %", "server.server_cpu_pct", 0),
        ("proofs-cold", "weed CPU %", "weed_cpu_pct", 0),
        ("proofs-warm", "proofs/s", "proofs_per_s", 0),
        ("proofs-warm", "p50 ms", "latency_ms.p50", 2),
        ("proofs-warm", "p99 ms", "latency_ms.p99", 2),
        ("proofs-warm", "server CPU %", "server.server_cpu_pct", 0),
        ("proofs-warm", "weed CPU %", "weed_cpu_pct", 0),
    ]
    w = 44
    pipelined = any(r["backend"] == "s3-pipelined" for r in rows)
    head = f"{'phase':<12} {'metric':<{w}} {'local':>24} {'s3':>24} {'s3/local':>9}"
    if pipelined:
        head += f" {'s3 pipelined':>24} {'pipel./local':>12}"
    print(head)
    for phase, name, path, digits in metrics:
        lo, s3, pip = (med(pick(b, phase), path) for b in ("local", "s3", "s3-pipelined"))
        if lo is None and s3 is None:
            continue
        # SeaweedFS idles while the local backend runs: no ratio for its CPU.
        def ratio(x):
            return f"{x[0] / lo[0]:.2f}" if lo and x and lo[0] and "weed" not in name else "-"
        line = f"{phase:<12} {name:<{w}} {fmt(lo, digits):>24} {fmt(s3, digits):>24} {ratio(s3):>9}"
        if pipelined:
            line += f" {fmt(pip, digits):>24} {ratio(pip):>12}"
        print(line)

    print()
    print("S3 requests (medians): per 1,000 events for ingest, per 1,000 proofs for proofs")
    print(f"{'phase':<12} {'get':>14} {'put':>14} {'bucket':>14} {'total':>14} {'total requests':>16}")
    for backend, phase in [("s3", p) for p in ("bulk", "single", "catchup", "proofs-cold", "proofs-warm")] + [
        ("s3-pipelined", "bulk"), ("s3-pipelined", "single")
    ]:
        rs = pick(backend, phase)
        if not rs:
            continue
        if backend != "s3":
            phase = f"{phase} (pipel.)"
        if phase.startswith("proofs"):
            # The loadgen's own window (warm-up excluded) over the proofs it counted.
            per = [fmt(med(rs, f"store_requests_per_1000_proofs.{op}"), 2) for op in ("get", "put", "bucket")]
            tot = [sum(v for v in (r.get("store_requests_per_1000_proofs") or {}).values()) for r in rs]
            per.append(fmt((statistics.median(tot), min(tot), max(tot)), 2))
        else:
            per = [fmt(med(rs, f"s3_requests_per_1000_events.{op}"), 2) for op in ("get", "put", "bucket", "total")]
        print(f"{phase:<12} " + " ".join(f"{p:>14}" for p in per) + f" {fmt(med(rs, 's3_requests.total')):>16}")

    bad = [(r["run"], r["backend"], r["phase"]) for r in rows
           if (r.get("non_201") or 0) + (r.get("non_200") or 0) + (r.get("transport_errors") or 0)
           + (r.get("verify_failures") or 0) + (r.get("receipt_mismatches") or 0) > 0]
    unverified = [(r["run"], r["backend"], r["phase"]) for r in rows
                  if r.get("mode") == "proofs" and not r.get("verified")]
    print()
    if bad:
        print(f"ERRORS (non-2xx, transport errors, receipt mismatches or proofs that do not verify) in: {bad}")
    if unverified:
        print(f"no proof was verified in: {unverified}")
    if not bad and not unverified:
        verified = sum(r.get("verified") or 0 for r in rows)
        print(f"all responses as expected; {verified} proofs verified against signed checkpoints")


if __name__ == "__main__":
    main(sys.argv[1])
