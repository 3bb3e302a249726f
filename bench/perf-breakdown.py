#!/usr/bin/env python3
"""Attribute `perf script` samples of graven serve to parts of the ingest path.

Usage: perf script -i perf.data -F comm,tid,ip,sym | bench/perf-breakdown.py
Each sample is charged to the first category (in the order below) whose pattern appears
anywhere in its call stack. Prints a table of shares of all samples.
"""
import re
import sys
from collections import Counter

# (category, regex on the joined stack); first match wins. Order matters: the more specific
# parts of a path come before the path itself.
CATEGORIES = [
    ("indexer: redb commit (fsync + page writes)", r"redb::transactions::WriteTransaction::commit"),
    ("indexer: redb inserts", r"redb::table::Table<K,V>::insert|redb::tree_store::btree::BtreeMut"),
    ("indexer: other (decode events, read bundles)", r"graven_server::indexer::catch_up|graven_index::"),
    ("sequencer: fsync (files + dirs)", r"graven-sequence.*(do_fsync|__x64_sys_fsync|sync_all|sync_file|sync_dir)"),
    ("sequencer: write/rename tiles+bundles", r"graven-sequence.*(write_file|RealFs.*rename|Batch::write|__x64_sys_rename|__x64_sys_write|__x64_sys_openat)"),
    ("sequencer: receipts (inclusion proofs)", r"Sequencer::receipts|inclusion_proof"),
    ("sequencer: tree hashing + other append", r"graven-sequence.*(LocalLog::commit|LocalLog::append|leaf_hash|RightEdge)"),
    ("sequencer: other", r"^graven-sequence"),
    ("http: receipts to JSON", r"receipt_json|serde_json::ser|serde_json::value::ser|<serde_json::value::Value as core::fmt::Display>|Hash::to_base64|alloc::string::ToString"),
    ("http: event shaping (parse + canonical JSON)", r"graven_server::event::shape|graven_core::jcs"),
    ("http: body read", r"read_body|http_body_util|axum_core::body::to_bytes|to_bytes"),
    ("http: hyper read/write + syscalls", r"hyper::proto|tokio::net|mio::|__x64_sys_(sendto|recvfrom|write|read|epoll)"),
    ("http: drop of request/response buffers", r"drop_in_place"),
    ("tokio scheduler/other", r"tokio::runtime"),
]
CAT_RE = [(name, re.compile(rx)) for name, rx in CATEGORIES]


def main():
    counts = Counter()
    total = 0
    header = None
    frames = []

    def flush():
        nonlocal total
        if header is None:
            return
        stack = header + " " + " ".join(frames)
        total += 1
        for name, rx in CAT_RE:
            if rx.search(stack):
                counts[name] += 1
                return
        counts["unattributed"] += 1

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            flush()
            header = None
            frames = []
            continue
        if not line.startswith((" ", "\t")):
            flush()
            header = line.split()[0] if line.split() else ""
            frames = []
        else:
            parts = line.strip().split(None, 1)
            frames.append(parts[1] if len(parts) > 1 else parts[0])
    flush()
    if total == 0:
        print("no samples")
        return
    print(f"{'share':>7}  part  ({total} samples)")
    for name, n in counts.most_common():
        print(f"{100.0 * n / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
