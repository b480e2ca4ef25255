"""Spend control on the command line: ``batch --dry-run``, the caps, flagged jobs, ``spend``.

Every test runs the real ``reve-remix`` (in this process) against :class:`PaidServer`, which
counts what it was sent (``posted``) and the generations it answered (200s), so "nothing was
sent" and "sent exactly three" are what a server saw, not what the SDK believes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from reve_remix._lifecycle import JobState
from reve_remix._manifest import LockHeld, Manifest
from reve_remix.testing._png import gradient_png

from .conftest import IMAGE_URL, run_cli
from .paid_server import PaidServer
from .test_batch_paid import batch, latest, line, posted, write_jobs


@pytest.fixture(autouse=True)
def _fast(fast_backoff):
    """Retries in milliseconds (``run_cli`` gives each run a shell's environment and the key)."""


def jobs_file(tmp_path: Path, count: int, **extra) -> Path:
    return write_jobs(tmp_path / "jobs.jsonl", [line(n, id=f"j{n}", **extra) for n in range(count)])


def dry(server: PaidServer, jobs: Path, out: Path, *extra: object) -> tuple[int, dict, str]:
    code, stdout, err = batch(server, jobs, out, "--dry-run", "--json", *map(str, extra))
    return code, json.loads(stdout), err


# --- 1. a dry run ---------------------------------------------------------------------------------


def test_a_dry_run_checks_every_line_sends_and_writes_nothing_and_prices_the_plan(tmp_path):
    (tmp_path / "cat.png").write_bytes(gradient_png(8, 8, seed=hashlib.sha256(b"cat").digest()))
    lines = [
        line(0, id="url"),
        {"prompt": "<img>0</img> local", "images": ["cat.png"], "id": "local"},
        {"prompt": "<img>0</img> gone", "images": ["missing.png"], "id": "gone"},
        {"prompt": "<img>3</img> bad tag", "images": [IMAGE_URL], "id": "tag"},
        line(4, id="four"),
    ]
    jobs = write_jobs(tmp_path / "jobs.jsonl", lines)
    out = tmp_path / "out"
    with PaidServer() as server:
        code, plan, err = dry(server, jobs, out, "--price", "0.04")
        assert posted(server) == 0
        assert not out.exists()  # no manifest, no lock file, no folder
        assert code == 1  # two lines are invalid: a real run would not finish them
        assert (plan["send"], plan["done"], plan["held"], plan["invalid"]) == (3, 0, 0, 2)
        assert (plan["generations"], plan["cost"], plan["price"]) == (3, 0.12, 0.04)
        assert {p["line"] for p in plan["problems"]} == {3, 4}
        assert "line 3: image 0" in err
        assert "line 4: prompt" in err
        assert [job["action"] for job in plan["jobs"]] == ["send"] * 3

        code, _, _ = batch(server, write_jobs(jobs, [lines[0], lines[1], lines[4]]), out)
        assert code == 0
        assert server.generations == 3
        code, plan, _ = dry(server, jobs, out, "--price", "0.04")
        assert code == 0
        assert (plan["send"], plan["done"], plan["cost"]) == (0, 3, 0.0)
    assert server.generations == 3


def test_a_dry_run_text_says_what_each_job_would_do_and_the_cap(tmp_path):
    jobs = jobs_file(tmp_path, 3)
    with PaidServer() as server:
        code, stdout, _ = run_cli(
            "batch", jobs, "--out", tmp_path / "out", "--base-url", server.base_url,
            "--dry-run", "--max-generations", "2", env={"REVE_REMIX_PRICE": "0.5"},
        )  # fmt: skip
    assert code == 1  # one job would be left pending by the cap
    assert stdout.splitlines()[:3] == [
        "send     j0 (line 1)",
        "send     j1 (line 2)",
        "pending  j2 (line 3): left pending by --max-generations 2",
    ]
    assert "would send 2 of 3 job(s) (2 generation(s), 1.00 USD at 0.50 USD each)" in stdout
    assert "1 left pending by --max-generations 2" in stdout
    assert posted(server) == 0


def test_a_dry_run_takes_no_lock_and_leaves_a_running_batch_alone(tmp_path):
    """While a run holds the folder, a dry run reads the manifest as it stands, says a real run
    would stop, and neither takes the lock nor cuts the line the run is writing."""
    jobs = jobs_file(tmp_path, 2)
    out = tmp_path / "out"
    with PaidServer() as server:
        assert batch(server, write_jobs(jobs, [line(0, id="j0")]), out)[0] == 0
        jobs_file(tmp_path, 2)
        with Manifest(out) as running:
            running.open()
            with (out / "manifest.jsonl").open("a") as file:
                file.write('{"id":"j1","status":"se')  # a record being written
            before = (out / "manifest.jsonl").read_bytes()
            code, plan, _ = dry(server, jobs, out)
            assert code == 1
            assert f"in use by process {os.getpid()}" in plan["blocked"][0]
            assert (plan["send"], plan["done"]) == (1, 1)
            assert (out / "manifest.jsonl").read_bytes() == before
            with pytest.raises(LockHeld):  # the run still holds the folder
                Manifest(out).open()
        assert posted(server) == 1
        code, plan, _ = dry(server, jobs, out)  # released: a real run could start
        assert plan["blocked"] == []


def test_a_dry_run_says_a_missing_key_would_stop_a_real_run(tmp_path):
    jobs = jobs_file(tmp_path, 1)
    with PaidServer() as server:
        code, stdout, err = run_cli(
            "batch", jobs, "--out", tmp_path / "out", "--dry-run", "--base-url",
            server.base_url, key=None,
        )  # fmt: skip
    assert code == 1
    assert "a real run now would not start: no API key" in err
    assert "would send 1 job(s)" in stdout


# --- 3. caps --------------------------------------------------------------------------------------


def test_six_jobs_at_concurrency_four_with_a_cap_of_three_send_exactly_three(tmp_path):
    jobs = jobs_file(tmp_path, 6)
    out = tmp_path / "out"
    with PaidServer(post_latency=0.3) as server:  # answers take a while: the workers overlap
        code, stdout, err = batch(server, jobs, out, "--concurrency", "4", "--max-generations", "3")
        assert code == 1
        assert server.generations == 3
        assert posted(server) == 3
        [said] = [text for text in err.splitlines() if "budget reached" in text]
        assert "--max-generations 3" in said
        assert "3 job(s) left pending" in said
        assert "3 done, 0 failed, 3 left pending by the budget" in stdout
        states = [record.status for record in latest(out).values()]
        assert states.count(JobState.DONE) == 3
        assert all(state in (JobState.DONE, JobState.PENDING) for state in states)

        code, _, _ = batch(server, jobs, out, "--concurrency", "4")  # no cap: the rest
        assert code == 0
        assert server.generations == 6
        assert set(server.answered.values()) == {1}


def test_a_retry_of_an_attempt_that_made_nothing_does_not_count(tmp_path):
    jobs = jobs_file(tmp_path, 2)
    busy_first = lambda prompt, nth: "503" if nth == 1 else "ok"  # noqa: E731
    with PaidServer(post_answer=busy_first) as server:
        code, _, _ = batch(server, jobs, tmp_path / "out", "--max-generations", "2")
    assert code == 0
    assert posted(server) == 4
    assert server.generations == 2


def test_max_cost_at_a_price_allows_what_it_pays_for(tmp_path):
    jobs = jobs_file(tmp_path, 4)
    with PaidServer() as server:
        code, _, err = batch(
            server, jobs, tmp_path / "out", "--max-cost", "0.10", "--price", "0.04"
        )
    assert code == 1
    assert server.generations == 2
    assert "--max-cost 0.10 USD at 0.04 USD a generation" in err


def test_max_cost_without_a_price_is_a_usage_error_before_anything_is_sent(tmp_path):
    jobs = jobs_file(tmp_path, 1)
    with PaidServer() as server:
        code, _, err = batch(server, jobs, tmp_path / "out", "--max-cost", "1")
        assert code == 2
        assert "--max-cost needs the price of a generation" in err
        code, _, err = batch(server, jobs, tmp_path / "out", "--price", "-1")
        assert code == 2
        assert "--price" in err
    assert posted(server) == 0


def test_remix_takes_the_caps_too(tmp_path):
    with PaidServer() as server:
        args = ["remix", "<img>0</img> capped", "-i", IMAGE_URL, "--base-url", server.base_url]
        code, _, err = run_cli(*args, "-o", tmp_path / "a.png", "--max-generations", "0")
        assert code == 1
        assert "budget spent" in err
        assert "not sent" in err
        assert posted(server) == 0
        code, _, _ = run_cli(*args, "-o", tmp_path / "b.png", "--max-generations", "1")
        assert code == 0
        assert server.generations == 1


# --- 6. flagged -----------------------------------------------------------------------------------


def flag_forbidden(prompt: str, nth: int) -> str:
    return "flagged" if "forbidden" in prompt else "ok"


def test_a_refused_job_is_flagged_not_retried_nor_resent_by_a_plain_resume(tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [line(0, id="fine"), {"prompt": "<img>0</img> forbidden", "images": [IMAGE_URL]}],
    )
    out = tmp_path / "out"
    with PaidServer(post_answer=flag_forbidden) as server:
        code, stdout, err = batch(server, jobs, out)
        assert code == 1
        assert posted(server) == 2  # the refusal was not retried
        assert "1 done, 0 failed, 1 flagged (refused by content policy" in stdout
        assert "not sent again unless you pass --resend-flagged" in err
        [flagged] = [r for r in latest(out).values() if r.id != "fine"]
        assert flagged.status is JobState.FLAGGED
        assert flagged.status_code == 422

        code, stdout, _ = batch(server, jobs, out)
        assert code == 1
        assert posted(server) == 2
        assert "1 done (1 in earlier runs), 0 failed, 1 flagged" in stdout

        code, plan, _ = dry(server, jobs, out)
        assert (plan["held"], plan["send"]) == (1, 0)

        code, _, _ = batch(server, jobs, out, "--resend-flagged")
        assert code == 1
        assert posted(server) == 3

        code, stdout, _ = run_cli("spend", out, "--json")
    assert code == 0
    spent = json.loads(stdout)
    assert (spent["paid"], spent["flagged"], spent["failed"], spent["ambiguous"]) == (1, 2, 0, 0)


# --- 5. spend -------------------------------------------------------------------------------------


def test_spend_counts_every_attempt_a_regenerated_job_paid_twice(tmp_path):
    jobs = jobs_file(tmp_path, 2)
    out = tmp_path / "out"
    expired = {"first": True}

    def downloads(rng) -> str:  # j0's first URL is gone: it is paid, not saved
        return "404" if expired["first"] else "ok"

    with PaidServer(downloads=downloads) as server:
        code, _, _ = batch(server, write_jobs(jobs, [line(0, id="j0")]), out)
        assert code == 1
        expired["first"] = False
        jobs_file(tmp_path, 2)
        with PaidServer(downloads=lambda rng: "404") as gone:  # its URL stays expired
            jobs_url = out / "manifest.jsonl"
            text = jobs_url.read_text().replace(server.base_url, gone.base_url)
            jobs_url.write_text(text)
            code, _, _ = batch(server, jobs, out, "--regenerate-paid")
        assert code == 0
        assert server.generations == 3  # j0 twice, j1 once
        code, stdout, _ = run_cli("spend", out, "--json", "--price", "0.04", "--by", "day")
    assert code == 0
    spent = json.loads(stdout)
    assert (spent["paid"], spent["billed"], spent["cost"]) == (3, 3, 0.12)
    [day] = spent["days"].values()
    assert day["paid"] == 3

    code, stdout, _ = run_cli("spend", out, env={"REVE_REMIX_PRICE": "0.5"})
    assert code == 0
    assert stdout.splitlines()[0].split()[:2] == ["paid:", "3"]
    assert "1.50 USD at 0.50 USD a generation (1.50 USD for the paid ones)" in stdout


def test_spend_counts_a_budget_refusal_as_nothing_and_reads_a_running_batch(tmp_path):
    jobs = jobs_file(tmp_path, 4)
    out = tmp_path / "out"
    with PaidServer() as server:
        batch(server, jobs, out, "--max-generations", "1", "--concurrency", "1")
        assert server.generations == 1
        with Manifest(out) as running:
            running.open()  # spend takes no lock: it reads while a batch holds the folder
            code, stdout, _ = run_cli("spend", out, "--json")
    assert code == 0
    spent = json.loads(stdout)
    assert (spent["paid"], spent["billed"], spent["failed"], spent["price"]) == (1, 1, 0, None)
    assert "cost" not in spent


def test_spend_on_a_folder_without_a_manifest_is_a_usage_error(tmp_path):
    code, _, err = run_cli("spend", tmp_path)
    assert code == 2
    assert "no manifest.jsonl" in err
