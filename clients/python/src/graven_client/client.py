"""The HTTP client: send events, get verified receipts, and act only on a receipt.

Retries follow one rule: a request is sent again only when the server guarantees that nothing
was appended. That is a 503 or a 429 answer (the server's pushback; its ``Retry-After`` is
honoured), or a connection that could not be made at all (the request never left). Anything
after the body may have reached the server (a timeout, a dropped connection, any other 5xx) is
raised as :class:`MaybeLoggedError` and never retried, since a retry could log the event twice.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

from .errors import ConfigError, MaybeLoggedError, ReceiptError, RefusedError, UnreachableError
from .note import VerifierKey, load_vkey
from .receipt import RangeReceipt, Receipt, VerifiedBatch, VerifiedReceipt, verify_range_receipt, verify_receipt

__all__ = ["Client", "RetryPolicy", "DEFAULT_TIMEOUT"]

T = TypeVar("T")

#: Seconds to wait for a connection, and then for each read of the answer.
DEFAULT_TIMEOUT = 30.0

#: Most bytes of an answer read (a batch's receipts included).
MAX_ANSWER = 64 << 20

#: Statuses with which the server says nothing was appended and asks to come back later.
RETRYABLE_STATUSES = frozenset({429, 503})

USER_AGENT = "graven-client-python/0.1.0"


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending again a request that certainly appended
    nothing.

    ``retries`` is the number of extra attempts after the first. Without a ``Retry-After``, the
    wait before retry *n* (0-based) is drawn uniformly from ``[0, min(max_delay, backoff *
    2**n)]`` ("full jitter", so that many clients pushed back at once do not return at once).
    With one, the wait is ``Retry-After`` plus up to ``backoff`` of jitter; a ``Retry-After``
    longer than ``max_delay`` is not waited out: the refusal is raised at once.
    """

    retries: int = 4
    backoff: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or not 0 <= self.retries <= 100:
            raise ConfigError("retries is an integer from 0 to 100")
        if not 0 <= self.backoff <= self.max_delay or self.max_delay > 3600:
            raise ConfigError("backoff and max_delay are seconds, 0 <= backoff <= max_delay <= 3600")

    def delay(self, attempt: int, retry_after: Optional[float], rng: random.Random) -> Optional[float]:
        """Seconds to wait before retry number ``attempt`` (0-based), or ``None`` to give up."""
        if attempt >= self.retries:
            return None
        if retry_after is not None:
            if retry_after > self.max_delay:
                return None
            return retry_after + rng.uniform(0, self.backoff)
        return rng.uniform(0, min(self.max_delay, self.backoff * (2**attempt)))


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _NotSent(Exception):
    """The connection could not be made: nothing of the request left this process."""

    def __init__(self, cause: BaseException, retryable: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.retryable = retryable


def _env(name: str) -> Optional[str]:
    v = os.environ.get(name, "").strip()
    return v or None


class Client:
    """A client of one Graven log.

    :param server: the server's base URL, e.g. ``https://graven.example`` (else
        ``GRAVEN_SERVER``).
    :param token: an API key (``gvn_...``) or an OIDC token of a writer identity (else
        ``GRAVEN_TOKEN``).
    :param vkey: the log's verifier key, ``<name>+<key id>+<key>``, or the path of a file holding
        it (else ``GRAVEN_VKEY``). Every receipt is checked against it; there is no way to get an
        unchecked one.
    :param timeout: seconds to wait for the connection and for each read of the answer.
    :param retries: extra attempts for a request that certainly appended nothing.
    :param backoff: base of the exponential back-off, in seconds.
    :param max_delay: longest single wait between attempts, in seconds.
    :param ssl_context: for ``https`` servers, e.g. one trusting a private CA (default: the
        system's trust store, with hostname checks).
    :param sleep: how to wait (``time.sleep``); for tests.
    :param rng: the jitter's random source; for tests.

    Raises :class:`ConfigError` if the server, token or key is missing or invalid.
    """

    def __init__(
        self,
        server: Optional[str] = None,
        token: Optional[str] = None,
        vkey: Union[str, VerifierKey, None] = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 4,
        backoff: float = 0.5,
        max_delay: float = 30.0,
        ssl_context: Optional[ssl.SSLContext] = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Optional[random.Random] = None,
    ) -> None:
        server = server or _env("GRAVEN_SERVER")
        if not server:
            raise ConfigError("no server: pass server=... or set GRAVEN_SERVER (e.g. https://graven.example)")
        u = urllib.parse.urlsplit(server.strip())
        if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment or u.username:
            raise ConfigError(f"server {server!r}: give an http:// or https:// base URL")
        try:
            u.port
        except ValueError:
            raise ConfigError(f"server {server!r}: the port is not a number") from None
        self._url = u
        self.server = urllib.parse.urlunsplit((u.scheme, u.netloc, u.path.rstrip("/"), "", ""))

        token = (token or "").strip() or _env("GRAVEN_TOKEN")
        if not token:
            raise ConfigError("no credential: pass token=... or set GRAVEN_TOKEN (a writer's API key)")
        if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
            raise ConfigError("the token holds a space, a control or a non-ASCII character")
        self._token = token

        if vkey is None:
            vkey = _env("GRAVEN_VKEY")
        if vkey is None:
            raise ConfigError(
                "no verifier key: pass vkey=... or set GRAVEN_VKEY; a receipt is only worth something "
                "checked against the log's key"
            )
        self.vkey: VerifierKey = vkey if isinstance(vkey, VerifierKey) else load_vkey(vkey.strip())

        if not timeout > 0:
            raise ConfigError("timeout is a positive number of seconds")
        self.timeout = float(timeout)
        self.retry = RetryPolicy(retries=retries, backoff=backoff, max_delay=max_delay)
        self._ssl = ssl_context
        self._sleep = sleep
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"Client(server={self.server!r}, vkey={self.vkey.text!r})"

    # ---- the API ----

    def send(self, event: Mapping[str, Any], *, witnessed: bool = False) -> VerifiedReceipt:
        """Appends one event (``POST /v1/events``) and returns its verified receipt.

        ``event`` is a JSON object with at least an ``action`` (docs/events.md). With
        ``witnessed=True`` the server answers with a checkpoint its witness quorum cosigned.

        Raises :class:`RefusedError` (nothing appended), :class:`UnreachableError` (nothing
        sent), :class:`MaybeLoggedError` (may or may not be logged) or :class:`ReceiptError`
        (the answer does not prove the event logged).
        """
        body = _encode(event).encode("utf-8")
        (receipt,) = self._append(body, "application/json", 1, witnessed)
        return receipt

    def send_batch(self, events: Sequence[Mapping[str, Any]], *, witnessed: bool = False) -> List[VerifiedReceipt]:
        """Appends events as one all-or-nothing batch (``application/x-ndjson``, one event a
        line) and returns their verified receipts, in order. Raises as :meth:`send` does; a
        refusal means none of them was appended."""
        if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Sequence):
            raise TypeError("send_batch takes a list of events")
        if not events:
            raise ValueError("send_batch: no events")
        body = "".join(_encode(e) + "\n" for e in events).encode("utf-8")
        return self._append(body, "application/x-ndjson", len(events), witnessed)

    def send_batch_range(self, events: Sequence[Mapping[str, Any]]) -> VerifiedBatch:
        """Appends events as one all-or-nothing batch and returns one verified range receipt for
        them all (``?receipt=range``: the leaf hashes and one proof, about 50 bytes an event
        rather than some 1,100; docs/receipts.md). Raises as :meth:`send_batch` does."""
        if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Sequence):
            raise TypeError("send_batch_range takes a list of events")
        if not events:
            raise ValueError("send_batch_range: no events")
        body = "".join(_encode(e) + "\n" for e in events).encode("utf-8")
        path = self._url.path.rstrip("/") + "/v1/events?receipt=range"
        ans = self._post_with_retries(path, body, "application/x-ndjson")
        if ans.status != 201:
            if 400 <= ans.status < 500 or 300 <= ans.status < 400:
                raise _refused(ans)
            raise MaybeLoggedError(
                f"the events may or may not be logged: the server answered {ans.status} "
                f"({_problem_text(ans)}); it is not retried, as a retry could log them twice"
            )
        try:
            r = RangeReceipt.from_json(ans.body)
        except ReceiptError as e:
            raise ReceiptError(f"the server answered 201, but not with a range receipt: {e}") from e
        if len(r.leaf_hashes) != len(events):
            raise ReceiptError(f"the range receipt covers {len(r.leaf_hashes)} events, not the {len(events)} sent")
        return verify_range_receipt(r, self.vkey)

    def verify(self, receipt: Union[Receipt, Mapping[str, Any], str, bytes]) -> VerifiedReceipt:
        """Verifies a stored receipt against this client's key, offline (see
        :func:`~graven_client.receipt.verify_receipt`)."""
        return verify_receipt(receipt, self.vkey)

    @contextlib.contextmanager
    def logged(self, event: Mapping[str, Any], *, witnessed: bool = False) -> Iterator[VerifiedReceipt]:
        """No receipt, no action: sends the intent ``event`` and enters the block only once its
        receipt is verified; if that fails, the error propagates and the block never runs.

        ::

            with client.logged({"action": "secret.rotate", "resource": {"type": "secret",
                                "id": "db/prod"}}) as receipt:
                rotate()   # runs only when the intent is provably in the log
        """
        receipt = self.send(event, witnessed=witnessed)
        yield receipt

    def act_if_logged(
        self,
        event: Mapping[str, Any],
        action: Callable[[VerifiedReceipt], T],
        *,
        witnessed: bool = False,
    ) -> T:
        """No receipt, no action: sends ``event``, then calls ``action(receipt)`` and returns its
        result, only if the receipt verified. If sending fails, ``action`` is not called and
        the error propagates."""
        receipt = self.send(event, witnessed=witnessed)
        return action(receipt)

    # ---- the wire ----

    def _append(self, body: bytes, content_type: str, count: int, witnessed: bool) -> List[VerifiedReceipt]:
        path = self._url.path.rstrip("/") + "/v1/events" + ("?witnessed=true" if witnessed else "")
        ans = self._post_with_retries(path, body, content_type)
        if ans.status != 201:
            if 400 <= ans.status < 500 or 300 <= ans.status < 400:
                # The server decided before appending: a 4xx (bad event, credential, access),
                # or a 3xx (e.g. 307, this node is not the log's writer).
                raise _refused(ans)
            raise MaybeLoggedError(
                f"the event may or may not be logged: the server answered {ans.status} "
                f"({_problem_text(ans)}); it is not retried, as a retry could log it twice"
            )
        try:
            text = ans.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ReceiptError("the server answered 201, but not with UTF-8 receipts") from None
        lines = [line for line in text.split("\n") if line.strip()]
        if len(lines) != count:
            raise ReceiptError(f"the server answered 201 with {len(lines)} receipts for {count} events")
        receipts = []
        for i, line in enumerate(lines):
            try:
                receipts.append(verify_receipt(Receipt.from_json(line), self.vkey))
            except ReceiptError as e:
                which = f"event {i + 1} of {count}" if count > 1 else "the event"
                raise ReceiptError(f"the receipt of {which} does not prove it logged: {e}") from e
        return receipts

    def _post_with_retries(self, path: str, body: bytes, content_type: str) -> _Answer:
        attempt = 0
        while True:
            try:
                ans = self._post_once(path, body, content_type)
            except _NotSent as e:
                wait = self.retry.delay(attempt, None, self._rng) if e.retryable else None
                if wait is None:
                    raise UnreachableError(
                        f"not logged: could not connect to {self.server} ({e.cause}); nothing was sent"
                    ) from e.cause
            else:
                if ans.status not in RETRYABLE_STATUSES:
                    return ans
                wait = self.retry.delay(attempt, _retry_after(ans.headers), self._rng)
                if wait is None:
                    raise _refused(ans)
            self._sleep(wait)
            attempt += 1

    def _post_once(self, path: str, body: bytes, content_type: str) -> _Answer:
        """One attempt. Connection failures before anything was sent raise :class:`_NotSent`;
        any failure after raises :class:`MaybeLoggedError`.

        ``http.client`` rather than ``urllib.request``: connecting is a separate step there, so
        "nothing was sent" can be told apart from "sent, then the answer was lost", which
        ``urlopen`` reports alike. A connection is used for one request only, so a stale pooled
        connection never makes a sent request look unsent.
        """
        host, port = self._url.hostname or "", self._url.port
        conn: http.client.HTTPConnection
        if self._url.scheme == "https":
            ctx = self._ssl or ssl.create_default_context()
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        try:
            try:
                conn.connect()
            except ssl.SSLCertVerificationError as e:
                raise _NotSent(e, retryable=False) from e
            except OSError as e:  # refused, unreachable, name not resolved, connect timeout, TLS
                raise _NotSent(e, retryable=True) from e
            try:
                conn.request(
                    "POST",
                    path,
                    body=body,
                    headers={
                        "Authorization": f"Bearer {self._token}",
                        "Content-Type": content_type,
                        "Accept": f"{content_type}, application/problem+json",
                        "User-Agent": USER_AGENT,
                    },
                )
                resp = conn.getresponse()
                data = resp.read(MAX_ANSWER + 1)
                if len(data) > MAX_ANSWER:
                    raise MaybeLoggedError(f"the event may or may not be logged: the answer is over {MAX_ANSWER} bytes")
                return _Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
            except (OSError, http.client.HTTPException) as e:
                raise MaybeLoggedError(
                    f"the event may or may not be logged: the request was sent to {self.server} but no "
                    f"answer came back ({type(e).__name__}: {e}); it is not retried, as a retry could "
                    "log it twice"
                ) from e
        finally:
            conn.close()


def _encode(event: Mapping[str, Any]) -> str:
    if not isinstance(event, Mapping):
        raise TypeError(f"an event is a dict (a JSON object), not {type(event).__name__}")
    try:
        return json.dumps(dict(event), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"the event is not JSON: {e}") from e


def _retry_after(headers: Mapping[str, str]) -> Optional[float]:
    """The ``Retry-After`` header in seconds; ``None`` if absent or not a number of seconds (an
    HTTP date is not honoured: the back-off applies)."""
    v = headers.get("retry-after", "").strip()
    if not v.isascii() or not v.isdigit():
        return None
    return float(int(v))


def _problem(ans: _Answer) -> Tuple[Optional[str], Optional[str], Optional[str]]:
    try:
        p = json.loads(ans.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None, None, None
    if not isinstance(p, dict):
        return None, None, None
    get = lambda k: p[k] if isinstance(p.get(k), str) else None  # noqa: E731
    return get("type"), get("title"), get("detail")


def _problem_text(ans: _Answer) -> str:
    _, title, detail = _problem(ans)
    return detail or title or ans.body[:200].decode("utf-8", "replace") or "no detail"


def _refused(ans: _Answer) -> RefusedError:
    type_, title, detail = _problem(ans)
    if 300 <= ans.status < 400 and ans.headers.get("location"):
        detail = f"{detail or 'redirected'} (Location: {ans.headers['location']})"
    return RefusedError(
        ans.status,
        type=type_,
        title=title,
        detail=detail,
        body=ans.body[:1000].decode("utf-8", "replace"),
        retry_after=_retry_after(ans.headers),
    )
