"""A vendor change that breaks no user leaves the whole suite green, but for the pinned values.

A copy of the whole project takes an additive vendor change (drills a, c and d, and a new
``output_format`` value: ``tests/regen_tree.py``'s ``additive``) through the spec-drift step
(``scripts/spec_drift.py``: the change report, ``regenerate.py --from``, then the README's test
command, ``python -m pytest``, in the copy). No test may fail but those of
``tests/test_contract.py``, which pin today's vendor values on purpose, and the report lists
those as expected to change. The copy's suite takes as long as this one's: ``slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.regen_tree import (
    NEW_FORMAT,
    NEW_REQUEST_FIELDS,
    additive,
    copy_project,
    regenerate,
    vendor,
    write_spec,
)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the copy's whole suite, on whatever cores are free
def test_an_additive_change_fails_no_test_but_the_pinned_values(tmp_path):
    tree = copy_project(tmp_path / "repo")
    spec = write_spec(tmp_path / "fetched.json", additive(vendor()))
    report = tmp_path / "report.md"
    outputs = tmp_path / "outputs"
    env = {  # not this run's PYTEST_* or coverage options: the copy runs as a maintainer runs it
        **{
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("PYTEST_", "COV_CORE_", "COVERAGE_"))
        },
        "GITHUB_OUTPUT": str(outputs),
        # The copy's facade and generated client, not the project's (installed editable).
        "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "generated")]),
    }
    completed = subprocess.run(
        [sys.executable, str(tree / "scripts" / "spec_drift.py"), str(spec), str(report)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    found = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    text = report.read_text()
    assert found["verdict"] == "additive", text
    assert found["tests"] in ("passed", "contract"), text
    assert "## Tests fail" not in text
    seed, negative = NEW_REQUEST_FIELDS
    for line in (
        f"- request.{seed}: added (integer, optional)",
        f"- request.{negative}: added (string, optional)",
        f"- request.output_format: enum +{NEW_FORMAT}",
    ):
        assert line in text
    # The copy is consistent: what the drift pull request commits regenerates to itself.
    assert regenerate(tree, "--check").returncode == 0
    enum = json.loads((tree / "openapi" / "corrected.openapi.json").read_text())
    assert NEW_FORMAT in enum["components"]["schemas"]["OutputFormat"]["enum"]
    # The Literal that remix's output_format takes lists it too: an IDE offers it.
    literals = (tree / "generated" / "reve_remix_api" / "_literals.py").read_text()
    assert f'"{NEW_FORMAT}",' in literals
