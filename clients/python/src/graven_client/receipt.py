"""Receipts: what the server answers for each logged event, and their offline check.

A :class:`Receipt` is the answer as it came; a :class:`VerifiedReceipt` can only be had from
:func:`verify_receipt`, so holding one is proof that the check ran and passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple, Union

from ._b64 import decode_strict
from .checkpoint import Checkpoint, open_checkpoint
from .errors import ReceiptError, VerificationError
from .merkle import HASH_SIZE, verify_inclusion, verify_range
from .note import VerifierKey, load_vkey

__all__ = ["RangeReceipt", "Receipt", "VerifiedBatch", "VerifiedReceipt", "verify_range_receipt", "verify_receipt"]

_FIELDS = ("checkpoint", "inclusion_proof", "index", "leaf_hash", "logged_at", "tree_size", "witnessed")


def _u64(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**64:
        raise ReceiptError(f"the receipt's {what} is not an unsigned 64-bit integer")
    return v


@dataclass(frozen=True)
class Receipt:
    """A receipt as the server sent it (``POST /v1/events``), not yet verified.

    ``inclusion_proof`` and ``leaf_hash`` are base64 as on the wire. Unknown members are kept
    in ``raw`` (the whole JSON object), so a receipt can be stored and re-checked later.
    """

    checkpoint: str
    inclusion_proof: Tuple[str, ...]
    index: int
    leaf_hash: str
    logged_at: Optional[str]
    tree_size: int
    witnessed: bool
    raw: Mapping[str, Any] = field(compare=False, hash=False, repr=False)

    @classmethod
    def from_dict(cls, obj: Any) -> "Receipt":
        """Reads a receipt from its decoded JSON object; raises :class:`ReceiptError` if a
        member is missing or of the wrong type."""
        if not isinstance(obj, Mapping):
            raise ReceiptError("a receipt is a JSON object")
        missing = [f for f in _FIELDS if f not in obj and f != "witnessed"]
        if missing:
            raise ReceiptError(f"the receipt has no {', '.join(missing)}")
        proof = obj["inclusion_proof"]
        if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof):
            raise ReceiptError("the receipt's inclusion_proof is not a list of strings")
        if not isinstance(obj["checkpoint"], str) or not isinstance(obj["leaf_hash"], str):
            raise ReceiptError("the receipt's checkpoint and leaf_hash are strings")
        logged_at = obj["logged_at"]
        if logged_at is not None and not isinstance(logged_at, str):
            raise ReceiptError("the receipt's logged_at is not a string or null")
        witnessed = obj.get("witnessed", False)
        if not isinstance(witnessed, bool):
            raise ReceiptError("the receipt's witnessed is not a boolean")
        return cls(
            checkpoint=obj["checkpoint"],
            inclusion_proof=tuple(proof),
            index=_u64(obj["index"], "index"),
            leaf_hash=obj["leaf_hash"],
            logged_at=logged_at,
            tree_size=_u64(obj["tree_size"], "tree_size"),
            witnessed=witnessed,
            raw=dict(obj),
        )

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> "Receipt":
        """Reads a receipt from its JSON text (one line of an NDJSON answer)."""
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ReceiptError(f"the receipt is not JSON: {e}") from None
        return cls.from_dict(obj)

    def to_json(self) -> str:
        """The receipt as one line of JSON, as received (members in the server's order)."""
        return json.dumps(dict(self.raw), separators=(",", ":"), ensure_ascii=False)


_MINT = object()  # only verify_receipt holds it


class VerifiedReceipt:
    """A receipt that verified: its checkpoint is signed by the log's key (and its origin is
    the key's name), its tree size is the checkpoint's, and its inclusion proof leads from
    ``leaf_hash`` at ``index`` to the checkpoint's root.

    What that proves: the log, as committed to by that signed checkpoint, holds an entry whose
    leaf hash is ``leaf_hash`` at ``index``. It does not by itself prove the entry's content
    (the server adds ``v``, ``logged_at`` and the verified actor to the event; compare
    :func:`~graven_client.merkle.leaf_hash_of` of the stored bytes to check it), nor that the
    log showed everyone the same tree (witness cosignatures, ``witnessed``, speak to that).

    Only :func:`verify_receipt` makes one.
    """

    __slots__ = ("receipt", "checkpoint", "key", "leaf_hash", "root_hash")

    receipt: Receipt
    checkpoint: Checkpoint
    key: VerifierKey
    leaf_hash: bytes
    root_hash: bytes

    def __init__(self, token: object, receipt: Receipt, checkpoint: Checkpoint, key: VerifierKey) -> None:
        if token is not _MINT:
            raise TypeError("a VerifiedReceipt comes only from verify_receipt()")
        object.__setattr__(self, "receipt", receipt)
        object.__setattr__(self, "checkpoint", checkpoint)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "leaf_hash", decode_strict(receipt.leaf_hash) or b"")
        object.__setattr__(self, "root_hash", checkpoint.root_hash)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a VerifiedReceipt is immutable")

    @property
    def index(self) -> int:
        """The event's 0-based position in the log."""
        return self.receipt.index

    @property
    def tree_size(self) -> int:
        """The size of the tree the checkpoint signs."""
        return self.receipt.tree_size

    @property
    def logged_at(self) -> Optional[str]:
        """The time the log stamped on the event (not itself covered by the proof: the
        stored event holds it)."""
        return self.receipt.logged_at

    @property
    def witnessed(self) -> bool:
        """Whether the server said the checkpoint carries its witness quorum's cosignatures
        (not checked here: this package checks the log's own signature only)."""
        return self.receipt.witnessed

    @property
    def origin(self) -> str:
        """The log's origin (its key's name)."""
        return self.checkpoint.origin

    def to_json(self) -> str:
        """The receipt as received, one line of JSON, to store beside the action it allowed."""
        return self.receipt.to_json()

    def __repr__(self) -> str:
        return f"VerifiedReceipt(origin={self.origin!r}, index={self.index}, tree_size={self.tree_size})"


def _checkpoint_of(note: str, tree_size: int, key: VerifierKey) -> Checkpoint:
    """A receipt's checkpoint, opened with the log's key, for the tree size the receipt names."""
    try:
        cp = open_checkpoint(note, key)
    except VerificationError as e:
        raise ReceiptError(f"its checkpoint does not open with the log's key: {e}") from e
    if cp.tree_size != tree_size:
        raise ReceiptError(f"its tree_size {tree_size} is not its checkpoint's size {cp.tree_size}")
    return cp


def verify_receipt(
    receipt: Union[Receipt, Mapping[str, Any], str, bytes],
    vkey: Union[VerifierKey, str],
) -> VerifiedReceipt:
    """Verifies a receipt offline against the log's verifier key; no network.

    ``receipt`` is a :class:`Receipt`, its decoded JSON object, or its JSON text. ``vkey`` is a
    :class:`~graven_client.note.VerifierKey`, a verifier key string, or the path of a file
    holding one. Raises :class:`ReceiptError` (the cause chained) if the receipt does not
    verify, and :class:`~graven_client.errors.ConfigError` if ``vkey`` is not a key.
    """
    key = vkey if isinstance(vkey, VerifierKey) else load_vkey(vkey)
    if isinstance(receipt, (str, bytes)):
        r = Receipt.from_json(receipt)
    elif isinstance(receipt, Receipt):
        r = receipt
    else:
        r = Receipt.from_dict(receipt)
    cp = _checkpoint_of(r.checkpoint, r.tree_size, key)
    leaf = decode_strict(r.leaf_hash)
    if leaf is None or len(leaf) != HASH_SIZE:
        raise ReceiptError("its leaf_hash is not a base64 32-byte hash")
    proof = _hashes(r.inclusion_proof, "inclusion proof")
    try:
        verify_inclusion(r.index, r.tree_size, leaf, proof, cp.root_hash)
    except VerificationError as e:
        raise ReceiptError(f"its inclusion proof does not lead to the checkpoint's root: {e}") from e
    return VerifiedReceipt(_MINT, r, cp, key)



@dataclass(frozen=True)
class RangeReceipt:
    """A batch's range receipt as the server sent it (``POST /v1/events?receipt=range``), not
    yet verified: the checkpoint, the batch's first index, each event's leaf hash (base64) and
    one range proof (docs/receipts.md)."""

    checkpoint: str
    first_index: int
    leaf_hashes: Tuple[str, ...]
    logged_at: Optional[str]
    range_proof: Tuple[str, ...]
    tree_size: int
    raw: Mapping[str, Any] = field(compare=False, hash=False, repr=False)

    @classmethod
    def from_dict(cls, obj: Any) -> "RangeReceipt":
        if not isinstance(obj, Mapping):
            raise ReceiptError("a range receipt is a JSON object")
        missing = [f for f in ("checkpoint", "first_index", "leaf_hashes", "range_proof", "tree_size") if f not in obj]
        if missing:
            raise ReceiptError(f"the range receipt has no {', '.join(missing)}")
        for f in ("leaf_hashes", "range_proof"):
            if not isinstance(obj[f], list) or not all(isinstance(h, str) for h in obj[f]):
                raise ReceiptError(f"the range receipt's {f} is not a list of strings")
        if not isinstance(obj["checkpoint"], str):
            raise ReceiptError("the range receipt's checkpoint is not a string")
        at = obj.get("logged_at")
        if at is not None and not isinstance(at, str):
            raise ReceiptError("the range receipt's logged_at is not a string")
        return cls(
            checkpoint=obj["checkpoint"],
            first_index=_u64(obj["first_index"], "first_index"),
            leaf_hashes=tuple(obj["leaf_hashes"]),
            logged_at=at,
            range_proof=tuple(obj["range_proof"]),
            tree_size=_u64(obj["tree_size"], "tree_size"),
            raw=dict(obj),
        )

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> "RangeReceipt":
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ReceiptError(f"the range receipt is not JSON: {e}") from None
        return cls.from_dict(obj)


@dataclass(frozen=True)
class VerifiedBatch:
    """A range receipt that verified: each of ``leaf_hashes`` (raw bytes) is the leaf at
    ``first_index + i`` of the tree of ``tree_size`` that ``checkpoint`` signs."""

    first_index: int
    tree_size: int
    leaf_hashes: Tuple[bytes, ...]
    checkpoint: Checkpoint
    receipt: RangeReceipt


def _hashes(values: Tuple[str, ...], what: str) -> list:
    out = []
    for h in values:
        raw = decode_strict(h)
        if raw is None or len(raw) != HASH_SIZE:
            raise ReceiptError(f"its {what} holds something that is not a base64 32-byte hash")
        out.append(raw)
    return out


def verify_range_receipt(
    receipt: Union[RangeReceipt, Mapping[str, Any], str, bytes],
    vkey: Union[VerifierKey, str],
) -> VerifiedBatch:
    """Verifies a batch's range receipt offline against the log's verifier key: the checkpoint
    opens with the key, its size is the receipt's, and the leaf hashes with the range proof give
    its root. Raises :class:`ReceiptError` if not."""
    key = vkey if isinstance(vkey, VerifierKey) else load_vkey(vkey)
    if isinstance(receipt, (str, bytes)):
        r = RangeReceipt.from_json(receipt)
    elif isinstance(receipt, RangeReceipt):
        r = receipt
    else:
        r = RangeReceipt.from_dict(receipt)
    cp = _checkpoint_of(r.checkpoint, r.tree_size, key)
    leaves = _hashes(r.leaf_hashes, "leaf_hashes")
    proof = _hashes(r.range_proof, "range proof")
    try:
        verify_range(r.first_index, leaves, r.tree_size, proof, cp.root_hash)
    except VerificationError as e:
        raise ReceiptError(f"its range proof does not lead to the checkpoint's root: {e}") from e
    return VerifiedBatch(r.first_index, r.tree_size, tuple(leaves), cp, r)
