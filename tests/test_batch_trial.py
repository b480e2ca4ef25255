"""What a new user's trial of ``batch`` and ``grid`` found about money, each reproduced first.

Every test runs the real command (in this process) against :class:`PaidServer`, which counts
the generations it answered (POSTs answered 200) and the downloads (GETs), so "paid once" and
"copied, not downloaded" are what a server saw:

1. one request under two ``output`` names is paid once and saved at both;
2. a batch whose images cannot be saved (the folder gone, the disk full) stops sending;
3. a dry run with a cap says which jobs the cap leaves pending, and a run sends those it said;
4. ``grid`` refused by the folder's lock has written nothing;
5. a conflict says what changed.
"""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import pytest

from reve_remix import _batch_plan
from reve_remix._identity import changed_parts
from reve_remix._lifecycle import JobState
from reve_remix._manifest import Manifest
from reve_remix._spec import spec
from reve_remix.testing import MockServer
from reve_remix.testing._png import gradient_png

from .conftest import IMAGE_URL, run_cli, until
from .paid_server import PaidServer
from .test_batch_paid import (
    b64_body,
    batch,
    held_back,
    latest,
    line,
    posted,
    seed,
    write_jobs,
)


@pytest.fixture(autouse=True)
def _fast(fast_backoff):
    """Retries in milliseconds (``run_cli`` gives each run a shell's environment and the key)."""


# --- 1. one request, two outputs --------------------------------------------------------------


@pytest.mark.parametrize("ids", [False, True], ids=["no-id", "same-id"])
def test_one_request_under_two_outputs_is_paid_once_and_saved_at_both(tmp_path, ids):
    same = {"prompt": "<img>0</img> twice", "images": [IMAGE_URL]}
    if ids:
        same["id"] = "twice"
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{**same, "output": "a.png"}, {**same, "output": "sub/b.png"}]
    )
    out = tmp_path / "out"
    a, b = out / "a.png", out / "sub" / "b.png"
    with PaidServer() as server:
        code, stdout, err = batch(server, jobs, out)
        assert code == 0, err
        assert server.generations == 1
        assert a.read_bytes() == b.read_bytes()  # the same image, recipe and all
        assert f"line 2 is the same job as line 1: generated once, also saved as {b}" in err
        assert stdout.startswith("1 done,")
        gets = server.gets

        code, stdout, err = batch(server, jobs, out)  # nothing to do: both are there
        assert code == 0, err
        assert stdout.startswith("1 done (1 in earlier runs)")
        for lost, kept in ((b, a), (a, b)):  # either file, deleted, is copied from the other
            saved = kept.read_bytes()
            lost.unlink()
            code, _, err = batch(server, jobs, out)
            assert code == 0, err
            assert lost.read_bytes() == saved
        assert (server.generations, server.gets) == (1, gets)  # paid once, downloaded once


def test_a_copy_whose_output_another_line_takes_is_refused_and_the_job_still_runs(tmp_path):
    same = {"prompt": "<img>0</img> twice", "images": [IMAGE_URL]}
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        [{**same, "output": "a.png"}, line(1, id="b"), {**same, "output": "b.png"}],
    )
    out = tmp_path / "out"
    with PaidServer() as server:
        code, _, err = batch(server, jobs, out)
        assert code == 1  # an invalid line
        assert "line 3: saves to the same file as line 2" in err
        assert server.generations == 2
    assert (out / "a.png").exists()


def test_a_copy_that_would_overwrite_a_file_no_job_wrote_waits_for_force(tmp_path):
    same = {"prompt": "<img>0</img> twice", "images": [IMAGE_URL]}
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", [{**same, "output": "a.png"}, {**same, "output": "b.png"}]
    )
    out = tmp_path / "out"
    out.mkdir()
    theirs = gradient_png(8, 8, seed=seed("theirs"))
    (out / "b.png").write_bytes(theirs)
    with PaidServer() as server:
        code, _, err = batch(server, jobs, out)
        assert code == 1
        assert f"line 2: {out / 'b.png'} exists but no finished job of this batch wrote it" in err
        assert (out / "b.png").read_bytes() == theirs  # left alone
        assert (out / "a.png").exists()  # the job itself ran
        code, _, err = batch(server, jobs, out, "--force")
        assert code == 0, err
        assert server.generations == 1  # the copy is placed, not generated again
    assert (out / "b.png").read_bytes() == (out / "a.png").read_bytes()


# --- 2. images that cannot be saved stop the batch ----------------------------------------------


def output_lines(count: int, **extra) -> list[dict]:
    return [line(n, id=f"j{n}", output=f"img/j{n}", **extra) for n in range(count)]


@pytest.mark.parametrize("fmt", ["url", "b64_json"])
def test_a_batch_whose_output_folder_goes_stops_sending_and_a_resume_saves_what_was_paid(
    tmp_path, fmt
):
    jobs = write_jobs(tmp_path / "jobs.jsonl", output_lines(6, output_format=fmt))
    out = tmp_path / "out"
    gate = threading.Lock()
    inline = b64_body(gradient_png(16, 16, seed=seed("inline"))) if fmt == "b64_json" else None
    with PaidServer(gate=gate, post_body=inline) as server:
        with held_back(server, gate, jobs, out, "--concurrency", "2") as finished:
            until(lambda: posted(server) == 2, "two requests in flight")
            (out / "img").mkdir(exist_ok=True)  # made by the first save; none was made yet
            (out / "img").rename(out / "img.moved")  # the folder goes: a file where it was
            (out / "img").write_text("not a folder any more")
        code, stdout, err = finished[0]
        assert server.generations == 2  # the two in flight; nothing sent after
        assert code == 1
        [said] = [text for text in err.splitlines() if "stopped:" in text]
        assert f"images cannot be saved ({out / 'img'} is a file, not a folder)" in said
        assert "2 paid image(s) not saved are kept" in said
        assert "run the same command again" in said
        assert "4 not started" in stdout
        paid = [r for r in latest(out).values() if r.status is JobState.PAID]
        assert len(paid) == 2
        if fmt == "url":
            assert all(r.url for r in paid)  # recoverable without paying
        else:  # the bytes kept before the save was tried
            assert all(Path(r.spool).is_file() for r in paid)

        (out / "img").unlink()
        (out / "img.moved").rename(out / "img")
        gets = server.gets
        code, stdout, err = batch(server, jobs, out)  # a plain resume
        assert code == 0, err
        assert server.generations == 6
        # the two paid ones fetched again (free) or saved from the spool, never generated again
        assert server.gets == gets + (6 if fmt == "url" else 0)
    assert len(list((out / "img").glob("j*.png"))) == 6


def test_a_full_disk_stops_the_batch_after_its_first_failed_save(tmp_path, monkeypatch):
    jobs = write_jobs(tmp_path / "jobs.jsonl", output_lines(4))
    out = tmp_path / "out"

    def full(path, data, recipe):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with PaidServer() as server:
        monkeypatch.setattr(_batch_plan, "save_image", full)
        code, stdout, err = batch(server, jobs, out, "--concurrency", "1")
        assert code == 1
        assert server.generations == 1  # not 4: every later save would fail the same way
        assert "No space left on device" in err
        assert "3 not started" in stdout
        monkeypatch.undo()
        code, _, err = batch(server, jobs, out)
        assert code == 0, err
        assert server.generations == 4


def test_a_save_that_fails_for_one_file_does_not_stop_the_batch(tmp_path, monkeypatch):
    jobs = write_jobs(tmp_path / "jobs.jsonl", output_lines(3))
    out = tmp_path / "out"
    save = _batch_plan.save_image

    def one_fails(path, data, recipe):
        if Path(path).stem == "j0":
            raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
        return save(path, data, recipe)

    monkeypatch.setattr(_batch_plan, "save_image", one_fails)
    with PaidServer() as server:
        code, _, err = batch(server, jobs, out, "--concurrency", "1")
        assert code == 1
        assert server.generations == 3  # the folder takes files: only j0's file is the problem
        assert "stopped" not in err
    assert latest(out)["j0"].status is JobState.PAID


# --- 3. a dry run under a cap says which jobs are left -----------------------------------------


def test_a_dry_run_under_a_cap_names_the_jobs_it_leaves_and_the_run_sends_the_others(tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    out = tmp_path / "out"
    with PaidServer(post_latency=0.2) as server:  # answers take a while: the workers overlap
        assert batch(server, write_jobs(jobs, [line(1, id="j1")]), out)[0] == 0  # done before
        write_jobs(jobs, [line(n, id=f"j{n}") for n in range(6)])
        code, stdout, _ = batch(server, jobs, out, "--dry-run", "--max-generations", "2")
        assert code == 1
        rows = stdout.splitlines()
        assert rows[:6] == [
            "send     j0 (line 1)",
            "skip     j1 (line 2)",
            "send     j2 (line 3)",
            "pending  j3 (line 4): left pending by --max-generations 2",
            "pending  j4 (line 5): left pending by --max-generations 2",
            "pending  j5 (line 6): left pending by --max-generations 2",
        ]
        code, stdout, _ = batch(server, jobs, out, "--dry-run", "--json", "--max-generations", "2")
        planned = json.loads(stdout)
        capped = [job["id"] for job in planned["jobs"] if job.get("capped")]
        assert capped == ["j3", "j4", "j5"]
        assert planned["left_pending"] == 3
        assert posted(server) == 1

        code, _, _ = batch(server, jobs, out, "--concurrency", "4", "--max-generations", "2")
        assert code == 1
        sent = {prompt for prompt, count in server.posted.items() if count}
        assert sent == {line(n)["prompt"] for n in (0, 1, 2)}  # what the dry run said
        assert server.generations == 3
        assert set(latest(out)) == {"j0", "j1", "j2"}  # the others were not even started


# --- 4. grid refused by the lock writes nothing -------------------------------------------------


def test_a_grid_refused_by_the_folders_lock_writes_nothing(tmp_path):
    cat = tmp_path / "cat.png"
    cat.write_bytes(gradient_png(16, 16, seed=seed("grid-cat")))
    out = tmp_path / "grid"
    out.mkdir()
    before = b'{"prompt": "<img>0</img> another run\'s", "images": ["x.png"]}\n'
    (out / "jobs.jsonl").write_bytes(before)
    args = [
        "grid", "{cat} in {style}", "-i", f"cat={cat}", "--axis", "style=ink,oil", "--out", out,
    ]  # fmt: skip
    with MockServer() as server, Manifest(out) as holder:
        holder.open()  # another run holds the folder
        code, _, err = run_cli(*args, "--base-url", server.base_url)
        assert code == 1
        assert "is in use by process" in err
        assert not server.requests
    assert (out / "jobs.jsonl").read_bytes() == before
    assert not (out / "grid.png").exists()
    assert not (out / "index.html").exists()


# --- 5. a conflict says what changed --------------------------------------------------------------


def test_a_conflict_names_what_changed(tmp_path):
    cat = tmp_path / "cat.png"
    cat.write_bytes(gradient_png(16, 16, seed=seed("conflict-cat")))
    jobs = tmp_path / "jobs.jsonl"
    out = tmp_path / "out"
    ratios = spec().aspect_ratios
    first = {"prompt": "<img>0</img> c", "images": ["cat.png"], "id": "cat"}
    with PaidServer() as server:
        write_jobs(jobs, [{**first, "aspect_ratio": ratios[0]}])
        assert batch(server, jobs, out).returncode == 0
        cases = [
            ({**first, "prompt": "<img>0</img> changed", "aspect_ratio": ratios[0]}, "prompt"),
            ({**first, "aspect_ratio": ratios[1]}, "aspect_ratio"),
            ({**first, "images": [IMAGE_URL], "aspect_ratio": ratios[0]}, "image 0"),
            (
                {**first, "prompt": "<img>0</img> changed", "images": [IMAGE_URL]},
                "prompt, image 0, aspect_ratio",
            ),
        ]
        for changed, names in cases:
            write_jobs(jobs, [changed])
            code, _, err = batch(server, jobs, out)
            assert code == 1
            assert f"for another request (changed: {names})" in err, err
        assert server.generations == 1


def test_a_conflict_with_a_record_from_before_parts_were_kept_says_only_changed(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [line(0, id="old")])
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").write_bytes(gradient_png(8, 8, seed=seed("old")))
    old = {"id": "old", "status": "done", "fingerprint": "0" * 32, "file": "old.png"}
    (out / "manifest.jsonl").write_text(json.dumps(old) + "\n")
    with PaidServer() as server:
        code, _, err = batch(server, jobs, out)
        assert code == 1
        assert "for another request (changed; this record is too old to say what)" in err
        assert server.generations == 0


def test_changed_parts_compares_what_each_record_kept():
    assert changed_parts('{"a":"1","b":"2"}', '{"a":"1","b":"3","c":"4"}') == ["b", "c"]
    assert changed_parts(None, '{"a":"1"}') is None  # an old record: nothing to compare
    assert changed_parts('{"a":"1"}', '{"a":"1"}') is None  # nothing differs: cannot say
    assert changed_parts("not json", '{"a":"1"}') is None
