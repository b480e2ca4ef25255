"""Check the mock server against the API spec with schemathesis, a tool nobody here wrote.

Starts ``MockServer`` on 127.0.0.1, runs ``st run openapi/corrected.openapi.json`` against it with
every check schemathesis has and a bounded number of examples, and prints a summary: each check
with how many test cases passed and failed it, the number of test cases, and each failure, marked
as accepted (with the reason) or unexpected. Exits 1 on an unexpected failure or error.

Usage::

    python scripts/schemathesis_mock.py                  # about 10 seconds
    python scripts/schemathesis_mock.py --max-examples 200 --seed 7

Needs schemathesis (``pip install schemathesis==4.32.5``), which installs beside the pinned
hypothesis 6.155.2 in the dev environment.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from reve_remix._spec import spec
from reve_remix.testing import MockServer

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "corrected.openapi.json"
EDITS = spec().path  # the operation, as the spec locates it

# Findings that are the mock behaving as designed, not breaking the spec: (code, operation).
ACCEPTED = {
    ("ST401", f"POST {EDITS}"): (
        "by design: the mock accepts any non-empty key, as it cannot know real ones "
        "(it still answers 401 to a missing or malformed header)"
    ),
}


def st_command() -> list[str]:
    """The schemathesis command line of this environment."""
    found = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if found is None:
        sys.exit("schemathesis is not installed: pip install schemathesis==4.32.5")
    return [found]


def run_schemathesis(base_url: str, reports: Path, max_examples: int, seed: int) -> int:
    command = [
        *st_command(),
        "run",
        str(SPEC),
        "--url",
        base_url,
        "--header",
        "Authorization: Bearer test",
        "--checks",
        "all",
        "--continue-on-failure",  # a known finding must not end the run early
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--generation-database",
        "none",
        "--report",
        "json,ndjson",
        "--report-json-path",
        str(reports / "report.json"),
        "--report-ndjson-path",
        str(reports / "events.ndjson"),
        "--no-color",
    ]
    # Run in the scratch folder: schemathesis keeps a crash cache in its working directory.
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=reports)
    (reports / "output.txt").write_text(completed.stdout + completed.stderr)
    return completed.returncode


def check_counts(events: Path) -> dict[str, collections.Counter[str]]:
    """For each check, how many test cases passed and failed it."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    with events.open() as lines:
        for line in lines:
            event = json.loads(line).get("ScenarioFinished")
            if event is None:
                continue
            for results in (event["recorder"].get("checks") or {}).values():
                for result in results:
                    counts[result["name"]][result["status"]] += 1
    return counts


def summarize(report: dict[str, Any], counts: dict[str, collections.Counter[str]]) -> list[str]:
    """The summary: checks with their counts, then each failure, accepted or UNEXPECTED."""
    cases = report["test_cases"]
    lines = [
        f"schemathesis {report['schemathesis_version']} against the mock server: "
        f"{cases['generated']} test cases generated ({cases['without_checks']} ran no check), "
        f"{report['running_time']:.1f} s (seed {report['seed']})",
        "",
        "| Check | Passed | Failed |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {name} | {counts[name]['success']} | {counts[name]['failure']} |"
        for name in sorted(counts)
    ]
    lines.append("")
    for failure in report["failures"]:
        for operation in failure["operations"]:
            reason = ACCEPTED.get((failure["code"], operation))
            verdict = f"accepted: {reason}" if reason else "UNEXPECTED"
            lines.append(f"- {failure['code']} {failure['title']} on {operation}: {verdict}")
    for error in report["errors"]:
        lines.append(f"- error: {error} UNEXPECTED")
    if not report["failures"] and not report["errors"]:
        lines.append("- no failures")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=1000, help="per phase (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="schemathesis-") as folder, MockServer() as server:
        reports = Path(folder)
        run_schemathesis(server.base_url, reports, args.max_examples, args.seed)
        if not (reports / "report.json").exists():
            print((reports / "output.txt").read_text(), file=sys.stderr)
            return 1
        report = json.loads((reports / "report.json").read_text())
        lines = summarize(report, check_counts(reports / "events.ndjson"))
    print("\n".join(lines))
    unexpected = sum("UNEXPECTED" in line for line in lines)
    print(f"\n{unexpected} unexpected finding(s).")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
