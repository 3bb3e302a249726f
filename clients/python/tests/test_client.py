"""The client against a scripted HTTP stub on 127.0.0.1: what is retried (503 and 429 with
their Retry-After, connections that could not be made) and what never is (a 500, a timeout
after the body was sent), the typed errors, batches, configuration, and the fail-closed
helpers."""

import json
import os
import socket
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

from _support import OTHER_VKEY, TEST_VKEY, make_receipt

from graven_client import (
    Client,
    ConfigError,
    MaybeLoggedError,
    ReceiptError,
    RefusedError,
    RetryPolicy,
    UnreachableError,
)

PROBLEM = {
    "type": "https://graven.dev/problems/reserved-action",
    "title": "The request is not valid",
    "status": 400,
    "detail": "action \"graven.x\" is in the reserved `graven.` namespace; nothing was appended",
}


def receipt_line(size=3, index=2):
    return json.dumps(make_receipt(size, index))


class Stub:
    """An HTTP server answering POSTs from a script of (status, headers, body, delay) and
    recording each request's path, headers and body."""

    def __init__(self, script, tls=None):
        self.script = list(script)
        self.requests = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                stub.requests.append((self.path, dict(self.headers), body))
                status, headers, answer, delay = stub.script.pop(0)
                if delay:
                    time.sleep(delay)
                data = answer.encode() if isinstance(answer, str) else answer
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def ok(body=None):
    return (201, {"Content-Type": "application/json"}, body if body is not None else receipt_line(), 0)


def problem(status, extra_headers=None, p=PROBLEM):
    headers = {"Content-Type": "application/problem+json", **(extra_headers or {})}
    return (status, headers, json.dumps({**p, "status": status}), 0)


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def client(url, **kw):
    kw.setdefault("sleep", Sleeps())
    return Client(url, "gvn_test", TEST_VKEY, **kw)


class Retries(unittest.TestCase):
    def test_503_with_retry_after_then_201(self):
        with Stub([problem(503, {"Retry-After": "2"}), ok()]) as s:
            c = client(s.url, backoff=0.25)
            r = c.send({"action": "deploy.create"})
        self.assertEqual((r.index, r.tree_size), (2, 3))
        self.assertEqual(len(s.requests), 2)
        self.assertEqual(s.requests[0][2], s.requests[1][2], "the same bytes are sent again")
        (wait,) = c._sleep
        self.assertTrue(2 <= wait <= 2.25, wait)

    def test_429_without_retry_after_backs_off_with_jitter(self):
        with Stub([problem(429), problem(429), ok()]) as s:
            c = client(s.url, backoff=0.5)
            c.send({"action": "a.b"})
        self.assertEqual(len(s.requests), 3)
        self.assertTrue(0 <= c._sleep[0] <= 0.5 and 0 <= c._sleep[1] <= 1.0, c._sleep)

    def test_500_is_never_retried(self):
        with Stub([problem(500), ok()]) as s:
            c = client(s.url)
            with self.assertRaises(MaybeLoggedError) as e:
                c.send({"action": "a.b"})
        self.assertEqual(len(s.requests), 1)
        self.assertEqual(c._sleep, [])
        self.assertIn("may or may not be logged", str(e.exception))

    def test_502_is_never_retried(self):
        with Stub([(502, {}, "bad gateway", 0), ok()]) as s:
            with self.assertRaises(MaybeLoggedError):
                client(s.url).send({"action": "a.b"})
        self.assertEqual(len(s.requests), 1)

    def test_a_timeout_after_the_body_was_sent_is_never_retried(self):
        with Stub([(201, {}, receipt_line(), 1.5), ok()]) as s:
            c = client(s.url, timeout=0.3)
            with self.assertRaises(MaybeLoggedError):
                c.send({"action": "a.b"})
        self.assertEqual(len(s.requests), 1)

    def test_503_until_the_retries_are_spent(self):
        with Stub([problem(503, {"Retry-After": "1"})] * 3) as s:
            c = client(s.url, retries=2)
            with self.assertRaises(RefusedError) as e:
                c.send({"action": "a.b"})
        self.assertEqual(len(s.requests), 3)
        self.assertEqual(len(c._sleep), 2)
        self.assertEqual((e.exception.status, e.exception.retry_after), (503, 1.0))

    def test_a_retry_after_longer_than_max_delay_is_not_waited_out(self):
        with Stub([problem(503, {"Retry-After": "3600"}), ok()]) as s:
            c = client(s.url, max_delay=10)
            with self.assertRaises(RefusedError):
                c.send({"action": "a.b"})
        self.assertEqual((len(s.requests), c._sleep), (1, []))

    def test_connection_refused_is_retried_then_unreachable(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        c = client("http://127.0.0.1:%d" % port, retries=3)
        with self.assertRaises(UnreachableError) as e:
            c.send({"action": "a.b"})
        self.assertEqual(len(c._sleep), 3)
        self.assertIn("nothing was sent", str(e.exception))

    def test_policy_delays(self):
        import random

        p = RetryPolicy(retries=5, backoff=1.0, max_delay=8.0)
        rng = random.Random(7)
        for attempt in range(5):
            d = p.delay(attempt, None, rng)
            self.assertTrue(0 <= d <= min(8.0, 2**attempt), (attempt, d))
        self.assertIsNone(p.delay(5, None, rng))
        self.assertIsNone(p.delay(0, 9.0, rng))
        self.assertTrue(3.0 <= p.delay(0, 3.0, rng) <= 4.0)
        with self.assertRaises(ConfigError):
            RetryPolicy(retries=-1)


class Answers(unittest.TestCase):
    def test_the_request(self):
        with Stub([ok()]) as s:
            client(s.url + "/base/").send({"action": "a.b", "details": {"k": "\u00e9"}})
        path, headers, body = s.requests[0]
        self.assertEqual(path, "/base/v1/events")
        self.assertEqual(headers["Authorization"], "Bearer gvn_test")
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(json.loads(body.decode("utf-8")), {"action": "a.b", "details": {"k": "\u00e9"}})

    def test_witnessed_is_asked_in_the_query(self):
        with Stub([ok()]) as s:
            client(s.url).send({"action": "a.b"}, witnessed=True)
        self.assertEqual(s.requests[0][0], "/v1/events?witnessed=true")

    def test_a_refusal_carries_the_problem(self):
        with Stub([problem(400)]) as s:
            with self.assertRaises(RefusedError) as e:
                client(s.url).send({"action": "graven.x"})
        err = e.exception
        self.assertEqual((err.status, err.type, err.title, err.detail), (400, PROBLEM["type"], PROBLEM["title"], PROBLEM["detail"]))
        self.assertEqual(len(s.requests), 1)

    def test_a_refusal_without_a_problem_document(self):
        with Stub([(403, {}, "no", 0)]) as s:
            with self.assertRaises(RefusedError) as e:
                client(s.url).send({"action": "a.b"})
        self.assertEqual((e.exception.status, e.exception.detail, e.exception.body), (403, None, "no"))

    def test_a_receipt_that_does_not_verify(self):
        bad = make_receipt(3, 2)
        bad["index"] = 1
        for body in (json.dumps(bad), "{}", "not json", ""):
            with self.subTest(body=body):
                with Stub([ok(body)]) as s:
                    with self.assertRaises(ReceiptError):
                        client(s.url).send({"action": "a.b"})

    def test_a_receipt_from_another_log_does_not_verify(self):
        with Stub([ok()]) as s:
            with self.assertRaises(ReceiptError):
                Client(s.url, "gvn_test", OTHER_VKEY).send({"action": "a.b"})

    def test_a_batch(self):
        answer = "".join(receipt_line(4, i) + "\n" for i in (1, 2, 3))
        with Stub([(201, {"Content-Type": "application/x-ndjson"}, answer, 0)]) as s:
            rs = client(s.url).send_batch([{"action": "a.b"}, {"action": "a.c", "details": "x\ny"}, {"action": "a.d"}])
        self.assertEqual([r.index for r in rs], [1, 2, 3])
        _, headers, body = s.requests[0]
        self.assertEqual(headers["Content-Type"], "application/x-ndjson")
        lines = body.decode().split("\n")
        self.assertEqual(lines[-1], "")
        self.assertEqual([json.loads(line)["action"] for line in lines[:-1]], ["a.b", "a.c", "a.d"])

    def test_a_batch_answered_with_too_few_receipts(self):
        with Stub([(201, {}, receipt_line(4, 1) + "\n", 0)]) as s:
            with self.assertRaises(ReceiptError):
                client(s.url).send_batch([{"action": "a.b"}, {"action": "a.c"}])

    def test_bad_events_are_not_sent(self):
        c = client("http://127.0.0.1:9")
        for bad in ([], "x", {"action": float("nan")}, {"action": object()}):
            with self.subTest(bad=bad):
                with self.assertRaises((TypeError, ValueError)):
                    if isinstance(bad, dict):
                        c.send(bad)
                    else:
                        c.send_batch(bad)
        with self.assertRaises(TypeError):
            c.send([{"action": "a.b"}])


class FailClosed(unittest.TestCase):
    def test_the_action_runs_on_a_receipt(self):
        ran = []
        with Stub([ok(), ok()]) as s:
            c = client(s.url)
            result = c.act_if_logged({"action": "secret.rotate"}, lambda r: ran.append(r.index) or "done")
            with c.logged({"action": "secret.rotate"}) as receipt:
                ran.append(receipt.index)
        self.assertEqual((result, ran), ("done", [2, 2]))

    def test_no_receipt_no_action(self):
        cases = [
            ("refused", [problem(403)], RefusedError),
            ("server error", [problem(500)], MaybeLoggedError),
            ("bad receipt", [ok("{}")], ReceiptError),
        ]
        for what, script, error in cases:
            with self.subTest(what):
                ran = []
                with Stub(list(script) * 2) as s:
                    c = client(s.url, retries=0)
                    with self.assertRaises(error):
                        c.act_if_logged({"action": "a.b"}, ran.append)
                    with self.assertRaises(error):
                        with c.logged({"action": "a.b"}):
                            ran.append("body")
                self.assertEqual(ran, [])


def self_signed(directory):
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1, and the path of
    that certificate (to trust it)."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graven test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx, cert_path


class Tls(unittest.TestCase):
    def test_https_with_a_trusted_private_ca(self):
        import ssl
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            server_ctx, cert = self_signed(d)
            with Stub([ok()], tls=server_ctx) as s:
                r = client(s.url, ssl_context=ssl.create_default_context(cafile=cert)).send({"action": "a.b"})
        self.assertEqual(r.index, 2)
        self.assertEqual(len(s.requests), 1)

    def test_an_untrusted_certificate_is_not_retried_and_nothing_is_sent(self):
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            server_ctx, _ = self_signed(d)
            with Stub([ok()], tls=server_ctx) as s:
                c = client(s.url)
                with self.assertRaises(UnreachableError):
                    c.send({"action": "a.b"})
        self.assertEqual((s.requests, c._sleep), ([], []))


class Configuration(unittest.TestCase):
    def test_from_the_environment(self):
        env = {"GRAVEN_SERVER": "https://graven.example/", "GRAVEN_TOKEN": " gvn_x\n", "GRAVEN_VKEY": TEST_VKEY}
        with mock.patch.dict(os.environ, env):
            c = Client()
        self.assertEqual((c.server, c._token, c.vkey.text), ("https://graven.example", "gvn_x", TEST_VKEY))

    def test_missing_or_bad_settings(self):
        with mock.patch.dict(os.environ, {}, clear=True):
            for kw in ({}, {"server": "http://h"}, {"server": "http://h", "token": "t"}):
                with self.subTest(kw=kw):
                    with self.assertRaises(ConfigError):
                        Client(**kw)
            for kw in (
                {"server": "ftp://h", "token": "t", "vkey": TEST_VKEY},
                {"server": "http://h?x=1", "token": "t", "vkey": TEST_VKEY},
                {"server": "http://h:port", "token": "t", "vkey": TEST_VKEY},
                {"server": "http://h", "token": "t\r\nX: y", "vkey": TEST_VKEY},
                {"server": "http://h", "token": "t", "vkey": "not a key"},
                {"server": "http://h", "token": "t", "vkey": TEST_VKEY, "timeout": 0},
            ):
                with self.subTest(kw=kw):
                    with self.assertRaises(ConfigError):
                        Client(**kw)


if __name__ == "__main__":
    unittest.main()
