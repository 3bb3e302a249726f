"""Verifier keys and C2SP signed notes: the shared vectors, and the cases a receipt check
leans on (valid, wrong key, tampered text, missing signature)."""

import unittest

from _support import OTHER_SKEY, OTHER_VKEY, TEST_SKEY, TEST_VKEY, VECTORS, sign_note, signature_line, vector_json

from graven_client import ConfigError, NoteError, load_vkey, open_note, parse_vkey

NOTES = vector_json("signed-note", "vectors.json")


class VerifierKeys(unittest.TestCase):
    def test_vectors(self):
        for case in NOTES["vkey_cases"]:
            with self.subTest(case["src"], vkey=case["vkey"]):
                if case["want"] == "ok":
                    k = parse_vkey(case["vkey"])
                    self.assertEqual(k.name, case["name"])
                    self.assertEqual(k.key_id, int(case["key_id_hex"], 16))
                    self.assertEqual(len(k.public_key), 32)
                    self.assertEqual(str(k), case["vkey"])
                else:
                    with self.assertRaises(ConfigError):
                        parse_vkey(case["vkey"])

    def test_malformed_strings(self):
        for bad in ["", "name", "name+33d7b496", "+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx",
                    TEST_VKEY.replace("+Ae", "+ae"), TEST_VKEY + "=", TEST_VKEY.replace("+Ae", "+Ae\n")]:
            with self.subTest(bad=bad):
                with self.assertRaises(ConfigError):
                    parse_vkey(bad)

    def test_a_file_holding_the_key(self):
        import os
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "log.vkey")
            with open(path, "w") as f:
                f.write(TEST_VKEY + "\n")
            self.assertEqual(load_vkey(path).text, TEST_VKEY)
            with open(path, "w") as f:
                f.write("not a key\n")
            with self.assertRaises(ConfigError):
                load_vkey(path)
        with self.assertRaises(ConfigError):
            load_vkey("/nonexistent/graven.vkey")


class SignedNotes(unittest.TestCase):
    def test_vectors(self):
        for case in NOTES["note_cases"]:
            with self.subTest(case["src"]):
                keys = [parse_vkey(v) for v in case["vkeys"]] or [parse_vkey(OTHER_VKEY)]
                if case["want"] == "ok":
                    for name in case["verified"]:
                        (key,) = [k for k in keys if k.name == name]
                        self.assertEqual(open_note(case["note"], key), case["text"])
                else:
                    for key in keys:
                        with self.assertRaises(NoteError) as e:
                            open_note(case["note"], key)
                        self.assertEqual(e.exception.reason, case["want"])

    def test_invalid_utf8_is_malformed(self):
        import os

        with open(os.path.join(VECTORS, "signed-note", "invalid-utf8.note"), "rb") as f:
            raw = f.read()
        # What a JSON decoder or a lenient reader can hand over: lone surrogates.
        note = raw.decode("utf-8", "surrogateescape")
        key = parse_vkey("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        with self.assertRaises(NoteError) as e:
            open_note(note, key)
        self.assertEqual(e.exception.reason, "malformed")

    def test_signing_case_reproduces_and_opens(self):
        # Ed25519 is deterministic: the test signer must give the Go output byte for byte, which
        # also checks the helper the receipt tests sign with.
        for case in NOTES["signing_cases"]:
            self.assertEqual(sign_note(case["text"], case["skey"]), case["want_note"])
            self.assertEqual(open_note(case["want_note"], parse_vkey(case["vkey"])), case["text"])

    def test_valid(self):
        text = "example.com/log/testdata\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
        self.assertEqual(open_note(sign_note(text, TEST_SKEY), parse_vkey(TEST_VKEY)), text)

    def test_other_signatures_are_ignored(self):
        text = "some text\n"
        key = parse_vkey(TEST_VKEY)
        self.assertEqual(open_note(sign_note(text, OTHER_SKEY, TEST_SKEY), key), text)
        self.assertEqual(open_note(sign_note(text, TEST_SKEY, OTHER_SKEY), key), text)

    def test_wrong_key(self):
        with self.assertRaises(NoteError) as e:
            open_note(sign_note("some text\n", OTHER_SKEY), parse_vkey(TEST_VKEY))
        self.assertEqual(e.exception.reason, "unverified")

    def test_same_name_other_key_id_is_ignored(self):
        # The trusted key's name with another key id is an unknown key: ignored, so unverified.
        import base64

        line = signature_line(TEST_SKEY, "some text\n")
        name, sig = line[2:-1].split(" ")
        raw = bytearray(base64.b64decode(sig))
        raw[0] ^= 1
        note = "some text\n\n\u2014 " + name + " " + base64.b64encode(bytes(raw)).decode() + "\n"
        with self.assertRaises(NoteError) as e:
            open_note(note, parse_vkey(TEST_VKEY))
        self.assertEqual(e.exception.reason, "unverified")

    def test_tampered_text(self):
        note = sign_note("example.com/log/testdata\n3\n", TEST_SKEY).replace("\n3\n", "\n4\n", 1)
        with self.assertRaises(NoteError) as e:
            open_note(note, parse_vkey(TEST_VKEY))
        self.assertEqual(e.exception.reason, "invalid_signature")

    def test_missing_signature(self):
        for note in ["some text\n", "some text\n\n", "some text\n\n\u2014 \n"]:
            with self.subTest(note=note):
                with self.assertRaises(NoteError) as e:
                    open_note(note, parse_vkey(TEST_VKEY))
                self.assertEqual(e.exception.reason, "malformed")

    def test_signed_twice_is_malformed(self):
        line = signature_line(TEST_SKEY, "t\n")
        with self.assertRaises(NoteError) as e:
            open_note("t\n\n" + line + line, parse_vkey(TEST_VKEY))
        self.assertEqual(e.exception.reason, "malformed")

    def test_text_may_hold_empty_lines(self):
        text = "a\n\nb\n"
        self.assertEqual(open_note(sign_note(text, TEST_SKEY), parse_vkey(TEST_VKEY)), text)


if __name__ == "__main__":
    unittest.main()
