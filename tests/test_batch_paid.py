"""``reve-remix batch`` and ``remix``: one paid ledger, no exit where an image is dropped or paid
for twice.

Each test reproduces a way the batch or the command line used to lose a paid image or pay for one
twice, against :class:`PaidServer`, which counts generations (POSTs answered 200). Processes are
started for what only a process can show (a signal, a second run); waits are on the server's
counters or the manifest, never on the clock, and every child is killed in ``finally``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reve_remix import read_recipe
from reve_remix._batch_plan import Defaults, plan_batch
from reve_remix._jobs_file import read_jobs
from reve_remix._ledger import JobRecord
from reve_remix._lifecycle import JobState
from reve_remix._manifest import Manifest
from reve_remix._recipe import embed
from reve_remix._runner import Action, Policy
from reve_remix.testing._png import gradient_png

from . import conftest
from .conftest import API_KEY, IMAGE_URL, WAIT, run_cli, until
from .paid_server import PaidServer


@pytest.fixture(autouse=True)
def _key(monkeypatch, fast_backoff):
    monkeypatch.setenv("ONEROUTER_API_KEY", API_KEY)
    monkeypatch.delenv("REVE_REMIX_BASE_URL", raising=False)


def write_jobs(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def line(n: int, **extra) -> dict:
    return {"prompt": f"<img>0</img> job {n}", "images": [IMAGE_URL], **extra}


def latest(out: Path) -> dict[str, JobRecord]:
    records = {}
    for text in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        record = JobRecord.from_json(text)
        if record is not None:
            records[record.id] = record
    return records


def batch(server: PaidServer, jobs: Path, out: Path, *extra: str):
    return run_cli("batch", jobs, "--out", out, "--base-url", server.base_url, *extra)


@contextlib.contextmanager
def held_back(server: PaidServer, gate: threading.Lock, jobs: Path, out: Path, *extra: str):
    """``batch`` on a thread while ``gate`` holds the server's answers back (the server must have
    been made with it): yields a list that holds the run's ``CliRun`` once the block has ended,
    the gate has been released and the run has finished."""
    finished: list = []
    gate.acquire()
    runner = threading.Thread(target=lambda: finished.append(batch(server, jobs, out, *extra)))
    runner.start()
    try:
        yield finished
    finally:
        gate.release()
        runner.join(WAIT)


def posted(server: PaidServer) -> int:
    with server.lock:
        return sum(server.posted.values())


@contextlib.contextmanager
def child(command: list[str], stderr: Path | None = None):
    """A ``reve-remix`` process with the key, stderr to a file if given; ended on the way out."""
    env = {**os.environ, "ONEROUTER_API_KEY": API_KEY}
    env.pop("REVE_REMIX_BASE_URL", None)
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(stderr.open("w")) if stderr else subprocess.PIPE
        yield stack.enter_context(
            conftest.child(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        )


def cli_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "reve_remix", *map(str, args)]


def seed(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def b64_body(data: bytes | str) -> bytes:
    text = data if isinstance(data, str) else base64.b64encode(data).decode()
    return json.dumps({"created": 1, "data": [{"b64_json": text}]}).encode()


# --- 1. one run at a time per folder -------------------------------------------------------------


def test_a_second_run_on_the_same_folder_sends_nothing_and_names_the_holder(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(n) for n in range(3)])
    out = tmp_path / "out"
    with PaidServer() as server:
        with Manifest(out) as holder:  # another run, as far as the lock can tell (an flock)
            holder.open()
            code, _, err = batch(server, jobs, out)
            assert code == 1
            assert f"is in use by process {os.getpid()} (started " in err
            assert "nothing was sent" in err
            assert server.generations == 0
        code, _, err = batch(server, jobs, out)
        assert code == 0, err
        assert server.generations == 3


def test_a_lock_left_by_a_dead_process_is_taken_over_and_said_so(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(0)])
    out = tmp_path / "out"
    lock = out / ".reve-remix" / "lock"
    lock.parent.mkdir(parents=True)
    lock.write_text('{"pid": 999999, "started": "2025-01-01T00:00:00+00:00"}')  # its holder died
    with PaidServer() as server:
        code, _, err = batch(server, jobs, out)
        assert code == 0, err
        assert server.generations == 1
    assert "took over" in err
    assert "process 999999 (started 2025-01-01T00:00:00+00:00)" in err
    assert lock.read_text() == ""  # let go cleanly: the next run takes nothing over


def test_two_runs_at_once_pay_once_and_wait_waits(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(n) for n in range(4)])
    out = tmp_path / "out"
    gate = threading.Lock()
    with PaidServer(gate=gate) as server:
        command = cli_command("batch", jobs, "--out", out, "--base-url", server.base_url)
        with gate:  # no POST is answered while the second and third runs start
            with child([*command, "--concurrency", "1"]) as first:
                until(lambda: posted(server) >= 1, "the first run's request")
                second = subprocess.run(
                    command, env={**os.environ, "ONEROUTER_API_KEY": API_KEY},
                    capture_output=True, text=True, timeout=WAIT,
                )  # fmt: skip
                assert second.returncode == 1, second.stderr
                assert f"in use by process {first.pid}" in second.stderr
                with child([*command, "--wait"], tmp_path / "third.err") as third:
                    waiting = tmp_path / "third.err"
                    until(lambda: "waiting for process" in waiting.read_text(), "--wait to wait")
                    gate.release()
                    try:
                        assert first.wait(timeout=WAIT) == 0
                        assert third.wait(timeout=WAIT) == 0
                        third_out = third.stdout.read()
                    finally:
                        gate.acquire()
        assert server.generations == 4  # not 8: the second run sent nothing, the third waited
    assert third_out.startswith("4 done (4 in earlier runs)")


# --- 2. SIGTERM and SIGHUP, like Ctrl-C --------------------------------------------------------


@pytest.mark.usefixtures("signals_as_at_a_terminal")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_finishes_the_running_jobs_and_saves_what_was_paid(tmp_path, how):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(n, id=f"j{n}") for n in range(4)])
    out = tmp_path / "out"
    gate = threading.Lock()
    with PaidServer(gate=gate) as server:
        command = cli_command("batch", jobs, "--out", out, "--base-url", server.base_url)
        gate.acquire()
        try:
            with child([*command, "--concurrency", "2"], tmp_path / "err") as process:
                until(lambda: posted(server) == 2, "two requests in flight")
                process.send_signal(how)
                until(lambda: "starting no more jobs" in (tmp_path / "err").read_text(), "it")
                gate.release()
                code = process.wait(timeout=WAIT)
                stdout = process.stdout.read()
        finally:
            if gate.locked():
                gate.release()
        assert code == 128 + how
        assert server.generations == 2  # the two in flight were answered...
        records = latest(out)
        assert sorted(r.id for r in records.values() if r.status is JobState.DONE) == sorted(
            r.id for r in records.values()
        )  # ...and saved; nothing else was started
        assert len(records) == 2
        assert "2 done, 0 failed, 2 not started (interrupted; run again to resume)" in stdout
        code, _, err = batch(server, jobs, out)
        assert code == 0, err
        assert server.generations == 4
    assert len(list(out.glob("*.png"))) == 4


def test_a_signal_ignored_at_the_start_stays_ignored(tmp_path):
    # nohup starts a command with SIGHUP ignored so that it outlives its terminal.
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(n, id=f"j{n}") for n in range(4)])
    out = tmp_path / "out"
    gate = threading.Lock()
    with PaidServer(gate=gate) as server:
        command = cli_command("batch", jobs, "--out", out, "--base-url", server.base_url)
        previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # inherited by the child
        gate.acquire()
        try:
            with child([*command, "--concurrency", "2"], tmp_path / "err") as process:
                signal.signal(signal.SIGHUP, previous)
                until(lambda: posted(server) == 2, "two requests in flight")
                process.send_signal(signal.SIGHUP)  # dropped by the kernel: it is ignored
                gate.release()
                code = process.wait(timeout=WAIT)
        finally:
            signal.signal(signal.SIGHUP, previous)
            if gate.locked():
                gate.release()
    assert code == 0, (tmp_path / "err").read_text()
    assert server.generations == 4
    assert {record.status for record in latest(out).values()} == {JobState.DONE}


@pytest.mark.usefixtures("signals_as_at_a_terminal")
def test_a_second_signal_quits_at_once_listing_what_is_held(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(n, id=f"j{n}") for n in range(3)])
    out = tmp_path / "out"
    gate = threading.Lock()
    with PaidServer(gate=gate) as server, gate:
        command = cli_command("batch", jobs, "--out", out, "--base-url", server.base_url)
        with child([*command, "--concurrency", "2"], tmp_path / "err") as process:
            until(lambda: posted(server) == 2, "two requests in flight")
            process.send_signal(signal.SIGTERM)
            until(lambda: "starting no more jobs" in (tmp_path / "err").read_text(), "it")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=WAIT) == 143
        err = (tmp_path / "err").read_text()
        assert "SIGTERM again: quitting now" in err
        for job_id in ("j0", "j1"):
            assert f"{job_id}: may have been generated (no request id, no url): held" in err
    assert {record.status for record in latest(out).values()} == {JobState.SENT}


# --- 3. an inline image is spooled before its save is tried -----------------------------------


def test_an_inline_image_whose_save_fails_is_kept_and_a_plain_resume_saves_it(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(0, id="cat", output_format="b64_json")])
    out = tmp_path / "out"
    png = gradient_png(16, 16, seed=seed("inline"))
    gate = threading.Lock()
    with PaidServer(post_body=b64_body(png), gate=gate) as server:
        with held_back(server, gate, jobs, out) as finished:
            until(lambda: posted(server) == 1, "the request")
            (out / "cat.png").mkdir()  # the save will fail: a folder where the image goes
        code, _, err = finished[0]
        assert code == 1
        record = latest(out)["cat"]
        assert record.status is JobState.PAID
        spool = Path(record.spool)
        assert spool == out / ".reve-remix" / "spool" / "cat.png"
        assert spool.read_bytes() == png  # durable before the save was tried
        assert f"kept at {spool}" in err
        assert "run again to save it (not generated again)" in err
        (out / "cat.png").rmdir()
        code, _, err = batch(server, jobs, out)  # a plain resume
        assert code == 0, err
        assert server.generations == 1  # saved from the spool, without a request
    saved = out / "cat.png"
    recipe = read_recipe(saved)  # the record kept it: a resumed save carries it too
    assert recipe is not None
    assert recipe.request_id == latest(out)["cat"].request_id
    assert saved.read_bytes() == embed(png, recipe)
    assert not spool.exists()  # done: the spooled copy is gone
    assert latest(out)["cat"].spool is None


def test_a_2xx_with_invalid_base64_is_described_truly_and_its_data_kept(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(0, id="bad", output_format="b64_json")])
    out = tmp_path / "out"
    with PaidServer(post_body=b64_body("not*base64*at*all")) as server:
        code, _, err = batch(server, jobs, out)
        assert code == 1
        record = latest(out)["bad"]
        assert record.status is JobState.PAID
        assert "not valid base64" in record.error
        assert Path(record.spool).read_bytes() == b"not*base64*at*all"  # kept as it came
        assert "--regenerate-paid" in err
        code, _, err = batch(server, jobs, out)  # never paid again by a plain resume
        assert code == 1
        assert "could not be decoded; its data is kept as it came" in err
        assert "--regenerate-paid" in err
        assert server.generations == 1


# --- 4. a manifest that cannot be written stops the run, and loses nothing paid ----------------


@pytest.mark.parametrize("how", ["unwritable", "deleted"])
def test_a_manifest_that_fails_mid_run_stops_sending_and_saves_what_was_paid(
    tmp_path, monkeypatch, how
):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(n, id=f"j{n}") for n in range(6)])
    out = tmp_path / "out"
    gate = threading.Lock()
    broken = threading.Event()
    append = Manifest._append

    def failing(self, record):
        if broken.is_set() and how == "unwritable":
            raise PermissionError(1, "Operation not permitted", str(self.path))
        append(self, record)

    monkeypatch.setattr(Manifest, "_append", failing)
    with PaidServer(gate=gate) as server:
        with held_back(server, gate, jobs, out, "--concurrency", "2") as finished:
            until(lambda: posted(server) == 2, "two requests in flight")
            broken.set()
            if how == "deleted":
                (out / "manifest.jsonl").unlink()
        code, _, err = finished[0]
        assert server.generations == 2  # nothing sent after the manifest failed
    assert code == 1
    reason = "Operation not permitted" if how == "unwritable" else "deleted or replaced"
    assert f"cannot write {out / 'manifest.jsonl'}: " in err
    assert reason in err
    for name in server.files:  # each paid job named with its URL and request id
        assert f"/files/{name}" in err
    assert err.count("request id req-") >= 2
    assert sorted(path.name for path in out.glob("*.png")) == ["j0.png", "j1.png"]  # saved


# --- 6. remix interrupted after the 2xx: the URL and a fetch that does not pay -----------------


@pytest.mark.usefixtures("signals_as_at_a_terminal")
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_remix_interrupted_while_downloading_prints_a_fetch_command_that_does_not_pay(
    tmp_path, how
):
    with PaidServer(downloads=["slow"]) as server:
        output = tmp_path / "cat.png"
        command = cli_command(
            "remix", "<img>0</img> in the rain", "-i", IMAGE_URL, "-o", output,
            "--base-url", server.base_url,
        )  # fmt: skip
        with child(command) as process:
            until(lambda: server.gets >= 1, "the download")
            process.send_signal(how)
            _, err = process.communicate(timeout=WAIT)
        assert process.returncode == 128 + how
        [name] = server.files
        url = f"{server.base_url}/files/{name}"
        assert f"url {url}" in err
        assert "request id req-" in err
        fetch = f"reve-remix fetch '{url}' -o '{output}'"
        assert f"get it without paying: {fetch}" in err
        assert not output.exists()
        code, stdout, err = run_cli("fetch", url, "-o", output, key=None)  # no key needed
        assert code == 0, err
        assert stdout.strip() == str(output)
        assert server.generations == 1
    assert output.read_bytes() == server.image_for("<img>0</img> in the rain")[1]


# --- 8. a job is what it sends --------------------------------------------------------------------


@pytest.fixture
def cat(tmp_path) -> Path:
    path = tmp_path / "cat.png"
    path.write_bytes(gradient_png(20, 20, seed=seed("cat")))
    return path


def test_equivalent_lines_and_a_new_output_never_pay_again(tmp_path, cat):
    jobs = tmp_path / "jobs.jsonl"
    out = tmp_path / "out"
    with PaidServer() as server:
        write_jobs(jobs, [{"prompt": "<img>0</img> a", "images": ["cat.png"]}])
        assert batch(server, jobs, out).returncode == 0
        [saved] = out.glob("*.png")
        for same in (
            {"images": ["./cat.png"], "prompt": "<img>0</img> a"},  # key order, ./
            {"prompt": "<img>0</img> a", "images": [str(cat)], "aspect_ratio": None},  # absolute
            {"prompt": "<img>0</img> a", "images": ["cat.png"], "model": None, "extra_body": None},
        ):
            write_jobs(jobs, [same])
            code, stdout, err = batch(server, jobs, out)
            assert code == 0, err
            assert stdout.startswith("1 done (1 in earlier runs)"), stdout
        write_jobs(jobs, [{"prompt": "<img>0</img> a", "images": ["cat.png"], "output": "new.png"}])
        code, _, err = batch(server, jobs, out)
        assert code == 0, err
        assert server.generations == 1  # not 5
    assert (out / "new.png").read_bytes() == saved.read_bytes()  # placed, not generated


def test_two_lines_with_one_request_are_one_job(tmp_path, cat):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [{"prompt": "<img>0</img> b", "images": ["cat.png"]},
         {"images": ["./cat.png"], "prompt": "<img>0</img> b"}],
    )  # fmt: skip
    out = tmp_path / "out"
    with PaidServer() as server:
        for _ in range(2):  # no run exits 1 for it
            code, _, err = batch(server, jobs, out)
            assert code == 0, err
            assert "line 2 is the same job as line 1: run once" in err
        assert server.generations == 1


def test_a_changed_job_under_a_known_id_is_a_conflict_until_asked(tmp_path, cat):
    jobs = tmp_path / "jobs.jsonl"
    out = tmp_path / "out"
    with PaidServer() as server:
        write_jobs(jobs, [{"prompt": "<img>0</img> c", "images": ["cat.png"], "id": "cat"}])
        assert batch(server, jobs, out).returncode == 0
        write_jobs(jobs, [{"prompt": "<img>0</img> changed", "images": ["cat.png"], "id": "cat"}])
        code, _, err = batch(server, jobs, out)
        assert code == 1
        assert "conflict cat (line 1)" in err
        assert "--replace-changed" in err
        assert server.generations == 1  # not skipped as done, not sent
        code, _, err = batch(server, jobs, out, "--replace-changed", "--force")
        assert code == 0, err
        assert server.generations == 2
    assert server.answered["<img>0</img> changed"] == 1


def test_a_manifest_of_the_previous_format_is_resumed_without_paying(tmp_path):
    """A job recorded by the previous batch (its id a hash of the line) is not paid again."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(0)])
    [old_line], _ = read_jobs(jobs)
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"job-0-{old_line.id}.png"
    target.write_bytes(gradient_png(8, 8, seed=seed("old")))
    old = {"id": old_line.id, "status": "done", "file": target.name, "url": None,
           "request_id": "req-old", "revised_prompt": None, "error": None, "line": 1,
           "body": None}  # fmt: skip
    (out / "manifest.jsonl").write_text(json.dumps(old) + "\n")
    with PaidServer() as server:
        code, stdout, err = batch(server, jobs, out)
        assert code == 0, err
        assert stdout.startswith("1 done (1 in earlier runs)")
        assert server.generations == 0


# --- the plan, without the command line ---------------------------------------------------------


def test_the_plan_decides_an_action_per_job_and_names_the_problems(tmp_path, cat):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [
            {"prompt": "<img>0</img> new", "images": ["cat.png"], "id": "new"},
            {"prompt": "<img>0</img> done", "images": ["cat.png"], "id": "done"},
            {"prompt": "<img>0</img> out", "images": ["cat.png"], "id": "out"},
            {"prompt": "<img>0</img> paid", "images": ["cat.png"], "id": "paid"},
            {"prompt": "<img>0</img> changed", "images": ["cat.png"], "id": "changed"},
            {"prompt": "<img>0</img> empty", "images": ["cat.png"], "aspect_ratio": ""},
            {"prompt": "<img>0</img> new", "images": ["cat.png"], "id": "new", "model": "m2"},
        ],
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "done.png").write_bytes(cat.read_bytes())
    lines, problems = read_jobs(jobs)
    defaults = Defaults(model="reve-remix-image-to-image", force=True)
    plan = plan_batch(lines, {}, out, defaults, Policy(), problems)
    prints = {p.job.id: p.job.fingerprint for p in plan.jobs}
    records = {
        "done": JobRecord("done", JobState.DONE, prints["done"], file="done.png"),
        "out": JobRecord("out", JobState.AMBIGUOUS, prints["out"]),
        "paid": JobRecord("paid", JobState.PAID, prints["paid"], url="https://cdn/p.png"),
        "changed": JobRecord("changed", JobState.DONE, "another", file="done.png"),
    }
    plan = plan_batch(lines, records, out, defaults, Policy())
    actions = {planned.job.id: planned.action for planned in plan.jobs}
    assert actions == {
        "new": Action.SEND,
        "done": Action.SKIP,
        "out": Action.HOLD,
        "paid": Action.FETCH,
        "changed": Action.CONFLICT,
    }
    messages = {problem.number: problem.message for problem in plan.problems}
    assert "aspect_ratio" in messages[6]  # "" is refused, as remix refuses it
    assert 'duplicate id "new", first on line 1, with another request' in messages[7]
    policy = Policy(resend_ambiguous=True, replace_changed=True)
    plan = plan_batch(lines, records, out, defaults, policy)
    assert {p.job.id: p.action for p in plan.jobs}["out"] is Action.SEND
    assert {p.job.id: p.action for p in plan.jobs}["changed"] is Action.SEND


# --- 11. the lesser findings ----------------------------------------------------------------------


def test_an_expired_url_says_regenerate_paid(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(0, id="gone")])
    out = tmp_path / "out"
    with PaidServer(downloads=lambda rng: "404") as server:
        for _ in range(2):
            code, _, err = batch(server, jobs, out)
            assert code == 1
        assert "if its URL has expired, --regenerate-paid generates it again" in err
        assert server.generations == 1


def test_after_a_401_the_summary_counts_the_jobs_that_were_running(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(n, id=f"j{n}") for n in range(6)])
    out, err = tmp_path / "out", tmp_path / "err"
    refused = line(0)["prompt"]

    def answer(prompt: str, nth: int) -> str:
        # The 401 once all three are out; the other two once the batch has reported it: they
        # were running when it came, and no job can start after it, however the threads run.
        if prompt == refused:
            until(lambda: posted(server) == 3, "three requests in flight")
            return "401"
        until(lambda: "failed j0 (line 1)" in err.read_text(), "the 401 reported")
        return "ok"

    with PaidServer(post_answer=answer) as server:
        command = cli_command("batch", jobs, "--out", out, "--base-url", server.base_url)
        with child([*command, "--concurrency", "3"], err) as process:
            code = process.wait(timeout=WAIT)
            stdout = process.stdout.read()
    assert code == 1
    done = sum(record.status is JobState.DONE for record in latest(out).values())
    assert done == 2
    assert stdout.startswith("2 done, 1 failed, 3 not started (stopped after the 401 on line ")


@pytest.mark.parametrize("field", ["aspect_ratio", "model", "output_format"])
def test_an_empty_field_in_a_line_is_refused_as_remix_refuses_it(tmp_path, field):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(0, **{field: ""})])
    with PaidServer() as server:
        code, _, err = batch(server, jobs, tmp_path / "out")
        assert server.generations == 0
    assert code == 1
    assert f"line 1: {field}" in err


def test_a_certificate_file_that_does_not_exist_is_named(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(0)])
    with PaidServer() as server:
        code, _, err = run_cli(
            "batch", jobs, "--out", tmp_path / "out", "--base-url", server.base_url,
            env={"SSL_CERT_FILE": "/nonexistent"},
        )  # fmt: skip
        assert server.generations == 0
    assert code == 2
    assert "SSL_CERT_FILE='/nonexistent'" in err


def test_a_jobs_file_that_is_a_device_is_refused(tmp_path):
    code, _, err = run_cli("batch", "/dev/zero", "--out", tmp_path / "out")
    assert code == 2
    assert "is not a file" in err


def test_remix_keeps_an_inline_image_whose_save_fails_and_names_where(tmp_path):
    # The output folder turns into a file while the request is out: the paid inline image is
    # written to a file the warning names, with its request id, not thrown away.
    png = gradient_png(8, 8, b"remix-save-fails")
    (tmp_path / "cat.png").write_bytes(png)
    out = tmp_path / "od"
    out.mkdir()
    body = {"created": 1, "data": [{"b64_json": base64.b64encode(png).decode()}]}
    gate = threading.Lock()
    with PaidServer(post_body=json.dumps(body).encode(), gate=gate) as server:
        env = {**os.environ, "ONEROUTER_API_KEY": API_KEY, "REVE_REMIX_BASE_URL": server.base_url}
        command = cli_command(
            "remix", "<img>0</img> x", "-i", tmp_path / "cat.png", "-o", out / "x.png"
        )
        options = {"env": env, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
        held = contextlib.ExitStack()
        held.enter_context(gate)  # the answer waits until the folder has been replaced
        with held, conftest.child(command, **options) as process:
            until(lambda: server.posted, "the POST")
            out.rmdir()
            out.write_text("a file where the folder was")
            held.close()  # the gate opens: the answer goes out
            _, err = process.communicate(timeout=WAIT)
        assert server.generations == 1
    assert process.returncode == 1, err
    kept = err.split("kept at ", 1)[1].split(")", 1)[0]
    assert Path(kept).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "request id " in err
    assert API_KEY not in err


def test_an_inline_image_the_folder_cannot_take_is_spooled_elsewhere(tmp_path):
    # The output folder's disk cannot take the spooled bytes (here: the spool is a file): they go
    # to a spool in the temporary folder, and the record says where.
    png = gradient_png(8, 8, b"fallback-spool")
    out = tmp_path / "out"
    with Manifest(out) as manifest:
        manifest.open()
        manifest.spool_dir.parent.mkdir(parents=True, exist_ok=True)
        manifest.spool_dir.write_text("not a folder")
        record = JobRecord("cat", JobState.PAID, request_id="req-1")
        kept = manifest.keep(record, None, png)  # type: ignore[arg-type]  # unused by the manifest
        assert kept.spool is not None
        assert not kept.spool.startswith(str(out))
        assert manifest.unspool(kept) == png
        Path(kept.spool).unlink()
