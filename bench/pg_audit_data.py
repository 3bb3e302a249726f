#!/usr/bin/env python3
"""Data for the PostgreSQL comparison in bench/ingest.sh (see bench/pg-audit.sh).

The events have the same shape and size (~450 bytes) as graven-loadgen's. Subcommands:

  pgbench-script N OUT     one pgbench transaction appending N events through append_many();
                           :r1..:r3 are pgbench variables, so every transaction differs
  payloads N OUT           N events as "action<TAB>payload::text" lines, made once
  copy-csv HEADHEX SRC OUT the payloads of SRC as CSV rows for COPY audit(ts, actor, action,
                           payload, prev_hash, hash), chained from HEADHEX; prints the new head
  jsonb-check              self-test of the jsonb text emulation (no database needed)

The chain is hash = sha256(prev_hash || payload::text), where payload::text is PostgreSQL's
own text form of the jsonb value. COPY rows are hashed client side, so this script reproduces
that text form exactly (keys ordered by length, then bytewise; ", " and ": " separators), and
bench/pg-audit.sh re-verifies the whole chain inside the database afterwards.
"""
import hashlib
import json
import random
import sys

ACTIONS = ["deployment.update", "deployment.create", "secret.read", "role.binding.grant",
           "bucket.policy.update", "api_key.rotate", "db.snapshot.export", "user.session.create"]
SERVICES = ["payments-api", "checkout-web", "ledger-worker", "identity-svc", "search-indexer", "billing-cron"]
TEAMS = ["payments", "storefront", "platform", "identity", "data"]
REASONS = ["scale up for evening peak", "patch CVE-2026-1234", "scheduled key rotation", "hotfix: raise pool limit"]


def event(seq, rng, templated=False):
    """One client event as a dict, like graven-loadgen's make_event."""
    svc = rng.choice(SERVICES)
    frm = 2 + rng.randrange(6)
    outcome = ["failure", "denied"][rng.randrange(2)] if rng.randrange(20) < 2 else "success"
    return {
        "action": rng.choice(ACTIONS),
        "outcome": outcome,
        "occurred_at": "2026-11-26T%02d:%02d:%02d.%06dZ" % (
            rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(1000000)),
        "request_id": ("req-:r1-%08x" % rng.getrandbits(32)) if templated else "req-%016x" % rng.getrandbits(64),
        "resource": {"type": "k8s.deployment", "id": "prod/%s-%d" % (svc, rng.randrange(100))},
        "source": {"ip": "198.51.100.%d" % rng.randrange(255), "user_agent": "kubectl/1.31.2"},
        "details": {
            "seq": seq,
            "replicas": {"from": frm, "to": frm + 1 + rng.randrange(4)},
            "image": "registry.example.com/%s:v2.%d.%d" % (svc, rng.randrange(40), rng.randrange(10)),
            "change_ticket": ("CHG-:r2-%d" % rng.randrange(1000)) if templated else "CHG-%06d" % rng.randrange(1000000),
            "reason": rng.choice(REASONS),
            "labels": {"team": rng.choice(TEAMS)},
        },
    }


def _jstr(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jsonb_text(v):
    """PostgreSQL's jsonb output for v (objects, arrays, strings, ints, bools, null)."""
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(_jstr(k) + ": " + jsonb_text(v[k]) for k in keys) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(jsonb_text(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _jstr(v)
    raise TypeError(type(v))


def sql_literal(s):
    return "'" + s.replace("'", "''") + "'"


def pgbench_script(n, out):
    rng = random.Random(1000 + n)
    items = []
    for i in range(n):
        e = json.dumps(event(i, rng, templated=True), separators=(",", ":"))
        # pgbench substitutes :r1.. textually; ':r3' varies the seq as well.
        e = e.replace('"seq":%d' % i, '"seq": :r3')
        items.append(sql_literal(e))
    with open(out, "w") as f:
        f.write("\\set r1 random(1, 2000000000)\n\\set r2 random(1, 999999)\n\\set r3 random(1, 2000000000)\n")
        f.write("SELECT append_many('admin', ARRAY[" + ",".join(items) + "]::jsonb[]);\n")


def payloads(n, out):
    """N events as "action<TAB>jsonb text" lines (made once, chained per run)."""
    rng = random.Random(7 + n)
    with open(out, "w") as f:
        for i in range(n):
            e = event(i, rng)
            f.write(e["action"] + "\t" + jsonb_text(e) + "\n")


def copy_csv(head_hex, src, out):
    """Chains the payloads of SRC from HEADHEX into CSV rows; prints the new head."""
    prev = bytes.fromhex(head_hex)
    sha256 = hashlib.sha256
    with open(src) as f, open(out, "w") as w:
        for line in f:
            action, text = line.rstrip("\n").split("\t", 1)
            h = sha256(prev + text.encode()).digest()
            # CSV: quote the JSON (it has commas and quotes); bytea in hex input form.
            w.write('2026-11-26 20:00:00+00,admin,%s,"%s",\\x%s,\\x%s\n' % (
                action, text.replace('"', '""'), prev.hex(), h.hex()))
            prev = h
    print(prev.hex())


def jsonb_check():
    rng = random.Random(3)
    e = event(1, rng)
    t = jsonb_text(e)
    assert json.loads(t) == e
    assert t.startswith('{"action": '), t
    print(t)
    print(len(json.dumps(e, separators=(",", ":"))), "bytes compact")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "pgbench-script":
        pgbench_script(int(sys.argv[2]), sys.argv[3])
    elif cmd == "payloads":
        payloads(int(sys.argv[2]), sys.argv[3])
    elif cmd == "copy-csv":
        copy_csv(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "jsonb-check":
        jsonb_check()
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
