"""The retry policy as pure decisions: the table in docs/errors-and-retries.md, row by row."""

from __future__ import annotations

import collections
import email.utils
import heapq

import httpx
import pytest

from reve_remix import ValidationError
from reve_remix._retry import (
    MAX_BACKOFF,
    MAX_RETRY_AFTER,
    RATE_LIMIT_RETRIES,
    AdaptiveRate,
    CallRetries,
    RetryEvent,
    RetryPolicy,
    SteadyRate,
    backoff,
    check_rate_limiter,
    classify_error,
    classify_status,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (408, "retry"),
        (429, "retry"),
        (502, "retry"),
        (503, "retry"),
        (500, "ambiguous"),
        (504, "ambiguous"),
        (524, "ambiguous"),
        (400, "final"),
        (401, "final"),
        (402, "final"),
        (403, "final"),
        (404, "final"),
        (413, "final"),
        (422, "final"),
        (501, "final"),
        (200, "final"),
    ],
)
def test_status_verdicts(status, verdict):
    assert classify_status(status) == verdict


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (httpx.ConnectError("refused"), "retry"),
        (httpx.ConnectTimeout("slow connect"), "retry"),
        (httpx.PoolTimeout("pool"), "retry"),
        (httpx.WriteError("broken pipe"), "retry"),
        (httpx.WriteTimeout("slow write"), "retry"),
        (httpx.ReadTimeout("slow read"), "ambiguous"),
        (httpx.ReadError("reset"), "ambiguous"),
        (httpx.RemoteProtocolError("disconnected"), "ambiguous"),
    ],
)
def test_transport_error_verdicts(error, verdict):
    assert classify_error(error) == verdict


def test_retry_after_forms():
    now = 1_000_000.0
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("100000") == MAX_RETRY_AFTER
    assert parse_retry_after(email.utils.formatdate(now + 7, usegmt=True), now=now) == 7.0
    assert parse_retry_after(email.utils.formatdate(now - 7, usegmt=True), now=now) == 0.0
    for junk in (None, "", "soon", "nan", "Mon, 99 Foo 2024"):
        assert parse_retry_after(junk) is None


def test_backoff_grows_and_is_jittered_within_bounds():
    for retry in range(1, 8):
        ceiling = min(0.5 * 2 ** (retry - 1), 8.0)
        samples = [backoff(retry) for _ in range(50)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
        assert len(set(samples)) > 1


def _response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


def test_policy_stops_after_max_retries_and_prefers_retry_after():
    policy, done = RetryPolicy(max_retries=2), CallRetries()
    first = policy.after_response(_response(503, **{"Retry-After": "3"}), done)
    assert first == RetryEvent("503 Service Unavailable", 3.0, retry=1, max_retries=2)
    assert policy.after_response(_response(503), done) is not None
    assert policy.after_response(_response(503), done) is None  # two retries spent
    assert done == CallRetries(rate_limited=0, other=2)
    assert policy.after_response(_response(400), CallRetries()) is None


def test_429s_have_a_budget_of_their_own_that_still_ends():
    policy, done = RetryPolicy(max_retries=2), CallRetries()
    assert policy.after_response(_response(503), done) is not None
    events = [policy.after_response(_response(429), done) for _ in range(RATE_LIMIT_RETRIES)]
    assert [(event.retry, event.max_retries) for event in events if event] == [
        (n, RATE_LIMIT_RETRIES) for n in range(1, RATE_LIMIT_RETRIES + 1)
    ]
    assert policy.after_response(_response(429), done) is None  # the 429 budget is spent...
    assert policy.after_error(httpx.ConnectError("refused"), done) is not None  # ...not this one
    last = events[-1]  # without Retry-After, a 429 backs off by its own count, up to the cap
    assert last is not None
    assert MAX_BACKOFF / 2 <= last.delay <= MAX_BACKOFF
    assert RetryPolicy(max_retries=20).limit(rate_limited=True) == 20  # more if asked for


def test_policy_ambiguous_rows_depend_on_the_flag():
    cautious, bold = RetryPolicy(2, retry_on_ambiguous=False), RetryPolicy(2, True)
    assert cautious.after_response(_response(500), CallRetries()) is None
    assert bold.after_response(_response(500), CallRetries()) is not None
    timeout = httpx.ReadTimeout("slow")
    assert cautious.after_error(timeout, CallRetries()) is None
    assert bold.after_error(timeout, CallRetries()) is not None
    assert cautious.after_error(httpx.ConnectError("refused"), CallRetries()) is not None


def test_zero_retries_never_retries_not_even_a_429():
    policy = RetryPolicy(max_retries=0, retry_on_ambiguous=True)
    assert policy.after_response(_response(503), CallRetries()) is None
    assert policy.after_response(_response(429), CallRetries()) is None
    assert policy.after_error(httpx.ConnectError("x"), CallRetries()) is None


# --- AdaptiveRate, on a clock of the test's own ---------------------------------------------------


class _Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr("reve_remix._retry.time.monotonic", lambda: self.now)


def test_both_limiters_are_rate_limiters_and_other_objects_are_refused():
    assert isinstance(check_rate_limiter(AdaptiveRate), AdaptiveRate)  # the default: a fresh one
    assert check_rate_limiter(AdaptiveRate) is not check_rate_limiter(AdaptiveRate)
    steady = SteadyRate(5)
    assert check_rate_limiter(steady) is steady
    assert check_rate_limiter(None) is None

    class Reserving:  # written for another interface: refused when the client is made
        def reserve(self) -> float:
            return 0.0

        def on_rate_limited(self, seconds: float) -> None:
            pass

    with pytest.raises(ValidationError, match=r"Reserving has no next_slot\(\), on_sent\(\)"):
        check_rate_limiter(Reserving())


def test_adaptive_rate_holds_every_slot_for_a_429s_wait_and_paces_no_lone_call(monkeypatch):
    clock = _Clock(monkeypatch)
    pace = AdaptiveRate()
    assert pace.next_slot() == 0.0  # unpaced until a 429
    sent_at = pace.on_sent()
    pace.on_rate_limited(5, sent_at)
    pace.on_rate_limited(1, sent_at)  # a shorter wait does not shorten the hold
    assert pace.next_slot() == 5
    clock.now += 5
    assert pace.next_slot() == 0.0
    assert pace.interval == 0  # one attempt says nothing of a rate: held, not paced


def test_adaptive_rate_paces_just_under_the_rate_admitted_between_two_refusals(monkeypatch):
    clock = _Clock(monkeypatch)
    pace = AdaptiveRate()
    refused = []
    for n in range(101):  # 100 attempts a second; the server admits 80 of every 100
        refused += [pace.on_sent()] if n % 5 == 0 else []
        pace.on_sent() if n % 5 else None
        clock.now += 0.01
    for sent_at in refused:
        pace.on_rate_limited(0.0, sent_at)
    # From the first refusal to the last: 80 admitted in 1.0 s (and 40 in the last 0.5 s).
    paced = 80 * AdaptiveRate.MARGIN
    assert 1 / pace.interval == pytest.approx(paced)
    assert pace.next_slot() == 0.0
    assert pace.next_slot() == pytest.approx(1 / paced)  # the next one waits its turn
    clock.now += 1  # a second without a 429: the pace rises, to find a rate that went up
    pace.next_slot()
    assert 1 / pace.interval == pytest.approx(paced * (1 + AdaptiveRate.INCREASE))


def test_a_pause_forgets_what_was_measured(monkeypatch):
    clock = _Clock(monkeypatch)
    pace = AdaptiveRate()
    first = [pace.on_sent() for _ in range(30)]
    clock.now += AdaptiveRate.PAUSE + 1
    later = pace.on_sent()
    pace.on_rate_limited(0.0, first[0])  # sent before the pause: not counted...
    pace.on_rate_limited(0.0, later)  # ...and one attempt since says nothing of a rate
    assert pace.interval == 0


def _bucket_run(rate: float, workers: int, jobs: int, monkeypatch: pytest.MonkeyPatch):
    """A batch against a token bucket (``rate`` a second, holding one second's worth), in
    simulated time: ``workers`` jobs at a time, each answered 0.2 s after it is admitted or
    refused at once with the seconds until the next token. Returns (share of the rate reached
    after the bucket's first second, share of attempts refused).
    """
    clock = _Clock(monkeypatch)
    pace, start = AdaptiveRate(), clock.now
    tokens, refilled, admitted, refused, last = rate, start, 0, 0, start
    events: list[tuple[float, int, str]] = []  # (when, job, what): a heap
    line: collections.deque[int] = collections.deque()
    for job in range(min(workers, jobs)):
        heapq.heappush(events, (start, job, "queue"))
    queued = min(workers, jobs)
    while events:
        clock.now, job, what = heapq.heappop(events)
        if what == "queue":
            line.append(job)
            if len(line) > 1:
                continue  # the head of the line will hand on its turn
        elif what == "answered":
            last = clock.now
            if queued < jobs:
                heapq.heappush(events, (clock.now, queued, "queue"))
                queued += 1
            continue
        if wait := pace.next_slot():  # the head of the line (what == "queue" or "head")
            heapq.heappush(events, (clock.now + wait, line[0], "head"))
            continue
        job = line.popleft()
        if line:
            heapq.heappush(events, (clock.now, line[0], "head"))
        sent_at = pace.on_sent()
        tokens = min(rate, tokens + (clock.now - refilled) * rate)
        refilled = clock.now
        if tokens >= 1:
            tokens, admitted = tokens - 1, admitted + 1
            heapq.heappush(events, (clock.now + 0.2, job, "answered"))
        else:
            refused += 1
            pace.on_rate_limited((1 - tokens) / rate, sent_at)
            heapq.heappush(events, (clock.now + (1 - tokens) / rate, job, "queue"))
    return (admitted - rate) / (last - start - 0.2) / rate, refused / (admitted + refused)


@pytest.mark.parametrize(
    ("rate", "workers", "jobs", "most_refused"),
    [
        (100, 64, 600, 0.05),  # the bench's figure, in simulated time
        (20, 64, 600, 0.05),
        (300, 256, 3000, 0.05),
        (5, 8, 300, 0.08),  # a slow limit: the guess alone is refused 17% of the time here
    ],
)
def test_adaptive_rate_reaches_a_token_buckets_rate_with_few_refusals(
    rate, workers, jobs, most_refused, monkeypatch
):
    reached, refused = _bucket_run(rate, workers, jobs, monkeypatch)
    assert reached >= 0.95
    assert refused <= most_refused


def test_steady_rate_spaces_attempts_and_pauses_on_429(monkeypatch):
    clock = _Clock(monkeypatch)
    limiter = SteadyRate(requests_per_second=8)  # 1/8 s apart: exact in binary, as the clock
    assert limiter.next_slot() == 0.0  # taken
    assert limiter.next_slot() == 0.125  # the next slot, not taken: ask again after the wait
    clock.now += 0.0625
    assert limiter.next_slot() == 0.0625
    clock.now += 0.0625
    assert limiter.next_slot() == 0.0
    limiter.on_rate_limited(2.0, limiter.on_sent())
    assert limiter.next_slot() == 2.0  # a 429 holds every slot
    clock.now += 2.0
    assert limiter.next_slot() == 0.0


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf"), "5", True, None])
def test_steady_rate_refuses_a_rate_that_is_not_a_positive_number(rate):
    with pytest.raises(ValidationError, match="requests_per_second"):
        SteadyRate(requests_per_second=rate)
