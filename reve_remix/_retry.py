"""When to send a generation again, and how long to wait first.

Every generation costs money and the API takes no idempotency key, so a retry must not risk paying
twice. By default only failures that cannot have produced an image are retried: the connection
never carried the whole request, or the server said so (408, 429, 502, 503, 504). A 500, a read
timeout, or a connection dropped after the request was sent may have produced (and billed) an
image: those are *ambiguous* and retried only with ``retry_on_ambiguous=True``.

This module decides; the clients wait and send. Both clients share it, so the policy has one home.
"""

from __future__ import annotations

import collections
import email.utils
import random
import threading
import time
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx

from ._exceptions import ValidationError

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
AMBIGUOUS_STATUSES = frozenset({500})
# Transport errors raised before the whole request reached the server: nothing can have been made.
SAFE_TRANSPORT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
)

INITIAL_BACKOFF = 0.5  # seconds before the first retry, doubled each time
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 60.0  # a server asking for longer is obeyed only this far

Verdict = Literal["retry", "ambiguous", "final"]


def classify_status(status_code: int) -> Verdict:
    """Whether a response status may be retried: ``retry``, ``ambiguous`` or ``final``.

    Example::

        >>> classify_status(429), classify_status(500), classify_status(400)
        ('retry', 'ambiguous', 'final')
    """
    if status_code in RETRYABLE_STATUSES:
        return "retry"
    if status_code in AMBIGUOUS_STATUSES:
        return "ambiguous"
    return "final"


def classify_error(error: httpx.TransportError) -> Verdict:
    """Whether a transport error may be retried: before the request was sent, or after.

    Example::

        >>> classify_error(httpx.ConnectError("refused")), classify_error(httpx.ReadTimeout("slow"))
        ('retry', 'ambiguous')
    """
    return "retry" if isinstance(error, SAFE_TRANSPORT_ERRORS) else "ambiguous"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), capped.

    Returns ``None`` when the header is absent or unreadable, so the caller falls back to backoff.

    Example::

        >>> parse_retry_after("3"), parse_retry_after("soon"), parse_retry_after("9999")
        (3.0, None, 60.0)
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def backoff(retry_number: int) -> float:
    """Exponential backoff with "equal" jitter for the ``retry_number``-th retry (1-based).

    Jitter spreads the retries of many clients so that they do not all return at once.
    """
    ceiling: float = min(INITIAL_BACKOFF * 2.0 ** (retry_number - 1), MAX_BACKOFF)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not cryptographic


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """A retry the client is about to make: why, how long it waits first, and which retry it is.

    Passed to a client's ``on_retry`` hook (in the spirit of httpx's ``event_hooks``), e.g. to show
    a wait in a progress display or count rate limits.

    Example::

        >>> event = RetryEvent("429 Too Many Requests", delay=4.0, retry=1, max_retries=2)
        >>> event.rate_limited, str(event)
        (True, 'rate limited; retrying in 4.0 s (retry 1 of 2)')
    """

    reason: str
    """The status (``"429 Too Many Requests"``) or transport error (``"ConnectError"``)."""
    delay: float
    """Seconds the client waits before sending again."""
    retry: int
    """Which retry this is, from 1."""
    max_retries: int

    @property
    def rate_limited(self) -> bool:
        """Whether the API said 429."""
        return self.reason.startswith("429")

    def __str__(self) -> str:
        reason = "rate limited" if self.rate_limited else self.reason
        return (
            f"{reason}; retrying in {self.delay:.1f} s (retry {self.retry} of {self.max_retries})"
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many retries a call may make and whether ambiguous failures count as retryable."""

    max_retries: int = 2
    retry_on_ambiguous: bool = False

    def _allows(self, verdict: Verdict, retries_done: int) -> bool:
        if retries_done >= self.max_retries:
            return False
        return verdict == "retry" or (verdict == "ambiguous" and self.retry_on_ambiguous)

    def delay_after_response(self, response: httpx.Response, retries_done: int) -> float | None:
        """Seconds to wait before retrying after ``response``, or ``None`` to stop here."""
        if not self._allows(classify_status(response.status_code), retries_done):
            return None
        hinted = parse_retry_after(response.headers.get("retry-after"))
        return backoff(retries_done + 1) if hinted is None else hinted

    def delay_after_error(self, error: httpx.TransportError, retries_done: int) -> float | None:
        """Seconds to wait before retrying after a transport ``error``, or ``None`` to stop."""
        if not self._allows(classify_error(error), retries_done):
            return None
        return backoff(retries_done + 1)


class RateLimiter(Protocol):
    """What a client consults before every attempt (retries included) and tells of every 429.

    ``reserve()`` returns how many seconds to wait before the attempt may go out, and counts the
    attempt as made at that moment; ``on_rate_limited(seconds)`` reports a 429 and the wait it
    asked for. The client sleeps (``time.sleep`` or ``asyncio.sleep``), so one limiter serves the
    sync and the async client, and one shared limiter (a process-wide object, or a proxy to a
    Ray actor) can pace every worker of a job. Implementations must be thread-safe.

    Example::

        client = ReveRemix(rate_limiter=SteadyRate(requests_per_second=5))
    """

    def reserve(self) -> float: ...

    def on_rate_limited(self, seconds: float) -> None: ...


class SteadyRate:
    """A ``RateLimiter`` that spaces attempts ``1 / requests_per_second`` apart, and pauses on 429.

    Share one instance between clients (or threads) to pace all of them together.

    Example::

        >>> limiter = SteadyRate(requests_per_second=2)
        >>> limiter.reserve(), round(limiter.reserve(), 1)
        (0.0, 0.5)
    """

    def __init__(self, requests_per_second: float) -> None:
        number = isinstance(requests_per_second, int | float) and not isinstance(
            requests_per_second, bool
        )
        if not (number and 0 < requests_per_second < 1e6):
            raise ValidationError(
                f"requests_per_second: expected a positive number, got {requests_per_second!r}"
            )
        self.interval = 1.0 / float(requests_per_second)
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Seconds until this attempt's slot; the slot after it is reserved for the next one."""
        with self._lock:
            return self._reserve(time.monotonic())

    def on_rate_limited(self, seconds: float) -> None:
        """No slot before ``seconds`` from now."""
        with self._lock:
            self._hold(time.monotonic() + seconds)

    def _reserve(self, now: float) -> float:
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot - now

    def _hold(self, until: float) -> None:
        self._next = max(self._next, until)


class AdaptiveRate(SteadyRate):
    """A ``RateLimiter`` that learns the rate a server admits: additive increase, multiplicative
    decrease (AIMD), the way TCP finds a link's capacity.

    Every 429 holds every attempt for its ``Retry-After``. Once a 429 comes among at least
    :attr:`SAMPLE` recent attempts, attempts are also spaced at the rate the server admitted (at
    the first cut: attempts in the last second, less the refused ones; later: the attempts it
    admitted since the previous cut) times :attr:`DECREASE`; the rate rises by :attr:`INCREASE`
    of itself every second without a 429, and is cut again on the next one (at most once every
    :attr:`HOLD` seconds, so that one burst of refusals counts once). A shared cooldown alone
    cannot do this: after every pause, every worker sends at once and most are refused again.
    Every client has one; ``scripts/bench.py`` prints the throughput it reaches.

    Example::

        >>> limiter = AdaptiveRate()
        >>> limiter.reserve()  # unpaced until a 429
        0.0
    """

    DECREASE = 0.9
    INCREASE = 0.05  # of the rate at the last cut, per second
    HOLD = 0.5  # seconds between two cuts
    WINDOW = 1.0  # seconds of attempts that estimate the admitted rate at the first 429
    SAMPLE = 10  # attempts it takes to estimate a rate; below it, a 429 only holds attempts

    def __init__(self) -> None:
        super().__init__(requests_per_second=1.0)
        self.interval = 0.0
        self._slots: collections.deque[float] = collections.deque()  # when attempts go out
        self._refusals = 0  # since the last cut
        self._rate = 0.0  # requests per second; 0 until the first 429
        self._step = 0.0
        self._cut_at = self._grown_at = 0.0

    def reserve(self) -> float:
        """Seconds until this attempt's slot, at the rate learned so far."""
        with self._lock:
            now = time.monotonic()
            if self._rate:
                self._rate += self._step * (now - self._grown_at)
                self.interval = 1.0 / self._rate
                self._grown_at = now
            wait = self._reserve(now)
            self._slots.append(now + wait)
            return wait

    def on_rate_limited(self, seconds: float) -> None:
        """Cut the rate (once every ``HOLD`` seconds at most); hold every attempt ``seconds``."""
        with self._lock:
            now = time.monotonic()
            self._refusals += 1
            # A 429 that asks for no wait at all says nothing about the rate.
            if seconds > 0 and (not self._rate or now - self._cut_at >= self.HOLD):
                since = self._cut_at if self._rate else now - self.WINDOW
                while self._slots and self._slots[0] <= since:
                    self._slots.popleft()
                sent = sum(1 for slot in self._slots if slot <= now)
                if sent >= self.SAMPLE:  # fewer say nothing of a rate: the hold alone will do
                    admitted = max(0, sent - self._refusals) / (now - since)
                    self._rate = max(min(self._rate or admitted, admitted) * self.DECREASE, 1.0)
                    self._step = self._rate * self.INCREASE
                    self.interval = 1.0 / self._rate
                    self._cut_at = self._grown_at = now
                    self._refusals = 0
            self._hold(now + seconds)
