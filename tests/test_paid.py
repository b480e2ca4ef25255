"""Once the API answers 200 the image is paid for: never lost, never paid for again.

Each test plays one way a paid image could be lost or paid for twice (a failed or killed
download, two jobs on one target, a bad output found after paying, an odd 200 body, a body that
is not an image, a redirect, a closed client, a lone surrogate) over real loopback HTTP, against
a :class:`PaidServer` whose result downloads fail on demand.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import httpx
import pytest
from reve_remix_api.types import UNSET

from reve_remix import (
    APIResponseValidationError,
    AsyncReveRemix,
    ImageNotSavedError,
    ReveRemix,
    ReveRemixError,
)
from reve_remix._download import DOWNLOAD_MAX_RETRIES, Downloader
from reve_remix._ledger import JobRecord
from reve_remix._results import parse_response
from reve_remix._spec import spec

from .conftest import API_KEY, IMAGE_URL, WAIT, child, run_cli, until
from .paid_server import PaidServer

PNG = b"\x89PNG\r\n\x1a\n"
PROMPT = "<img>0</img> in the rain"


@pytest.fixture(autouse=True)
def key_and_fast_backoff(monkeypatch, fast_backoff):
    monkeypatch.setenv("ONEROUTER_API_KEY", API_KEY)
    monkeypatch.delenv("REVE_REMIX_BASE_URL", raising=False)


def write_jobs(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def job_line(n, **extra):
    return {"prompt": f"<img>0</img> job {n}", "images": [IMAGE_URL], **extra}


def records(out_dir):
    text = (out_dir / "manifest.jsonl").read_text(encoding="utf-8")
    return [JobRecord.from_json(line) for line in text.splitlines() if line.strip()]


def latest(out_dir):
    return {record.id: record for record in records(out_dir)}


def batch(server, jobs_file, out_dir, *extra):
    """``reve-remix batch`` in this process (``run_cli`` checks the key is never printed)."""
    return run_cli("batch", jobs_file, "--out", out_dir, "--base-url", server.base_url, *extra)


# --- 1. a download that fails is paid, not failed; the resume downloads, never generates ---------


def test_a_failed_download_is_recorded_paid_and_resumed_without_paying(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [job_line(0, id="a"), job_line(1, id="b")])
    out = tmp_path / "out"
    with PaidServer(downloads=lambda rng: "503") as server:
        code, _, err = batch(server, jobs, out, "--concurrency", "1")
        assert server.gets == 2 * (1 + DOWNLOAD_MAX_RETRIES)  # each download retried
        assert server.generations == 2
    assert code == 1
    for job_id in ("a", "b"):
        record = latest(out)[job_id]
        assert record.status == "paid"
        assert record.url
        assert record.request_id
        assert f"generated, not saved {job_id} (line" in err
        assert f"request id {record.request_id}, url {record.url}" in err
    with PaidServer() as healthy:
        # The URLs point at the first server's port: serve the same files on the new one.
        for record in latest(out).values():
            healthy.image_for(f"<img>0</img> job {'ab'.index(record.id)}")
        rewrite_urls(out, healthy.base_url)
        code, stdout, err = batch(healthy, jobs, out)
        assert healthy.generations == 0  # nothing generated again
        assert healthy.gets == 2
    assert code == 0, err
    assert stdout.startswith("2 done")
    assert all(record.status == "done" for record in latest(out).values())
    assert (out / "a.png").read_bytes().startswith(PNG)


def rewrite_urls(out_dir, base_url):
    """Move every recorded URL to ``base_url`` (the test's CDN moved to another port)."""
    path = out_dir / "manifest.jsonl"
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        value = json.loads(line)
        if value.get("url"):
            value["url"] = base_url + "/files/" + value["url"].rsplit("/", 1)[1]
        lines.append(json.dumps(value))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --- 2. SIGKILL while the paid image downloads --------------------------------------------------


def test_sigkill_during_the_download_leaves_it_paid_and_the_resume_downloads(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [job_line(n) for n in range(3)])
    out = tmp_path / "out"
    env = {**os.environ, "ONEROUTER_API_KEY": API_KEY}
    with PaidServer(downloads=lambda rng: "slow") as server:
        command = [sys.executable, "-m", "reve_remix", "batch", str(jobs), "--out", str(out)]
        command += ["--base-url", server.base_url, "--concurrency", "3"]
        with child(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
            until(lambda: server.gets >= 3, "three downloads")
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=WAIT)
        assert server.generations == 3
        assert {record.status for record in latest(out).values()} == {"paid"}
        server.chooser = lambda rng: "ok"
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WAIT)
        assert resumed.returncode == 0, resumed.stderr
        assert server.generations == 3  # the resume downloaded, and generated nothing
    assert {record.status for record in latest(out).values()} == {"done"}
    assert len(list(out.glob("*.png"))) == 3
    assert not list(out.glob(".*.part"))  # the killed run's temporary files are gone


# --- 3. two jobs, one file ----------------------------------------------------------------------


def test_jobs_sharing_a_target_are_refused_naming_both_lines(tmp_path):
    lines = [
        job_line(0, id="cat"),
        job_line(1, output="cat.png"),
        job_line(2, output="dog"),
        job_line(3, output="dog.png"),
        job_line(4, id="fine"),
    ]
    jobs = write_jobs(tmp_path / "jobs.jsonl", lines)
    out = tmp_path / "out"
    with PaidServer() as server:
        code, _, err = batch(server, jobs, out, "--strict")
        assert (code, server.generations) == (2, 0)
        assert "line 2: saves to the same file as line 1" in err
        assert "line 4: saves to the same file as line 3" in err
        code, _, err = batch(server, jobs, out)
        assert code == 1
        assert server.generations == 3  # lines 1, 3 and 5; never the clashing 2 and 4
    assert sorted(path.name for path in out.glob("*.png")) == ["cat.png", "dog.png", "fine.png"]
    assert {record.line for record in records(out)} == {1, 3, 5}


def test_a_target_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "sub").symlink_to(tmp_path / "elsewhere")
    jobs = write_jobs(tmp_path / "jobs.jsonl", [job_line(0, output="sub/x.png")])
    with PaidServer() as server:
        code, _, err = batch(server, jobs, out, "--strict")
        assert server.generations == 0
    assert code == 2
    assert "leads outside" in err


# --- 4. where the output goes is checked before paying -------------------------------------------


@pytest.mark.parametrize("option", ["afile/out.png", "afile/sub/"])
def test_remix_checks_the_output_before_paying(tmp_path, option):
    (tmp_path / "afile").write_text("a file, not a folder")
    with PaidServer() as server:
        code, _, err = run_cli(
            "remix", PROMPT, "-i", IMAGE_URL, "-o", tmp_path / option,
            "--base-url", server.base_url,
        )  # fmt: skip
        assert server.generations == 0
    assert code == 2
    assert "is a file, not a folder; nothing was sent" in err


def test_batch_checks_out_and_the_manifest_before_paying(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [job_line(0)])
    (tmp_path / "afile").write_text("a file")
    blocked = tmp_path / "out"
    (blocked / "manifest.jsonl").mkdir(parents=True)  # the manifest cannot be opened
    with PaidServer() as server:
        code, _, err = batch(server, jobs, tmp_path / "afile" / "out")
        assert code == 2
        assert "is a file, not a folder" in err
        code, _, err = batch(server, jobs, blocked)
        assert code == 2
        assert "cannot write the manifest" in err
        assert "nothing was sent" in err
        assert server.generations == 0


def test_a_save_that_fails_after_the_200_names_the_request_and_url(tmp_path, make_twin):
    (tmp_path / "afile").write_text("a file")
    with PaidServer() as server:
        client = make_twin(api_key=API_KEY, base_url=server.base_url)
        result = client.remix(PROMPT, [IMAGE_URL])
        with pytest.raises(ImageNotSavedError) as info:
            client.call(result, "save", tmp_path / "afile" / "out.png")
    error = info.value
    assert str(error).startswith(
        f"the image was generated (request id {result.request_id}, url {result.image.url}) "
        "but not saved: "
    )
    assert (error.request_id, error.url) == (result.request_id, result.image.url)
    assert isinstance(error.cause, OSError)


# --- 5. a 200 the SDK cannot fully read ---------------------------------------------------------


@pytest.mark.parametrize(
    "created", [1732480000.5, "1732480000", "2024-11-24T20:26:40+00:00", None, "soon", True]
)
def test_fields_the_sdk_does_not_need_never_lose_the_image(created):
    # Fields no spec will define: the vendor's next ones (a seed, usage) may be declared by then.
    item = {"url": "https://cdn.example.com/a.png", "revised_prompt": None, "x_seed": 7}
    body = {"created": created, "data": [item], "x_usage": {"images": 1}}
    before = int(time.time())
    result = parse(json.dumps(body).encode())
    assert result.image.url == "https://cdn.example.com/a.png"
    assert result.image.revised_prompt is None
    if created in (1732480000.5, "1732480000", "2024-11-24T20:26:40+00:00"):
        assert result.created == 1732480000
    else:
        assert before <= result.created <= time.time()  # unreadable: when it arrived
    assert result.raw.additional_properties == {"x_usage": {"images": 1}}
    assert result.image.raw.additional_properties == {"x_seed": 7}


@pytest.mark.parametrize("wrong", [7, 1.5, ["a"], {"text": "a"}, True])
def test_a_field_of_the_wrong_type_is_dropped_and_the_image_kept(wrong):
    item = {"url": "https://cdn.example.com/a.png", "revised_prompt": wrong, "b64_json": wrong}
    result = parse(json.dumps({"created": 1, "data": [item]}).encode())
    assert result.image.url == "https://cdn.example.com/a.png"
    assert result.image.revised_prompt is None
    assert result.image.b64_json is None
    # The generated model gets only fields that fit its types: ``raw`` is typed as it says.
    assert result.image.raw.revised_prompt is UNSET
    assert result.image.raw.b64_json is UNSET
    assert result.image.raw.additional_properties == {}


def parse(content, status=200):
    request = httpx.Request("POST", f"https://api.test{spec().path}")
    response = httpx.Response(
        status, content=content, request=request, headers={"x-request-id": "req-9"}
    )
    return parse_response(response, Downloader(httpx.Client()))


def test_an_item_without_an_image_is_never_chosen_over_the_paid_one():
    stray = {"revised_prompt": "no image here"}
    body = {"created": 1, "data": [stray, {"url": "https://cdn.example.com/a.png"}]}
    result = parse(json.dumps(body).encode())
    assert len(result.images) == 2
    assert result.image.url == "https://cdn.example.com/a.png"


def test_a_2xx_without_images_carries_the_raw_body_and_says_it_was_paid():
    with pytest.raises(APIResponseValidationError) as info:
        parse(b"<html>bad gateway</html>")
    assert info.value.body == "<html>bad gateway</html>"
    assert info.value.request_id == "req-9"
    assert "the image was generated" in str(info.value)


def test_results_keep_no_response(tmp_path):
    request = httpx.Request("POST", f"https://api.test{spec().path}", content=b"x" * 100_000)
    response = httpx.Response(
        200, content=b'{"created": 1, "data": [{"url": "https://a/b.png"}]}', request=request
    )
    gone = weakref.ref(response)
    result = parse_response(response, Downloader(httpx.Client()))
    del response, request
    gc.collect()
    assert gone() is None  # neither the response nor the request body lives on in the result
    assert result.status_code == 200
    assert result.image.url == "https://a/b.png"


def test_batch_records_an_unreadable_200_as_paid_and_holds_it(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [job_line(0, id="x")])
    out = tmp_path / "out"
    with PaidServer(post_body=b"<html>oops</html>") as server:
        code, _, err = batch(server, jobs, out)
        assert code == 1
        [*_, record] = records(out)
        assert record.status == "paid"
        assert record.body == "<html>oops</html>"
        code, _, err = batch(server, jobs, out)  # a plain resume: not paid again
        assert code == 1
        assert "held x (line 1)" in err
        assert "--regenerate-paid" in err
        assert server.generations == 1
        server.post_body = None
        code, _, err = batch(server, jobs, out, "--regenerate-paid")
        assert code == 0, err
        assert server.generations == 2  # asked for explicitly


# --- 6. HTML, empty bodies, redirects -----------------------------------------------------------


@pytest.mark.parametrize("fault", ["html", "empty"])
def test_a_body_that_is_not_an_image_is_never_saved(tmp_path, fault):
    with PaidServer(downloads=lambda rng: fault) as server:
        code, _out, err = run_cli(
            "remix", PROMPT, "-i", IMAGE_URL, "-o", tmp_path / "o.png",
            "--base-url", server.base_url,
        )  # fmt: skip
        assert server.gets == 1 + DOWNLOAD_MAX_RETRIES
    assert code == 1
    assert not (tmp_path / "o.png").exists()
    assert list(tmp_path.iterdir()) == []
    assert "the image was generated (request id req-" in err
    assert "is not a PNG, JPEG, WebP, AVIF or HEIF image" in err
    assert "--base-url" not in err


def test_a_redirect_is_followed_without_the_key(tmp_path, make_twin):
    with PaidServer(downloads=["redirect"]) as server:
        plain = make_twin(api_key=API_KEY)  # only to make the keyed httpx client of its kind
        keyed = plain.http_client(headers={"Authorization": f"Bearer {API_KEY}"})
        client = make_twin(api_key=API_KEY, base_url=server.base_url, http_client=keyed)
        client.call(client.remix(PROMPT, [IMAGE_URL]), "save", tmp_path / "o.png")
        gets = [headers for method, _, headers in server.headers if method == "GET"]
    assert (tmp_path / "o.png").read_bytes().startswith(PNG)
    assert len(gets) == 2  # the 302, then the file
    assert all("Authorization" not in headers for headers in gets)


def test_a_drip_ends_at_the_deadline_not_never(make_twin):
    with PaidServer(downloads=lambda rng: "slow") as server:
        twin = make_twin(api_key=API_KEY)
        downloader = Downloader(twin.http_client(), max_retries=5, deadline=0.5)
        with pytest.raises(ReveRemixError, match="deadline"):
            twin.call(downloader, "download", f"{server.base_url}/files/{server.image_for('x')[0]}")
        assert server.gets == 1  # no time left for another attempt


# --- 7. results outlive their client ------------------------------------------------------------


def test_results_are_read_and_saved_after_the_client_is_closed(tmp_path):
    with PaidServer() as server:
        with ReveRemix(API_KEY, base_url=server.base_url) as client:
            outcomes = client.remix_many([{"prompt": PROMPT, "images": [IMAGE_URL]}])
        outcomes[0].save(tmp_path / "after.png")
        assert outcomes[0].read().startswith(PNG)

        async def remix_then_close():
            async with AsyncReveRemix(API_KEY, base_url=server.base_url) as client:
                result = await client.remix(PROMPT, [IMAGE_URL])
            await result.asave(tmp_path / "async-after.png", metadata=False)
            return result

        result = asyncio.run(remix_then_close())
        assert (tmp_path / "async-after.png").read_bytes() == result.read()
    assert (tmp_path / "after.png").read_bytes().startswith(PNG)


# --- 8. a lone surrogate from the server --------------------------------------------------------


def test_a_lone_surrogate_in_the_revised_prompt_breaks_nothing(tmp_path):
    with PaidServer(revised_prompt="cat \ud800 rain") as server:
        code, out, err = run_cli(
            "remix", PROMPT, "-i", IMAGE_URL, "-o", tmp_path / "o.png", "--json",
            "--base-url", server.base_url,
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["revised_prompt"] == "cat \ud800 rain"
        jobs = write_jobs(tmp_path / "jobs.jsonl", [job_line(0, id="s")])
        code, _, err = batch(server, jobs, tmp_path / "out")
        assert code == 0, err
    assert latest(tmp_path / "out")["s"].revised_prompt == "cat \ud800 rain"
    assert (tmp_path / "out" / "s.png").read_bytes().startswith(PNG)


def test_the_batches_guide_examples_run():
    """The self-contained examples of docs/batches.md (their own mock server) run as written.

    The ``remix_many`` example needs a key, a server and a photo: ``tests/test_readme.py`` runs it.
    """
    guide = Path(__file__).resolve().parent.parent / "docs" / "batches.md"
    text = guide.read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    examples = [block for block in blocks if "MockServer(" in block]
    assert examples
    for example in examples:
        exec(compile(example, str(guide), "exec"), {})


def test_a_run_removes_the_temporary_files_a_killed_run_left(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / ".a.png.0123456789ab.part", out / "sub" / ".b.jpg.abcdef012345.part"]
    kept = [out / ".notes.part", out / "a.png.0123456789ab.part"]  # not names write_atomic makes
    for path in stale + kept:
        path.write_bytes(b"half an image")
    jobs = write_jobs(tmp_path / "jobs.jsonl", [job_line(0, id="a")])
    with PaidServer() as server:
        code, _, err = batch(server, jobs, out)
    assert code == 0, err
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)


def test_sync_and_async_downloads_retry_the_same_way(make_twin):
    script = ["503", "drop", "truncate", "redirect"]  # three retries, then a redirect to the file
    with PaidServer(downloads=script) as server:
        name, png = server.image_for("x")
        twin = make_twin(api_key=API_KEY)
        data = twin.call(
            Downloader(twin.http_client()), "download", f"{server.base_url}/files/{name}"
        )
        assert server.gets == 5
    assert data == png
