"""RFC 6962 / RFC 9162 Merkle hashing and inclusion proofs. Pure: no I/O.

Indices are 0-based. Every hash is exactly 32 bytes; anything else is refused before any
hashing, so a proof list with an empty or short element never passes.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from .errors import ProofError

__all__ = [
    "HASH_SIZE",
    "leaf_hash_of",
    "node_hash",
    "root_from_inclusion",
    "root_from_range",
    "verify_inclusion",
    "verify_range",
]

HASH_SIZE = 32

#: Most hashes an inclusion proof can need (a tree of at most 2**64 leaves).
MAX_PROOF_LEN = 64


def leaf_hash_of(entry: bytes) -> bytes:
    """The RFC 6962 leaf hash of a log entry: SHA-256(0x00 || entry).

    An auditor who fetched an event's stored bytes (``GET /v1/events/{index}``) can compare
    this to a receipt's ``leaf_hash``.
    """
    return hashlib.sha256(b"\x00" + bytes(entry)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """The root the inclusion proof leads to from ``leaf_hash`` at ``index`` in a tree of
    ``tree_size`` leaves (RFC 9162 section 2.1.3.2). Raises :class:`ProofError` if the proof
    cannot be one for that position (wrong length, a hash that is not 32 bytes)."""
    for v, what in ((index, "index"), (tree_size, "tree size")):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**64:
            raise ProofError(f"the {what} is not an unsigned 64-bit integer")
    if index >= tree_size:
        raise ProofError(f"index {index} is not in a tree of size {tree_size}")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError("the leaf hash is not 32 bytes")
    if len(proof) > MAX_PROOF_LEN:
        raise ProofError("the proof is longer than any tree needs")
    for p in proof:
        if not isinstance(p, (bytes, bytearray)) or len(p) != HASH_SIZE:
            raise ProofError("a proof element is not a 32-byte hash")
    fn, sn, r = index, tree_size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            raise ProofError("the proof has more hashes than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(bytes(p), r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, bytes(p))
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the proof has fewer hashes than the path to the root")
    return r


def verify_inclusion(index: int, tree_size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Checks that ``proof`` shows ``leaf_hash`` at ``index`` in the tree of ``tree_size``
    leaves whose root is ``root``; raises :class:`ProofError` if it does not."""
    if len(root) != HASH_SIZE:
        raise ProofError("the root is not 32 bytes")
    if root_from_inclusion(index, tree_size, leaf_hash, proof) != bytes(root):
        raise ProofError("the proof does not lead to the root")


#: Most hashes a range proof can need (at most two per level of a tree of 2**64 leaves).
MAX_RANGE_PROOF_LEN = 128


def _split(m: int) -> int:
    """The largest power of two smaller than ``m`` (``m >= 2``)."""
    return 1 << ((m - 1).bit_length() - 1)


def root_from_range(first: int, leaf_hashes: Sequence[bytes], tree_size: int, proof: Sequence[bytes]) -> bytes:
    """The root a range proof leads to from the leaves ``[first, first + len(leaf_hashes))`` of
    the tree of ``tree_size`` leaves (docs/receipts.md, "Range receipts"): walk the tree from the
    root, left before right; a node with no leaf in the run is the next proof element, a leaf of
    the run the next leaf hash, any other node the hash of its children. Every element of both
    lists must be used. Raises :class:`ProofError` otherwise."""
    for v, what in ((first, "first index"), (tree_size, "tree size")):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**64:
            raise ProofError(f"the {what} is not an unsigned 64-bit integer")
    end = first + len(leaf_hashes)
    if not leaf_hashes or end > tree_size:
        raise ProofError(f"leaves {first}..{end} are not a run in a tree of size {tree_size}")
    if len(proof) > MAX_RANGE_PROOF_LEN:
        raise ProofError("the range proof is longer than any tree needs")
    for h in list(proof) + list(leaf_hashes):
        if not isinstance(h, (bytes, bytearray)) or len(h) != HASH_SIZE:
            raise ProofError("a hash is not 32 bytes")
    leaves, elements = iter(leaf_hashes), iter(proof)

    def walk(lo: int, m: int) -> bytes:
        if lo + m <= first or lo >= end:
            h = next(elements, None)
        elif m == 1:
            h = next(leaves, None)
        else:
            k = _split(m)
            return node_hash(walk(lo, k), walk(lo + k, m - k))
        if h is None:
            raise ProofError("the range proof has fewer hashes than the tree needs")
        return bytes(h)

    root = walk(0, tree_size)
    if next(elements, None) is not None or next(leaves, None) is not None:
        raise ProofError("the range proof has more hashes than the tree needs")
    return root


def verify_range(first: int, leaf_hashes: Sequence[bytes], tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Checks that ``leaf_hashes`` are leaves ``first``, ``first + 1``, ... of the tree of
    ``tree_size`` leaves whose root is ``root``; raises :class:`ProofError` if not."""
    if len(root) != HASH_SIZE:
        raise ProofError("the root is not 32 bytes")
    if root_from_range(first, leaf_hashes, tree_size, proof) != bytes(root):
        raise ProofError("the range proof does not lead to the root")
