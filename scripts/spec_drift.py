#!/usr/bin/env python3
"""Take a fetched vendor spec through the change report, regeneration and tests; write the report.

    python scripts/spec_drift.py NEW_SPEC REPORT.md [PYTEST_ARGS...]

The middle of ``.github/workflows/spec-drift.yml``, which fetches the spec before and opens a
pull request with ``REPORT.md`` as its body after; ``tests/test_spec_drift.py`` runs this same
script. It runs ``scripts/regenerate.py --from NEW_SPEC``, then (when the spec changed) the
tests, and writes the change report, any regeneration failure and the test outcome to
``REPORT.md``. For the workflow it sets ``changed`` (true/false), ``verdict`` (additive,
breaking, or failed when regeneration failed) and ``tests`` (passed, failed or skipped) in
``$GITHUB_OUTPUT``. It exits 0 whatever it found: the pull request
carries the verdict, and a failure is what the maintainer needs to see.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = {0: "unchanged", 3: "additive", 4: "breaking"}
_TAIL_LINES = 30


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
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        outcome = "passed" if tests.returncode == 0 else "failed"
        if tests.returncode == 0:
            report += ["", "## Tests", "", "All tests pass on the regenerated client."]
        else:
            tail = tests.stdout.strip().splitlines()[-_TAIL_LINES:]
            report += ["", "## Tests fail", "", "```", *tail, "```"]
    report_path.write_text("\n".join(report) + "\n", encoding="utf-8")
    outputs = os.environ.get("GITHUB_OUTPUT")
    if outputs:
        with open(outputs, "a", encoding="utf-8") as file:
            file.write(f"changed={str(changed).lower()}\nverdict={verdict}\ntests={outcome}\n")
    print(f"spec drift: {verdict if changed else 'no change'}; report in {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
