"""The retry policy as pure decisions: the table in docs/errors-and-retries.md, row by row."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from reve_remix import ValidationError
from reve_remix._retry import (
    MAX_RETRY_AFTER,
    AdaptiveRate,
    RetryPolicy,
    SteadyRate,
    backoff,
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
        (504, "retry"),
        (500, "ambiguous"),
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
    policy = RetryPolicy(max_retries=2)
    assert policy.delay_after_response(_response(429, **{"Retry-After": "3"}), 0) == 3.0
    assert policy.delay_after_response(_response(429), 1) is not None
    assert policy.delay_after_response(_response(429), 2) is None
    assert policy.delay_after_response(_response(400), 0) is None


def test_policy_ambiguous_rows_depend_on_the_flag():
    cautious, bold = RetryPolicy(2, retry_on_ambiguous=False), RetryPolicy(2, True)
    assert cautious.delay_after_response(_response(500), 0) is None
    assert bold.delay_after_response(_response(500), 0) is not None
    timeout = httpx.ReadTimeout("slow")
    assert cautious.delay_after_error(timeout, 0) is None
    assert bold.delay_after_error(timeout, 0) is not None
    assert cautious.delay_after_error(httpx.ConnectError("refused"), 0) is not None


def test_zero_retries_never_retries():
    policy = RetryPolicy(max_retries=0, retry_on_ambiguous=True)
    assert policy.delay_after_response(_response(503), 0) is None
    assert policy.delay_after_error(httpx.ConnectError("x"), 0) is None


def test_adaptive_rate_holds_every_attempt_for_a_429s_wait(monkeypatch):
    clock = _Clock(monkeypatch)
    limiter = AdaptiveRate()
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]  # unpaced until a 429
    limiter.on_rate_limited(5)
    limiter.on_rate_limited(1)  # a shorter wait does not shorten the hold
    assert 4.5 < limiter.reserve() <= 5.1
    clock.now += 10
    assert limiter.interval == 0  # three attempts say nothing of a rate: not paced


def test_adaptive_rate_paces_at_what_the_server_admitted_then_probes_upward(monkeypatch):
    clock = _Clock(monkeypatch)
    limiter = AdaptiveRate()
    for _ in range(50):  # 50 attempts in the last second, then refusals
        clock.now += 0.02
        limiter.reserve()
    limiter.on_rate_limited(0.0)  # "retry now" says nothing of a rate
    assert limiter.interval == 0
    for _ in range(10):  # one burst of refusals: one cut, to 48 admitted/s less a tenth
        limiter.on_rate_limited(0.01)
    rate = 48 * AdaptiveRate.DECREASE
    assert 1 / limiter.interval == pytest.approx(rate)
    clock.now += 10
    limiter.reserve()  # ten seconds without a 429: the rate has grown
    assert 1 / limiter.interval == pytest.approx(rate * (1 + 10 * AdaptiveRate.INCREASE))


class _Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr("reve_remix._retry.time.monotonic", lambda: self.now)


def test_steady_rate_spaces_attempts_and_pauses_on_429():
    limiter = SteadyRate(requests_per_second=10)
    waits = [limiter.reserve() for _ in range(3)]
    assert waits[0] == 0.0
    assert waits[1] == pytest.approx(0.1, abs=0.01)
    assert waits[2] == pytest.approx(0.2, abs=0.01)
    limiter.on_rate_limited(2.0)
    assert limiter.reserve() == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf"), "5", True, None])
def test_steady_rate_refuses_a_rate_that_is_not_a_positive_number(rate):
    with pytest.raises(ValidationError, match="requests_per_second"):
        SteadyRate(requests_per_second=rate)
