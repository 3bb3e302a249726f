#!/usr/bin/env python3
"""Events per second through the platform source endpoints beside the native JSON API, in the
same run, with the same client: POST /v1/sources/kubernetes (audit.k8s.io/v1 EventLists, each
record with a fresh auditID), /v1/sources/openbao (OpenBao audit entries, one per line, each a
fresh request.id), /v1/sources/cloudtrail (CloudTrail Records, each a fresh eventID), /v1/logs
(OTLP/HTTP protobuf ExportLogsServiceRequests, as the SDK exporters send them, each record with
a fresh log.record.uid) against
POST /v1/events (NDJSON batches of events of about the Kubernetes mapping's size). Each round
runs every endpoint in turn; medians are printed.

Usage: bench/sources.py URL SOURCE_KEY WRITER_KEY [--seconds 10] [--threads 4] [--batch 400]
       [--rounds 3] [--sources kubernetes,openbao,cloudtrail,otlp]
(bench/sources.sh starts a release server, makes the identities and calls this.)
"""
import argparse, http.client, json, statistics, threading, time, urllib.parse

def k8s_body(prefix, n):
    items = []
    for i in range(n):
        items.append({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": f"{prefix}-{i}", "stage": "ResponseComplete",
            "requestURI": "/apis/apps/v1/namespaces/prod/deployments/payments", "verb": "patch",
            "user": {"username": "system:serviceaccount:ci:deployer", "uid": "0f6b",
                     "groups": ["system:serviceaccounts", "system:authenticated"]},
            "sourceIPs": ["10.0.3.7"], "userAgent": "argocd-application-controller/v2.13",
            "objectRef": {"resource": "deployments", "namespace": "prod", "name": "payments",
                          "apiGroup": "apps", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": "2026-12-07T10:00:00.123456Z",
            "stageTimestamp": "2026-12-07T10:00:00.150000Z"})
    return json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}).encode()

def openbao_body(prefix, n):
    lines = []
    for i in range(n):
        lines.append(json.dumps({
            "time": "2026-12-07T17:37:16.146927814Z", "type": "response",
            "auth": {"client_token": "hmac-sha256:275ba71ce3c0701cfacdef46388ca89f5c09fcc017bac6d14a267c791b8ea51c",
                     "accessor": "hmac-sha256:126f9790488140d551c348d99d12fcb505d03efd81351d15fd14340954b13bb0",
                     "display_name": "approle", "policies": ["default"], "token_policies": ["default"],
                     "metadata": {"role_name": "ci"}, "entity_id": "5379333f-c567-0633-13c7-2635923c047f",
                     "token_type": "service", "token_ttl": 2764800},
            "request": {"id": f"{prefix}-{i}", "operation": "read", "mount_point": "secret/",
                        "mount_type": "kv", "mount_class": "secret", "namespace": {"id": "root"},
                        "path": "secret/data/payments", "remote_address": "10.0.3.7", "remote_port": 36342},
            "response": {"mount_point": "secret/", "mount_type": "kv",
                         "data": {"data": "hmac-sha256:be201b48b625ad2f93e7834151f66fc3d335ce022550ec35abec0f557fa1ad49"}}}))
    return ("\n".join(lines) + "\n").encode()

def cloudtrail_body(prefix, n):
    records = []
    for i in range(n):
        records.append({
            "eventVersion": "1.09",
            "userIdentity": {"type": "AssumedRole", "principalId": "AROAIDPPEZS35WEXAMPLE:i-0abc",
                             "arn": "arn:aws:sts::111122223333:assumed-role/payments-api/i-0abc",
                             "accountId": "111122223333", "accessKeyId": "ASIAIOSFODNN7EXAMPLE",
                             "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAIDPPEZS35WEXAMPLE",
                                                                  "arn": "arn:aws:iam::111122223333:role/payments-api",
                                                                  "accountId": "111122223333", "userName": "payments-api"}}},
            "eventTime": "2026-12-01T09:00:02Z", "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "GetSecretValue", "awsRegion": "eu-west-1", "sourceIPAddress": "10.0.1.17",
            "userAgent": "aws-sdk-go-v2/1.30.0", "requestParameters": {"secretId": "prod/db"},
            "responseElements": None, "requestID": f"{prefix}-{i}", "eventID": f"{prefix}-{i}",
            "readOnly": True, "eventType": "AwsApiCall", "managementEvent": True,
            "recipientAccountId": "111122223333", "eventCategory": "Management"})
    return json.dumps({"Records": records}).encode()


def native_body(prefix, n):
    lines = []
    for i in range(n):
        lines.append(json.dumps({
            "action": "k8s.patch", "outcome": "success", "request_id": f"{prefix}-{i}",
            "resource": {"type": "k8s:apps/deployments", "id": "prod/payments"},
            "occurred_at": "2026-12-07T10:00:00.123456Z",
            "source": {"ip": "10.0.3.7", "user_agent": "argocd-application-controller/v2.13"},
            "details": {"kubernetes": {"verb": "patch", "stage": "ResponseComplete",
                                        "requestURI": "/apis/apps/v1/namespaces/prod/deployments/payments"}}}))
    return ("\n".join(lines) + "\n").encode()

def otlp_body(prefix, n):
    # opentelemetry-proto's Python messages (installed with opentelemetry-exporter-otlp-proto-http).
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    kv = lambda k, v: KeyValue(key=k, value=AnyValue(string_value=v))
    records = [LogRecord(
        time_unix_nano=1765101600123456000, observed_time_unix_nano=1765101600124000000,
        severity_number=9, severity_text="INFO", event_name="payment.refund",
        trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"), span_id=bytes.fromhex("eee19b7ec3c1b174"),
        body=AnyValue(string_value="refund issued"),
        attributes=[kv("log.record.uid", f"{prefix}-{i}"), kv("enduser.id", "alice@example.com"),
                    kv("http.route", "/v1/refunds")]) for i in range(n)]
    resource = Resource(attributes=[kv("service.name", "payments-api"), kv("service.namespace", "shop"),
                                    kv("service.instance.id", "pod-7d9f")])
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(resource=resource, scope_logs=[
        ScopeLogs(scope=InstrumentationScope(name="payments.audit", version="1.2.0"), log_records=records)])]).SerializeToString()

SOURCES = {
    "kubernetes": ("/v1/sources/kubernetes", "application/json", k8s_body),
    "openbao": ("/v1/sources/openbao", "application/json", openbao_body),
    "cloudtrail": ("/v1/sources/cloudtrail", "application/json", cloudtrail_body),
    "otlp": ("/v1/logs", "application/x-protobuf", otlp_body),
}

def run(url, path, key, ctype, make, seconds, threads, batch, tag):
    u = urllib.parse.urlparse(url)
    events, lat, errors = [0], [], []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    def worker(t):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        n = 0
        while time.monotonic() < stop:
            body = make(f"{tag}-{t}-{n}", batch)
            n += 1
            t0 = time.monotonic()
            c.request("POST", path, body, {"Authorization": f"Bearer {key}", "Content-Type": ctype})
            r = c.getresponse()
            data = r.read()
            dt = time.monotonic() - t0
            with lock:
                if r.status in (200, 201):
                    events[0] += batch
                    lat.append(dt)
                else:
                    errors.append((r.status, data[:200]))
    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    t0 = time.monotonic()
    for t in ts: t.start()
    for t in ts: t.join()
    wall = time.monotonic() - t0
    if errors:
        raise SystemExit(f"{path}: {len(errors)} failed requests, e.g. {errors[0]}")
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    return events[0] / wall, p(0.5), p(0.99)

def main():
    a = argparse.ArgumentParser()
    a.add_argument("url"); a.add_argument("source_key"); a.add_argument("writer_key")
    a.add_argument("--seconds", type=float, default=10); a.add_argument("--threads", type=int, default=4)
    a.add_argument("--batch", type=int, default=400); a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--sources", default="kubernetes,openbao,cloudtrail,otlp")
    o = a.parse_args()
    names = [x for x in o.sources.split(",") if x]
    got = {x: [] for x in names}
    n = []
    for r in range(o.rounds):
        parts = []
        for x in names:
            path, ctype, make = SOURCES[x]
            res = run(o.url, path, o.source_key, ctype, make, o.seconds, o.threads, o.batch, f"r{r}{x}")
            got[x].append(res)
            parts.append(f"{x} {res[0]:,.0f} events/s (p50 {res[1]:.1f} ms, p99 {res[2]:.1f} ms)")
        ns = run(o.url, "/v1/events", o.writer_key, "application/x-ndjson", native_body, o.seconds, o.threads, o.batch, f"r{r}n")
        n.append(ns)
        parts.append(f"native {ns[0]:,.0f} events/s (p50 {ns[1]:.1f} ms, p99 {ns[2]:.1f} ms)")
        print(f"round {r+1}: " + " | ".join(parts), flush=True)
    N = statistics.median(x[0] for x in n)
    med = [f"{x} {statistics.median(v[0] for v in got[x]):,.0f} events/s ({statistics.median(v[0] for v in got[x]) / N:.2f} of native)" for x in names]
    print(f"median: " + " | ".join(med) + f" | native NDJSON {N:,.0f} events/s")

if __name__ == "__main__":
    main()
