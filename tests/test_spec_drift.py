"""The weekly spec-drift workflow and the CI that checks its pull request: valid, and run here.

Everything but the fetch and the pull request runs locally: the workflow's own
"Change report, regeneration and tests" step, taken from the YAML and run with bash in a copy
of the project, on a spec file standing in for the fetched one, with the ``python`` of this
environment (the runner's, set up with the ``dev`` extra) first on ``PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

from tests.regen_tree import (
    NEW_RESPONSE_FIELD,
    ROOT,
    copy_tree,
    vendor,
    with_response_fields,
    write_spec,
)

WORKFLOWS = ROOT / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "spec-drift.yml"
CHECK_JSONSCHEMA = [sys.executable, "-m", "check_jsonschema"]
# The copy's whole test suite: one remix through the regenerated client, not this suite again.
COPY_TEST = """
from reve_remix import ReveRemix
from reve_remix.testing import MockServer


def test_a_remix_through_the_regenerated_client():
    with MockServer() as server, ReveRemix("sk-test", base_url=server.base_url) as client:
        client.remix("<img>0</img>", ["https://example.com/a.png"]).read()
    assert ASSERTION
"""


def steps() -> dict[str, dict]:
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    return {step.get("name", step.get("uses")): step for step in workflow["jobs"]["drift"]["steps"]}


def validate(path) -> subprocess.CompletedProcess[str]:
    command = [*CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("name", ["spec-drift.yml", "ci.yml"])
def test_each_workflow_is_valid(name):
    result = validate(WORKFLOWS / name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_can_tell(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu"))
    assert validate(broken).returncode != 0


def test_the_workflow_runs_weekly_fetches_the_recorded_url_and_opens_a_pull_request():
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    assert [entry["cron"] for entry in workflow["on"]["schedule"]] == ["17 6 * * 1"]
    found = steps()
    assert "openapi/vendor.source.json" in found["Fetch the vendor's spec"]["run"]
    assert "gh pr create" in found["Open a pull request with the report"]["run"]
    assert (
        '--body-file "$RUNNER_TEMP/report.md"'
        in found["Open a pull request with the report"]["run"]
    )


def test_ci_runs_the_ci_script_on_every_push_and_pull_request_and_on_dispatch():
    workflow = YAML(typ="safe").load((WORKFLOWS / "ci.yml").read_text())
    assert {"push", "pull_request", "workflow_dispatch"} <= set(workflow["on"])
    [job] = workflow["jobs"].values()
    assert [step.get("run") for step in job["steps"]][-1] == "bash .ci/run"
    # Pushed with the workflow's own token, the drift branch starts no workflow: dispatched.
    opened = steps()["Open a pull request with the report"]["run"]
    assert 'gh workflow run ci.yml --ref "$branch"' in opened


def run_step(tree, spec, tmp_path) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """The workflow's drift step, run with bash in ``tree`` as the runner would."""
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    shutil.copy(spec, runner_temp / "vendor-spec")
    outputs = runner_temp / "outputs"
    outputs.touch()
    shim = tmp_path / "bin"  # the runner's `python`: this environment's, whatever its name
    shim.mkdir()
    (shim / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shim / "python").chmod(0o755)
    env = {  # not this run's PYTEST_* options (.ci/run's coverage floor is for this tree)
        **{name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")},
        "PATH": os.pathsep.join([str(shim), os.environ.get("PATH", "")]),
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_OUTPUT": str(outputs),
        "PYTEST_ADDOPTS": "-n 0",  # the copy's suite is one test: no pytest-xdist workers for it
        # The copy's facade and generated client, not the project's (installed editable).
        "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "generated")]),
    }
    step = steps()["Change report, regeneration and tests"]["run"]
    completed = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = outputs.read_text().splitlines()
    report = runner_temp / "report.md"
    return completed, dict(line.split("=", 1) for line in lines), report.read_text()


def copy_with_a_test(tmp_path, assertion: str = "True", name: str = "test_remix.py"):
    tree = copy_tree(tmp_path / "repo")
    (tree / "tests").mkdir()
    (tree / "tests" / "__init__.py").touch()
    (tree / "tests" / name).write_text(COPY_TEST.replace("ASSERTION", assertion))
    return tree


@pytest.fixture
def tree(tmp_path):
    return copy_with_a_test(tmp_path)


def test_a_changed_spec_gives_a_report_a_regenerated_client_and_test_results(tree, tmp_path):
    spec = write_spec(tmp_path / "fetched.json", with_response_fields(vendor()))
    completed, outputs, report = run_step(tree, spec, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert outputs == {"changed": "true", "verdict": "additive", "tests": "passed"}
    assert report.startswith("Vendor spec change: additive (0 breaking, 2 additive)")
    assert f"- response.{NEW_RESPONSE_FIELD}: added (object, optional)" in report
    assert "All tests pass on the regenerated client." in report
    model = tree / "generated" / "reve_remix_api" / "models" / "remix_response.py"
    assert NEW_RESPONSE_FIELD in model.read_text()
    assert json.loads((tree / "openapi" / "vendor.openapi.json").read_text()) == json.loads(
        spec.read_text()
    )


@pytest.mark.parametrize(
    ("name", "outcome", "shown", "not_shown"),
    [
        ("test_remix.py", "failed", "assert 'usage' == 'gone'", "## Expected to change"),
        (  # tests/test_contract.py pins today's vendor values: expected to change
            "test_contract.py",
            "contract",
            "- `tests.test_contract::test_a_remix_through_the_regenerated_client`",
            "## Tests fail",
        ),
    ],
)
def test_failing_tests_are_in_the_report(tmp_path, name, outcome, shown, not_shown):
    tree = copy_with_a_test(tmp_path, assertion="'usage' == 'gone'", name=name)
    spec = write_spec(tmp_path / "fetched.json", with_response_fields(vendor()))
    completed, outputs, report = run_step(tree, spec, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert outputs == {"changed": "true", "verdict": "additive", "tests": outcome}
    assert shown in report
    assert not_shown not in report


def test_a_regeneration_failure_is_reported_not_hidden(tree, tmp_path):
    changed = vendor()
    changed["components"] = {"schemas": {}}
    spec = write_spec(tmp_path / "fetched.json", changed)
    completed, outputs, report = run_step(tree, spec, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert outputs == {"changed": "true", "verdict": "failed", "tests": "skipped"}
    assert "## Regeneration failed" in report
    assert "the vendor now defines /components (correction 2): drop or update it" in report


def test_an_unchanged_spec_opens_no_pull_request(tree, tmp_path):
    completed, outputs, _ = run_step(tree, ROOT / "openapi" / "vendor.openapi.json", tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert outputs["changed"] == "false"
