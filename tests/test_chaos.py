"""Chaos: a batch hit by SIGTERM, SIGKILL, a second run at once, an output folder that fails
mid-run, and downloads that fail at random; resumed until every job is done. Then, every time:

- generations (POSTs answered 200) == jobs: nothing was paid for twice, nothing left unpaid;
- images == jobs: every job's file is exactly the image the server generated for it;
- the manifest reads back whole (at most a torn last line after a kill, cut off by the next
  run); no ``.part`` file is left;
- a plain resume never sent a job whose last run may have been billed without an answer
  (``sent``/``ambiguous``): only a run with ``--resend-ambiguous`` did.

One window no client can close is kept out of the SIGKILLs: between the server writing a 200 and
the client recording it (the API takes no idempotency key, so a 200 lost there is lost for
anyone). The server answers a POST only under a lock and only to a client still connected; the
test kills only while holding that lock and while no answered job lacks its ``paid`` record.
SIGTERM needs no such care: the batch lets the requests in flight answer and saves them.

Each event waits for a readiness condition (a request in flight: the server's counter), never
for a guessed time. Seeds are printed; ``CHAOS_SEED=N`` replays one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reve_remix import read_recipe
from reve_remix._ledger import JobRecord
from reve_remix._recipe import embed

from .conftest import API_KEY, IMAGE_URL, WAIT
from .paid_server import PaidServer

FAULT_WEIGHTS = {
    "ok": 50,
    "503": 8,
    "500": 4,
    "drop": 8,
    "truncate": 8,
    "drip": 8,
    "html": 7,
    "empty": 7,
}
EVENTS = ("sigterm", "sigkill", "second-run", "output-fails")


@pytest.mark.usefixtures("signals_as_at_a_terminal")
def test_chaos_short(tmp_path, record_property):
    """Every event once, on a small batch: the README suite's version (a few seconds)."""
    seed = int(os.environ.get("CHAOS_SEED", time.time_ns() % 1_000_000))
    # Fewer download faults than the long run: each costs a real backoff in the child process.
    faults = {"ok": 80, "503": 5, "drop": 5, "truncate": 5, "html": 5}
    # The output folder last: the run goes on sending (every save failing) to the end.
    events = ["sigkill", "second-run", "sigterm", "output-fails"]
    counts = chaos(tmp_path, seed, jobs=16, events=events, faults=faults)
    record_property("chaos_counts", json.dumps(counts))
    assert counts["events"] == dict.fromkeys(EVENTS, 1)


@pytest.mark.usefixtures("signals_as_at_a_terminal")
@pytest.mark.slow  # five seeds, thirty jobs, a dozen random events each: about a minute or two
@pytest.mark.parametrize("run", range(5))
def test_chaos_many_seeds(tmp_path, record_property, run):
    seed = int(os.environ.get("CHAOS_SEED", time.time_ns() % 1_000_000)) + run
    rng = random.Random(seed)
    events = [rng.choice(EVENTS) for _ in range(12)]
    counts = chaos(tmp_path, seed, jobs=30, events=events)
    record_property("chaos_counts", json.dumps(counts))


def chaos(
    tmp_path: Path,
    seed: int,
    *,
    jobs: int,
    events: list[str],
    faults: dict[str, int] | None = None,
) -> dict[str, object]:
    """Run the batch through ``events`` (one per run, then plain resumes) until it is done."""
    print(f"chaos seed {seed} (CHAOS_SEED={seed} replays the choices), events {events}")
    names, weights = zip(*(faults or FAULT_WEIGHTS).items(), strict=True)
    gate = threading.Lock()
    prompts = [f"<img>0</img> chaos {n:02d}" for n in range(jobs)]
    jobs_file = tmp_path / "jobs.jsonl"
    lines = [
        json.dumps(
            {"prompt": p, "images": [IMAGE_URL], "id": f"j{n:02d}", "output": f"img/j{n:02d}"}
        )
        for n, p in enumerate(prompts)
    ]
    jobs_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prompt_of = {f"j{n:02d}": prompt for n, prompt in enumerate(prompts)}
    out = tmp_path / "out"
    happened: dict[str, int] = dict.fromkeys(EVENTS, 0)
    runs = resumes_with_resend = torn = 0
    started = time.monotonic()

    def fault(chooser_rng: random.Random) -> str:
        return chooser_rng.choices(names, weights)[0]

    with PaidServer(downloads=fault, post_latency=0.05, gate=gate, seed=seed) as server:
        command = [sys.executable, "-m", "reve_remix", "batch", str(jobs_file), "--out", str(out)]
        command += ["--base-url", server.base_url, "--concurrency", "3"]
        resend = False
        pending = list(events)
        while True:
            # Counted in runs, not seconds (a busy machine makes each run slower, not more):
            # one per event, then resumes, each of which a job's download fails only if all
            # four of its tries do.
            assert runs < len(events) + 20, "the chaos run does not converge"
            before = manifest_state(out)
            held = {job_id for job_id, rec in before.items() if rec.status in ("sent", "ambiguous")}
            posted_before = dict(server.posted)
            flags = ["--resend-ambiguous"] if resend else []
            resumes_with_resend += resend
            runs += 1
            process = start(command + flags)
            try:
                event = pending.pop(0) if pending else None
                hit = event is not None and apply(
                    event, process, command, gate, server, out, prompt_of
                )
                stdout, stderr = process.communicate(timeout=WAIT)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.communicate()
            heal(out)
            if hit:
                happened[str(event)] += 1
                print(f"run {runs}: {event}, exit {process.returncode}")
            assert API_KEY not in stdout + stderr
            if not resend:  # a plain run never sends a job that may have been billed already
                for job_id in held:
                    prompt = prompt_of[job_id]
                    assert server.posted[prompt] == posted_before.get(prompt, 0), job_id
            if process.returncode == -signal.SIGKILL:
                torn += check_whole(out)
                resend = False
                continue
            assert process.returncode in (0, 1, 143), stderr
            if process.returncode == 0 and not pending:
                break
            state = manifest_state(out)
            resend = any(rec.status in ("sent", "ambiguous") for rec in state.values())

        final = manifest_state(out)
        images = [path for path in (out / "img").iterdir() if not path.name.startswith(".")]
        counts = {
            "seed": seed,
            "jobs": jobs,
            "generations": server.generations,
            "images": len(images),
            "posts": sum(server.posted.values()),
            "gets": server.gets,
            "runs": runs,
            "events": happened,
            "resumes_with_resend_ambiguous": resumes_with_resend,
            "torn_lines_repaired": torn,
            "seconds": round(time.monotonic() - started, 1),
        }
        print("chaos counts:", counts)
        assert server.generations == jobs  # nothing paid for twice...
        assert len(images) == jobs  # ...and every job's image saved
        assert set(server.answered) == set(prompts)
        assert all(count == 1 for count in server.answered.values())
        assert {rec.status for rec in final.values()} == {"done"}
        assert len(final) == jobs
        for job_id, rec in final.items():
            _, png = server.image_for(prompt_of[job_id])
            # The image as the API sent it, with its recipe added (a resumed download takes
            # it from the manifest).
            saved = out / str(rec.file)
            recipe = read_recipe(saved)
            assert recipe is not None, job_id
            assert saved.read_bytes() == embed(png, recipe), job_id
    assert check_whole(out) == 0  # the last run left no torn line
    assert not list(out.rglob("*.part"))
    return counts


def start(command: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "ONEROUTER_API_KEY": API_KEY}
    env.pop("REVE_REMIX_BASE_URL", None)
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def apply(event, process, command, gate, server, out, prompt_of) -> bool:
    """Hit ``process`` with ``event`` once a request is in flight; whether it could be.

    Each event acts while holding the server's gate: no POST is answered meanwhile, so the run
    is where the event finds it (a second run sees the first alive; a folder fails before the
    answers arrive).
    """
    if not in_flight(process, server):
        return False
    if event == "sigkill":
        return kill_outside_the_paid_window(process, gate, server, out, prompt_of)
    with gate:
        if process.poll() is not None:
            return False
        if event == "sigterm":
            process.send_signal(signal.SIGTERM)
        elif event == "second-run":
            second = start(command)
            try:
                _, stderr = second.communicate(timeout=WAIT)
            finally:
                if second.poll() is None:
                    second.kill()
                    second.communicate()
            assert second.returncode == 1, stderr
            assert "is in use by process" in stderr  # it sent nothing and named the holder
            process.send_signal(signal.SIGTERM)  # leave jobs for the next events
        elif event == "output-fails":  # the output folder becomes a file: every save fails
            folder = out / "img"
            folder.mkdir(parents=True, exist_ok=True)
            folder.rename(out / "img.moved")
            folder.write_text("not a folder any more")
    return True


def heal(out: Path) -> None:
    """Undo an ``output-fails``: the folder back where it was, with what was saved in it."""
    moved = out / "img.moved"
    if moved.exists():
        (out / "img").unlink()
        moved.rename(out / "img")


def in_flight(process, server) -> bool:
    """Wait until ``process`` has a request out (or has ended: then ``False``)."""
    posts = sum(server.posted.values())
    deadline = time.monotonic() + WAIT
    while sum(server.posted.values()) == posts:
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def kill_outside_the_paid_window(process, gate, server, out, prompt_of) -> bool:
    """SIGKILL ``process`` while no 200 it was sent lacks its ``paid`` record.

    A busy machine may take seconds to write a record; only after ``WAIT`` does it kill anyway.
    """
    give_up = time.monotonic() + WAIT
    while True:
        with gate:  # no POST is answered while this is held
            if process.poll() is not None:
                return False
            if not unrecorded_answers(server, out, prompt_of) or time.monotonic() > give_up:
                process.send_signal(signal.SIGKILL)
                process.wait()
                # The kernel has closed its sockets: wait until the server can see it.
                time.sleep(0.01)
                return True
        time.sleep(0.002)


def unrecorded_answers(server, out, prompt_of) -> list[str]:
    """Jobs the server answered 200 whose latest record is not yet ``paid`` or ``done``."""
    state = manifest_state(out)
    answered = {prompt for prompt, count in server.answered.items() if count}
    return [
        job_id
        for job_id, prompt in prompt_of.items()
        if prompt in answered and (job_id not in state or state[job_id].status == "sent")
    ]


def manifest_state(out: Path) -> dict[str, JobRecord]:
    path = out / "manifest.jsonl"
    if not path.exists():
        return {}
    state = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        record = JobRecord.from_json(line) if line.strip() else None
        if record is not None:
            state[record.id] = record
    return state


def check_whole(out: Path) -> int:
    """Assert every complete manifest line is a record; return 1 if the last line is torn."""
    path = out / "manifest.jsonl"
    if not path.exists():
        return 0
    *complete, last = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(complete, start=1):
        assert JobRecord.from_json(line) is not None, f"manifest line {number}: {line!r}"
    return 1 if last else 0
