"""C2SP signed notes (signed-note v1.0.0) with Ed25519 verifier keys.

Only the bytes received are verified: the signature is checked over the note text exactly as
it came, never over a re-encoding of what was parsed.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._b64 import decode_strict
from .errors import ConfigError, NoteError

__all__ = ["VerifierKey", "parse_vkey", "load_vkey", "open_note", "MAX_SIGNATURES"]

#: The signature algorithm byte of Ed25519 in a verifier key (signed-note: 0x01).
ALG_ED25519 = 0x01

#: Most signature lines a note may carry (the Go implementation's limit; C2SP asks verifiers
#: to take at least 16).
MAX_SIGNATURES = 100

#: Largest verifier-key file read by :func:`load_vkey`.
MAX_VKEY_FILE = 4096

_SIG_PREFIX = "\u2014 "  # em dash, space


@dataclass(frozen=True)
class VerifierKey:
    """A parsed Ed25519 verifier key: ``<name>+<key id, 8 hex>+<base64(0x01 || key)>``.

    Build one with :func:`parse_vkey` or :func:`load_vkey`, which check that the key id is the
    one the name and key imply.
    """

    name: str
    key_id: int
    public_key: bytes
    text: str

    def __str__(self) -> str:
        return self.text

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature over ``message``."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def key_id_of(name: str, key_bytes: bytes) -> int:
    """The signed-note key id: the first 4 bytes, big-endian, of
    SHA-256(name || "\\n" || alg || key)."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + key_bytes).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _has_bad_control(text: str) -> bool:
    return any(ord(c) < 0x20 and c != "\n" for c in text)


def parse_vkey(text: str) -> VerifierKey:
    """Parses a verifier key string. Raises :class:`ConfigError` when it is not an Ed25519
    key, or when its key id does not match its name and key."""
    parts = text.split("+", 2) if isinstance(text, str) else []
    if len(parts) != 3:
        raise ConfigError("not a verifier key: give <name>+<key id>+<base64 key>")
    name, id_hex, key_b64 = parts
    if not _valid_name(name) or _has_bad_control(name):
        raise ConfigError(f"verifier key: the name {name!r} is empty or holds a space or '+'")
    if len(id_hex) != 8 or any(c not in "0123456789abcdefABCDEF" for c in id_hex):
        raise ConfigError(f"verifier key {name}: the key id {id_hex!r} is not 8 hex digits")
    raw = decode_strict(key_b64)
    if raw is None:
        raise ConfigError(f"verifier key {name}: the key is not base64")
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise ConfigError(f"verifier key {name}: not an Ed25519 key (0x01 and 32 bytes)")
    key_id = int(id_hex, 16)
    if key_id != key_id_of(name, raw):
        raise ConfigError(f"verifier key {name}: the key id {id_hex} does not match the key")
    return VerifierKey(name=name, key_id=key_id, public_key=raw[1:], text=text)


def load_vkey(arg: str) -> VerifierKey:
    """A verifier key given as itself or as the path of a file holding it (as ``graven send
    --vkey`` takes it)."""
    try:
        return parse_vkey(arg)
    except ConfigError as e:
        if not os.path.isfile(arg):
            raise ConfigError(f"{e}; and it is not a file holding one either") from None
        with open(arg, "rb") as f:
            data = f.read(MAX_VKEY_FILE + 1)
        if len(data) > MAX_VKEY_FILE:
            raise ConfigError(f"{arg}: over {MAX_VKEY_FILE} bytes, not a verifier key") from None
        try:
            return parse_vkey(data.decode("utf-8").strip())
        except (UnicodeDecodeError, ConfigError) as inner:
            raise ConfigError(f"{arg} does not hold a verifier key: {inner}") from None


def open_note(note: str, key: VerifierKey) -> str:
    """Verifies a signed note with ``key`` and returns its text (with its final newline).

    The note must be well formed (valid UTF-8, no control characters but newline, a text ending
    in newline, a blank line, then 1 to :data:`MAX_SIGNATURES` signature lines ``— <name>
    <base64(key id || signature)>``) and carry a signature line of ``key`` (same name and key
    id) that verifies over the text. Lines of other keys (witness cosignatures, a rotated key)
    are ignored, as the spec requires.

    Raises :class:`NoteError` with ``reason`` ``"malformed"``, ``"invalid_signature"`` or
    ``"unverified"``.
    """
    if not isinstance(note, str):
        raise NoteError("malformed", "a signed note is text")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("malformed", "the note is not valid UTF-8") from None
    if _has_bad_control(note):
        raise NoteError("malformed", "the note holds a control character")
    # The text ends at the note's last blank line (its text may hold empty lines).
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed", "the note has no blank line before its signatures")
    text, sigs = note[: split + 1], note[split + 2 :]
    if not sigs or not sigs.endswith("\n"):
        raise NoteError("malformed", "the note's signature lines are missing or not ended")
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError("malformed", f"the note has over {MAX_SIGNATURES} signatures")
    message = text.encode("utf-8")
    verified = False
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("malformed", "a line after the blank line is not a signature")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        raw = decode_strict(b64)
        if not _valid_name(name) or raw is None or len(raw) < 5:
            raise NoteError("malformed", "a signature line is not '— <name> <base64>'")
        key_id = int(struct.unpack(">I", raw[:4])[0])
        if name != key.name or key_id != key.key_id:
            continue  # another key's signature: ignored
        if verified:
            raise NoteError("malformed", f"the note is signed twice by {key.name}")
        if not key.verify(message, raw[4:]):
            raise NoteError("invalid_signature", f"the signature of {key.name} does not verify")
        verified = True
    if not verified:
        raise NoteError("unverified", f"the note has no signature of {key.text}")
    return text
