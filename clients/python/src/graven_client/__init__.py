"""graven_client: send events to a Graven audit log, and verify their receipts offline.

Every receipt the client returns has been checked against the log's verifier key: its
checkpoint (a C2SP signed note, Ed25519) is the log's, and its RFC 6962 inclusion proof leads
from the event's leaf to that checkpoint's root. See README.md for what is retried and what is
not, and :meth:`Client.logged` for the fail-closed helper ("no receipt, no action").
"""

from .checkpoint import Checkpoint, open_checkpoint, parse_checkpoint_text
from .client import Client, RetryPolicy
from .errors import (
    CheckpointError,
    ConfigError,
    GravenError,
    MaybeLoggedError,
    NoteError,
    ProofError,
    ReceiptError,
    RefusedError,
    UnreachableError,
    VerificationError,
)
from .merkle import leaf_hash_of, node_hash, root_from_inclusion, root_from_range, verify_inclusion, verify_range
from .note import VerifierKey, load_vkey, open_note, parse_vkey
from .receipt import RangeReceipt, Receipt, VerifiedBatch, VerifiedReceipt, verify_range_receipt, verify_receipt

__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Client",
    "ConfigError",
    "GravenError",
    "MaybeLoggedError",
    "NoteError",
    "ProofError",
    "RangeReceipt",
    "Receipt",
    "ReceiptError",
    "RefusedError",
    "RetryPolicy",
    "UnreachableError",
    "VerificationError",
    "VerifiedBatch",
    "VerifiedReceipt",
    "VerifierKey",
    "leaf_hash_of",
    "load_vkey",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint_text",
    "parse_vkey",
    "root_from_inclusion",
    "root_from_range",
    "verify_inclusion",
    "verify_range",
    "verify_range_receipt",
    "verify_receipt",
]
