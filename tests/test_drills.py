"""Issue 20's drills b, e, g and i, and a stopped ``--from`` run again, on copies of the project.

Each drill is a vendor change from ``tests/regen_tree.py`` fed through the one command a
maintainer runs (``scripts/regenerate.py --from NEW_SPEC``), then used as a user would, with the
copy's facade and regenerated client (``run_python``). docs/spec-changes.md tabulates all
eleven (a to k); the additive ones run the whole suite in ``tests/test_additive_drift.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.regen_tree import (
    NEW_FORMAT,
    NEW_REQUIRED_FIELD,
    PATH,
    ROOT,
    SECOND_PATH,
    copy_tree,
    regenerate,
    run_python,
    vendor,
    with_new_default_format,
    with_ratio_enum,
    with_required_field,
    with_second_operation,
    without_revised_prompt,
    write_spec,
)

sys.path.insert(0, str(ROOT / "scripts"))
import change_report
import regenerate as regenerate_script

RATIO_DESCRIPTION = "/components/schemas/RemixRequest/properties/aspect_ratio/"


@pytest.fixture
def tree(tmp_path) -> Path:
    return copy_tree(tmp_path / "repo")


def snapshot(tree: Path) -> dict[str, bytes]:
    """Every file regeneration may write (``openapi/``, ``generated/``), by path."""
    return {
        str(path.relative_to(tree)): path.read_bytes()
        for folder in ("openapi", "generated")
        for path in sorted((tree / folder).rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def stop_line(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    return line


def edit_corrections(tree: Path, edit) -> None:
    path = tree / "openapi" / "corrections.json"
    listed = json.loads(path.read_text())
    edit(listed["corrections"])
    path.write_text(json.dumps(listed, indent=2))


def number_of(tree: Path, op: str, suffix: str) -> int:
    listed = json.loads((tree / "openapi" / "corrections.json").read_text())["corrections"]
    return next(n for n, c in enumerate(listed, 1) if c["op"] == op and c["path"].endswith(suffix))


# --- b: a response field the facade reads is removed --------------------------------------------

USE_WITHOUT_REVISED_PROMPT = """
import json, os, contextlib, io
from reve_remix import ReveRemix
from reve_remix._cli import main
from reve_remix.testing import Fault, MockServer

facts = {}
body = {"created": 1732480000, "data": [{"url": "https://example.com/out.png"}]}
with MockServer() as server, ReveRemix("sk-test", base_url=server.base_url) as client:
    server.enqueue(Fault(body=body))
    result = client.remix("<img>0</img>", ["https://example.com/in.png"])
    facts["missing"] = result.image.revised_prompt
    facts["repr"] = repr(result.image)
    sent = client.remix("<img>0</img> again", ["https://example.com/in.png"])  # the mock sends it
    facts["sent anyway"] = sent.image.revised_prompt
    os.environ.update(ONEROUTER_API_KEY="sk-test", REVE_REMIX_BASE_URL=server.base_url)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        facts["cli exit"] = main(["remix", "<img>0</img>", "-i", "https://example.com/in.png",
                                  "--json", "-o", "out.png"])
    facts["cli json"] = json.loads(out.getvalue())
print(json.dumps(facts))
"""


def test_b_a_removed_revised_prompt_reads_none_and_the_report_says_breaking(tree, tmp_path):
    new = write_spec(tmp_path / "new.json", without_revised_prompt(vendor()))
    result = regenerate(tree, "--from", str(new))
    assert result.returncode == 4, result.stderr
    assert (
        "- response.data[].revised_prompt: removed (RemixImage.revised_prompt reads it: "
        "now what the response sends, else None)"
    ) in result.stdout
    model = (tree / "generated" / "reve_remix_api" / "models" / "remix_image.py").read_text()
    assert "revised_prompt" not in model
    completed = run_python(tree, USE_WITHOUT_REVISED_PROMPT)
    assert completed.returncode == 0, completed.stderr
    facts = json.loads(completed.stdout)
    assert facts["missing"] is None
    assert "revised_prompt=None" in facts["repr"]
    assert facts["sent anyway"] == "image 0 again"  # undeclared, still read from the response
    assert facts["cli exit"] == 0
    assert facts["cli json"]["revised_prompt"] == "image 0"


# --- e: a new required request field ------------------------------------------------------------

USE_REQUIRED_FIELD = """
import json
from reve_remix import ReveRemix, ValidationError
from reve_remix.testing import MockServer

facts = {}
with MockServer() as server, ReveRemix("sk-test", base_url=server.base_url) as client:
    try:
        client.remix("<img>0</img>", ["https://example.com/in.png"])
    except ValidationError as exc:
        facts["refused"] = str(exc)
    facts["sent before"] = len(server.requests)
    client.remix("<img>0</img>", ["https://example.com/in.png"], extra_body={NAME: "high"})
    facts["sent"] = server.requests[-1].json[NAME]
print(json.dumps(facts))
"""


def test_e_a_new_required_field_is_breaking_and_named_not_blamed_on_extra_body(tree, tmp_path):
    new = write_spec(tmp_path / "new.json", with_required_field(vendor()))
    result = regenerate(tree, "--from", str(new))
    assert result.returncode == 4, result.stderr
    name = NEW_REQUIRED_FIELD
    assert (
        f"- request.{name}: added (string, required): remix has no argument for it; callers "
        f"must pass extra_body={{{name!r}: ...}} (the CLI: --field {name}=JSON)"
    ) in result.stdout
    completed = run_python(tree, f"NAME = {name!r}\n" + USE_REQUIRED_FIELD)
    assert completed.returncode == 0, completed.stderr
    facts = json.loads(completed.stdout)
    assert facts["refused"] == (
        f"{name}: the API requires this request field and remix has no argument for it yet: "
        f"pass extra_body={{{name!r}: ...}} (string, one of ['standard', 'high']); on the "
        f'command line --field {name}=JSON, in a jobs file "extra_body": {{"{name}": ...}}'
    )
    assert "extra_body:" not in facts["refused"]
    assert facts["sent before"] == 0
    assert facts["sent"] == "high"


# --- g: the vendor's own enum, with a new value: no silent VALUE_n renames ------------------------

USE_RATIOS = """
import json, typing
from reve_remix import AspectRatioValue
from reve_remix._spec import spec
from reve_remix_api.models import AspectRatio
print(json.dumps({member.name: member.value for member in AspectRatio}))
print(json.dumps([typing.get_args(AspectRatioValue), spec().aspect_ratios]))
"""


def test_g_a_vendor_enum_stops_until_every_member_has_its_name(tree, tmp_path):
    new = str(write_spec(tmp_path / "new.json", with_ratio_enum(vendor())))
    before = snapshot(tree)
    prose = number_of(tree, "test", "aspect_ratio/description")
    assert stop_line(regenerate(tree, "--from", new)) == (
        f"openapi/corrections.json: correction {prose} (test {RATIO_DESCRIPTION}description): "
        "the vendor changed this value: update or drop it"
    )
    # The maintainer drops the prose test and the enum the vendor now has itself.
    enum = number_of(tree, "add", "aspect_ratio/enum")
    edit_corrections(tree, lambda listed: [listed.pop(enum - 1), listed.pop(prose - 1)])
    names = number_of(tree, "add", "x-enum-varnames")
    assert stop_line(regenerate(tree, "--from", new)) == (
        "/components/schemas/AspectRatio: x-enum-varnames has 7 names for 8 enum values "
        f"(correction {names} (add {RATIO_DESCRIPTION}x-enum-varnames)): give every value a name "
        "in openapi/corrections.json"
    )
    # Without any names, the generator falls back to VALUE_0...: that stops too.
    edit_corrections(tree, lambda listed: listed.pop(names - 1))
    assert stop_line(regenerate(tree, "--from", new)) == (
        "the generator named the members of enum AspectRatio VALUE_0, VALUE_1, VALUE_2…: "
        "add (or update) its x-enum-varnames in openapi/corrections.json"
    )
    assert snapshot(tree) == {
        **before,
        "openapi/corrections.json": snapshot(tree)["openapi/corrections.json"],
    }  # three stops, nothing written but the maintainer's edits
    # With a name for every value, the members keep their names and the new one has its own.
    varnames = ["RATIO_16_9", "RATIO_9_16", "RATIO_3_2", "RATIO_2_3", "RATIO_4_3", "RATIO_3_4"]
    varnames += ["RATIO_1_1", "RATIO_21_9"]
    pointer = f"{RATIO_DESCRIPTION}x-enum-varnames"
    edit_corrections(
        tree,
        lambda listed: listed.insert(names - 1, {"op": "add", "path": pointer, "value": varnames}),
    )
    result = regenerate(tree, "--from", new)
    assert result.returncode == 3, result.stdout + result.stderr  # corrected: one more ratio
    assert "- request.aspect_ratio: enum +21:9" in result.stdout
    assert "As the vendor publishes it (before openapi/corrections.json):" in result.stdout
    completed = run_python(tree, USE_RATIOS)
    assert completed.returncode == 0, completed.stderr
    enum, literal = completed.stdout.splitlines()
    members = json.loads(enum)
    assert members["RATIO_16_9"] == "16:9"
    assert members["RATIO_21_9"] == "21:9"
    assert not [name for name in members if name.startswith("VALUE_")]
    # The Literal the signatures take was regenerated with it: an IDE offers "21:9" too.
    typed, read = json.loads(literal)
    assert typed == read
    assert "21:9" in typed
    assert regenerate(tree, "--check").returncode == 0


# --- i: a second operation ------------------------------------------------------------------------


def test_i_a_second_operation_is_reported_added_and_generated(tree, tmp_path):
    new = write_spec(tmp_path / "new.json", with_second_operation(vendor()))
    result = regenerate(tree, "--from", str(new))
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("Vendor spec change: additive (0 breaking, 1 additive)")
    assert f"- operation POST {SECOND_PATH}: added" in result.stdout
    corrected = json.loads((tree / "openapi" / "corrected.openapi.json").read_text())
    assert SECOND_PATH in corrected["paths"]
    assert regenerate(tree, "--check").returncode == 0


def test_i_a_changed_second_operation_is_reported_by_its_path():
    with_second = with_second_operation(vendor())
    changed = with_second_operation(vendor())
    body = changed["paths"][SECOND_PATH]["post"]["requestBody"]["content"]["application/json"]
    body["schema"]["properties"]["style"] = {"type": "string"}
    locator = {"method": "post", "path": PATH}
    report = change_report.compare(with_second, changed, locator)
    assert report.additive == [
        f"operation POST {SECOND_PATH}: request.style: added (string, optional)"
    ]


# --- a stopped --from, run again ----------------------------------------------------------------


def test_a_stopped_from_writes_nothing_and_the_same_command_resumes(tree, tmp_path):
    new = str(write_spec(tmp_path / "new.json", with_ratio_enum(vendor())))
    before = snapshot(tree)
    first = regenerate(tree, "--from", new)
    again = regenerate(tree, "--from", new)
    assert first.returncode == again.returncode == 1
    assert again.stdout == first.stdout  # the report again: not "No change"
    assert again.stdout.startswith("Vendor spec change: breaking")
    assert snapshot(tree) == before
    # The edits the stops ask for (here: the vendor's enum replaces ours), then the same command.
    prose = number_of(tree, "test", "aspect_ratio/description")
    enum = number_of(tree, "add", "aspect_ratio/enum")
    names = number_of(tree, "add", "x-enum-varnames")
    edit_corrections(tree, lambda listed: [listed.pop(i - 1) for i in (names, enum, prose)])
    varnames = ["RATIO_16_9", "RATIO_9_16", "RATIO_3_2", "RATIO_2_3", "RATIO_4_3", "RATIO_3_4"]
    edit_corrections(
        tree,
        lambda listed: listed.insert(
            prose - 1,
            {"op": "add", "path": f"{RATIO_DESCRIPTION}x-enum-varnames",
             "value": [*varnames, "RATIO_1_1", "RATIO_21_9"]},
        ),
    )  # fmt: skip
    resumed = regenerate(tree, "--from", new)
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr
    assert json.loads((tree / "openapi" / "vendor.openapi.json").read_text()) == json.loads(
        Path(new).read_text()
    )
    assert regenerate(tree, "--check").returncode == 0
    assert regenerate(tree, "--from", new).stdout.startswith("No change: the vendor spec")


# --- h: a new default and a new value of output_format reach the CLI's help ---------------------

USE_FORMAT_HELP = """
from reve_remix._cli import _parser
from reve_remix._spec import spec

commands = _parser()._subparsers._group_actions[0].choices
print(" ".join(commands["remix"].format_help().split()))
print(spec().default_output_format)
"""


def test_h_the_clis_format_help_lists_the_specs_values_and_default(tree, tmp_path):
    new = write_spec(tmp_path / "new.json", with_new_default_format(vendor()))
    result = regenerate(tree, "--from", str(new))
    assert result.returncode == 4, result.stderr  # a new default: breaking
    completed = run_python(tree, USE_FORMAT_HELP)
    assert completed.returncode == 0, completed.stderr
    help_text, default = completed.stdout.splitlines()
    assert default != "url"
    assert f"(default: {default})" in help_text
    assert f", {NEW_FORMAT} (default" in help_text


# --- what regeneration checks beyond the corrections, as pure functions ---------------------------


def corrected() -> dict:
    return json.loads((ROOT / "openapi" / "corrected.openapi.json").read_text())


def test_a_field_the_facade_writes_retyped_stops_naming_it():
    from facade_spec import spec as facade_spec

    document = corrected()
    document["components"]["schemas"]["RemixRequest"]["properties"]["prompt"] = {"type": "array"}
    with pytest.raises(facade_spec.SpecError) as caught:
        facade_spec.read(document)
    assert str(caught.value) == (
        "RemixRequest.prompt is of type array, but remix's prompt= argument sends string"
    )


def test_a_dangling_ref_or_security_scheme_stops():
    document = corrected()
    document["components"]["schemas"]["RemixResponse"]["properties"]["data"]["items"] = {
        "$ref": "#/components/schemas/Gone"
    }
    with pytest.raises(regenerate_script.Stop, match=r"#/components/schemas/Gone points nowhere"):
        regenerate_script.check_references(document)
    document = corrected()
    document["components"]["securitySchemes"] = {"BearerAuth": {"type": "http", "scheme": "bearer"}}
    with pytest.raises(regenerate_script.Stop) as caught:
        regenerate_script.check_references(document)
    assert "security names 'bearerAuth', which is not in components/securitySchemes" in str(
        caught.value
    )
    regenerate_script.check_references(corrected())  # the committed spec has none
