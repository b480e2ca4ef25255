"""A request field the vendor made required after this version (issue 20's drill e), sent from
every way in: ``extra_body`` on both clients, ``--field NAME=JSON`` on ``remix``, ``batch`` and
``grid``, and a jobs-file line's ``"extra_body"``; refused by name, pointing at those ways, when
it is missing.

The spec variant is the shipped spec (``reve_remix._spec.spec()``) with one more required
property, the drill's; the checks that read it see the variant (as ``test_images`` moves the
size limit). The whole drill, regenerated client included, is ``tests/test_drills.py``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from reve_remix import ValidationError
from reve_remix import _request as request_module
from reve_remix._cli._options import _FIELD_OPTIONS
from reve_remix._spec import ARGUMENT_FIELDS, spec
from reve_remix.testing import MockServer
from tests.conftest import IMAGE_URL, run_cli
from tests.regen_tree import NEW_REQUIRED_FIELD

NAME = NEW_REQUIRED_FIELD
VALUES = ["standard", "high"]
PROMPT = "<img>0</img> at dusk"


@pytest.fixture
def required(monkeypatch: pytest.MonkeyPatch) -> str:
    """The spec as the vendor changed it: ``NAME`` (one of ``VALUES``) required of a request."""
    shipped = spec()
    assert NAME not in shipped.request_properties
    changed = dataclasses.replace(
        shipped,
        request_properties={**shipped.request_properties, NAME: {"type": "string", "enum": VALUES}},
        request_required=(*shipped.request_required, NAME),
    )
    monkeypatch.setattr(request_module, "spec", lambda: changed)
    return NAME


def sent(server: MockServer) -> list[dict[str, Any]]:
    return [request.json for request in server.requests if request.is_remix]


def refusal_points_at_every_way_in(message: str) -> None:
    assert message.startswith(f"{NAME}: the API requires this request field")
    assert f"extra_body={{{NAME!r}: ...}}" in message
    assert f"--field {NAME}=JSON" in message
    assert f'"extra_body": {{"{NAME}": ...}}' in message


# --- the library: both clients -------------------------------------------------------------------


def test_the_library_refuses_a_missing_required_field_by_name_and_sends_it_given(
    required: str, server: MockServer, twin: Any
) -> None:
    with pytest.raises(ValidationError) as caught:
        twin.remix(PROMPT, [IMAGE_URL])
    refusal_points_at_every_way_in(str(caught.value))
    assert sent(server) == []
    twin.remix(PROMPT, [IMAGE_URL], extra_body={NAME: "high"})
    with pytest.raises(ValidationError, match=rf"extra_body: '{NAME}' must be one of"):
        twin.remix(PROMPT, [IMAGE_URL], extra_body={NAME: "low"})
    assert [body[NAME] for body in sent(server)] == ["high"]


# --- remix --field -----------------------------------------------------------------------------


def remix(server: MockServer, tmp_path: Path, *args: str) -> Any:
    return run_cli(
        "remix", PROMPT, "-i", IMAGE_URL, "-o", tmp_path / "out.png", *args,
        "--base-url", server.base_url, cwd=tmp_path,
    )  # fmt: skip


def test_remix_without_the_field_is_one_line_naming_the_option_and_sends_nothing(
    required: str, server: MockServer, tmp_path: Path
) -> None:
    run = remix(server, tmp_path)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    refusal_points_at_every_way_in(line.removeprefix("reve-remix: error: "))
    assert sent(server) == []


def test_remix_sends_a_field_given_with_field(
    required: str, server: MockServer, tmp_path: Path
) -> None:
    run = remix(server, tmp_path, "--field", f'{NAME}="high"', "--field", "seed=7")
    assert run.returncode == 0, run.stderr
    [body] = sent(server)
    assert (body[NAME], body["seed"]) == ("high", 7)  # JSON: a number is sent as one


@pytest.mark.parametrize(
    ("field", "says"),
    [
        (f"{NAME}=high", f"{NAME}: 'high' is not JSON; write a string in quotes: "),
        (f'{NAME}="low"', f"'{NAME}' must be one of {VALUES}, got 'low'"),
        ("seed", "'seed': write NAME=JSON"),
        ("=7", "'=7': write NAME=JSON"),
        ("n=2", "'n' must be one of"),  # a field the spec defines is checked against it
        # A field no spec defines: NaN is refused as JSON, not by a schema (the additive drift
        # drill gives the copy a "seed", which would then be checked as an integer first).
        ("x_note=NaN", "cannot be sent as JSON"),
        ('aspect_ratio="1:1"', "aspect_ratio: set it with --aspect-ratio"),
        ('model="x"', "model: set it with --model"),
    ],
)
def test_a_bad_field_is_one_line_and_sends_nothing(
    required: str, server: MockServer, tmp_path: Path, field: str, says: str
) -> None:
    run = remix(server, tmp_path, "--field", field)
    assert run.returncode == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("reve-remix remix: error: argument --field: "), line
    assert says in line
    assert sent(server) == []


def test_a_field_given_twice_is_refused(required: str, server: MockServer, tmp_path: Path) -> None:
    run = remix(server, tmp_path, "--field", f'{NAME}="high"', "--field", f'{NAME}="standard"')
    assert run.returncode == 2
    assert f"--field {NAME} is given twice" in run.stderr
    assert sent(server) == []


def test_remix_dry_run_shows_the_field_in_the_body(required: str, tmp_path: Path) -> None:
    run = run_cli(
        "remix", PROMPT, "-i", IMAGE_URL, "--dry-run", "--json", "--field", f'{NAME}="standard"',
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["body"][NAME] == "standard"


def test_every_field_remix_sets_has_its_option_named() -> None:
    assert _FIELD_OPTIONS.keys() == ARGUMENT_FIELDS.keys()


# --- batch: --field for every line, a line's extra_body first ----------------------------------


def jobs_file(folder: Path, *lines: dict[str, Any]) -> Path:
    path = folder / "jobs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def batch(server: MockServer, folder: Path, jobs: Path, *args: str) -> Any:
    return run_cli(
        "batch", jobs, "--out", folder / "out", "--base-url", server.base_url, "--no-review",
        *args, cwd=folder,
    )  # fmt: skip


def test_a_batch_line_without_the_field_is_refused_naming_the_ways_to_give_it(
    required: str, server: MockServer, tmp_path: Path
) -> None:
    jobs = jobs_file(tmp_path, {"prompt": PROMPT, "images": [IMAGE_URL], "id": "a"})
    for check in ("--strict", "--dry-run"):  # a run and its dry run refuse it alike
        refused = batch(server, tmp_path, jobs, check)
        assert refused.returncode != 0
        assert f"--field {NAME}=JSON" in refused.stdout + refused.stderr
    planned = batch(server, tmp_path, jobs, "--dry-run", "--field", f'{NAME}="high"')
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert sent(server) == []


def test_batch_sends_field_to_every_line_and_a_lines_own_extra_body_wins(
    required: str, server: MockServer, tmp_path: Path
) -> None:
    jobs = jobs_file(
        tmp_path,
        {"prompt": PROMPT, "images": [IMAGE_URL], "id": "plain"},
        {"prompt": PROMPT, "images": [IMAGE_URL], "id": "own", "extra_body": {NAME: "high"}},
    )
    run = batch(server, tmp_path, jobs, "--field", f'{NAME}="standard"', "--field", "seed=3")
    assert run.returncode == 0, run.stderr
    by_value = sorted((body[NAME], body["seed"]) for body in sent(server))
    assert by_value == [("high", 3), ("standard", 3)]
    again = batch(server, tmp_path, jobs, "--field", f'{NAME}="standard"', "--field", "seed=3")
    assert again.returncode == 0, again.stderr
    assert len(sent(server)) == 2  # the same fields: the same jobs, done, not paid again


# --- grid -----------------------------------------------------------------------------------------


def test_grid_sends_the_field_with_every_cell(
    required: str, server: MockServer, tmp_path: Path
) -> None:
    run = run_cli(
        "grid", "<img>0</img> as {style}", "-i", IMAGE_URL, "--axis", "style=ink,oil",
        "--out", tmp_path / "grid", "--field", f'{NAME}="high"', "--base-url", server.base_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert [body[NAME] for body in sent(server)] == ["high", "high"]
    written = (tmp_path / "grid" / "jobs.jsonl").read_text().splitlines()
    assert all(json.loads(line)["extra_body"] == {NAME: "high"} for line in written)
