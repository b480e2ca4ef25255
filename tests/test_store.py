"""The paid store: claims are exclusive, records say what a resume may send, re-sending what
may have been billed is explicit.

Every test runs on a local directory and on fsspec's ``memory://`` filesystem (the URL form).
"""

from __future__ import annotations

import pickle
import threading
import uuid
from pathlib import Path

import pytest

from reve_remix import PaidStore, ValidationError
from reve_remix._lifecycle import JobState
from reve_remix._store import RowRecord, row_id
from reve_remix.testing._png import gradient_png

PNG = gradient_png(8, 8, seed=b"store-seed")


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> PaidStore:
    if request.param == "local":
        return PaidStore(tmp_path / "store")
    return PaidStore(f"memory://reve-remix-tests/{uuid.uuid4().hex}")


def test_a_row_never_seen_is_pending(store):
    assert store.lookup("a") == RowRecord("a", JobState.PENDING, attempt=0)


def test_a_claim_is_taken_once_even_by_racing_threads(store):
    wins = []
    barrier = threading.Barrier(16)

    def claim() -> None:
        barrier.wait()
        wins.append(store.claim("a", 1))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1
    assert wins.count(False) == 15


def test_a_claim_without_an_outcome_is_ambiguous_and_not_resent(store):
    assert store.claim("a", 1)
    record = store.lookup("a")
    assert record.status is JobState.AMBIGUOUS
    assert record.attempt == 1
    assert "may have been generated" in record.error
    assert not record.status.resend_on_resume


def test_release_lets_the_next_attempt_be_claimed(store):
    store.claim("a", 1)
    store.release(RowRecord("a", JobState.SENT, 1, error="400 Bad Request"))
    record = store.lookup("a")
    assert (record.status, record.attempt, record.error) == (JobState.FAILED, 1, "400 Bad Request")
    assert record.status.resend_on_resume
    assert store.claim("a", 2)
    assert store.lookup("a").status is JobState.AMBIGUOUS  # attempt 2 is out, no outcome yet
    assert store.lookup("a").attempt == 2


def test_paid_then_done_saves_the_image_as_id_and_extension(store):
    store.claim("sku-1", 1)
    paid = store.paid(RowRecord("sku-1", JobState.SENT, 1, request_id="req-1", url="http://x/1"))
    assert store.lookup("sku-1") == paid
    assert paid.status is JobState.PAID
    done = store.done(paid, PNG)
    assert done.status is JobState.DONE
    assert done.image == "sku-1.png"
    assert store.lookup("sku-1") == done
    assert store.files.read("sku-1.png") == PNG
    assert store.image_location(done).endswith("/sku-1.png")


def test_resend_ambiguous_releases_only_ambiguous_rows(store):
    store.claim("crashed", 1)  # a worker died mid-request
    store.claim("timed-out", 1)
    store.ambiguous(RowRecord("timed-out", JobState.SENT, 1, error="ReadTimeout"))
    store.claim("paid", 1)
    store.paid(RowRecord("paid", JobState.SENT, 1, url="http://x/p"))
    store.claim("done", 1)
    store.done(RowRecord("done", JobState.SENT, 1), PNG)

    assert store.resend_ambiguous(["crashed"]) == ["crashed"]
    assert store.lookup("timed-out").status is JobState.AMBIGUOUS
    assert store.resend_ambiguous() == ["timed-out"]

    states = {record.id: record.status for record in store.records()}
    assert states == {
        "crashed": JobState.PENDING,
        "timed-out": JobState.PENDING,
        "paid": JobState.PAID,
        "done": JobState.DONE,
    }
    assert store.lookup("crashed").attempt == 1  # the next run claims attempt 2
    assert store.claim("crashed", 2)


def test_an_unreadable_record_is_ambiguous(store):
    store.claim("a", 1)
    store.files.write("_rows/a.json", b'{"status": "do')  # e.g. edited by hand
    record = store.lookup("a")
    assert record.status is JobState.AMBIGUOUS
    assert record.attempt == 1
    assert store.resend_ambiguous() == ["a"]
    assert store.lookup("a").status is JobState.PENDING


def test_the_store_pickles_as_its_location(store):
    store.claim("a", 1)
    copy = pickle.loads(pickle.dumps(store))
    assert copy.location == store.location
    assert copy.lookup("a").status is JobState.AMBIGUOUS


@pytest.mark.parametrize("value", ["", "../x", "a/b", ".hidden", "a" * 129, True, None, 1.5])
def test_ids_that_cannot_be_file_names_are_rejected(value):
    with pytest.raises(ValidationError, match="id: expected"):
        row_id(value)


def test_integer_ids_are_accepted():
    assert row_id(7) == "7"
    assert row_id("sku_7.v2") == "sku_7.v2"


def test_regenerate_paid_releases_only_paid_rows(store):
    store.claim("expired", 1)
    store.paid(RowRecord("expired", JobState.SENT, 1, url="http://x/gone"))
    store.claim("crashed", 1)

    assert store.regenerate_paid() == ["expired"]

    record = store.lookup("expired")
    assert (record.status, record.attempt) == (JobState.PENDING, 1)
    assert record.error.startswith("regenerated by the user after")
    assert store.lookup("crashed").status is JobState.AMBIGUOUS


def test_a_local_store_is_named_absolutely_and_a_bad_location_is_a_validation_error(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert PaidStore("run-1").location == str(tmp_path / "run-1")
    assert PaidStore(f"file://{tmp_path}/run-2").location == str(tmp_path / "run-2")
    for bad in ("", 42, None):
        with pytest.raises(ValidationError, match="store: expected a directory or URL"):
            PaidStore(bad)
