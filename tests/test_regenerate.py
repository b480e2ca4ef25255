"""``scripts/regenerate.py``: the vendor's changes reach users, or the regeneration says what broke.

Drills of what a vendor changes in the spec, each applied to a copy of the project
(``tests/regen_tree.py``) and run through the one command a maintainer runs:

====  =====================================================  ==============================
a     optional response fields ``data[].seed`` and ``usage``  tests/test_surface.py
b     a new ratio ``21:9`` in the prose                       stops: one line, correction 9
c     ``maxItems: 6`` and "less than 10 MB"                   users send 5 and 6 images
d     a new optional request field ``seed``                   users send ``extra_body``
e     ``image_urls`` renamed ``images``                       stops naming the cause
f     the path becomes ``/v2/images/edits``                   one edit; client and mock follow
g     the vendor's own operationId and a ``21:9`` enum        stops: one line per correction
h     keys reordered                                          nothing changes downstream
i     the vendor adds ``components`` with a ``$ref``          stops: one line, correction 2
====  =====================================================  ==============================

Generation takes about a second: c, d and f share one copy regenerated twice (module scope);
b, e, g and i stop before the generator runs. The corrections and the change report are also
tested as pure functions (``scripts/corrections.py``, ``scripts/change_report.py``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from tests.regen_tree import (
    MOVED_PATH,
    NEW_IMAGE_FIELD,
    NEW_REQUEST_FIELDS,
    NEW_RESPONSE_FIELD,
    PATH,
    ROOT,
    copy_tree,
    moved,
    operation,
    regenerate,
    request_schema,
    response_schema,
    run_python,
    vendor,
    with_more_images,
    with_request_fields,
    with_response_fields,
    write_spec,
)

sys.path.insert(0, str(ROOT / "scripts"))
import change_report
import corrections
from facade_spec import spec as spec_module

NEW_RATIO = "`3:4,` `1:1`, `21:9`"
RATIOS = ["16:9", "9:16", "3:2", "2:3", "4:3", "3:4", "1:1"]


@pytest.fixture
def tree(tmp_path) -> Path:
    return copy_tree(tmp_path / "repo")


def corrections_file(tree: Path) -> dict:
    return json.loads((tree / "openapi" / "corrections.json").read_text())


def numbered(tree: Path, op: str, path: str) -> int:
    """The number (from 1) of the correction ``op`` at ``path``, as failures name it."""
    listed = corrections_file(tree)["corrections"]
    return next(n for n, c in enumerate(listed, 1) if c["op"] == op and c["path"] == path)


def generated_files(tree: Path) -> dict[str, bytes]:
    folder = tree / "generated" / "reve_remix_api"
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def stops_with_one_line(result, tree: Path, before: dict[str, bytes]) -> str:
    """The command failed with one short line on stderr, and left generated/ alone."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert len(lines[0]) < 300  # one line, even when it lists every request field
    assert generated_files(tree) == before
    return lines[0]


# --- the committed tree ------------------------------------------------------------------------


def test_check_passes_then_fails_with_a_diff_on_a_hand_edit_then_regenerate_restores(tree):
    result = regenerate(tree, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    model = tree / "generated" / "reve_remix_api" / "models" / "remix_request.py"
    original = model.read_text()
    model.write_text(original.replace("prompt: str", "prompt: str  # edited by hand", 1))
    stray = tree / "generated" / "reve_remix_api" / "stray.py"
    stray.write_text("x = 1\n")
    result = regenerate(tree, "--check")
    assert result.returncode == 1
    assert "edited by hand" in result.stdout
    assert "stray.py" in result.stdout
    assert regenerate(tree).returncode == 0
    assert model.read_text() == original
    assert not stray.exists()


def test_generated_package_records_its_provenance_and_the_source_its_hash():
    from reve_remix_api import _provenance

    vendor_bytes = (ROOT / "openapi" / "vendor.openapi.json").read_bytes()
    assert hashlib.sha256(vendor_bytes).hexdigest() == _provenance.VENDOR_SPEC_SHA256
    source = json.loads((ROOT / "openapi" / "vendor.source.json").read_text())
    assert source["sha256"] == _provenance.VENDOR_SPEC_SHA256
    assert source["url"].startswith("https://")
    corrected = (ROOT / "openapi" / "corrected.openapi.json").read_bytes()
    assert hashlib.sha256(corrected).hexdigest() == _provenance.CORRECTED_SPEC_SHA256
    assert _provenance.GENERATOR == "openapi-python-client==0.29.1"


def test_the_vendor_spec_is_the_published_json_block_byte_for_byte(tree, tmp_path):
    """The vendor publishes the spec in a docs page; ``--from`` takes the page as it is."""
    vendor_bytes = (ROOT / "openapi" / "vendor.openapi.json").read_bytes()
    page = tmp_path / "reve-remix.md"
    page.write_bytes(
        b"# Reve Remix\n\n## reve-remix-image-to-image\n\n```json\n" + vendor_bytes + b"```\n"
    )
    result = regenerate(tree, "--from", str(page))
    assert result.returncode == 0, result.stderr
    assert "No change" in result.stdout
    assert (tree / "openapi" / "vendor.openapi.json").read_bytes() == vendor_bytes


def test_check_fails_when_the_recorded_hash_is_not_the_vendor_spec(tree):
    source = tree / "openapi" / "vendor.source.json"
    source.write_text(json.dumps({**json.loads(source.read_text()), "sha256": "0" * 64}))
    result = regenerate(tree, "--check")
    assert result.returncode == 1
    assert "vendor.source.json does not record sha256" in result.stdout


# --- c, d, f: one copy, changed as the vendor would, regenerated by the one command -----------


LIMITS = spec_module.read(json.loads((ROOT / "openapi" / "corrected.openapi.json").read_bytes()))
MAX = LIMITS.max_images + 2  # what with_more_images raises maxItems to
BIGGER = LIMITS.max_image_bytes * 4  # and the size limit, in the prose
SEED, _ = NEW_REQUEST_FIELDS


def additive_spec() -> dict:
    """Drills c and d (and a's response fields, which tests/test_surface.py reads)."""
    spec = with_request_fields(with_more_images(with_response_fields(vendor())))
    images = request_schema(spec)["properties"]["image_urls"]
    images["description"] = re.sub(
        r"less than \S+ [KMG]i?B", f"less than {BIGGER / 10**6:g} MB", images["description"]
    )
    return spec


@pytest.fixture(scope="module")
def evolved(tmp_path_factory):
    """A copy taken through ``--from`` twice: the additive change, then the path change (f)."""
    tree = copy_tree(tmp_path_factory.mktemp("evolved"))
    specs = tmp_path_factory.mktemp("specs")
    additive = write_spec(specs / "additive.json", additive_spec())
    first = regenerate(tree, "--from", str(additive))

    second = regenerate(
        tree, "--from", str(write_spec(specs / "moved.json", moved(additive_spec())))
    )

    corrections_path = tree / "openapi" / "corrections.json"
    text = corrections_path.read_text()
    assert text.count(f'"{PATH}"') == 1  # the path is written once: one edit
    corrections_path.write_text(text.replace(f'"{PATH}"', f'"{MOVED_PATH}"'))
    third = regenerate(tree, "--from", str(specs / "moved.json"))  # the same command, resumed
    return tree, first, second, third


USE_EVOLVED = """
import json, httpx
from reve_remix import ReveRemix, ValidationError
from reve_remix.testing import MockServer
from reve_remix._images import prepare_image
from reve_remix._cli import _parser

url = "https://example.com/{}.png"
facts = {}
with MockServer() as server, ReveRemix("sk-test", base_url=server.base_url, max_retries=0) as c:
    for count in (MAX - 1, MAX):
        c.remix("<img>0</img> and friends", [url.format(n) for n in range(count)])
        facts[f"sent {count}"] = len(server.requests[-1].json["image_urls"])
    try:
        c.remix("<img>0</img>", [url.format(n) for n in range(MAX + 1)])
    except ValidationError as exc:
        facts["too many refused"] = str(exc)
    c.remix("<img>0</img>", [url.format(0)], extra_body={SEED: 7})
    facts["seed sent"] = server.requests[-1].json.get(SEED)
    facts["path"] = server.requests[-1].path
    try:
        c.remix("<img>0</img>", [url.format(0)], extra_body={SEED: "seven"})
    except ValidationError as exc:
        facts["bad seed"] = str(exc)
    facts["old path"] = httpx.post(server.base_url + PATH, json={}).status_code
big = b"\\x89PNG\\r\\n\\x1a\\n".ljust(BIGGER - 1, b"\\0")
facts["bigger image"] = type(prepare_image(big, "image 0")).__name__
commands = _parser()._subparsers._group_actions[0].choices
facts["help"] = _parser().format_help() + commands["remix"].format_help()
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def evolved_facts(evolved):
    tree, *_ = evolved
    names = {"MAX": MAX, "SEED": SEED, "PATH": PATH, "BIGGER": BIGGER}
    setup = "".join(f"{name} = {value!r}\n" for name, value in names.items())
    completed = run_python(tree, setup + USE_EVOLVED)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_an_additive_change_is_reported_and_regenerated_exit_3(evolved):
    _, first, *_ = evolved
    assert first.returncode == 3, first.stderr
    assert first.stdout.startswith("Vendor spec change: additive")
    for line in (
        f"- request.image_urls: maxItems {LIMITS.max_images} → {MAX}",
        f"- request.image_urls: size limit {LIMITS.max_image_bytes} → {BIGGER}",
        f"- request.{SEED}: added (integer, optional)",
        f"- response.data[].{NEW_IMAGE_FIELD}: added (integer, optional)",
        f"- response.{NEW_RESPONSE_FIELD}: added (object, optional)",
    ):
        assert line in first.stdout


def test_c_users_send_more_images_and_bigger_files(evolved_facts):
    counts = f"{LIMITS.min_images} to {MAX}"
    assert evolved_facts[f"sent {MAX - 1}"] == MAX - 1
    assert evolved_facts[f"sent {MAX}"] == MAX
    assert evolved_facts["too many refused"] == (
        f"images: give between {LIMITS.min_images} and {MAX} images, got {MAX + 1}"
    )
    assert evolved_facts["bigger image"] == "LocalImage"
    assert f"Remix {counts} images" in evolved_facts["help"]
    assert f"(repeat {counts} times)" in evolved_facts["help"]


def test_d_users_send_the_new_field_checked_against_the_new_spec(evolved_facts):
    assert evolved_facts["seed sent"] == 7
    assert evolved_facts["bad seed"] == f"extra_body: {SEED!r} must be of type integer, got str"


def test_f_a_moved_path_needs_one_edit_then_client_and_mock_follow(evolved, evolved_facts):
    tree, _, second, third = evolved
    assert second.returncode == 1
    assert f"- operation POST {PATH}: moved to POST {MOVED_PATH}" in second.stdout
    assert second.stderr.startswith(
        f'openapi/corrections.json: corrections.json "operation": POST {PATH} is not '
        f"in the vendor spec (it has POST {MOVED_PATH}"  # and any other operation it has
    )
    assert second.stderr.rstrip().endswith("): update it")
    assert third.returncode == 4, third.stderr  # breaking: the path moved
    assert third.stdout.startswith("Vendor spec change: breaking (1 breaking, 0 additive)")
    assert evolved_facts["path"] == MOVED_PATH
    assert evolved_facts["old path"] == 404
    assert regenerate(tree, "--check").returncode == 0


# --- b, e, g, i: the command stops, saying which correction or which facade read to update ----


def test_b_a_ratio_added_in_prose_names_the_correction_that_tests_it(tree):
    before = generated_files(tree)
    changed = vendor()
    aspect = request_schema(changed)["properties"]["aspect_ratio"]
    aspect["description"] = aspect["description"].replace("`3:4,` `1:1`", NEW_RATIO)
    write_spec(tree / "openapi" / "vendor.openapi.json", changed)
    pointer = "/components/schemas/RemixRequest/properties/aspect_ratio/description"
    line = stops_with_one_line(regenerate(tree), tree, before)
    assert line == (
        f"openapi/corrections.json: correction {numbered(tree, 'test', pointer)} (test {pointer}):"
        " the vendor changed this value: update or drop it"
    )


def test_g_the_vendor_defining_what_a_correction_adds_is_never_overwritten(tree):
    before = generated_files(tree)
    changed = vendor()
    operation(changed)["operationId"] = "createRemix"
    request_schema(changed)["properties"]["aspect_ratio"]["enum"] = [*RATIOS, "21:9"]
    write_spec(tree / "openapi" / "vendor.openapi.json", changed)

    line = stops_with_one_line(regenerate(tree), tree, before)
    number = numbered(tree, "add", "{operation}/operationId")
    assert line == (
        f"openapi/corrections.json: the vendor now defines {{operation}}/operationId "
        f"(correction {number}): drop or update it"
    )
    # The maintainer drops it: the next run names the next correction the vendor overtook.
    listed = corrections_file(tree)
    del listed["corrections"][number - 1]
    (tree / "openapi" / "corrections.json").write_text(json.dumps(listed, indent=2))
    pointer = "/components/schemas/RemixRequest/properties/aspect_ratio/enum"
    line = stops_with_one_line(regenerate(tree), tree, before)
    assert line == (
        f"openapi/corrections.json: the vendor now defines {pointer} "
        f"(correction {numbered(tree, 'add', pointer)}): drop or update it"
    )


def test_i_vendor_components_are_not_wiped_by_the_correction_that_adds_them(tree):
    before = generated_files(tree)
    changed = vendor()
    response = response_schema(changed)
    changed["components"] = {"schemas": {"Image": response["properties"]["data"]["items"]}}
    response["properties"]["data"]["items"] = {"$ref": "#/components/schemas/Image"}
    write_spec(tree / "openapi" / "vendor.openapi.json", changed)
    line = stops_with_one_line(regenerate(tree), tree, before)
    assert line == (
        "openapi/corrections.json: the vendor now defines /components (correction 2): "
        "drop or update it"
    )


def test_e_a_renamed_request_field_stops_naming_the_cause(tree, tmp_path):
    before = generated_files(tree)
    changed = vendor()
    schema = request_schema(changed)
    schema["properties"] = {
        ("images" if name == "image_urls" else name): value
        for name, value in schema["properties"].items()
    }
    schema["required"] = ["model", "prompt", "images"]
    result = regenerate(tree, "--from", str(write_spec(tmp_path / "renamed.json", changed)))
    assert "- request.image_urls: removed" in result.stdout
    assert "- request.images: added (array, required)" in result.stdout
    line = stops_with_one_line(result, tree, before)
    start = (
        "reve_remix/_spec.py cannot read the corrected spec: RemixRequest has no image_urls (set "
        "from remix's arguments); it has "
    )
    assert line.startswith(start)
    assert line.endswith(": adapt it")
    listed = line.removeprefix(start).removesuffix(": adapt it").split(", ")
    assert sorted(listed) == sorted(schema["properties"])  # in the corrected spec's order


def test_h_reordered_keys_change_nothing_downstream(tree, tmp_path):
    def reordered(node):
        if isinstance(node, dict):
            return {key: reordered(node[key]) for key in reversed(node)}
        if isinstance(node, list):
            return [reordered(item) for item in node]
        return node

    before = generated_files(tree)
    corrected_before = (tree / "openapi" / "corrected.openapi.json").read_bytes()
    result = regenerate(tree, "--from", str(write_spec(tmp_path / "r.json", reordered(vendor()))))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("No change to the operations")
    assert (tree / "openapi" / "corrected.openapi.json").read_bytes() == corrected_before
    after = generated_files(tree)
    assert after.pop("_provenance.py") != before.pop("_provenance.py")  # the new vendor hash
    assert after == before  # models, enums, field order: so the JSON on the wire too


# --- the corrections, as a pure function -------------------------------------------------------


def committed_corrections() -> dict:
    return json.loads((ROOT / "openapi" / "corrections.json").read_text())


def test_corrections_apply_to_the_vendor_spec_as_committed():
    corrected, notes = corrections.apply(vendor(), committed_corrections())
    assert notes == []
    committed = json.loads((ROOT / "openapi" / "corrected.openapi.json").read_text())
    assert corrected == committed


def test_a_correction_the_vendor_made_unnecessary_says_so_and_changes_nothing():
    changed = vendor()
    operation(changed)["requestBody"]["required"] = True
    corrected, notes = corrections.apply(changed, committed_corrections())
    number = numbered(ROOT, "add", "{operation}/requestBody/required")
    assert notes == [
        f"correction {number} (add {{operation}}/requestBody/required) is unnecessary: "
        "the vendor now defines the same value; drop it"
    ]
    assert corrected == corrections.apply(vendor(), committed_corrections())[0]


def test_a_pointer_the_vendor_removed_names_the_correction_and_what_is_missing():
    changed = vendor()
    del operation(changed)["parameters"]
    with pytest.raises(corrections.CorrectionError) as caught:
        corrections.apply(changed, committed_corrections())
    escaped = PATH.replace("~", "~0").replace("/", "~1")
    assert str(caught.value) == (
        "correction 3 (test {operation}/parameters/0/name): the vendor spec has no "
        f"/paths/{escaped}/post/parameters: update the correction"
    )


def test_corrections_never_share_state_between_runs():
    listed = committed_corrections()
    original = copy.deepcopy(listed)
    corrections.apply(vendor(), listed)
    corrections.apply(vendor(), listed)
    assert listed == original


# --- the change report, as a pure function -----------------------------------------------------

LOCATOR = json.loads((ROOT / "openapi" / "corrections.json").read_bytes())["operation"]


def changed(edit) -> dict:
    spec = vendor()
    edit(spec)
    return spec


@pytest.mark.parametrize(
    ("edit", "kind", "line"),
    [
        (
            lambda s: request_schema(s)["properties"].update({SEED: {"type": "integer"}}),
            "additive",
            f"request.{SEED}: added (integer, optional)",
        ),
        (
            lambda s: (
                request_schema(s)["properties"].update(style={"type": "string"}),
                request_schema(s)["required"].append("style"),
            ),
            "breaking",
            "request.style: added (string, required): remix has no argument for it; callers "
            "must pass extra_body={'style': ...} (the CLI: --field style=JSON)",
        ),
        (
            lambda s: request_schema(s)["properties"].pop("aspect_ratio"),
            "breaking",
            "request.aspect_ratio: removed",
        ),
        (
            lambda s: request_schema(s)["required"].remove("model"),
            "additive",
            "request.model: required true → false",
        ),
        (
            lambda s: request_schema(s)["properties"]["output_format"]["enum"].append("png"),
            "additive",
            "request.output_format: enum +png",
        ),
        (
            lambda s: request_schema(s)["properties"]["output_format"]["enum"].remove("b64_json"),
            "breaking",
            "request.output_format: enum -b64_json",
        ),
        (
            lambda s: request_schema(s)["properties"]["aspect_ratio"].update(
                enum=[*RATIOS, "21:9"]
            ),
            "breaking",
            "request.aspect_ratio: enum (none) → 16:9, 9:16, 3:2, 2:3, 4:3, 3:4, 1:1, 21:9",
        ),
        (
            lambda s: request_schema(s)["properties"]["image_urls"].update(
                maxItems=LIMITS.max_images - 1
            ),
            "breaking",
            f"request.image_urls: maxItems {LIMITS.max_images} → {LIMITS.max_images - 1}",
        ),
        (
            lambda s: request_schema(s)["properties"]["image_urls"].update(
                description="Each image must be less than 1 MB. Supports PNG, JPEG, WebP, AVIF, "
                "and HEIF formats."
            ),
            "breaking",
            "request.image_urls: size limit 1500000 → 1000000",
        ),
        (
            lambda s: request_schema(s)["properties"]["aspect_ratio"].update(
                description="Possible enum values: `16:9`, `21:9`"
            ),
            "breaking",
            "request.aspect_ratio: listed values +21:9 -9:16, 3:2, 2:3, 4:3, 3:4, 1:1",
        ),
        (
            lambda s: response_schema(s)["properties"]["data"]["items"]["properties"].pop("url"),
            "breaking",
            "response.data[].url: removed (RemixImage.url reads it: now what the response "
            "sends, else None)",
        ),
        (
            lambda s: response_schema(s)["properties"]["created"].update(type="string"),
            "breaking",
            'response.created: type "integer" → "string" (read by RemixResult.created)',
        ),
        (
            lambda s: s.update(security=[{"apiKey": []}]),
            "breaking",
            'security: top level [] → [{"apiKey": []}]',
        ),
    ],
)
def test_the_change_report_classifies_each_change(edit, kind, line):
    report = change_report.compare(vendor(), changed(edit), LOCATOR)
    assert getattr(report, kind) == [line]
    assert report.exit_code == (4 if kind == "breaking" else 3)
    assert f"- {line}" in report.text()


def test_the_change_report_of_an_unchanged_spec_is_empty_and_exit_0():
    report = change_report.compare(vendor(), vendor(), LOCATOR)
    assert (report.breaking, report.additive, report.exit_code) == ([], [], 0)
    assert report.text().startswith("No change")


# --- docs/spec-changes.md shows what the script prints --------------------------------------------


def test_the_documented_extra_body_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = (ROOT / "docs" / "spec-changes.md").read_text(encoding="utf-8")
    [example] = [block.split("```", 1)[0] for block in doc.split("```python\n")[1:]]
    exec(compile(example, "docs/spec-changes.md", "exec"), {})
    assert (tmp_path / "woodcut.png").read_bytes().startswith(b"\x89PNG")
