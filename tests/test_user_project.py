"""The testing kit from a user's side: ``tests/user_project`` run by its own pytest process.

The project is copied to a temporary folder (with the sample photo and every ``python`` example
of ``docs/testing.md`` as test modules) and run with no conftest: the plugin is loaded from the
installed package's entry point, as in a user's project. Some of its tests must fail at
teardown; the outcomes are read from a JUnit report.

A cassette is recorded against a ``MockServer`` standing in for the real API (a "real key" in
the environment, as a user records), then the mock is stopped and the project replays it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reve_remix.testing import MockServer

ROOT = Path(__file__).resolve().parent.parent
USER_PROJECT = ROOT / "tests" / "user_project"
GUIDE = ROOT / "docs" / "testing.md"
CAT = ROOT / "reve_remix" / "_samples" / "cat.png"
RECORDING_KEY = "sk-or-RECORDING-KEY-0d9e8f7a6b5c"


def guide_examples() -> list[str]:
    """The guide's ``python`` code blocks; each is a complete test module."""
    text = GUIDE.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def run_pytest(project: Path, *args: str, env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Run pytest in ``project``; each test's outcome and failure text, by ``module::test``."""
    report = project / "report.xml"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.exists(), completed.stdout + completed.stderr
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        outcome, text = "passed", ""
        for kind in ("failure", "error", "skipped"):
            found = case.find(kind)
            if found is not None:
                outcome, text = kind, f"{found.get('message', '')}\n{found.text or ''}"
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = (outcome, text)
    return outcomes


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("user") / "project"
    shutil.copytree(USER_PROJECT, folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CAT, folder / "cat.png")
    for number, example in enumerate(guide_examples(), start=1):
        (folder / f"test_guide_example_{number}.py").write_text(example, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def clean_env() -> dict[str, str]:
    """The environment without anything that would point a client anywhere or change pytest."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "ONEROUTER_", "REVE_REMIX_"))
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture(scope="module")
def outcomes(project: Path, clean_env: dict[str, str]) -> dict[str, tuple[str, str]]:
    with MockServer() as stand_in:  # the "real API" the user records against, at their cost
        recording_env = {
            **clean_env,
            "ONEROUTER_API_KEY": RECORDING_KEY,
            "REVE_REMIX_BASE_URL": stand_in.base_url,
        }
        recording = sorted(
            path.name
            for path in project.glob("test_*.py")
            if "reve_remix_cassette" in path.read_text()
        )
        recorded = run_pytest(project, *recording, "--reve-remix-record=once", env=recording_env)
        api_calls = len(stand_in.requests)
        dead_url = stand_in.base_url
    assert "test_recorded.py" in recording
    assert len(recorded) == len(recording)
    assert {outcome for outcome, _ in recorded.values()} == {"passed"}, recorded
    assert api_calls == 3 + 2 * (len(recording) - 1)  # this project's test, then the guide's
    # Replay with the stand-in stopped and no key: any request that escaped would fail.
    return run_pytest(project, env={**clean_env, "REVE_REMIX_BASE_URL": dead_url})


def test_every_user_test_has_the_outcome_it_should(outcomes):
    expected_errors = {
        "test_expected_failures::test_unused_response_fails_at_teardown",
        "test_expected_failures::test_spec_violation_fails_at_teardown",
    }
    assert len(outcomes) >= 15
    assert {name for name, (outcome, _) in outcomes.items() if outcome != "passed"} == (
        expected_errors
    ), {name: text for name, (outcome, text) in outcomes.items() if outcome != "passed"}


def test_an_unused_response_fails_at_teardown_saying_how_to_opt_out(outcomes):
    outcome, text = outcomes["test_expected_failures::test_unused_response_fails_at_teardown"]
    assert outcome == "error"
    assert "1 queued response(s) were never requested" in text
    assert "assert_all_responses_were_requested=False" in text


def test_a_spec_violation_fails_at_teardown_listing_each_violation(outcomes):
    outcome, text = outcomes["test_expected_failures::test_spec_violation_fails_at_teardown"]
    assert outcome == "error"
    assert "remix request 1 of 1 breaks the API spec" in text
    assert "$.image_urls: [] should be non-empty" in text
    assert "'model' is a required property" in text


def test_every_guide_example_ran(outcomes):
    examples = len(guide_examples())
    assert examples >= 4
    modules = {name.split("::")[0] for name in outcomes if name.startswith("test_guide_example_")}
    assert len(modules) == examples  # each example holds a test, and all of them passed above


def test_the_cassette_holds_no_key_and_no_image_data(project, outcomes):
    cassette = project / "cassettes" / "test_recorded" / "test_watercolour_from_the_recording.yaml"
    text = cassette.read_text(encoding="utf-8")
    assert RECORDING_KEY not in text
    assert "authorization" not in text.lower()
    assert "data:image" not in text
    digest = hashlib.sha256(CAT.read_bytes()).hexdigest()
    assert f"sha256:{digest};size={CAT.stat().st_size};type=image/png" in text
    assert len(text) < 6000


def test_without_the_extra_pytest_still_runs_and_the_fixture_names_the_install(tmp_path, clean_env):
    shim = tmp_path / "shim"  # what a project without the `testing` extra lacks
    shim.mkdir()
    for module in ("jsonschema", "vcr"):
        (shim / f"{module}.py").write_text(f"raise ImportError(name={module!r})\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_app.py").write_text(
        "def test_unrelated():\n    pass\n\n\ndef test_mocked(reve_remix_mock):\n    pass\n"
    )
    # schemathesis, a dev tool of this project, needs jsonschema for its own plugin.
    env = {**clean_env, "PYTHONPATH": str(shim)}
    outcomes = run_pytest(project, "-p", "no:schemathesis", env=env)
    assert outcomes["test_app::test_unrelated"] == ("passed", "")
    outcome, text = outcomes["test_app::test_mocked"]
    assert outcome == "error"
    assert "needs jsonschema, which is not installed: pip install 'reve-remix[testing]'" in text
