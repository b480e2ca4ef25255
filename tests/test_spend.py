"""``_spend``: counting what a ledger's full history says was spent, attempt by attempt (pure)."""

from __future__ import annotations

from decimal import Decimal

from reve_remix._ledger import JobRecord
from reve_remix._lifecycle import JobState
from reve_remix._spend import UNKNOWN_DAY, attempts, spend

DAY1, DAY2 = "2025-03-01T23:59:00+00:00", "2025-03-02T00:01:00+00:00"


def r(job: str, state: JobState, attempt: int = 1, time: str | None = DAY1) -> JobRecord:
    return JobRecord(job, state, attempt=attempt, time=time)


def outcomes(records: list[JobRecord]) -> list[tuple[str, int, str]]:
    return sorted((a.id, a.number, a.outcome) for a in attempts(records))


def test_every_attempt_counts_not_only_the_latest_record_of_a_job():
    log = [
        r("a", JobState.SENT), r("a", JobState.PAID),  # paid, its URL expired
        r("a", JobState.SENT, 2), r("a", JobState.PAID, 2), r("a", JobState.DONE, 2),
        r("b", JobState.SENT), r("b", JobState.FAILED),  # a 400: nothing made
        r("b", JobState.SENT, 2), r("b", JobState.DONE, 2),
    ]  # fmt: skip
    assert outcomes(log) == [
        ("a", 1, "paid"), ("a", 2, "paid"), ("b", 1, "failed"), ("b", 2, "paid")
    ]  # fmt: skip
    total = spend(log).total
    assert (total.paid, total.failed, total.billed) == (3, 1, 3)
    assert total.cost(Decimal("0.1")) == Decimal("0.3")


def test_a_claim_without_an_outcome_may_have_been_billed_and_a_budget_refusal_is_nothing():
    log = [
        r("crashed", JobState.SENT),  # the process died with the request out
        r("capped", JobState.SENT), r("capped", JobState.PENDING),  # refused before it left
        r("out", JobState.SENT), r("out", JobState.AMBIGUOUS),  # a read timeout
        r("bad", JobState.SENT), r("bad", JobState.FLAGGED),  # refused by content policy
    ]  # fmt: skip
    total = spend(log).total
    assert (total.paid, total.ambiguous, total.flagged, total.failed) == (0, 2, 1, 0)
    assert total.billed == 3
    assert outcomes(log)[1] == ("capped", 1, "unsent")


def test_a_download_again_or_a_copy_is_not_a_new_attempt():
    log = [
        r("a", JobState.SENT), r("a", JobState.PAID),
        r("a", JobState.PAID),  # a resume's download failed again: the same attempt
        r("a", JobState.DONE), r("a", JobState.DONE),  # then saved, then placed elsewhere
    ]  # fmt: skip
    assert outcomes(log) == [("a", 1, "paid")]


def test_records_of_an_old_version_without_attempts_or_times():
    log = [
        JobRecord("a", JobState.SENT), JobRecord("a", JobState.DONE),
        JobRecord("b", JobState.FAILED),  # an attempt stopped before it was claimed
        JobRecord("b", JobState.SENT), JobRecord("b", JobState.AMBIGUOUS),
    ]  # fmt: skip
    assert outcomes(log) == [("a", 0, "paid"), ("b", 0, "ambiguous"), ("b", 0, "failed")]
    assert list(spend(log).days) == [UNKNOWN_DAY]


def test_by_day_is_the_utc_day_the_request_was_claimed():
    log = [
        r("a", JobState.SENT, time=DAY1), r("a", JobState.DONE, time=DAY2),
        r("b", JobState.SENT, time=DAY2), r("b", JobState.DONE, time=DAY2),
    ]  # fmt: skip
    days = spend(log).days
    assert {day: spent.paid for day, spent in days.items()} == {"2025-03-01": 1, "2025-03-02": 1}
    assert days["2025-03-01"].to_dict(Decimal("0.04")) == {
        "paid": 1, "ambiguous": 0, "flagged": 0, "failed": 0, "billed": 1,
        "cost": 0.04, "cost_paid": 0.04,
    }  # fmt: skip
    assert "cost" not in days["2025-03-01"].to_dict(None)
