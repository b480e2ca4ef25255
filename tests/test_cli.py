"""The ``reve-remix`` command line against the mock server.

Most tests call ``main([...])`` in this process (fast, and measured by coverage); a few run a real
process where only one will do: the console script, Ctrl-C, a terminal, a server until stopped.
"""

from __future__ import annotations

import errno
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from reve_remix._progress import RetryNotices, bar_line, format_duration, spinner_line
from reve_remix._retry import RetryEvent
from reve_remix._spec import spec
from reve_remix.testing import Fault, MockServer

from . import conftest
from .conftest import API_KEY, IMAGE_URL, WAIT, RefusedPort, child

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SAMPLES = Path(__file__).parents[1] / "reve_remix" / "_samples"


def cli_env(key=API_KEY, **extra):
    env = {name: value for name, value in os.environ.items() if name != "REVE_REMIX_BASE_URL"}
    env.pop("ONEROUTER_API_KEY", None)
    if key is not None:
        env["ONEROUTER_API_KEY"] = key
    env.update(extra)
    return env


def cli_command(*args):
    return [sys.executable, "-m", "reve_remix", *args]


def run_cli(*args, cwd, server=None, key=API_KEY, env=None):
    """``reve-remix ARGS`` in this process, against ``server`` if given (key never printed)."""
    if server is not None:
        args = (*args, "--base-url", server.base_url)
    return conftest.run_cli(*args, cwd=cwd, key=key, env=env)


def remix(prompt, options, **kwargs):
    """``reve-remix remix PROMPT OPTIONS``, the options written as on a command line."""
    return run_cli("remix", prompt, *options.split(), **kwargs)


def posts(server):
    return [request for request in server.requests if request.method == "POST"]


@pytest.fixture
def workdir(tmp_path):
    """A folder holding cat.png and sofa.jpg, as a user's folder of photos would."""
    for name in ("cat.png", "sofa.jpg"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    return tmp_path


# --- remix ---------------------------------------------------------------------------------------


def test_remix_saves_the_image_and_prints_its_path(server, workdir):
    completed = remix("<img>0</img> as a watercolour", "-i cat.png", cwd=workdir, server=server)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""  # not a terminal: nothing decorative
    saved = completed.stdout.strip()
    assert re.fullmatch(r"as-a-watercolour-\d{8}T\d{6}Z\.png", saved), saved
    assert (workdir / saved).read_bytes().startswith(PNG_SIGNATURE)
    [sent] = posts(server)
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.json["image_urls"][0].startswith("data:image/png;base64,")


def test_remix_json_prints_one_object(server, workdir):
    options = "-i cat.png -o out/ --json --aspect-ratio 16:9"
    completed = remix("<img>0</img> at night", options, cwd=workdir, server=server)
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert set(summary) == {"path", "url", "revised_prompt", "created", "request_id"}
    assert summary["path"].startswith("out/")
    assert summary["url"].startswith(server.base_url)
    assert summary["revised_prompt"] == "image 0 at night"
    assert isinstance(summary["created"], int)
    assert summary["request_id"].startswith("req_")
    with Image.open(workdir / summary["path"]) as image:
        assert image.size == (160, 90)
    assert posts(server)[0].json["aspect_ratio"] == "16:9"


def test_remix_b64_json_needs_no_download_and_adds_the_extension(server, workdir):
    options = "-i cat.png --format b64_json -o snow --json"
    completed = remix("<img>0</img> in snow", options, cwd=workdir, server=server)
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["path"] == "snow.png"
    assert summary["url"] is None
    assert (workdir / "snow.png").read_bytes().startswith(PNG_SIGNATURE)
    assert [request.method for request in server.requests] == ["POST"]


def test_named_images_become_numbered_tags(server, workdir):
    options = f"-i sofa=sofa.jpg -i cat={IMAGE_URL}"
    completed = remix("Put {cat} on {sofa}", options, cwd=workdir, server=server)
    assert completed.returncode == 0, completed.stderr
    sent = posts(server)[0].json
    assert sent["prompt"] == "Put <img>0</img> on <img>1</img>"
    assert sent["image_urls"][0] == IMAGE_URL
    assert sent["image_urls"][1].startswith("data:image/jpeg;base64,")


def test_a_url_with_an_equals_sign_is_not_a_name(server, workdir):
    url = "https://example.com/render?id=42&size=large"
    completed = remix("<img>0</img> again", f"-i {url}", cwd=workdir, server=server)
    assert completed.returncode == 0, completed.stderr
    assert posts(server)[0].json["image_urls"] == [url]


def test_mixing_named_and_unnamed_images_is_a_usage_error(server, workdir):
    options = "-i cat=cat.png -i sofa.jpg"
    completed = remix("{cat} on <img>1</img>", options, cwd=workdir, server=server)
    assert completed.returncode == 2
    assert "name every image" in completed.stderr
    assert not server.requests


def test_an_existing_file_is_kept_unless_force(server, workdir):
    (workdir / "out.png").write_bytes(b"precious")
    refused = remix("<img>0</img> x", "-i cat.png -o out.png", cwd=workdir, server=server)
    assert refused.returncode == 2
    assert "out.png already exists; pass --force" in refused.stderr
    assert not server.requests  # refused before anything was paid for
    assert (workdir / "out.png").read_bytes() == b"precious"

    forced = remix("<img>0</img> x", "-i cat.png -o out.png --force", cwd=workdir, server=server)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() == "out.png"
    assert (workdir / "out.png").read_bytes().startswith(PNG_SIGNATURE)


def test_missing_key_names_the_variable_and_sends_nothing(server, workdir):
    completed = remix("<img>0</img> x", "-i cat.png", cwd=workdir, server=server, key=None)
    assert completed.returncode == 2
    assert "ONEROUTER_API_KEY" in completed.stderr
    assert len(completed.stderr.splitlines()) == 1
    assert not server.requests


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "check that ONEROUTER_API_KEY holds a valid"),
        (402, "out of credits"),
        (413, "each image must be less than 1.5 MB (1,500,000 bytes); the largest here is cat.png"),
        (503, "try again in a moment"),
        (403, "this key may not do this: check its permissions and the --model"),
        (404, "check --base-url (or REVE_REMIX_BASE_URL) and --model"),
        (429, "still rate limited after retrying"),
    ],
)
def test_api_errors_are_one_line_with_a_hint(server, workdir, status, hint):
    server.enqueue(Fault(status=status))
    options = "-i cat.png --max-retries 0"
    completed = remix("<img>0</img> x", options, cwd=workdir, server=server)
    assert completed.returncode == 1
    [line] = completed.stderr.splitlines()
    assert line.startswith(f"reve-remix: error: {status} ")
    assert hint in line
    assert "(request id req_" in line
    assert completed.stdout == ""


def test_an_answer_that_breaks_the_spec_asks_for_a_report(server, workdir):
    server.enqueue(Fault(status=200, body=b"[]", headers={"Content-Type": "application/json"}))
    completed = remix("<img>0</img> x", "-i cat.png", cwd=workdir, server=server)
    assert completed.returncode == 1
    [line] = completed.stderr.splitlines()
    assert line.endswith("please report it with the request id")


def test_an_extension_that_is_not_the_images_format_gets_a_warning(server, workdir):
    completed = remix("<img>0</img> x", "-i cat.png -o out.jpg", cwd=workdir, server=server)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == "reve-remix: warning: out.jpg holds PNG data\n"
    assert (workdir / "out.jpg").read_bytes().startswith(PNG_SIGNATURE)  # saved where asked


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["batch", "jobs.jsonl", "--out", "o", "--concurrency", "x"], "not a number: 'x'"),
        (["batch", "jobs.jsonl", "--out", "o", "--concurrency", "0"], "must be at least 1 and"),
        # Each of these was accepted: a billion threads' worth of loop, hours of retries, the
        # current folder, a model name with a newline sent as is.
        (
            ["batch", "j", "--out", "o", "--concurrency", "1000000000"],
            "at most 256, got 1000000000",
        ),
        (["batch", "j", "--out", "o", "--max-retries", "99999999"], "at most 100, got 99999999"),
        (["batch", "j", "--out", ""], "--out: expected a folder, got an empty string"),
        (["remix", "x", "-i", "a.png", "--model", "a\nb"], "character 2 is a control character"),
        (["mock", "--latency", "nan"], "must be a finite number, got nan"),
        (["mock", "--port", "70000"], "must be at least 0 and at most 65535, got 70000"),
        (["remix", "x", "-i", "a.png", "--timeout", "soon"], "not a number: 'soon'"),
    ],
)
def test_numbers_are_checked_by_the_parser(tmp_path, args, message):
    completed = run_cli(*args, cwd=tmp_path)
    assert completed.returncode == 2
    assert message in completed.stderr
    # One line, naming the command and its --help: not argparse's whole usage first.
    assert completed.stderr.count("\n") == 1
    assert completed.stderr.startswith(f"reve-remix {args[0]}: error: ")
    assert completed.stderr.endswith(f"(see 'reve-remix {args[0]} --help')\n")


def test_debug_shows_the_traceback_but_never_the_key(server, workdir):
    server.enqueue(Fault(status=401))
    completed = remix("<img>0</img> x", "-i cat.png --debug", cwd=workdir, server=server)
    assert completed.returncode == 1
    assert "Traceback (most recent call last)" in completed.stderr
    assert "AuthenticationError" in completed.stderr
    assert f"{spec().path} (attempt 1)" in completed.stderr  # the debug log
    # run_cli has checked that the key appears in neither stream.


def test_validation_errors_exit_2_before_sending(server, workdir):
    (workdir / "huge.png").write_bytes(PNG_SIGNATURE + bytes(1_600_000))
    cases = [
        ("<img>3</img> x", "-i cat.png", "there is no image 3"),
        ("<img>0</img> x", "-i missing.png", "'missing.png' is neither"),
        ("<img>0</img> x", "-i huge.png", "too large; each image must be less than 1.5 MB"),
        ("<img>0</img> x", "-i cat.png --aspect-ratio 5:4", "invalid choice: '5:4'"),
        ("<img>0</img> x", "-i cat.png --timeout -1", "expected seconds above 0"),
    ]
    for prompt, options, message in cases:
        completed = remix(prompt, options, cwd=workdir, server=server)
        assert completed.returncode == 2, options
        assert message in completed.stderr, completed.stderr
    huge = remix("<img>0</img> x", "-i huge.png", cwd=workdir, server=server)
    assert "use --fit" in huge.stderr
    assert not server.requests


def test_a_network_error_exits_1_with_a_hint(workdir):
    with RefusedPort() as refused:
        options = f"-i cat.png --base-url http://127.0.0.1:{refused.port} --max-retries 0"
        completed = remix("<img>0</img> x", options, cwd=workdir)
    assert completed.returncode == 1
    assert "could not talk to the API" in completed.stderr


def test_retries_are_plain_lines_when_stderr_is_not_a_terminal(server, workdir):
    server.enqueue(Fault(status=429, headers={"Retry-After": "0"}))
    completed = remix("<img>0</img> x", "-i cat.png", cwd=workdir, server=server)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == "reve-remix: rate limited; retrying in 0.0 s (retry 1 of 8)\n"


def read_terminal(process, master):
    """Everything the process writes to the terminal ``master`` until it exits."""
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], WAIT)
        if not ready:  # the caller's child() ends the process
            raise AssertionError(f"no output for {WAIT} s; so far: {output!r}")
        try:
            chunk = os.read(master, 4096)
        except OSError as exc:  # EIO: the terminal's other end is closed
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=WAIT)
    return output.decode()


def test_on_a_terminal_a_live_line_shows_elapsed_time_and_retry_waits(workdir):
    pty = pytest.importorskip("pty", reason="needs a POSIX pseudo-terminal")
    with MockServer(latency=0.4) as server:
        server.enqueue(Fault(status=429, headers={"Retry-After": "1"}))
        master, slave = pty.openpty()
        options = f"-i cat.png --base-url {server.base_url}"
        command = cli_command("remix", "<img>0</img> x", *options.split())
        with child(
            command, cwd=workdir, env=cli_env(), stdout=subprocess.PIPE, stderr=slave
        ) as process:
            os.close(slave)
            try:
                terminal = read_terminal(process, master)
            finally:
                os.close(master)
            stdout = process.stdout.read().decode()
    assert process.returncode == 0, terminal
    assert "remixing… " in terminal
    assert "rate limited, retrying in 1 s" in terminal
    assert "\r\x1b[2K" in terminal
    assert terminal.endswith("\r\x1b[2K")  # the live line is cleared at the end
    assert API_KEY not in terminal
    assert stdout.strip().endswith(".png")


@pytest.mark.usefixtures("signals_as_at_a_terminal")
def test_ctrl_c_during_a_remix_exits_130(workdir):
    # The server holds the answer until it stops: the signal reaches the CLI while it waits.
    with MockServer(latency=3600) as server:
        options = f"-i cat.png --base-url {server.base_url}"
        command = cli_command("remix", "<img>0</img> x", *options.split())
        with child(
            command, cwd=workdir, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as process:
            while not server.requests:  # ready: the request is in, the CLI is waiting on it
                assert process.poll() is None, process.communicate()
                time.sleep(0.02)
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    # The request was out: it may have been generated (and billed), and the command says so.
    assert stderr.decode().splitlines() == [
        "reve-remix: warning: interrupted: job remix may have been generated (no request id, "
        "no url): the request was out when the call stopped",
        "reve-remix: interrupted",
    ]
    assert stdout == b""
    assert {path.name for path in workdir.iterdir()} == {"cat.png", "sofa.jpg"}  # nothing saved


# --- demo and mock -------------------------------------------------------------------------------


def test_demo_runs_offline_without_a_key_and_can_run_again(tmp_path):
    for _ in range(2):
        completed = run_cli("demo", cwd=tmp_path, key=None)
        assert completed.returncode == 0, completed.stderr
    assert "Put <img>0</img> on <img>1</img>, as a watercolour" in completed.stdout
    assert "Saved reve-remix-demo.png" in completed.stdout
    with Image.open(tmp_path / "reve-remix-demo.png") as image:
        assert image.format == "PNG"
        image.load()


def test_demo_without_jsonschema_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # None: "import jsonschema" fails
    for name in [name for name in sys.modules if name.startswith("reve_remix.testing")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, as in a process without it
    monkeypatch.delattr("reve_remix.testing", raising=False)
    completed = run_cli("demo", cwd=tmp_path, key=None)
    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        "reve-remix: error: the mock server needs jsonschema, which is not installed: "
        "pip install 'reve-remix[mock]'"
    ]
    assert not (tmp_path / "reve-remix-demo.png").exists()


@pytest.mark.usefixtures("signals_as_at_a_terminal")
def test_mock_serves_until_ctrl_c(tmp_path):
    command = cli_command("mock", "--port", "0")
    with child(
        command,
        cwd=tmp_path,
        env=cli_env(key=None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        first_line = process.stdout.readline()  # ready: printed once the server listens
        base_url = re.search(r"http://127\.0\.0\.1:\d+", first_line).group()
        body = {"model": "m", "prompt": "<img>0</img> x", "image_urls": [IMAGE_URL]}
        answer = httpx.post(
            f"{base_url}{spec().path}",
            json=body,
            headers={"Authorization": "Bearer sk-any"},
            timeout=60,  # a busy machine may take seconds to start answering
        )
        assert answer.status_code == 200
        image = httpx.get(answer.json()["data"][0]["url"], timeout=60)
        assert image.content.startswith(PNG_SIGNATURE)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        stdout = first_line + process.stdout.read()  # not communicate(): it skips what is buffered
        stderr = process.stderr.read()
    assert process.returncode == 0  # Ctrl-C is how the mock server is meant to stop
    assert "curl -s " in stdout
    assert "Bearer sk-placeholder" in stdout
    assert "Mock server stopped." in stdout
    assert f'"{spec().method} {spec().path} HTTP/1.1" 200' in stderr


def test_mock_on_a_busy_port_is_a_usage_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        completed = run_cli("mock", "--port", str(port), cwd=tmp_path, key=None)
    assert completed.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in completed.stderr


# --- help, version, usage ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["remix"], ["batch"], ["demo"], ["mock"]])
def test_every_help_has_an_example(tmp_path, command):
    completed = run_cli(*command, "--help", cwd=tmp_path)
    assert completed.returncode == 0
    assert "Example" in completed.stdout
    assert "reve-remix " in completed.stdout


def test_the_console_script_and_usage_errors(tmp_path):
    script = Path(sys.executable).with_name("reve-remix")
    if not script.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0
    assert version.stdout.startswith("reve-remix ")
    completed = subprocess.run([script, "remix"], capture_output=True, text=True, check=False)
    assert completed.returncode == 2
    assert "the following arguments are required: prompt, -i/--image" in completed.stderr


def test_usage_errors_exit_2(tmp_path):
    no_command = run_cli(cwd=tmp_path)
    assert no_command.returncode == 2
    assert "usage: reve-remix" in no_command.stderr
    unknown = run_cli("paint", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "invalid choice: 'paint'" in unknown.stderr


# --- the indicator's text (pure functions) -------------------------------------------------------


def test_progress_texts():
    assert spinner_line(3.0, "remixing", None) == "- remixing… 3.0 s"
    assert spinner_line(0.0, "remixing", "rate limited, retrying in 4 s").endswith(
        " · rate limited, retrying in 4 s"
    )
    assert bar_line(12, 2, 50, 10.0, None) == (
        "[######------------------] 14/50 · 2 failed · 1.4/s · ETA 26 s"
    )
    assert bar_line(0, 0, 3, 0.5, None) == "[------------------------] 0/3"
    assert format_duration(42) == "42 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(7800) == "2 h 10 min"


def test_retry_notices_count_down_from_the_on_retry_event():
    notices = RetryNotices()
    assert notices.describe() is None
    notices(RetryEvent("429 Too Many Requests", delay=4.0, retry=1, max_retries=2))
    assert notices.describe() == "rate limited, retrying in 4 s"
    notices(RetryEvent("ConnectError", delay=0.0, retry=2, max_retries=2))
    assert notices.describe() is None  # that wait is over
