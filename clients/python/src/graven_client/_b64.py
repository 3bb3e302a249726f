"""Strict standard base64 (RFC 4648 section 4, padded), as the C2SP formats use it."""

from __future__ import annotations

import base64
import binascii
from typing import Optional


def decode_strict(text: str) -> Optional[bytes]:
    """The bytes ``text`` encodes, or ``None`` unless it is canonical padded standard base64
    (no URL-safe alphabet, no missing padding, no stray bits, no whitespace)."""
    if not isinstance(text, str) or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # b64decode ignores non-zero trailing bits; the canonical encoding has none.
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw
