"""The errors of graven_client, one class per way a call can end badly.

What matters most to a caller is whether the event is in the log. Each class says:

- :class:`RefusedError`: the server answered with a status that guarantees nothing was
  appended (any 4xx, a 3xx such as a follower's 307, or 503 and 429 once the retries are
  spent). Fix the request or try later.
- :class:`UnreachableError`: no connection could be made, so nothing was sent.
- :class:`MaybeLoggedError`: the request may have reached the log (a timeout or a dropped
  connection after the body was sent, a 5xx other than 503, an answer that is not receipts).
  The event may or may not be logged; sending it again could log it twice.
- :class:`ReceiptError`: a receipt did not verify against the log's key. The server said the
  event was logged but could not prove it; treat it as not logged, and investigate.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "GravenError",
    "ConfigError",
    "VerificationError",
    "NoteError",
    "CheckpointError",
    "ProofError",
    "ReceiptError",
    "RefusedError",
    "UnreachableError",
    "MaybeLoggedError",
]


class GravenError(Exception):
    """The base of every error this package raises on purpose."""


class ConfigError(GravenError, ValueError):
    """The client is not configured well enough to be used (no server, token or vkey, or a
    verifier key that does not parse)."""


class VerificationError(GravenError):
    """Something that was to be verified offline did not verify."""


class NoteError(VerificationError):
    """A C2SP signed note did not open with the trusted key.

    ``reason`` is one of ``"malformed"`` (not a well-formed signed note), ``"invalid_signature"``
    (the trusted key's signature line is there but does not verify) or ``"unverified"`` (no
    signature line from the trusted key).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class CheckpointError(VerificationError):
    """A signed note's text is not a C2SP tlog-checkpoint, or not the one expected."""


class ProofError(VerificationError):
    """An RFC 6962 inclusion proof does not lead from the leaf to the root."""


class ReceiptError(VerificationError):
    """A receipt does not prove its event is in the log: bad shape, a checkpoint that does not
    open with the log's key, or an inclusion proof that does not lead to its root. The cause,
    when there is one, is chained (``__cause__``)."""


class RefusedError(GravenError):
    """The server refused the request, and nothing was appended.

    Carries the HTTP ``status`` and, when the server sent an RFC 9457 problem document, its
    ``type``, ``title`` and ``detail`` (else ``None``; ``body`` keeps the start of the answer).
    """

    def __init__(
        self,
        status: int,
        type: Optional[str] = None,
        title: Optional[str] = None,
        detail: Optional[str] = None,
        body: str = "",
        retry_after: Optional[float] = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.body = body
        self.retry_after = retry_after
        what = detail or title or (body[:200] if body else "no detail")
        super().__init__(f"not logged: the server answered {status}: {what}")


class UnreachableError(GravenError):
    """No connection could be made to the server (refused, name not resolved, connect timed
    out), so nothing was sent, even after the retries."""


class MaybeLoggedError(GravenError):
    """The request may have reached the log, but no receipt came back: the event may or may
    not be logged. It is not retried, since a retry could log the event twice. Search the log
    (for instance by the event's ``request_id``) before sending it again."""
