"""C2SP tlog-checkpoint v1.0.0: the signed note a log commits to its tree with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from ._b64 import decode_strict
from .errors import CheckpointError
from .merkle import HASH_SIZE
from .note import VerifierKey, open_note

__all__ = ["Checkpoint", "parse_checkpoint_text", "open_checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's text, parsed: its origin, tree size, root hash and extension lines.

    One returned by :func:`open_checkpoint` was signed by the log's key and its origin is that
    key's name.
    """

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: Tuple[str, ...]


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parses a checkpoint's note text (``<origin>\\n<size>\\n<base64 root>\\n[extension
    lines]``); raises :class:`CheckpointError` unless it is well formed."""
    if not text.endswith("\n"):
        raise CheckpointError("the checkpoint text does not end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("a checkpoint has an origin, a size and a root hash line")
    origin, size, root_b64, *ext = lines
    if not origin:
        raise CheckpointError("the checkpoint's origin is empty")
    # ASCII decimal, no sign or spaces, no leading zero but for 0 itself, at most 2**64 - 1.
    if not size or not all("0" <= c <= "9" for c in size) or (size[0] == "0" and size != "0"):
        raise CheckpointError(f"the checkpoint's tree size {size!r} is not a decimal number")
    tree_size = int(size)
    if tree_size >= 2**64:
        raise CheckpointError("the checkpoint's tree size is over 2**64 - 1")
    root = decode_strict(root_b64)
    if root is None or len(root) != HASH_SIZE:
        raise CheckpointError("the checkpoint's root hash is not a base64 32-byte hash")
    if any(not line for line in ext):
        raise CheckpointError("the checkpoint has an empty extension line")
    return Checkpoint(origin=origin, tree_size=tree_size, root_hash=root, extensions=tuple(ext))


def open_checkpoint(note: str, key: VerifierKey) -> Checkpoint:
    """Verifies a signed checkpoint with the log's key and parses it. Its origin must be the
    key's name. Raises :class:`~graven_client.errors.NoteError` if the signature does not
    check out and :class:`CheckpointError` if the text is not a checkpoint of that log."""
    cp = parse_checkpoint_text(open_note(note, key))
    if cp.origin != key.name:
        raise CheckpointError(f"the checkpoint's origin {cp.origin!r} is not the key's name {key.name!r}")
    return cp
