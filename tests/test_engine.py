"""The engine-neutral row core against the mock over real HTTP: one outcome per row, as data,
and a second run through the same store never pays for a row twice."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reve_remix import JobRecord, PaidStore, SteadyRate, read_recipe, remix_rows
from reve_remix._download import DOWNLOAD_MAX_RETRIES
from reve_remix._engine import RowRemixer
from reve_remix._lifecycle import JobState
from reve_remix._recipe import embed
from reve_remix.testing import Fault, MockServer
from reve_remix.testing._png import gradient_png
from tests.conftest import API_KEY, IMAGE_URL, claim_by_a_stopped_process

PNG = gradient_png(8, 8, seed=b"engine-seed")


def rows(count: int, **extra: object) -> list[dict[str, object]]:
    return [
        {"id": f"row-{i}", "prompt": f"<img>0</img> variation {i}", "images": [IMAGE_URL], **extra}
        for i in range(count)
    ]


def posts(server: MockServer) -> collections.Counter[str]:
    """How many times each prompt reached the server."""
    return collections.Counter(
        request.json["prompt"] for request in server.requests if request.method == "POST"
    )


def run(server: MockServer, store: Path | PaidStore, batch: list[dict[str, object]], **options):
    return remix_rows(batch, store=store, api_key=API_KEY, base_url=server.base_url, **options)


@pytest.mark.parametrize("output_format", ["url", "b64_json"])
def test_every_row_is_done_and_saved_as_its_id(server, tmp_path, output_format):
    outcomes = run(server, tmp_path, rows(20, output_format=output_format))

    assert [outcome.id for outcome in outcomes] == [f"row-{i}" for i in range(20)]
    assert {outcome.status for outcome in outcomes} == {"done"}
    for outcome in outcomes:
        assert outcome.image == str(tmp_path / f"{outcome.id}.png")
        assert Path(outcome.image).read_bytes().startswith(b"\x89PNG")
        assert outcome.request_id.startswith("req_")
        assert outcome.revised_prompt.startswith("image 0 variation")
        assert outcome.error is None
    assert max(posts(server).values()) == 1


def test_a_second_run_sends_nothing_for_done_rows(server, tmp_path):
    first = run(server, tmp_path, rows(10))
    requests_after_first = len(server.requests)

    second = run(server, tmp_path, rows(10))

    assert len(server.requests) == requests_after_first  # no POST, no download
    assert second == first


def test_rows_claimed_by_a_dead_worker_are_ambiguous_until_resent(server, tmp_path):
    store = PaidStore(tmp_path)
    for crashed in ("row-1", "row-3"):  # what a SIGKILLed worker leaves: a claim, no outcome
        claim_by_a_stopped_process(store.location, crashed)

    outcomes = run(server, store, rows(5))

    states = {outcome.id: outcome.status for outcome in outcomes}
    assert states == {
        "row-0": "done",
        "row-1": "ambiguous",
        "row-2": "done",
        "row-3": "ambiguous",
        "row-4": "done",
    }
    assert "may have been generated" in outcomes[1].error
    assert "variation 1" not in str(posts(server))

    assert store.resend_ambiguous(["row-1"]) == ["row-1"]
    outcomes = run(server, store, rows(5))
    assert [outcome.status for outcome in outcomes].count("ambiguous") == 1
    assert posts(server)["<img>0</img> variation 1"] == 1
    assert max(posts(server).values()) == 1


@pytest.mark.usefixtures("fast_backoff")  # three 503s: retried, waited in milliseconds
def test_provably_unpaid_failures_are_released_and_sent_again(server, tmp_path):
    server.enqueue(Fault(status=400), Fault(status=503), Fault(status=503), Fault(status=503))
    first = run(server, tmp_path, rows(2), concurrency=1, max_retries=2)
    assert [outcome.status for outcome in first] == ["failed", "failed"]
    assert first[0].error.startswith("400 Bad Request")
    assert first[0].request_id.startswith("req_")

    second = run(server, tmp_path, rows(2))

    assert [outcome.status for outcome in second] == ["done", "done"]
    assert PaidStore(tmp_path).lookup("row-0").attempt == 2


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault(status=500), "ambiguous"),
        (Fault(drop=True), "ambiguous"),
        (Fault(status=200, body={"created": 1, "data": "no images"}), "paid"),
    ],
    ids=["500", "dropped-after-send", "unreadable-2xx"],
)
def test_maybe_billed_rows_are_never_sent_again(server, tmp_path, fault, expected):
    server.enqueue(fault)
    [first] = run(server, tmp_path, rows(1))
    assert first.status == expected
    marker = "may have been generated" if expected == "ambiguous" else "generated, not saved"
    assert marker in first.error

    [second] = run(server, tmp_path, rows(1))

    assert second.status == expected
    assert len(server.requests) == 1
    if expected == "paid":  # the body that could not be read is kept for the user
        assert json.loads(PaidStore(tmp_path).lookup("row-0").body) == fault.body


class FlakyCDN:
    """A result URL on 127.0.0.1 that answers 503 to its first ``failures`` GETs, then a PNG."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.gets = 0
        cdn = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cdn.gets += 1
                ok = cdn.gets > cdn.failures
                body = PNG if ok else b"busy"
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/image.png"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def flaky_cdn() -> Iterator[FlakyCDN]:
    cdn = FlakyCDN(failures=DOWNLOAD_MAX_RETRIES + 1)  # the first run's every attempt fails
    yield cdn
    cdn.httpd.shutdown()
    cdn.httpd.server_close()


@pytest.mark.usefixtures("fast_backoff")
def test_a_paid_row_whose_download_failed_is_downloaded_again_not_regenerated(
    server, tmp_path, flaky_cdn
):
    answer = {"created": 1, "data": [{"url": flaky_cdn.url, "revised_prompt": "p"}]}
    server.enqueue(Fault(status=200, body=answer))

    [first] = run(server, tmp_path, rows(1))
    assert first.status == "paid"
    assert "generated, not saved" in first.error
    assert flaky_cdn.url in first.error
    assert first.request_id in first.error
    record = PaidStore(tmp_path).lookup("row-0")
    assert (record.status, record.url) == (JobState.PAID, flaky_cdn.url)

    [second] = run(server, tmp_path, rows(1))

    assert second.status == "done"
    saved = tmp_path / "row-0.png"
    recipe = read_recipe(saved)  # kept by the paid record, written by the later run
    assert recipe is not None
    assert saved.read_bytes() == embed(PNG, recipe)
    assert len(server.requests) == 1  # one generation
    assert flaky_cdn.gets >= 2


def test_bad_rows_are_failed_outcomes_and_nothing_is_sent(server, tmp_path):
    bad = [
        {"id": "../escape", "prompt": "<img>0</img>", "images": [IMAGE_URL]},
        {"id": "no-prompt", "images": [IMAGE_URL]},
        {"id": "no-images", "prompt": "<img>0</img>", "images": []},
        {"id": "bad-ratio", "prompt": "<img>0</img>", "images": [IMAGE_URL], "aspect_ratio": "7"},
        {"id": "bad-extra", "prompt": "<img>0</img>", "images": [IMAGE_URL], "extra_body": "{"},
        ("not", "a", "mapping"),
    ]
    outcomes = run(server, tmp_path, bad)

    assert [outcome.status for outcome in outcomes] == ["failed"] * 6
    assert "expected a mapping" in outcomes[5].error
    assert outcomes[0].id == "../escape"
    assert "id: expected" in outcomes[0].error
    assert "'prompt' and 'images'" in outcomes[1].error
    assert "extra_body" in outcomes[4].error
    assert server.requests == []


def test_table_values_are_read_as_a_table_gives_them(server, tmp_path):
    """Integer ids, images as a tuple (an Arrow list), NaN for a missing option."""
    row = {"id": 7, "prompt": "<img>0</img> dusk", "images": (IMAGE_URL,), "aspect_ratio": None}
    row["output_format"] = float("nan")
    [outcome] = run(server, tmp_path, [row])
    assert (outcome.id, outcome.status) == ("7", "done")
    assert server.requests[0].json["image_urls"] == [IMAGE_URL]


def test_a_rows_extra_body_is_sent_as_json_text_or_a_mapping(server, tmp_path):
    remixer = RowRemixer(tmp_path, api_key=API_KEY, base_url=server.base_url)
    first, second = remixer.remix_rows(
        [
            {
                "id": "text",
                "prompt": "<img>0</img>",
                "images": [IMAGE_URL],
                "extra_body": '{"seed": 3}',
            },
            {
                "id": "map",
                "prompt": "<img>0</img>",
                "images": [IMAGE_URL],
                "extra_body": {"seed": 4},
            },
        ]
    )
    remixer.close()
    assert (first.status, second.status) == ("done", "done")
    assert sorted(request.json["seed"] for request in server.requests if request.is_remix) == [3, 4]


def test_an_unwritable_store_fails_rows_before_sending(server, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store should be")
    [outcome] = run(server, blocker, rows(1))
    assert outcome.status == "failed"
    assert "store" in outcome.error
    assert server.requests == []


def test_a_shared_rate_limiter_paces_every_row(server, tmp_path):
    started = time.monotonic()
    outcomes = run(server, tmp_path, rows(6), concurrency=6, rate_limiter=SteadyRate(20))
    assert {outcome.status for outcome in outcomes} == {"done"}
    assert time.monotonic() - started >= 5 / 20  # six POSTs at 20/s span at least 0.25 s


def test_the_api_key_stays_out_of_reprs_outcomes_and_the_store(server, tmp_path):
    server.enqueue(Fault(status=401, body={"error": {"message": f"bad key {API_KEY}"}}))
    remixer = RowRemixer(tmp_path, api_key=API_KEY, base_url=server.base_url)
    [outcome] = remixer.remix_rows(rows(1))
    remixer.close()
    assert outcome.status == "failed"
    assert "<redacted>" in outcome.error
    stored = b"".join(path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
    for text in (repr(remixer), repr(remixer.store), repr(outcome), stored.decode()):
        assert API_KEY not in text


# --- one store, many rows and runs: identity, claims held elsewhere, spooled inline images ------


def test_two_rows_with_one_id_and_different_prompts_one_is_refused_never_done_with_the_other(
    server, tmp_path
):
    batch = [
        {"id": "sku-1", "prompt": "<img>0</img> in red", "images": [IMAGE_URL]},
        {"id": "sku-1", "prompt": "<img>0</img> in blue", "images": [IMAGE_URL]},
    ]
    outcomes = run(server, tmp_path, batch, concurrency=2)

    assert sorted(outcome.status for outcome in outcomes) == ["done", "failed"]
    [refused] = [outcome for outcome in outcomes if outcome.status == "failed"]
    assert "in the store for another job" in refused.error
    assert refused.image is None
    assert refused.request_id is None
    assert sum(posts(server).values()) == 1


def test_two_rows_with_one_id_and_the_same_job_are_one_generation(server, tmp_path):
    batch = [{"id": "sku-1", "prompt": "<img>0</img> in red", "images": [IMAGE_URL]}] * 4
    outcomes = run(server, tmp_path, batch, concurrency=4)

    assert [outcome.status for outcome in outcomes] == ["done"] * 4
    assert len({outcome.image for outcome in outcomes}) == 1
    assert sum(posts(server).values()) == 1


def test_a_store_reused_with_a_changed_prompt_refuses_the_row(server, tmp_path):
    [first] = run(server, tmp_path, rows(1))
    changed = [{**rows(1)[0], "prompt": "<img>0</img> something else entirely"}]

    [second] = run(server, tmp_path, changed)

    assert first.status == "done"
    assert second.status == "failed"
    assert "for another job (changed: prompt; done there)" in second.error
    assert second.image is None
    assert len(posts(server)) == 1  # the changed prompt never reached the server
    [same] = run(server, tmp_path, rows(1))  # the original row is still done, untouched
    assert (same.status, same.image) == ("done", first.image)


def test_a_job_submitted_twice_on_one_store_pays_once_and_both_report_done(tmp_path):
    batch = rows(24)
    results: dict[str, list] = {}
    with MockServer(latency=0.1) as server:

        def submit(name: str) -> None:
            results[name] = run(server, tmp_path, batch, concurrency=8)

        threads = [threading.Thread(target=submit, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        prompts = posts(server)

    assert sum(prompts.values()) == len(batch)  # every row generated once between the two runs
    for outcomes in results.values():
        assert [outcome.status for outcome in outcomes] == ["done"] * len(batch), [
            (outcome.status, outcome.error) for outcome in outcomes if outcome.status != "done"
        ]
    assert [o.image for o in results["a"]] == [o.image for o in results["b"]]


def test_a_row_claimed_by_another_live_run_is_reported_as_such(server, tmp_path):
    store = PaidStore(tmp_path)
    assert store.claim(JobRecord("row-0", JobState.SENT, attempt=1))  # this process: alive

    [outcome] = run(server, store, rows(1), claim_wait=0)

    assert outcome.status == "sent"
    assert "claimed by another run" in outcome.error
    assert "still sending it" in outcome.error
    assert "stopped" not in outcome.error
    assert server.requests == []


def test_an_inline_image_whose_save_failed_is_saved_by_the_next_run_without_a_request(
    server, tmp_path
):
    (tmp_path / "row-0.png").mkdir()  # the image's name is taken: the save fails after the 2xx
    [first] = run(server, tmp_path, rows(1, output_format="b64_json"))

    assert first.status == "paid"
    record = PaidStore(tmp_path).lookup("row-0")
    assert record.spool is not None
    assert record.url is None
    assert record.spool in first.error
    assert Path(record.spool).read_bytes().startswith(b"\x89PNG")

    (tmp_path / "row-0.png").rmdir()
    [second] = run(server, tmp_path, rows(1, output_format="b64_json"))

    assert second.status == "done"
    assert Path(second.image).read_bytes().startswith(b"\x89PNG")
    assert len(server.requests) == 1  # one generation, no download: the bytes were spooled
    assert not Path(record.spool).exists()  # the saved image holds them now


DRIVER = """
import sys
from reve_remix import remix_rows
rows = [{"id": f"row-{i}", "prompt": f"<img>0</img> variation {i}",
         "images": ["https://example.com/cat.png"]} for i in range(int(sys.argv[3]))]
remix_rows(rows, store=sys.argv[1], base_url=sys.argv[2], api_key="sk-driver", concurrency=8)
"""


@pytest.mark.slow  # a process kill; run by .ci/run with -m slow
def test_a_killed_driver_costs_at_most_the_rows_it_had_in_flight(tmp_path):
    """The whole job's process SIGKILLed mid-run (a Ray or Spark driver takes its workers with
    it): the same job run again pays for no row twice, and at most the rows that were in flight
    come back ambiguous."""
    count, in_flight = 80, 8
    with MockServer(latency=0.2) as server:
        driver = subprocess.Popen(
            [sys.executable, "-c", DRIVER, str(tmp_path), server.base_url, str(count)]
        )
        try:
            while sum(posts(server).values()) < 12 and driver.poll() is None:
                time.sleep(0.01)
        finally:
            driver.kill()
        assert driver.wait() == -signal.SIGKILL, "the driver ended before it was killed"
        outcomes = run(server, tmp_path, rows(count))
        prompts = posts(server)

    statuses = collections.Counter(outcome.status for outcome in outcomes)
    duplicates = sum(n - 1 for n in prompts.values())
    print(f"\ndriver kill: rows={count} generations={sum(prompts.values())} "
          f"duplicates={duplicates} statuses={dict(statuses)}")  # fmt: skip
    assert duplicates == 0
    assert set(statuses) <= {"done", "ambiguous"}
    assert statuses["ambiguous"] <= in_flight
    for outcome in outcomes:
        if outcome.status == "ambiguous":
            assert "stopped while the request was out" in outcome.error
