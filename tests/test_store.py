"""The paid store as a ledger: claims are exclusive and say who holds them, records are the one
record type, inline images are spooled into the store, re-sending what may have been billed is
explicit, and a store only one process can see is refused for an engine.

Every test runs on a local directory and on fsspec's ``memory://`` filesystem (the URL form).
"""

from __future__ import annotations

import json
import os
import pickle
import threading
import uuid
from pathlib import Path

import pytest

from reve_remix import JobRecord, JobState, PaidStore, ValidationError
from reve_remix._store import network_filesystem, row_id
from reve_remix.testing._png import gradient_png
from tests.conftest import claim_by_a_stopped_process

PNG = gradient_png(8, 8, seed=b"store-seed")


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> PaidStore:
    if request.param == "local":
        return PaidStore(tmp_path / "store")
    return PaidStore(f"memory://reve-remix-tests/{uuid.uuid4().hex}")


def sent(job_id: str, attempt: int = 1, **fields: object) -> JobRecord:
    return JobRecord(job_id, JobState.SENT, fingerprint="f1", attempt=attempt, **fields)


def test_a_row_never_seen_has_no_record(store):
    assert store.lookup("a") is None


def test_a_claim_is_taken_once_even_by_racing_threads(store):
    wins = []
    barrier = threading.Barrier(16)

    def claim() -> None:
        barrier.wait()
        wins.append(store.claim(sent("a")))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1
    assert wins.count(False) == 15


def test_a_claim_held_by_a_running_process_is_sent_not_ambiguous(store):
    assert store.claim(sent("a", prompt="<img>0</img> at dusk"))
    record = store.lookup("a")
    assert (record.status, record.attempt, record.fingerprint) == (JobState.SENT, 1, "f1")
    assert f"pid {os.getpid()}" in record.error
    assert "still sending it" in record.error
    assert "stopped" not in record.error
    assert record.time is not None


def test_a_claim_whose_process_stopped_is_ambiguous_and_not_resent(tmp_path):
    store = PaidStore(tmp_path / "store")  # a claim from another process: a shared directory
    claim_by_a_stopped_process(store.location, "a")
    record = store.lookup("a")
    assert record.status is JobState.AMBIGUOUS
    assert record.attempt == 1
    assert "stopped while the request was out" in record.error
    assert "may have been generated" in record.error
    assert not record.status.resend_on_resume


def test_a_claim_from_an_older_version_without_a_holder_is_ambiguous(store):
    store._files.create("_claims/a.1", b"")
    record = store.lookup("a")
    assert (record.status, record.attempt) == (JobState.AMBIGUOUS, 1)


def test_a_failed_attempt_lets_the_next_attempt_be_claimed(store):
    store.claim(sent("a"))
    store.write(sent("a").evolve(JobState.FAILED, error="400 Bad Request"))
    record = store.lookup("a")
    assert (record.status, record.attempt, record.error) == (JobState.FAILED, 1, "400 Bad Request")
    assert record.status.resend_on_resume
    assert not store.claim(sent("a", 1))
    assert store.claim(sent("a", 2))
    assert store.lookup("a").status is JobState.SENT  # attempt 2 is out, no outcome yet
    assert store.lookup("a").attempt == 2


def test_paid_then_done_records_the_one_record_type(store):
    store.claim(sent("sku-1"))
    paid = sent("sku-1").evolve(JobState.PAID, request_id="req-1", url="http://x/1")
    assert store.keep(paid, None, None) == paid  # type: ignore[arg-type] # a URL: no result read
    assert store.lookup("sku-1").evolve(time=None) == paid
    done = paid.evolve(JobState.DONE, file="sku-1.png")
    store.write(done)
    assert store.lookup("sku-1").evolve(time=None) == done
    assert store.image_location(done).endswith("/sku-1.png")


def test_inline_bytes_are_spooled_into_the_store_before_the_paid_record(store):
    paid = sent("b64").evolve(JobState.PAID, request_id="req-9")
    kept = store.keep(paid, None, PNG)  # type: ignore[arg-type]
    assert kept.spool == f"{store.location}/_spool/b64.1.png"
    assert store.lookup("b64").spool == kept.spool
    assert store.unspool(kept) == PNG
    assert kept.spool in kept.where  # every message says where the paid bytes are

    store.write(kept.evolve(JobState.DONE, file="b64.png"))  # saved: the spool is not needed

    assert store.lookup("b64").spool is None
    with pytest.raises(FileNotFoundError):
        store.unspool(kept)


def test_resend_ambiguous_releases_only_ambiguous_rows(store):
    store._files.create("_claims/crashed.1", b"")  # a worker died mid-request
    store.claim(sent("timed-out"))
    store.write(sent("timed-out").evolve(JobState.AMBIGUOUS, error="ReadTimeout"))
    store.claim(sent("paid"))
    store.write(sent("paid").evolve(JobState.PAID, url="http://x/p"))
    store.claim(sent("done"))
    store.write(sent("done").evolve(JobState.DONE, file="done.png"))

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
    assert all(isinstance(record, JobRecord) for record in store.records())  # public types
    assert store.lookup("crashed").attempt == 1  # the next run claims attempt 2
    assert store.claim(sent("crashed", 2))


def test_an_unreadable_record_is_ambiguous(store):
    store.claim(sent("a"))
    store._files.write("_rows/a.json", b'{"status": "do')  # e.g. edited by hand
    record = store.lookup("a")
    assert record.status is JobState.AMBIGUOUS
    assert "unreadable record" in record.error
    assert store.resend_ambiguous() == ["a"]
    assert store.lookup("a").status is JobState.PENDING


def test_the_store_pickles_as_its_location(store):
    store.claim(sent("a"))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.location == store.location
    assert copy.lookup("a").status is JobState.SENT


@pytest.mark.parametrize("value", ["", "../x", "a/b", ".hidden", "a" * 129, True, None, 1.5])
def test_ids_that_cannot_be_file_names_are_rejected(value):
    with pytest.raises(ValidationError, match="id: expected"):
        row_id(value)


def test_integer_ids_are_accepted():
    assert row_id(7) == "7"
    assert row_id("sku_7.v2") == "sku_7.v2"


def test_regenerate_paid_releases_only_paid_rows(store):
    store.claim(sent("expired"))
    store.write(sent("expired").evolve(JobState.PAID, url="http://x/gone"))
    store._files.create("_claims/crashed.1", b"")

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


@pytest.mark.parametrize(
    "url", ["memory://run-1", "dir::memory://run-2", "simplecache::memory://run-3"]
)
def test_a_store_only_this_process_can_see_is_refused_for_an_engine(url):
    with pytest.raises(ValidationError, match="only this process can see it, and Ray"):
        PaidStore(url)._require_shared("Ray", several_hosts=False)


def test_a_local_directory_is_refused_for_several_hosts_unless_it_is_on_a_network_fs(tmp_path):
    store = PaidStore(tmp_path / "store")
    store._require_shared("Spark", several_hosts=False)  # one host: every worker sees it
    if network_filesystem(store.location) is False:
        with pytest.raises(ValidationError, match="several hosts: workers elsewhere"):
            store._require_shared("Spark", several_hosts=True)
    mounts = "srv:/export /shared nfs4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\nfoo /b fuse.s3fs rw 0 0"
    assert network_filesystem("/shared/run", mounts) is True
    assert network_filesystem("/shared", mounts) is True
    assert network_filesystem("/sharedx/run", mounts) is False
    assert network_filesystem("/b/run", mounts) is True
    assert network_filesystem("/var/run", mounts) is False


def test_claims_say_who_holds_them(store):
    store.claim(sent("a"))
    claim = json.loads(store._files.read("_claims/a.1"))
    assert claim["holder"]["pid"] == os.getpid()
    assert claim["status"] == "sent"
    assert claim["fingerprint"] == "f1"


def test_a_claim_is_never_read_half_written(tmp_path):
    """A worker reading a claim another is creating sees it whole or not at all: an empty claim
    would read as a stopped worker's, and a row still being sent would be called ambiguous."""
    store = PaidStore(tmp_path / "store")
    ids = [f"row-{i}" for i in range(300)]
    seen: list[JobState] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            for job_id in ids:
                record = store.lookup(job_id)
                if record is not None:
                    seen.append(record.status)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for job_id in ids:
            assert store.claim(sent(job_id))
    finally:
        done.set()
        reader.join()
    assert seen
    assert set(seen) == {JobState.SENT}
    assert [r.status for r in store.records()] == [JobState.SENT] * len(ids)  # no temporary file
