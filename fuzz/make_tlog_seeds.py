#!/usr/bin/env python3
"""Writes the seeds of the tlog_policy and tlog_proof fuzz targets (fuzz/seeds/<target>/).

Written from the C2SP texts (signed-note, tlog-cosignature, tlog-policy, tlog-proof) and RFC 6962,
not from Graven's code, so that the seeds also check Graven against an independent reading: the
honest seeds must verify under the targets' fixed keys. Needs the `cryptography` package.

    python3 fuzz/make_tlog_seeds.py
"""

import base64
import hashlib
import os
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))


def b64(b):
    return base64.b64encode(b).decode()


class Key:
    """An Ed25519 key used as a signed-note key (type 0x01) or a cosigner key (type 0x04)."""

    def __init__(self, name, seed, typ):
        self.name, self.typ = name, typ
        self.sk = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
        self.pk = self.sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        # signed-note: key ID = SHA-256(name || 0x0A || type || public key)[:4]
        self.id = hashlib.sha256(name.encode() + b"\n" + bytes([typ]) + self.pk).digest()[:4]

    def vkey(self):
        return f"{self.name}+{self.id.hex()}+{b64(bytes([self.typ]) + self.pk)}"

    def line(self, sig):
        return f"\u2014 {self.name} {b64(self.id + sig)}\n"

    def sign_note(self, text):
        return self.line(self.sk.sign(text.encode()))

    def cosign(self, text, ts):
        # tlog-cosignature: "cosignature/v1\ntime <ts>\n" || note text; signature = u64 ts || Ed25519
        msg = f"cosignature/v1\ntime {ts}\n{text}".encode()
        return self.line(struct.pack(">Q", ts) + self.sk.sign(msg))


def leaf(e):
    return hashlib.sha256(b"\x00" + e).digest()


def node(l, r):
    return hashlib.sha256(b"\x01" + l + r).digest()


def split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves):
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node(mth(leaves[:k]), mth(leaves[k:]))


def path(m, leaves):
    """RFC 6962 section 2.1.1 PATH(m, D[n]), leaf's sibling first."""
    if len(leaves) == 1:
        return []
    k = split(len(leaves))
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- tlog_proof: the target's log, witnesses and policy (any two of three) ----
PROOF_ORIGIN = "fuzz.example/proof-log"
plog = Key(PROOF_ORIGIN, 3, 0x01)
pw = [Key(f"w{i}.proof.example", 30 + i, 0x04) for i in range(3)]
entries = [f"entry {i}".encode() for i in range(37)]


def proof_file(size, index, cosigners, extra=None):
    leaves = [leaf(e) for e in entries[:size]]
    body = f"{PROOF_ORIGIN}\n{size}\n{b64(mth(leaves))}\n"
    note = body + "\n" + plog.sign_note(body)
    for i in cosigners:
        note += pw[i].cosign(body, 1700000000 + i)
    out = "c2sp.org/tlog-proof@v1\n"
    if extra is not None:
        out += f"extra {b64(extra)}\n"
    out += f"index {index}\n"
    out += "".join(b64(h) + "\n" for h in path(index, leaves))
    return out + "\n" + note


def raw_seed(event, file):
    return bytes([0, len(event)]) + event + file.encode()


write("tlog_proof", "raw-honest-5-of-37", raw_seed(entries[5], proof_file(37, 5, [0, 1])))
write("tlog_proof", "raw-honest-extra", raw_seed(entries[20], proof_file(30, 20, [0, 1, 2], b"context")))
write("tlog_proof", "raw-no-quorum", raw_seed(entries[3], proof_file(8, 3, [2])))
write("tlog_proof", "raw-size-1", raw_seed(entries[0], proof_file(1, 0, [1, 2])))
# Structured: 0xff, size byte, index byte, cosigner bits, damage, two choice bytes.
for name, b in [
    ("structured-honest", [36, 5, 0b011, 0, 0, 0]),
    ("structured-flipped-proof", [36, 5, 0b111, 1, 7, 3]),
    ("structured-other-index", [20, 2, 0b110, 4, 1, 0]),
    ("structured-cosignature-removed", [36, 30, 0b111, 6, 0, 0]),
    ("structured-size-edited", [10, 9, 0b101, 7, 0, 0]),
]:
    write("tlog_proof", name, bytes([0xFF] + b))

# ---- tlog_policy: the spec's example, with real keys, and variants ----
POLICY_ORIGIN = "fuzz.example/log"
log = Key(POLICY_ORIGIN, 1, 0x01)
xs = [Key(f"x{i}.example", 50 + i, 0x04) for i in range(1, 4)]
ys = [Key(f"y{i}.example", 60 + i, 0x04) for i in range(1, 4)]
example = f"log {log.vkey()}\n\n"
example += "".join(f"witness X{i + 1} {k.vkey()}\n" for i, k in enumerate(xs))
example += "group X-witnesses 2 X1 X2 X3\n\n"
example += "".join(f"witness Y{i + 1} {k.vkey()}\n" for i, k in enumerate(ys))
example += "group Y-witnesses any Y1 Y2 Y3\n\ngroup X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n"
write("tlog_policy", "spec-example", example)
write("tlog_policy", "quorum-none", f"# offline, no witnesses\nlog {log.vkey()} https://log.example/\nquorum none\n")
write(
    "tlog_policy",
    "tabs-urls-comments",
    f"\tlog\t{log.vkey()}\n  # a comment\nwitness\tW1 {xs[0].vkey()}\thttps://w1.example/\t\nquorum W1 \n",
)
plain = Key("plain.example", 20, 0x01)
write("tlog_policy", "plain-note-key-witness", f"log {log.vkey()}\nwitness S {plain.vkey()}\nquorum S\n")
write("tlog_policy", "forward-reference", f"group G any W1\nwitness W1 {xs[0].vkey()}\nquorum G\n")
# Structured: 0xff, listed bits (bit 0: admit plain keys), form, threshold, signers, damaged, size, root.
for name, b in [
    ("structured-two-of-four", [0b00011110, 2, 1, 0b0101, 0, 4, 9]),
    ("structured-any-and-all", [0b00111111, 3, 0, 0b11110, 0, 7, 1]),
    ("structured-plain-admitted", [0b00100001, 1, 0, 0b10000, 0, 2, 2]),
    ("structured-damaged-line", [0b00001110, 2, 0, 0b0110, 0b0100, 3, 3]),
]:
    write("tlog_policy", name, bytes([0xFF] + b))
