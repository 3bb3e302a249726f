"""verify_receipt: a receipt proves its leaf in the log only if every part of it checks out."""

import base64
import json
import unittest

from _support import OTHER_SKEY, TEST_SKEY, TEST_VKEY, b64, checkpoint_text, make_receipt, sign_note

from graven_client import ConfigError, Receipt, ReceiptError, VerifiedReceipt, leaf_hash_of, verify_receipt


def _flip(b64text):
    raw = bytearray(base64.b64decode(b64text))
    raw[5] ^= 0x10
    return base64.b64encode(bytes(raw)).decode()


class Receipts(unittest.TestCase):
    def test_valid_receipts_of_every_leaf(self):
        for size in (1, 2, 3, 7, 8, 13):
            for index in range(size):
                r = make_receipt(size, index)
                v = verify_receipt(r, TEST_VKEY)
                self.assertEqual((v.index, v.tree_size, v.origin), (index, size, "example.com/log/testdata"))
                self.assertEqual(v.leaf_hash, leaf_hash_of(f"entry-{index}".encode()))
                self.assertFalse(v.witnessed)

    def test_every_input_form(self):
        r = make_receipt(5, 3)
        for form in (r, json.dumps(r), json.dumps(r).encode(), Receipt.from_dict(r)):
            self.assertEqual(verify_receipt(form, TEST_VKEY).index, 3)
        v = verify_receipt(r, TEST_VKEY)
        self.assertEqual(json.loads(v.to_json()), r)

    def test_a_cosigned_checkpoint_still_verifies(self):
        r = make_receipt(5, 3)
        r["checkpoint"] += sign_note(r["checkpoint"].split("\n\n")[0] + "\n", OTHER_SKEY).split("\n\n")[1]
        self.assertEqual(r["checkpoint"].count("\u2014"), 2)
        verify_receipt(r, TEST_VKEY)

    def test_tampered_receipts_are_refused(self):
        good = make_receipt(7, 4)
        cp_text = good["checkpoint"].split("\n\n")[0] + "\n"
        other_root = sign_note(checkpoint_text("example.com/log/testdata", 7, b"\x07" * 32), TEST_SKEY)
        mutants = {
            "leaf_hash altered": {"leaf_hash": _flip(good["leaf_hash"])},
            "index altered": {"index": 5},
            "index out of the tree": {"index": 7},
            "tree_size not the checkpoint's": {"tree_size": 8},
            "a proof hash altered": {"inclusion_proof": [_flip(good["inclusion_proof"][0])] + good["inclusion_proof"][1:]},
            "a proof hash dropped": {"inclusion_proof": good["inclusion_proof"][:-1]},
            "an empty proof hash added": {"inclusion_proof": good["inclusion_proof"] + [""]},
            "unpadded base64": {"leaf_hash": good["leaf_hash"].rstrip("=")},
            "checkpoint text altered": {"checkpoint": good["checkpoint"].replace("\n7\n", "\n8\n", 1)},
            "checkpoint of another root, validly signed": {"checkpoint": other_root},
            "checkpoint signed by another key": {"checkpoint": sign_note(cp_text, OTHER_SKEY)},
            "checkpoint without a signature": {"checkpoint": cp_text},
            "origin not the key's name": {"checkpoint": make_receipt(7, 4, origin="example.com/other")["checkpoint"]},
            "index a boolean": {"index": True},
            "index a string": {"index": "4"},
            "no checkpoint": {"checkpoint": None},
            "proof not a list": {"inclusion_proof": good["inclusion_proof"][0]},
        }
        for what, change in mutants.items():
            with self.subTest(what):
                with self.assertRaises(ReceiptError):
                    verify_receipt({**good, **change}, TEST_VKEY)
        for bad in ("", "[]", "not json", json.dumps({k: v for k, v in good.items() if k != "leaf_hash"})):
            with self.assertRaises(ReceiptError):
                verify_receipt(bad, TEST_VKEY)

    def test_the_cause_is_chained(self):
        r = make_receipt(3, 1)
        r["checkpoint"] = sign_note(r["checkpoint"].split("\n\n")[0] + "\n", OTHER_SKEY)
        with self.assertRaises(ReceiptError) as e:
            verify_receipt(r, TEST_VKEY)
        self.assertEqual(getattr(e.exception.__cause__, "reason", None), "unverified")

    def test_a_bad_vkey_is_a_config_error(self):
        with self.assertRaises(ConfigError):
            verify_receipt(make_receipt(1, 0), "example.com/log/testdata+00000000+AAAA")

    def test_verified_receipts_come_only_from_verification(self):
        r = Receipt.from_dict(make_receipt(1, 0))
        with self.assertRaises(TypeError):
            VerifiedReceipt(object(), r, None, None)
        v = verify_receipt(r, TEST_VKEY)
        with self.assertRaises(AttributeError):
            v.receipt = r

    def test_leaf_hash_of(self):
        self.assertEqual(b64(leaf_hash_of(b"")), "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=")


if __name__ == "__main__":
    unittest.main()
