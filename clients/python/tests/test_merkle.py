"""RFC 6962 / 9162 inclusion proofs: the transparency-dev probes, the classic 8-leaf tree, and
every index of every tree of 1 to 64 leaves against a naive recursive reference; range proofs
(docs/receipts.md) for every run of every tree of 1 to 20 leaves, from the same reference."""

import base64
import os
import unittest

from _support import VECTORS, _split, ref_leaf, ref_path, ref_root, vector_json

from graven_client import (
    ProofError,
    leaf_hash_of,
    node_hash,
    root_from_inclusion,
    root_from_range,
    verify_inclusion,
    verify_range,
)


def _b64(s):
    return base64.b64decode(s) if s else b""


class Vectors(unittest.TestCase):
    def test_transparency_dev_inclusion_probes(self):
        root_dir = os.path.join(VECTORS, "merkle", "inclusion")
        seen = 0
        for dirpath, _, files in os.walk(root_dir):
            for name in sorted(files):
                rel = os.path.relpath(os.path.join(dirpath, name), root_dir)
                case = vector_json("merkle", "inclusion", rel)
                with self.subTest(rel):
                    args = (case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), [_b64(p) for p in case["proof"] or []], _b64(case["root"]))
                    if case["wantErr"]:
                        with self.assertRaises(ProofError):
                            verify_inclusion(*args)
                    else:
                        verify_inclusion(*args)
                seen += 1
        self.assertEqual(seen, 98)

    def test_reference_tree(self):
        t = vector_json("merkle", "rfc6962-reference-tree.json")
        for kat in t["hasher_kats"]:
            if kat["kind"] == "leaf":
                self.assertEqual(leaf_hash_of(bytes.fromhex(kat["leaf_hex"])).hex(), kat["want_hex"])
            elif kat["kind"] == "node":
                self.assertEqual(node_hash(bytes.fromhex(kat["left_hex"]), bytes.fromhex(kat["right_hex"])).hex(), kat["want_hex"])
        leaves = [leaf_hash_of(bytes.fromhex(h)) for h in t["leaves_hex"]]
        for p in t["inclusion_proofs"]:
            with self.subTest(p):
                root = bytes.fromhex(t["roots_by_size_hex"][p["tree_size"]])
                verify_inclusion(p["leaf_index"], p["tree_size"], leaves[p["leaf_index"]], [bytes.fromhex(h) for h in p["proof_hex"]], root)


class AgainstReference(unittest.TestCase):
    def test_every_index_of_sizes_1_to_64(self):
        leaves = [ref_leaf(b"leaf-%d" % i) for i in range(64)]
        for size in range(1, 65):
            tree = leaves[:size]
            root = ref_root(tree)
            for index in range(size):
                proof = ref_path(index, tree)
                self.assertEqual(root_from_inclusion(index, size, tree[index], proof), root, (index, size))
                verify_inclusion(index, size, tree[index], proof, root)
                self._mutants_fail(index, size, tree[index], proof, root)

    def _mutants_fail(self, index, size, leaf, proof, root):
        def fails(i, n, lf, pr, rt):
            with self.assertRaises(ProofError, msg=(index, size, i, n)):
                verify_inclusion(i, n, lf, pr, rt)

        flip = lambda h, bit: bytes([h[0] ^ (1 << bit)]) + h[1:]  # noqa: E731
        fails(index, size, flip(leaf, 0), proof, root)
        fails(index, size, leaf, proof, flip(root, 7))
        for k in range(len(proof)):
            fails(index, size, leaf, proof[:k] + [flip(proof[k], 3)] + proof[k + 1 :], root)
        if proof:
            fails(index, size, leaf, proof[:-1], root)
        fails(index, size, leaf, proof + [leaf], root)
        fails(index, size, leaf, proof + [b""], root)
        fails(size, size, leaf, proof, root)
        for other in (index - 1, index + 1):
            if 0 <= other < size:
                fails(other, size, leaf, proof, root)

    def test_bad_inputs(self):
        h = ref_leaf(b"x")
        for args in [(0, 0, h, [], h), (-1, 1, h, [], h), (True, 2, h, [h], h), (0, 2**64, h, [], h), (0, 1, h[:31], [], h), (0, 1, h, [], h + b"\0")]:
            with self.subTest(args=args[:2]):
                with self.assertRaises(ProofError):
                    verify_inclusion(*args)
        with self.assertRaises(ProofError):
            verify_inclusion(0, 2, h, [h] * 65, h)


if __name__ == "__main__":
    unittest.main()


def _ref_range_proof(first, end, leaves, lo=0):
    """The range proof of [first, end) over the reference tree of ``leaves`` (whose first
    leaf is at ``lo``), as docs/receipts.md defines it, computed from the RFC's recursion."""
    m = len(leaves)
    if lo + m <= first or lo >= end:
        return [ref_root(leaves)]
    if m == 1:
        return []
    k = _split(m)
    return _ref_range_proof(first, end, leaves[:k], lo) + _ref_range_proof(first, end, leaves[k:], lo + k)


class RangeProofs(unittest.TestCase):
    def test_every_range_of_sizes_1_to_20(self):
        for n in range(1, 21):
            leaves = [ref_leaf(str(i).encode()) for i in range(n)]
            root = ref_root(leaves)
            for first in range(n):
                for end in range(first + 1, n + 1):
                    proof = _ref_range_proof(first, end, leaves)
                    verify_range(first, leaves[first:end], n, proof, root)
                    with self.assertRaises(ProofError):
                        verify_range(first, leaves[first:end], n, proof + [root], root)
                    bad = list(leaves[first:end])
                    bad[-1] = ref_leaf(b"x")
                    with self.assertRaises(ProofError):
                        verify_range(first, bad, n, proof, root)
                    if end < n:
                        with self.assertRaises(ProofError):
                            verify_range(first + 1, leaves[first:end], n, proof, root)

    def test_bad_range_inputs(self):
        leaves = [ref_leaf(b"a"), ref_leaf(b"b")]
        root = ref_root(leaves)
        for first, run, size, proof in [
            (0, [], 2, []),
            (1, leaves, 2, []),
            (0, leaves, 2, [b"short"]),
            (0, [b"short"], 2, [leaves[1]]),
            (-1, leaves, 2, []),
            (0, leaves, 2, [root] * 129),
        ]:
            with self.assertRaises(ProofError):
                verify_range(first, run, size, proof, root)
        self.assertEqual(root_from_range(0, leaves, 2, []), root)
