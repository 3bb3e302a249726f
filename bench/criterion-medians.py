#!/usr/bin/env python3
"""Prints the median of every criterion benchmark under target/criterion (the last run's
`new/estimates.json`), with per-element or per-byte throughput from its `benchmark.json`.

Usage: python3 bench/criterion-medians.py [target/criterion]
"""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.2f} ns"


rows = []
for est in sorted(root.glob("**/new/estimates.json")):
    d = est.parent
    bench = json.loads((d / "benchmark.json").read_text())
    e = json.loads(est.read_text())
    med = e["median"]["point_estimate"]
    lo = e["median"]["confidence_interval"]["lower_bound"]
    hi = e["median"]["confidence_interval"]["upper_bound"]
    thr = bench.get("throughput") or {}
    if "Elements" in thr:
        t = f"{thr['Elements'] / med * 1e9 / 1e6:.3f} M elem/s"
    elif "Bytes" in thr:
        t = f"{thr['Bytes'] / med * 1e9 / 2**30:.3f} GiB/s"
    else:
        t = ""
    rows.append((bench["full_id"], fmt_time(med), f"[{fmt_time(lo)} .. {fmt_time(hi)}]", t))

w = max((len(r[0]) for r in rows), default=10)
for r in rows:
    print(f"{r[0]:<{w}}  {r[1]:>12}  {r[2]:<28}  {r[3]}")
