"""C2SP tlog-checkpoint bodies (validly signed, so only the body decides) and real sum.golang.org
tree heads."""

import unittest

from _support import TEST_VKEY, vector_json, vector_text

from graven_client import CheckpointError, NoteError, open_checkpoint, open_note, parse_checkpoint_text, parse_vkey

SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"


class Checkpoints(unittest.TestCase):
    def test_signed_bodies(self):
        key = parse_vkey(TEST_VKEY)
        for case in vector_json("tlog-checkpoint", "signed-bodies", "index.json")["cases"]:
            with self.subTest(case["file"]):
                note = vector_text("tlog-checkpoint", "signed-bodies", case["file"])
                open_note(note, key)  # every one is validly signed
                if case["want_checkpoint_ok"]:
                    cp = open_checkpoint(note, key)
                    self.assertEqual(cp.origin, "example.com/log/testdata")
                    self.assertEqual(len(cp.root_hash), 32)
                else:
                    with self.assertRaises(CheckpointError):
                        open_checkpoint(note, key)

    def test_extension_lines_are_kept(self):
        cp = open_checkpoint(vector_text("tlog-checkpoint", "signed-bodies", "ok_with_extension_line.note"), parse_vkey(TEST_VKEY))
        self.assertEqual((cp.tree_size, cp.extensions), (15, ("some-extension",)))

    def test_real_sumdb_heads_open_but_their_origin_is_not_the_key_name(self):
        key = parse_vkey(SUMDB_VKEY)
        for name, size in [("sumdb-6476701.note", 6476701), ("sumdb-31700353.note", 31700353), ("sumdb-65209736.note", 65209736)]:
            with self.subTest(name):
                note = vector_text("tlog-checkpoint", name)
                cp = parse_checkpoint_text(open_note(note, key))
                self.assertEqual((cp.origin, cp.tree_size), ("go.sum database tree", size))
                # A Graven receipt's checkpoint must carry the key's name as its origin.
                with self.assertRaises(CheckpointError):
                    open_checkpoint(note, key)

    def test_a_note_without_its_final_newline_is_malformed(self):
        with self.assertRaises(NoteError) as e:
            open_note(vector_text("tlog-checkpoint", "sumdb-31700353-no-final-newline.note"), parse_vkey(SUMDB_VKEY))
        self.assertEqual(e.exception.reason, "malformed")

    def test_body_rules(self):
        root = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        self.assertEqual(parse_checkpoint_text(f"o\n0\n{root}\n").tree_size, 0)
        self.assertEqual(parse_checkpoint_text(f"o\n18446744073709551615\n{root}\n").tree_size, 2**64 - 1)
        for bad in [f"o\n1\n{root}", f"o\n1\n", f"\n1\n{root}\n", f"o\n\u0661\n{root}\n", f"o\n1\n{root}\n\n", f"o\n 1\n{root}\n"]:
            with self.subTest(bad=bad):
                with self.assertRaises(CheckpointError):
                    parse_checkpoint_text(bad)


if __name__ == "__main__":
    unittest.main()
