#!/usr/bin/env python3
"""Events per second through the syslog listener (and, with --openbao, the listener of OpenBao's
`socket` audit device) beside the native JSON API, in the same run, with the same client
machinery (bench/sources.py's `run` for the native side).

Syslog has no acknowledgement, so a syslog round sends octet-counted RFC 5424 messages on
--threads connections for --seconds (a send that blocks is the listener's backpressure), then
waits until the tree has grown by every message sent: the rate is messages / (time from the
first send until the last one is committed). The native round posts NDJSON batches of the
events those messages map to.

Usage: bench/syslog.py URL ADMIN_TOKEN WRITER_KEY SYSLOG_HOST:PORT [--openbao HOST:PORT]
       [--seconds 10] [--threads 4] [--batch 400] [--rounds 3]
(bench/syslog.sh starts a release server with the listener, makes the identities and calls this.)
"""
import argparse, http.client, json, os, socket, statistics, sys, threading, time, urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sources import openbao_body, run  # noqa: E402

def message(i):
    m = (f'<86>1 2026-12-07T10:00:00.123456Z web-1.prod deployer 4242 deploy '
         f'[graven@32473 outcome="success" resource_type="k8s:apps/deployments" '
         f'resource_id="prod/payments" request_id="{i}" event_id="{i}"] released payments v2.3').encode()
    return str(len(m)).encode() + b" " + m

def native_body(prefix, n):
    lines = []
    for i in range(n):
        lines.append(json.dumps({
            "action": "syslog.deploy", "outcome": "success", "request_id": f"{prefix}-{i}",
            "resource": {"type": "k8s:apps/deployments", "id": "prod/payments"},
            "occurred_at": "2026-12-07T10:00:00.123456Z",
            "source": {"host": "web-1.prod", "ip": "127.0.0.1"},
            "details": {"syslog": {"facility": "authpriv", "severity": "info", "app_name": "deployer",
                                   "procid": "4242", "msgid": "deploy", "msg": "released payments v2.3"}}}))
    return ("\n".join(lines) + "\n").encode()

def tree_size(url, token):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    c.request("GET", "/v1/log", headers={"Authorization": f"Bearer {token}"})
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit(f"/v1/log: {r.status} {body[:200]}")
    return json.loads(body)["tree_size"]

def syslog_chunk(prefix, batch):
    return b"".join(message(f"{prefix}-{i}") for i in range(batch))

def stream_round(url, token, target, chunk, seconds, threads, batch, tag):
    """--threads connections to `target` each write `chunk(prefix, batch)` for --seconds; the
    rate is what was written over the time until the last of it is committed."""
    host, port = target.rsplit(":", 1)
    size0 = tree_size(url, token)
    sent, lock = [0], threading.Lock()
    stop = time.monotonic() + seconds
    def worker(t):
        s = socket.create_connection((host, int(port)))
        n = 0
        while time.monotonic() < stop:
            s.sendall(chunk(f"{tag}-{t}-{n}", batch))
            n += batch
        s.close()
        with lock:
            sent[0] += n
    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    t0 = time.monotonic()
    for t in ts: t.start()
    for t in ts: t.join()
    deadline = time.monotonic() + 120
    while tree_size(url, token) < size0 + sent[0]:
        if time.monotonic() > deadline:
            raise SystemExit(f"{target}: {sent[0]} sent, only {tree_size(url, token) - size0} logged after 120 s")
        time.sleep(0.02)
    wall = time.monotonic() - t0
    return sent[0] / wall, wall - seconds

def main():
    a = argparse.ArgumentParser()
    a.add_argument("url"); a.add_argument("admin_token"); a.add_argument("writer_key"); a.add_argument("syslog")
    a.add_argument("--seconds", type=float, default=10); a.add_argument("--threads", type=int, default=4)
    a.add_argument("--batch", type=int, default=400); a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--openbao", help="HOST:PORT of the OpenBao socket device listener")
    o = a.parse_args()
    s, b, n = [], [], []
    for r in range(o.rounds):
        ss = stream_round(o.url, o.admin_token, o.syslog, syslog_chunk, o.seconds, o.threads, o.batch, f"r{r}s")
        s.append(ss)
        line = f"round {r+1}: syslog {ss[0]:,.0f} events/s (last committed {ss[1]*1000:.0f} ms after the senders stopped)"
        if o.openbao:
            bs = stream_round(o.url, o.admin_token, o.openbao, openbao_body, o.seconds, o.threads, o.batch, f"r{r}b")
            b.append(bs)
            line += f" | openbao socket {bs[0]:,.0f} events/s (last committed {bs[1]*1000:.0f} ms after)"
        ns = run(o.url, "/v1/events", o.writer_key, "application/x-ndjson", native_body, o.seconds, o.threads, o.batch, f"r{r}n")
        n.append(ns)
        print(line + f" | native {ns[0]:,.0f} events/s (p50 {ns[1]:.1f} ms, p99 {ns[2]:.1f} ms per request)", flush=True)
    S = statistics.median(x[0] for x in s); N = statistics.median(x[0] for x in n)
    out = f"median: syslog {S:,.0f} events/s ({S/N:.2f} of native)"
    if b:
        B = statistics.median(x[0] for x in b)
        out += f" | openbao socket {B:,.0f} events/s ({B/N:.2f} of native)"
    print(out + f" | native NDJSON {N:,.0f} events/s")

if __name__ == "__main__":
    main()
