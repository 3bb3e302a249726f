"""Against a real Graven server: GRAVEN_SERVER, GRAVEN_TOKEN (a writer's key) and GRAVEN_VKEY
must be set, and these tests fail, never skip, without them. crates/graven/tests/python_client.rs
starts a server and runs them."""

import base64
import json
import os
import unittest

from _support import OTHER_VKEY

from graven_client import Client, ReceiptError, RefusedError, verify_range_receipt, verify_receipt

NEEDED = ("GRAVEN_SERVER", "GRAVEN_TOKEN", "GRAVEN_VKEY")


def _client(**kw):
    missing = [v for v in NEEDED if not os.environ.get(v)]
    if missing:
        raise AssertionError(
            f"the live tests need {', '.join(missing)}: a running server, a writer's key and the log's verifier key"
        )
    return Client(**kw)


class Live(unittest.TestCase):
    def setUp(self):
        self.client = _client()

    def test_send_one_event(self):
        r = self.client.send(
            {"action": "deploy.create", "resource": {"type": "service", "id": "payments"}, "outcome": "success",
             "details": {"sha": "abc123", "note": "caf\u00e9"}, "request_id": "py-live-1"}
        )
        self.assertLess(r.index, r.tree_size)
        self.assertEqual(r.origin, self.client.vkey.name)
        self.assertIsNotNone(r.logged_at)
        # The receipt stands on its own: it verifies again offline from its JSON.
        self.assertEqual(verify_receipt(r.to_json(), os.environ["GRAVEN_VKEY"]).index, r.index)

    def test_send_a_batch(self):
        rs = self.client.send_batch([{"action": "batch.one"}, {"action": "batch.two", "details": "a\nb"}, {"action": "batch.three"}])
        self.assertEqual(len(rs), 3)
        self.assertEqual(sorted(r.index for r in rs), [r.index for r in rs])
        self.assertEqual(len({r.index for r in rs}), 3)

    def test_a_batch_with_one_range_receipt(self):
        events = [{"action": "deploy.step", "request_id": f"py-range-{i}"} for i in range(7)]
        b = self.client.send_batch_range(events)
        self.assertEqual(len(b.leaf_hashes), 7)
        self.assertLess(b.first_index + 6, b.tree_size)
        # It verifies again offline, and not once a leaf hash is swapped for another's.
        raw = dict(b.receipt.raw)
        self.assertEqual(verify_range_receipt(json.dumps(raw), os.environ["GRAVEN_VKEY"]).first_index, b.first_index)
        raw["leaf_hashes"] = [raw["leaf_hashes"][1], raw["leaf_hashes"][0]] + raw["leaf_hashes"][2:]
        with self.assertRaises(ReceiptError):
            verify_range_receipt(raw, os.environ["GRAVEN_VKEY"])

    def test_a_tampered_receipt_is_rejected(self):
        good = json.loads(self.client.send({"action": "tamper.me"}).to_json())
        leaf = bytearray(base64.b64decode(good["leaf_hash"]))
        leaf[0] ^= 1
        mutants = [
            {"leaf_hash": base64.b64encode(bytes(leaf)).decode()},
            {"index": good["index"] + 1},
            {"tree_size": good["tree_size"] + 1},
            {"checkpoint": good["checkpoint"].replace("\n%d\n" % good["tree_size"], "\n%d\n" % (good["tree_size"] + 1), 1)},
        ]
        for change in mutants:
            with self.subTest(change=list(change)):
                with self.assertRaises(ReceiptError):
                    verify_receipt({**good, **change}, self.client.vkey)
        with self.assertRaises(ReceiptError):
            verify_receipt(good, OTHER_VKEY)

    def test_a_refused_event_raises_with_the_problem(self):
        with self.assertRaises(RefusedError) as e:
            self.client.send({"action": "graven.x"})
        err = e.exception
        self.assertIn(err.status, (400, 403))
        self.assertTrue(err.type and err.type.startswith("https://graven.dev/problems/"), err.type)
        self.assertIn("graven.", err.detail or "")

    def test_a_batch_with_one_bad_event_is_refused_whole(self):
        with self.assertRaises(RefusedError) as e:
            self.client.send_batch([{"action": "fine.one"}, {"action": "graven.x"}])
        self.assertIn("line 2", e.exception.detail or "")

    def test_a_bad_credential_is_refused(self):
        c = _client(token="gvn_not_a_real_key")
        with self.assertRaises(RefusedError) as e:
            c.send({"action": "a.b"})
        self.assertEqual(e.exception.status, 401)

    def test_the_wrong_log_key_gives_no_receipt(self):
        with self.assertRaises(ReceiptError):
            _client(vkey=OTHER_VKEY).send({"action": "wrong.key"})

    def test_no_receipt_no_action(self):
        ran = []
        with self.assertRaises(RefusedError):
            self.client.act_if_logged({"action": "graven.x"}, ran.append)
        with self.assertRaises(RefusedError):
            with self.client.logged({"action": "graven.x"}):
                ran.append("body")
        with self.assertRaises(ReceiptError):
            _client(vkey=OTHER_VKEY).act_if_logged({"action": "secret.rotate"}, ran.append)
        self.assertEqual(ran, [])

    def test_the_action_runs_once_logged(self):
        with self.client.logged({"action": "secret.rotate", "resource": {"type": "secret", "id": "db/prod"}}) as r:
            done = r.index
        self.assertEqual(self.client.act_if_logged({"action": "secret.rotate"}, lambda r: r.index) > done, True)


if __name__ == "__main__":
    unittest.main()
