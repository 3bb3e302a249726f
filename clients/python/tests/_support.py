"""Shared test helpers: the vectors' location, a naive reference Merkle tree, a note signer
with the published test keys, and receipts built from them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any, Dict, List, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors")


def vector_json(*path: str) -> Any:
    with open(os.path.join(VECTORS, *path), encoding="utf-8") as f:
        return json.load(f)


def vector_text(*path: str) -> str:
    with open(os.path.join(VECTORS, *path), "rb") as f:
        return f.read().decode("utf-8")


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


# ---- a naive reference tree (RFC 6962 section 2.1, recursively, as the RFC writes it) ----


def ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes."""
    if len(leaves) == 0:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return hashlib.sha256(b"\x01" + ref_root(leaves[:k]) + ref_root(leaves[k:])).digest()


def ref_path(m: int, leaves: Sequence[bytes]) -> List[bytes]:
    """PATH(m, D[n]): the audit path of leaf m."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return ref_path(m, leaves[:k]) + [ref_root(leaves[k:])]
    return ref_path(m - k, leaves[k:]) + [ref_root(leaves[:k])]


# ---- notes signed with a published test key ----

# transparency-dev/tessera's published test key pair (vectors/signed-note/vectors.json).
TEST_VKEY = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"
TEST_SKEY = "PRIVATE+KEY+example.com/log/testdata+33d7b496+AeymY/SZAX0jZcJ8enZ5FY1Dz+wTML2yWSkK+9DSF3eg"
# Another published test key pair (transparency-dev/formats), as "some other key".
OTHER_VKEY = "Known+451c786d+AXAQ0T7lbwuY4ABJ9/MYY9bWV3hmSyOGVt2x42NkmdUH"
OTHER_SKEY = "PRIVATE+KEY+Known+451c786d+AQPRoE2+Z+Ed1HaHBA9F/FfracvcZ2rDU39kCecMEoci"


def signature_line(skey: str, text: str) -> str:
    """The signed-note signature line of ``skey`` (``PRIVATE+KEY+<name>+<id>+<base64(0x01 ||
    seed)>``) over ``text``."""
    _, _, name, key_id, key_b64 = skey.split("+", 4)
    seed = base64.b64decode(key_b64)
    assert seed[0] == 1 and len(seed) == 33
    sig = Ed25519PrivateKey.from_private_bytes(seed[1:]).sign(text.encode("utf-8"))
    return f"\u2014 {name} {b64(bytes.fromhex(key_id) + sig)}\n"


def sign_note(text: str, *skeys: str) -> str:
    return text + "\n" + "".join(signature_line(k, text) for k in skeys)


def checkpoint_text(origin: str, size: int, root: bytes) -> str:
    return f"{origin}\n{size}\n{b64(root)}\n"


def make_receipt(size: int, index: int, skey: str = TEST_SKEY, origin: str = "example.com/log/testdata") -> Dict[str, Any]:
    """A receipt for leaf ``index`` of a log of ``size`` entries ``entry-<i>``, its checkpoint
    signed with ``skey``."""
    leaves = [ref_leaf(f"entry-{i}".encode()) for i in range(size)]
    note = sign_note(checkpoint_text(origin, size, ref_root(leaves)), skey)
    return {
        "checkpoint": note,
        "inclusion_proof": [b64(h) for h in ref_path(index, leaves)],
        "index": index,
        "leaf_hash": b64(leaves[index]),
        "logged_at": "2026-01-01T00:00:00.000000Z",
        "tree_size": size,
        "witnessed": False,
    }
