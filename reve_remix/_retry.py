"""When to send a generation again, and how long to wait first.

Every generation costs money and the API takes no idempotency key, so a retry must not risk paying
twice. By default only failures that cannot have produced an image are retried: the connection
never carried the whole request, or the server said so (408, 429, 502, 503). A 500, a read
timeout, or a connection dropped after the request was sent may have produced (and billed) an
image: those are *ambiguous* and retried only with ``retry_on_ambiguous=True``. So are a 504 and
Cloudflare's 524: a gateway that gave up waiting says nothing of the generation behind it, which
may go on and be billed.

A 429 is retried from a budget of its own (:meth:`RetryPolicy.limit`): it made nothing, and the
client slows down for it (:class:`AdaptiveRate`), so a job does not fail while the client's pace
is still finding the server's rate.

The same table says which state a failed job is left in (``_runner.state_after_error``):
``failed`` where it cannot have been billed, ``ambiguous`` where it may have been.

This module decides; the clients wait and send. Both clients share it, so the policy has one home.
"""

from __future__ import annotations

import bisect
import email.utils
import math
import random
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, cast

import httpx

from ._exceptions import ValidationError, is_content_policy

if TYPE_CHECKING:
    import asyncio

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503})
AMBIGUOUS_STATUSES = frozenset({500, 504, 524})
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
RATE_LIMIT_RETRIES = 8  # 429s a call may retry (at least; see RetryPolicy.limit)

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


def made_nothing(outcome: httpx.Response | httpx.TransportError) -> bool:
    """Whether an attempt that ended with ``outcome`` provably generated (and billed) nothing.

    A transport error before the whole request was sent, or an error status that is not a
    refusal by content policy and either is a 4xx or one the table retries (a 429, a 502):
    the cases a batch records as ``failed``. A 2xx, a 500, a read timeout may have been billed;
    so may a content-policy refusal (a provider may generate first and moderate the result).
    A :class:`~reve_remix.Budget` gives back the generation it held only for these.

    Example::

        >>> made_nothing(httpx.ConnectError("refused")), made_nothing(httpx.ReadTimeout("slow"))
        (True, False)
    """
    if isinstance(outcome, httpx.TransportError):
        return classify_error(outcome) == "retry"
    status = outcome.status_code
    if outcome.is_success or is_content_policy(outcome):
        return False
    return status < 500 or classify_status(status) == "retry"


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

        >>> event = RetryEvent("429 Too Many Requests", delay=4.0, retry=1, max_retries=8)
        >>> event.rate_limited, str(event)
        (True, 'rate limited; retrying in 4.0 s (retry 1 of 8)')
    """

    reason: str
    """The status (``"429 Too Many Requests"``) or transport error (``"ConnectError"``)."""
    delay: float
    """Seconds the client waits before sending again (then for its pace, if it paces)."""
    retry: int
    """Which retry this is, from 1, of its kind: 429s are counted apart from other failures."""
    max_retries: int
    """The most retries of its kind the call may make: ``max_retries``, or for 429s an allowance
    of their own, as large or larger (a refused request made nothing)."""

    @property
    def rate_limited(self) -> bool:
        """Whether the API said 429."""
        return self.reason.startswith("429")

    def __str__(self) -> str:
        reason = "rate limited" if self.rate_limited else self.reason
        return (
            f"{reason}; retrying in {self.delay:.1f} s (retry {self.retry} of {self.max_retries})"
        )


@dataclass(slots=True)
class CallRetries:
    """The retries one call has made so far: 429s are counted apart from every other failure."""

    rate_limited: int = 0
    other: int = 0

    @property
    def attempt(self) -> int:
        """Which attempt comes next, from 1."""
        return 1 + self.rate_limited + self.other


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many retries a call may make and whether ambiguous failures count as retryable."""

    max_retries: int = 2
    retry_on_ambiguous: bool = False

    def limit(self, *, rate_limited: bool) -> int:
        """The retries a call may make of 429s (``rate_limited``), or of every other failure.

        A 429 made nothing, and while the client's pace is still finding the server's rate a job
        may meet a few in a row, so 429s have their own budget, ``RATE_LIMIT_RETRIES`` or
        ``max_retries`` if larger: each waits its ``Retry-After`` (at most 60 s) or the backoff,
        then the client's pace, so a server that refuses everything still ends the call with a
        ``RateLimitError``. ``max_retries=0`` retries nothing, 429s included.

        Example::

            >>> policy = RetryPolicy(max_retries=2)
            >>> policy.limit(rate_limited=True), policy.limit(rate_limited=False)
            (8, 2)
        """
        if rate_limited and self.max_retries:
            return max(self.max_retries, RATE_LIMIT_RETRIES)
        return self.max_retries

    def after_response(self, response: httpx.Response, done: CallRetries) -> RetryEvent | None:
        """The retry to make after ``response`` (counted in ``done``), or ``None`` to stop here."""
        rate_limited = response.status_code == 429
        if not self._allows(classify_status(response.status_code), done, rate_limited):
            return None
        if is_content_policy(response):  # refused for what it asks: it would be refused again
            return None
        hinted = parse_retry_after(response.headers.get("retry-after"))
        reason = f"{response.status_code} {response.reason_phrase}"
        return self._count(reason, hinted, done, rate_limited)

    def after_error(self, error: httpx.TransportError, done: CallRetries) -> RetryEvent | None:
        """The retry to make after a transport ``error`` (counted in ``done``), or ``None``."""
        if not self._allows(classify_error(error), done, rate_limited=False):
            return None
        return self._count(type(error).__name__, None, done, rate_limited=False)

    def _allows(self, verdict: Verdict, done: CallRetries, rate_limited: bool) -> bool:
        spent = done.rate_limited if rate_limited else done.other
        if spent >= self.limit(rate_limited=rate_limited):
            return False
        return verdict == "retry" or (verdict == "ambiguous" and self.retry_on_ambiguous)

    def _count(
        self, reason: str, hinted: float | None, done: CallRetries, rate_limited: bool
    ) -> RetryEvent:
        if rate_limited:
            done.rate_limited += 1
            retry = done.rate_limited
        else:
            done.other += 1
            retry = done.other
        delay = backoff(retry) if hinted is None else hinted
        return RetryEvent(reason, delay, retry, self.limit(rate_limited=rate_limited))


class RateLimiter(Protocol):
    """What a client asks before every attempt (retries included) and tells of every 429.

    Before an attempt the client asks :meth:`next_slot` for the seconds until it may go, waits
    them and asks again, until it says 0: the attempt then goes out at once, and :meth:`on_sent`
    says when. Asking again after each wait lets a limiter move a slot while an attempt waits
    for it (a 429 holds every slot, a new measure cuts the pace). A 429 is reported with
    :meth:`on_rate_limited`. A client's attempts ask one at a time, in line; one limiter may serve
    many clients in many threads, so implementations must be thread-safe.

    Every client has one: a fresh :class:`AdaptiveRate` by default; pass another (such as
    :class:`SteadyRate`, or one object shared by many clients) to replace it, or
    ``rate_limiter=None`` to send without pacing. A limiter whose ``next_slot`` waits on I/O (a
    remote actor, as :class:`reve_remix.ray.RayRateLimiter`) also gives an async
    ``anext_slot()``, which :class:`AsyncReveRemix` awaits instead, so the event loop never
    blocks.

    Example::

        client = ReveRemix(rate_limiter=SteadyRate(requests_per_second=5))
    """

    def next_slot(self) -> float:
        """Seconds until the attempt may go (then ask again); 0: it goes now, its slot taken."""
        ...

    def on_sent(self) -> float:
        """The attempt went out now; returns when, for :meth:`on_rate_limited` if it is refused."""
        ...

    def on_rate_limited(self, seconds: float, sent_at: float) -> None:
        """A 429 asking ``seconds`` of wait, for the attempt :meth:`on_sent` dated ``sent_at``."""
        ...


def check_rate_limiter(limiter: object) -> RateLimiter | None:
    """``limiter`` checked as a :class:`RateLimiter`; a class gives a fresh one, ``None`` none.

    Raises ``ValidationError`` naming what is missing, so a limiter written for another interface
    fails when the client is made, not at the first call.

    Example::

        >>> type(check_rate_limiter(AdaptiveRate)).__name__, check_rate_limiter(None)
        ('AdaptiveRate', None)
    """
    if limiter is None:
        return None
    if isinstance(limiter, type):  # the default: one of its own for every client
        limiter = limiter()
    missing = [
        name
        for name in ("next_slot", "on_sent", "on_rate_limited")
        if not callable(getattr(limiter, name, None))
    ]
    if missing:
        listed = ", ".join(f"{name}()" for name in missing)
        raise ValidationError(
            f"rate_limiter: {type(limiter).__name__} has no {listed}; see RateLimiter"
        )
    return cast(RateLimiter, limiter)  # checked above, method by method


class _Beat:
    """Slots at most one per ``interval``, none before a hold ends: the timing both limiters keep.

    Not thread-safe: each limiter calls it under its own lock.
    """

    __slots__ = ("held_until", "last")

    def __init__(self) -> None:
        self.last = 0.0  # when the last slot was taken
        self.held_until = 0.0

    def take(self, now: float, interval: float) -> float:
        """Seconds until the next slot; 0: it is ``now``, and taken."""
        slot = max(self.last + interval, self.held_until)
        if slot > now:
            return slot - now
        # A head late by less than an interval keeps the beat; after an idle line it restarts.
        self.last = slot if now - slot < interval else now
        return 0.0

    def hold(self, until: float) -> None:
        """No slot before ``until``."""
        self.held_until = max(self.held_until, until)


class SteadyRate:
    """A ``RateLimiter`` that spaces attempts ``1 / requests_per_second`` apart, and pauses on 429.

    Share one instance between clients (or threads) to pace all of them together.

    Example::

        >>> limiter = SteadyRate(requests_per_second=2)
        >>> limiter.next_slot(), round(limiter.next_slot(), 1)  # the second waits its turn
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
        self._beat = _Beat()
        self._lock = threading.Lock()

    def next_slot(self) -> float:
        """Seconds until the next slot; 0: it is now, and taken."""
        with self._lock:
            return self._beat.take(time.monotonic(), self.interval)

    def on_sent(self) -> float:
        """When the attempt went out (a steady pace needs nothing more)."""
        return time.monotonic()

    def on_rate_limited(self, seconds: float, sent_at: float) -> None:
        """No slot before ``seconds`` from now."""
        with self._lock:
            self._beat.hold(time.monotonic() + seconds)


class AdaptiveRate:
    """The default ``RateLimiter``: it measures the rate a server admits and paces just under it.

    A server that refuses a request has no allowance left at that moment, so between two refused
    attempts it admitted its rate, within one request, whatever the client sent (a token bucket
    refilled at the rate, as rate limiters are made), unless the client sent so little that the
    bucket overflowed. So on every 429 the rate is measured over the attempts sent since an earlier
    refused one (the most recent with :attr:`SAMPLE` admitted and :attr:`SPAN` seconds since):
    those sent, less those refused; or over the last :attr:`SPAN` seconds if more were admitted
    there (a small bucket overflows). Attempts are then spaced at that rate times :attr:`MARGIN`,
    rising by :attr:`INCREASE` of it every second without a 429, to find a rate that went up.
    Until there is a measure the pace is a guess, once :attr:`CROWD` attempts went out in the
    last second and some were admitted (a lone call's retries are only held): :attr:`DECREASE`
    of those admitted, lowered by each 429, growing by :attr:`PROBE` a second. A pause of more than
    a second (or two paced intervals) forgets what was measured: the server's allowance may have
    filled up meanwhile. Every 429 also holds every attempt for its ``Retry-After``.

    Attempts ask in line, one at a time (see :class:`RateLimiter`), and the head asks again when
    it wakes, so a cut, a rise or a hold reaches the very next attempt, not only those that queue
    after it. A shared cooldown alone cannot reach the rate: after every pause every worker sends
    at once, and most are refused again. Every client has one of its own unless given another
    limiter; share one between clients to learn one rate for all of them.

    Example::

        >>> pace = AdaptiveRate()
        >>> pace.next_slot()  # unpaced until a 429
        0.0
    """

    MARGIN = 0.97  # of the measured rate: just under, so the server's allowance is never dry
    INCREASE = 0.02  # of the pace, per second without a 429
    DECREASE = 0.8  # of the attempts admitted in the last second: the guess before a measure
    PROBE = 0.25  # of the pace, compounded, per second without a 429 while it is a guess
    SAMPLE = 20  # admitted attempts a measure needs (then it is within 1/SAMPLE)
    CROWD = 8  # attempts in the last second (some admitted) a guess needs: a lone call is held
    SPAN = 0.5  # and seconds it needs, so that the moments it counts are the server's too
    HISTORY = 500  # attempts remembered
    PAUSE = 1.0  # seconds without an attempt that forget what was measured
    MIN_RATE = 1.0  # requests per second: the lowest guess (a measure may be lower)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._beat = _Beat()
        self._rate = 0.0  # requests per second; 0 (unpaced) until the first 429
        self._step = 0.0  # requests per second gained each second, once measured
        self._grown_at = 0.0
        self._measured = False  # whether the pace comes from a measure (since the last pause)
        self._sent: list[float] = []  # when each remembered attempt went out, in order
        self._refused: list[float] = []  # when each refused one of them went out, in order

    @property
    def interval(self) -> float:
        """Seconds between two attempts at the current pace (0 while unpaced)."""
        return 1.0 / self._rate if self._rate else 0.0

    def next_slot(self) -> float:
        """Seconds until the next slot at the pace and holds of now; 0: it is now, and taken."""
        with self._lock:
            now = time.monotonic()
            if not self._rate:  # unpaced (no 429 yet, or since a pause): only holds apply
                return self._beat.take(now, 0.0)
            self._grow(now)
            return self._beat.take(now, self.interval)

    def on_sent(self) -> float:
        """Note an attempt going out now; returns the moment, for :meth:`on_rate_limited`."""
        with self._lock:
            now = time.monotonic()
            idle = now - self._sent[-1] if self._sent else 0.0
            if idle > self.PAUSE and idle > self._pause():  # a pause is never under PAUSE
                self._sent.clear()
                self._refused.clear()
                self._measured = False
            self._sent.append(now)
            if len(self._sent) > 2 * self.HISTORY:
                del self._sent[: -self.HISTORY]
                del self._refused[: bisect.bisect_left(self._refused, self._sent[0])]
            return now

    def on_rate_limited(self, seconds: float, sent_at: float) -> None:
        """A 429 for the attempt sent at ``sent_at`` (from :meth:`on_sent`).

        Holds every slot ``seconds``, and paces at the rate measured, or lowers the guess.
        """
        with self._lock:
            now = time.monotonic()
            self._grow(now)
            self._beat.hold(now + seconds)
            if not self._sent or sent_at < self._sent[0]:
                return  # sent before a pause: it says nothing of the rate now
            bisect.insort(self._refused, sent_at)
            measured = self._measure(sent_at)
            if measured is not None:
                self._measured = True
                sent, refused = self._in_the_last(self.SPAN, now)
                recent = (sent - refused) / self.SPAN
                self._pace_at(max(measured, recent) * self.MARGIN, now)
                return
            sent, refused = self._in_the_last(1.0, now)
            if not self._measured and sent >= self.CROWD and refused < sent:
                guess = max((sent - refused) * self.DECREASE, self.MIN_RATE)
                if not self._rate or guess < self._rate:
                    self._pace_at(guess, now)

    def _grow(self, now: float) -> None:
        if self._rate:
            elapsed = min(now - self._grown_at, self._pause())  # an idle line learns nothing
            if self._measured:
                self._rate += self._step * elapsed
            else:
                self._rate *= math.exp(self.PROBE * elapsed)
            self._grown_at = now

    def _pause(self) -> float:
        """Seconds without an attempt that make a pause: a second, or two paced intervals."""
        return max(self.PAUSE, 2 * self.interval)

    def _pace_at(self, rate: float, now: float) -> None:
        self._rate, self._step, self._grown_at = rate, rate * self.INCREASE, now

    def _measure(self, refused_at: float) -> float | None:
        """Requests per second admitted since the latest earlier refusal with ``SAMPLE`` since."""
        later = bisect.bisect_left(self._refused, refused_at)  # refusals before this one
        sent_before = bisect.bisect_left(self._sent, refused_at)
        if sent_before - later < self.SAMPLE:  # too few admitted since the first refusal
            return None
        for earlier in range(later - 1, -1, -1):
            since = self._refused[earlier]
            sent = sent_before - bisect.bisect_right(self._sent, since)
            admitted = sent - (later - 1 - earlier)
            if admitted >= self.SAMPLE and refused_at - since >= self.SPAN:
                return admitted / (refused_at - since)
        return None

    def _in_the_last(self, seconds: float, now: float) -> tuple[int, int]:
        """Attempts sent in the last ``seconds``, and how many of them were refused."""
        sent = len(self._sent) - bisect.bisect_right(self._sent, now - seconds)
        refused = len(self._refused) - bisect.bisect_right(self._refused, now - seconds)
        return sent, refused


class Line:
    """Where one client's attempts queue to ask its limiter, one at a time (see RateLimiter).

    Only the head of the line asks, and asks again when it wakes, so what the limiter learns
    meanwhile reaches the very next attempt. The sync client queues on :attr:`sync`; the async
    client on :meth:`for_loop`, one ``asyncio.Lock`` per event loop, as an ``asyncio.Lock``
    belongs to the loop that first waits on it and a client may outlive a loop.
    """

    def __init__(self) -> None:
        self.sync = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def for_loop(self) -> asyncio.Lock:
        """The line of the running event loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        line = self._loops.get(loop)
        if line is None:
            line = self._loops[loop] = asyncio.Lock()
        return line
