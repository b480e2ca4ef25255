#!/usr/bin/env python3
"""Take a fetched vendor spec through the change report, regeneration and tests; write the report.

    python scripts/spec_drift.py NEW_SPEC REPORT.md [PYTEST_ARGS...]

The middle of ``.github/workflows/spec-drift.yml``, which fetches the spec before and opens a
pull request with ``REPORT.md`` as its body after; ``tests/test_spec_drift.py`` runs this same
script. It runs ``scripts/regenerate.py --from NEW_SPEC``, then (when the spec changed) the
tests, and writes the change report, any regeneration failure and the test outcome to
``REPORT.md``. A failing test of ``tests/test_contract.py``, the one file that pins today's
vendor values on purpose, is listed as expected to change, apart from the failures that are not.
For the workflow it sets ``changed`` (true/false), ``verdict`` (additive, breaking, unchanged,
or failed when regeneration failed) and ``tests`` (passed, contract when only pinned values
fail, failed or skipped) in ``$GITHUB_OUTPUT``. It exits 0 whatever it found: the pull request
carries the verdict, and a failure is what the maintainer needs to see.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = {0: "unchanged", 3: "additive", 4: "breaking"}
_TAIL_LINES = 30
# The tests that pin today's vendor values on purpose, as JUnit names them.
CONTRACT = "tests.test_contract"


def main() -> int:
    if len(sys.argv) < 3:
        sys.exit(__doc__.split("\n\n")[1])
    spec, report_path, pytest_args = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    regen = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "regenerate.py"), "--from", spec],
        capture_output=True,
        text=True,
        check=False,
    )
    verdict = VERDICTS.get(regen.returncode, "failed")
    changed = not (regen.returncode == 0 and regen.stdout.startswith("No change: the vendor spec"))
    report = [regen.stdout.rstrip()]
    outcome = "skipped"
    if verdict == "failed":
        report += ["", "## Regeneration failed", "", "```", regen.stderr.strip(), "```"]
    elif changed:
        outcome, lines = run_tests(pytest_args)
        report += ["", *lines]
    report_path.write_text("\n".join(report) + "\n", encoding="utf-8")
    outputs = os.environ.get("GITHUB_OUTPUT")
    if outputs:
        with open(outputs, "a", encoding="utf-8") as file:
            file.write(f"changed={str(changed).lower()}\nverdict={verdict}\ntests={outcome}\n")
    print(f"spec drift: {verdict if changed else 'no change'}; report in {report_path}")
    return 0


def run_tests(pytest_args: list[str]) -> tuple[str, list[str]]:
    """Run the tests; the outcome (passed, contract or failed) and the report's section."""
    with tempfile.TemporaryDirectory(prefix="spec-drift-") as tmp:
        junit = Path(tmp) / "junit.xml"
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"--junitxml={junit}", *pytest_args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        failed = failures(junit) if junit.exists() else []
    if tests.returncode == 0:
        return "passed", ["## Tests", "", "All tests pass on the regenerated client."]
    pinned = [name for name in failed if name.startswith(CONTRACT)]
    lines: list[str] = []
    if pinned:
        lines += ["## Expected to change: pinned vendor values", ""]
        lines += [f"Update these tests of {CONTRACT}.py to the new spec:", ""]
        lines += [f"- `{name}`" for name in pinned]
    if pinned and len(pinned) == len(failed):
        return "contract", lines
    tail = tests.stdout.strip().splitlines()[-_TAIL_LINES:]
    lines += [*([""] if lines else []), "## Tests fail", "", "```", *tail, "```"]
    return "failed", lines


def failures(junit: Path) -> list[str]:
    """Every failed or erroring test of a JUnit XML report, as ``module::name``."""
    root = ElementTree.parse(junit).getroot()  # noqa: S314 - pytest's own file
    return [
        f"{case.get('classname')}::{case.get('name')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]


if __name__ == "__main__":
    sys.exit(main())
