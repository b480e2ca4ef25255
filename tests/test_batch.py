"""Batches: ``remix_many`` in the library, and ``reve-remix batch`` run as a user runs it."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from reve_remix import (
    AsyncReveRemix,
    BadRequestError,
    RemixResult,
    ReveRemix,
    ValidationError,
)
from reve_remix._jobs import BatchProgress, RemixJob
from reve_remix._jobs_file import read_jobs, slugify
from reve_remix._ledger import JobRecord
from reve_remix._lifecycle import JobState
from reve_remix._manifest import Manifest
from reve_remix._retry import RATE_LIMIT_RETRIES
from reve_remix._schedule import run_in_tasks
from reve_remix._spec import spec
from reve_remix.testing import Fault, MockServer

from .conftest import API_KEY, IMAGE_URL, WAIT, child, run_cli, until

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EDITS = spec().path  # the operation, as the spec locates it


def posts(server):
    return [request for request in server.requests if request.method == "POST"]


def job(n, **extra):
    return RemixJob(f"<img>0</img> variation {n}", [IMAGE_URL], **extra)


# --- remix_many ----------------------------------------------------------------------------------


def test_remix_many_keeps_input_order_and_reports_progress(server, client):
    # The first request to arrive is answered last, so completion order differs from input order.
    server.enqueue(Fault(delay=0.3))
    jobs = [job(n) for n in range(6)]
    seen: list[BatchProgress] = []
    outcomes = client.remix_many(jobs, concurrency=3, on_progress=seen.append)
    assert [outcome.image.revised_prompt for outcome in outcomes] == [
        f"image 0 variation {n}" for n in range(6)
    ]
    assert [progress.finished for progress in seen] == [1, 2, 3, 4, 5, 6]
    assert seen[-1] == BatchProgress(done=6, failed=0, total=6)


def test_remix_many_captures_each_failure_and_runs_the_rest(server, client):
    server.enqueue(Fault(), Fault(status=400))  # the second request sent gets a 400
    jobs = [
        job(0),
        job(1, aspect_ratio="5:4"),  # invalid: never sent
        {"prompt": "<img>0</img> rejected", "images": [IMAGE_URL]},
        {"prompt": "<img>0</img> typo", "imgs": [IMAGE_URL]},  # unknown key: never sent
        42,  # not a job at all: never sent
        {"prompt": "<img>0</img> last", "images": [IMAGE_URL], "output_format": "b64_json"},
    ]
    seen: list[BatchProgress] = []
    outcomes = client.remix_many(jobs, concurrency=1, on_progress=seen.append)
    assert isinstance(outcomes[0], RemixResult)
    assert isinstance(outcomes[1], ValidationError)
    assert "aspect_ratio" in str(outcomes[1])
    assert isinstance(outcomes[2], BadRequestError)
    assert isinstance(outcomes[3], ValidationError)
    assert "'imgs'" in str(outcomes[3])
    assert isinstance(outcomes[4], ValidationError)
    assert isinstance(outcomes[5], RemixResult)
    assert outcomes[5].image.b64_json
    assert len(posts(server)) == 3
    assert seen[-1] == BatchProgress(done=2, failed=4, total=6)


def test_an_error_that_is_not_an_api_error_stops_the_batch(server, client):
    def broken(progress):
        raise RuntimeError("bug in the callback")

    with pytest.raises(RuntimeError, match="bug in the callback"):
        client.remix_many([job(n) for n in range(5)], concurrency=1, on_progress=broken)
    assert len(posts(server)) == 1  # jobs not started when it happened are never sent


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True, "4"])
def test_concurrency_must_be_a_positive_integer(client, server, concurrency):
    with pytest.raises(ValidationError, match="concurrency"):
        client.remix_many([job(0)], concurrency=concurrency)
    assert not server.requests


class Gathering(httpx.BaseTransport):
    """Sends each request once ``parties`` are in flight together, counting the most at once.

    Jobs run in parallel up to the limit exactly when every wave gathers ``parties`` requests
    (a barrier, not a clock: a busy machine only makes them gather later) and no more are ever
    in flight at once.
    """

    def __init__(self, parties: int) -> None:
        self._inner = httpx.HTTPTransport()
        self._barrier = threading.Barrier(parties)
        self._lock = threading.Lock()
        self.in_flight = self.most = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            self._barrier.wait(timeout=60)
            return self._inner.handle_request(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        self._inner.close()


class AsyncGathering(httpx.AsyncBaseTransport):
    """:class:`Gathering` for the async client."""

    def __init__(self, parties: int) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._barrier = asyncio.Barrier(parties)
        self.in_flight = self.most = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            async with asyncio.timeout(60):
                await self._barrier.wait()
            return await self._inner.handle_async_request(request)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_sync_jobs_run_in_parallel_up_to_the_limit(server):
    gathering = Gathering(parties=4)
    with httpx.Client(transport=gathering) as http:
        client = ReveRemix(API_KEY, base_url=server.base_url, http_client=http)
        outcomes = client.remix_many([job(n) for n in range(8)], concurrency=4)
    assert all(isinstance(outcome, RemixResult) for outcome in outcomes), outcomes
    assert gathering.most == 4  # two waves of four: never more at once


@pytest.mark.anyio
async def test_async_jobs_run_in_parallel_up_to_the_limit(server):
    gathering = AsyncGathering(parties=4)
    async with httpx.AsyncClient(transport=gathering) as http:
        client = AsyncReveRemix(API_KEY, base_url=server.base_url, http_client=http)
        outcomes = await client.remix_many([job(n) for n in range(8)], concurrency=4)
    assert [outcome.image.revised_prompt for outcome in outcomes] == [
        f"image 0 variation {n}" for n in range(8)
    ]
    assert gathering.most == 4


@pytest.mark.anyio
async def test_async_remix_many_captures_failures(server, aclient):
    server.enqueue(Fault(status=400))
    seen: list[BatchProgress] = []
    outcomes = await aclient.remix_many(
        [job(0), {"prompt": 7, "images": [IMAGE_URL]}], concurrency=1, on_progress=seen.append
    )
    assert isinstance(outcomes[0], BadRequestError)
    assert isinstance(outcomes[1], ValidationError)
    assert seen[-1] == BatchProgress(done=0, failed=2, total=2)


@pytest.mark.anyio
async def test_async_error_in_the_callback_starts_nothing_more_and_waits_for_the_rest():
    # A running item's request is out (maybe paid for): it is waited for, not cancelled.
    started, finished = [], []

    async def work(item):
        started.append(item)
        await asyncio.sleep(0 if item == 0 else 0.05)
        finished.append(item)
        return item

    def broken(index, outcome):
        raise RuntimeError("bug in the callback")

    with pytest.raises(RuntimeError, match="bug in the callback"):
        await run_in_tasks(work, list(range(6)), concurrency=2, on_outcome=broken)
    assert started == [0, 1]  # item 0's slot was not handed on
    assert finished == [0, 1]


@pytest.mark.anyio
async def test_async_cancellation_cancels_the_running_items():
    started, cancelled = [], []

    async def work(item):
        started.append(item)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(item)
            raise
        return item

    task = asyncio.ensure_future(
        run_in_tasks(work, list(range(6)), concurrency=2, on_outcome=lambda *_: None)
    )
    while len(started) < 2:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert started == cancelled == [0, 1]


def test_a_429_slows_every_job_of_the_client(server, client):
    # Two jobs start together. The server holds the first request it gets for 0.3 s, then answers
    # 429 asking for 1 s; it answers the second after 0.4 s, so that job is in flight when the 429
    # is read, and the next two start after it. Those must wait out the second too, although
    # their own requests were never rate limited. The hold gives the second request 0.3 s to go
    # out before the 429 is read.
    hold, retry_after = 0.3, 1
    server.enqueue(
        Fault(status=429, headers={"Retry-After": str(retry_after)}, delay=hold),
        Fault(delay=hold + 0.1),  # the normal answer, once the 429 has been read
    )
    started = time.monotonic()
    finished_at: list[float] = []
    client.remix_many(
        [job(n) for n in range(4)],
        concurrency=2,
        on_progress=lambda progress: finished_at.append(time.monotonic() - started),
    )
    assert len(posts(server)) == 5  # four jobs and one retry
    # The rate-limited job and those that start after the 429 is read end after the cooldown
    # (three; two if the 429 was read so late that a third job had started). Without a shared
    # cooldown only the rate-limited one would. Lower bounds only: a busy machine adds to them.
    late = [moment for moment in finished_at if moment > hold + retry_after]
    assert len(late) >= 2, finished_at


# --- the batch file and the manifest (pure logic) ------------------------------------------------


def test_read_jobs_reports_bad_lines_with_their_numbers(tmp_path):
    lines = [
        '{"prompt": "<img>0</img> a", "images": ["a.png"], "id": "a"}',
        "",
        "{not json",
        '["a list"]',
        '{"images": ["a.png"]}',
        '{"prompt": "p", "images": "a.png"}',
        '{"prompt": "p", "images": ["a.png"], "colour": "red"}',
        '{"prompt": "p", "images": ["a.png"], "id": "a"}',
        '{"prompt": "p", "images": ["a.png"], "output": "../escape.png"}',
        '{"prompt": "p", "images": ["a.png"], "id": "has space"}',
        '{"prompt": "<img>0</img> b", "images": ["a.png"]}',
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    jobs, problems = read_jobs(path)
    # Line 8 repeats line 1's id: the plan decides (same request: one job; another: a problem).
    assert [job.number for job in jobs] == [1, 8, 11]
    assert jobs[0].id == "a"
    assert jobs[0].job.images == [str(tmp_path / "a.png")]  # relative to the jobs file
    messages = {problem.number: problem.message for problem in problems}
    assert sorted(messages) == [3, 4, 5, 6, 7, 9, 10]
    assert "not valid JSON" in messages[3]
    assert "JSON object" in messages[4]
    assert 'missing "prompt"' in messages[5]
    assert '"images" must be a list' in messages[6]
    assert '"colour"' in messages[7]
    assert '"output"' in messages[9]
    assert '"id"' in messages[10]
    assert str(problems[0]).startswith("line 3: ")


def test_the_manifest_survives_a_record_cut_short_and_the_next_run_cuts_it_off(tmp_path):
    with Manifest(tmp_path) as manifest:
        manifest.open()
        manifest.write(JobRecord("a", JobState.FAILED, error="boom", line=1))
        manifest.write(JobRecord("a", JobState.DONE, file="a.png", line=1))
    with manifest.path.open("a", encoding="utf-8") as file:
        file.write('{"id": "b", "status": "do')  # a crash in the middle of a write
    with Manifest(tmp_path) as manifest:
        assert manifest.open() == []  # the torn line was cut off before reading
        assert set(manifest.records) == {"a"}
        assert manifest.records["a"].status is JobState.DONE
        assert manifest.records["a"].time  # stamped when written
        manifest.write(JobRecord("c", JobState.DONE, file="gone.png", line=3))
    assert manifest.path.read_text().count("\n") == 3


def test_a_manifest_of_the_previous_format_still_loads(tmp_path):
    old = {
        "id": "cat", "status": "paid", "file": None, "url": "https://cdn.example.com/c.png",
        "request_id": "req-1", "revised_prompt": None, "error": None, "line": 1, "body": None,
    }  # fmt: skip
    (tmp_path / "manifest.jsonl").write_text(json.dumps(old) + "\n", encoding="utf-8")
    with Manifest(tmp_path) as manifest:
        assert manifest.open() == []
        record = manifest.records["cat"]
    assert (record.status, record.url, record.request_id, record.line) == (
        JobState.PAID, "https://cdn.example.com/c.png", "req-1", 1
    )  # fmt: skip
    assert record.fingerprint is None  # no fingerprint: no conflict check


def test_slugs_leave_out_image_tags():
    assert slugify("Put <img>0</img> on <IMG>1</IMG>, at dusk!") == "put-on-at-dusk"
    assert slugify("<img>0</img>") == "remix"
    assert slugify("ünïcödé " + "word " * 20, max_length=20) == "unicode-word-word"


# --- reve-remix batch: in this process, and as a process to kill -------------------------------


def cli_env():
    env = {name: value for name, value in os.environ.items() if name != "REVE_REMIX_BASE_URL"}
    env["ONEROUTER_API_KEY"] = API_KEY
    return env


def batch_command(server, jobs_file, out_dir, *extra):
    return [
        *(sys.executable, "-m", "reve_remix", "batch", str(jobs_file)),
        *("--out", str(out_dir), "--base-url", server.base_url, *extra),
    ]


def run_batch(server, jobs_file, out_dir, *extra, key=API_KEY):
    """``reve-remix batch`` in this process (``run_cli`` checks the key is never printed)."""
    return run_cli(
        "batch", jobs_file, "--out", out_dir, "--base-url", server.base_url, *extra, key=key
    )


def write_jobs(path, count, image):
    lines = [
        json.dumps({"prompt": f"<img>0</img> job {n:02d}", "images": [str(image)]})
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [f"<img>0</img> job {n:02d}" for n in range(count)]


@pytest.fixture
def sample_png(tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(
        (Path(__file__).parents[1] / "reve_remix" / "_samples" / "cat.png").read_bytes()
    )
    return path


def manifest_records(out_dir):
    lines = (out_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [JobRecord.from_json(line) for line in lines if line.strip()]


def latest_by_id(out_dir):
    return {record.id: record for record in manifest_records(out_dir) if record is not None}


def check_done_files(out_dir, records):
    for record in records.values():
        if record.status == "done":
            assert (out_dir / record.file).read_bytes().startswith(PNG_SIGNATURE)
    assert not list(out_dir.glob(".*.part"))  # no half-written image anywhere


def test_batch_of_50_with_rate_limits_outages_and_drops_never_pays_twice(
    server, tmp_path, sample_png, record_property
):
    prompts = write_jobs(tmp_path / "jobs.jsonl", 50, sample_png)
    retry_now = {"Retry-After": "0"}
    # Answers in arrival order; None is a normal 200. Drops are ambiguous (the request was sent),
    # so they are not retried: those jobs are recorded ambiguous and held back on a plain resume.
    # One request in ten is refused 429: the client paces itself after the first (AdaptiveRate),
    # and against this fast mock each refusal slows the rest of the batch (three in ten took 22 s).
    pattern = [
        None,
        None,
        None,
        Fault(status=503, headers=retry_now),
        None,
        Fault(drop=True),
        None,
        Fault(status=429, headers=retry_now),
        None,
        None,
    ]
    script = pattern * 8
    server.enqueue(*(fault or Fault() for fault in script))
    out_dir = tmp_path / "out"

    first = run_batch(server, tmp_path / "jobs.jsonl", out_dir, "--concurrency", "4")
    first_posts = posts(server)
    answers = collections.defaultdict(list)  # prompt -> what each of its POSTs got
    for index, request in enumerate(first_posts):
        fault = script[index] if index < len(script) else None
        kind = "ok" if fault is None else "drop" if fault.drop else str(fault.status)
        answers[request.json["prompt"]].append(kind)

    latest = latest_by_id(out_dir)
    assert len(latest) == 50  # every job ended and was recorded
    assert {record.status for record in latest.values()} <= {"done", "failed", "ambiguous"}
    check_done_files(out_dir, latest)
    done = [record for record in latest.values() if record.status == "done"]
    failed = [record for record in latest.values() if record.status != "done"]
    ambiguous = [record for record in failed if record.status == "ambiguous"]
    assert ambiguous, "the script drops connections: some jobs must be ambiguous"
    assert first.returncode == 1, first.stderr
    for record in failed:
        if record.status == "ambiguous":
            assert "Server disconnected" in record.error
        else:
            assert record.error.startswith(("429", "503"))
    assert set(answers) == set(prompts)
    for kinds in answers.values():
        assert kinds.count("ok") <= 1  # never requested again after a success
        assert "ok" not in kinds[:-1]  # nothing is sent after a success...
        assert "drop" not in kinds[:-1]  # ...or after an ambiguous failure
        # The first try and --max-retries (2) retries, besides the 429s' own budget.
        assert len(kinds) - kinds.count("429") <= 3
        assert kinds.count("429") <= RATE_LIMIT_RETRIES
    assert len(done) == sum("ok" in kinds for kinds in answers.values())
    assert f"{len(done)} done, {len(failed) - len(ambiguous)} failed" in first.stdout
    assert f"{len(ambiguous)} held" in first.stdout

    # Resume: only the provably unpaid jobs are sent again, once each; the ambiguous ones wait
    # for --resend-ambiguous. A fresh mock without faults (the first may have some left over).
    with MockServer() as healthy:
        second = run_batch(healthy, tmp_path / "jobs.jsonl", out_dir, "--concurrency", "4")
        plain_posts = posts(healthy)
        assert second.returncode == 1, second.stderr
        assert second.stderr.count("held ") == len(ambiguous)
        third = run_batch(
            healthy, tmp_path / "jobs.jsonl", out_dir, "--concurrency", "4", "--resend-ambiguous"
        )
        second_posts = posts(healthy)
    assert third.returncode == 0, third.stderr
    unpaid = sorted(prompt for prompt, kinds in answers.items() if kinds[-1] in ("429", "503"))
    assert sorted(request.json["prompt"] for request in plain_posts) == unpaid
    failed_prompts = sorted(prompt for prompt, kinds in answers.items() if "ok" not in kinds)
    second_prompts = sorted(request.json["prompt"] for request in second_posts)
    assert second_prompts == failed_prompts
    latest = latest_by_id(out_dir)
    assert all(record.status == "done" for record in latest.values())
    check_done_files(out_dir, latest)
    assert len(list(out_dir.glob("*.png"))) == 50

    counts = {
        "jobs": 50,
        "posts_run_1": len(first_posts),
        "done_run_1": len(done),
        "failed_run_1": len(failed),
        "failed_run_1_dropped": sum(kinds[-1] == "drop" for kinds in answers.values()),
        "failed_run_1_out_of_retries": sum(
            kinds[-1] in ("429", "503") for kinds in answers.values()
        ),
        "posts_run_2": len(second_posts),
        "done_after_resume": 50,
        "jobs_answered_ok_twice": sum(
            answers[prompt].count("ok") + second_prompts.count(prompt) > 1 for prompt in prompts
        ),
    }
    assert counts["jobs_answered_ok_twice"] == 0
    assert counts["failed_run_1_dropped"] + counts["failed_run_1_out_of_retries"] == len(failed)
    record_property("request_counts", json.dumps(counts))
    print("batch request counts:", counts)


@pytest.mark.usefixtures("signals_as_at_a_terminal")
@pytest.mark.slow  # a 32-job batch killed and resumed, twice: about 10 s
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_a_batch_killed_half_way_resumes_without_paying_twice(tmp_path, sample_png, how):
    prompts = write_jobs(tmp_path / "jobs.jsonl", 32, sample_png)
    out_dir = tmp_path / "out"
    with MockServer(latency=0.25) as server:
        command = batch_command(server, tmp_path / "jobs.jsonl", out_dir, "--concurrency", "4")
        manifest = out_dir / "manifest.jsonl"
        options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        with child(command, env=cli_env(), **options) as process:
            until(
                lambda: manifest.exists() and manifest.read_text().count('"status":"done"') >= 8,
                "eight jobs done",
            )
            process.send_signal(how)
            stdout, stderr = process.communicate(timeout=WAIT)
        assert API_KEY not in stdout + stderr
        first_posts = len(posts(server))
        latest_first = latest_by_id(out_dir)
        finished_first = {
            job_id: record for job_id, record in latest_first.items() if record.status == "done"
        }
        assert 8 <= len(finished_first) < 32
        if how == signal.SIGINT:
            assert process.returncode == 130, stderr
            assert "SIGINT: starting no more jobs; finishing" in stderr
            assert "not started (interrupted; run again to resume)" in stdout
            assert stdout.startswith(f"{len(finished_first)} done, 0 failed, ")
            # Ctrl-C lets running jobs finish: everything sent was also saved and recorded.
            assert len(finished_first) == first_posts == len(latest_first)
        else:
            assert process.returncode == -signal.SIGKILL
        claimed = {job_id for job_id, record in latest_first.items() if record.status == "sent"}

        resumed = run_batch(server, tmp_path / "jobs.jsonl", out_dir, "--concurrency", "4")
        if claimed:  # killed with requests in flight: held back until asked
            assert resumed.returncode == 1, resumed.stderr
            assert resumed.stderr.count("held ") == len(claimed)
            resumed = run_batch(
                server, tmp_path / "jobs.jsonl", out_dir, "--concurrency", "4", "--resend-ambiguous"
            )
        assert resumed.returncode == 0, resumed.stderr
        # A POST that SIGKILL cut off mid-body has no JSON: it generated nothing.
        all_posts = collections.Counter(
            request.json["prompt"] for request in posts(server) if request.json is not None
        )

    done_prompts = {record.prompt for record in finished_first.values()}
    assert set(all_posts) == set(prompts)
    assert all(all_posts[prompt] == 1 for prompt in done_prompts)  # finished jobs: never again
    if how == signal.SIGINT:
        assert set(all_posts.values()) == {1}  # not a single job was sent twice
    latest = latest_by_id(out_dir)
    assert len(latest) == 32
    assert all(record.status == "done" for record in latest.values())
    check_done_files(out_dir, latest)


def test_invalid_lines_are_reported_and_strict_sends_nothing(server, tmp_path, sample_png):
    jobs_file = tmp_path / "jobs.jsonl"
    jobs_file.write_text(
        "\n".join(
            [
                json.dumps({"prompt": "<img>0</img> fine", "images": ["in.png"], "id": "fine"}),
                "{oops",
                json.dumps({"prompt": "<img>1</img> bad tag", "images": ["in.png"]}),
                json.dumps({"prompt": "<img>0</img> no file", "images": ["missing.png"]}),
                json.dumps({"prompt": "<img>0</img> taken", "images": ["in.png"], "id": "taken"}),
            ]
        ),
        encoding="utf-8",
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "taken.png").write_bytes(b"someone else's file")

    strict = run_batch(server, jobs_file, out_dir, "--strict")
    assert strict.returncode == 2
    assert not server.requests
    for number in (2, 3, 4, 5):
        assert f"jobs.jsonl: line {number}: " in strict.stderr
    assert "line 1:" not in strict.stderr
    assert "nothing was sent" in strict.stderr
    assert "taken.png exists" in strict.stderr

    lenient = run_batch(server, jobs_file, out_dir)
    assert lenient.returncode == 1  # the batch is not complete
    assert [request.json["prompt"] for request in posts(server)] == ["<img>0</img> fine"]
    assert (out_dir / "fine.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (out_dir / "taken.png").read_bytes() == b"someone else's file"
    assert "4 invalid line(s) skipped" in lenient.stdout

    forced = run_batch(server, jobs_file, out_dir, "--force")
    assert forced.returncode == 1
    assert (out_dir / "taken.png").read_bytes().startswith(PNG_SIGNATURE)
    assert [request.json["prompt"] for request in posts(server)][1:] == ["<img>0</img> taken"]


def test_batch_without_a_key_sends_nothing(server, tmp_path, sample_png):
    write_jobs(tmp_path / "jobs.jsonl", 2, sample_png)
    completed = run_batch(server, tmp_path / "jobs.jsonl", tmp_path / "out", key=None)
    assert completed.returncode == 2
    assert "ONEROUTER_API_KEY" in completed.stderr
    assert not server.requests
