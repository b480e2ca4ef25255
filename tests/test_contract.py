"""Contract tests: the facade against the vendor's spec, not against our reading of it.

- every request the facade sends (a matrix of arguments) validates against the **vendor** spec's
  request schema;
- every spec-valid response body (generated from the response schema) parses;
- the aspect ratios and output formats the facade accepts are exactly the spec's;
- the defaults (server, model) are the spec's and the provider's.

This is also the one file that pins today's vendor values on purpose (the section at the end):
every other test reads them from the spec, so that a vendor change that breaks no user leaves it
green. When one of the pinned tests fails, ``scripts/spec_drift.py`` lists it as expected to
change: update the value here (and the prose the test guards) to the new spec.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis_jsonschema import from_schema

from reve_remix import APIResponseValidationError, ReveRemix
from reve_remix._client import DEFAULT_BASE_URL, DEFAULT_MODEL
from reve_remix._download import Downloader
from reve_remix._results import parse_response
from reve_remix._spec import SpecError, read, spec
from tests import regen_tree
from tests.test_regenerate import (
    LOCATOR,
    additive_spec,
    change_report,
    committed_corrections,
    corrections,
)

from .conftest import API_KEY

ROOT = Path(__file__).resolve().parent.parent
VENDOR = json.loads((ROOT / "openapi" / "vendor.openapi.json").read_bytes())
OPERATION = VENDOR["paths"][spec().path][spec().method.lower()]
REQUEST_SCHEMA = OPERATION["requestBody"]["content"]["application/json"]["schema"]
RESPONSE_SCHEMA = OPERATION["responses"]["200"]["content"]["application/json"]["schema"]


@pytest.fixture
def client(reve_remix_mock):
    """A client of the plugin's mock through its transport: no sockets, every request kept."""
    http = httpx.Client(transport=reve_remix_mock.transport)
    with http, ReveRemix(API_KEY, base_url="https://api.test", http_client=http) as remix_client:
        yield remix_client


def matrix():
    counts = range(spec().min_images, spec().max_images + 1)
    image_sets = [["https://example.com/a.png"] * count for count in counts]
    yield from itertools.product(
        (None, *spec().aspect_ratios), spec().output_formats, image_sets, (False, True)
    )


def test_every_request_in_the_matrix_validates_against_the_vendor_schema(client, reve_remix_mock):
    cases = list(matrix())
    for ratio, fmt, urls, named in cases:
        if named:
            names = [f"ref{i}" for i in range(len(urls))]
            prompt = "Blend " + " and ".join(f"{{{name}}}" for name in names)
            client.remix(
                prompt, dict(zip(names, urls, strict=True)), aspect_ratio=ratio, output_format=fmt
            )
        else:
            prompt = "Blend " + " and ".join(f"<img>{i}</img>" for i in range(len(urls)))
            client.remix(prompt, urls, aspect_ratio=ratio, output_format=fmt)
    sent = reve_remix_mock.requests  # the remix requests
    ratios, formats = len(spec().aspect_ratios) + 1, len(spec().output_formats)  # +1: None
    counts = spec().max_images - spec().min_images + 1
    assert len(sent) == len(cases) == ratios * formats * counts * 2
    validator = jsonschema.Draft202012Validator(REQUEST_SCHEMA)
    for request in sent:
        errors = [error.message for error in validator.iter_errors(request.json)]
        assert errors == [], request.json
        assert request.headers["content-type"] == "application/json"


@pytest.mark.slow  # schema-exhaustive: .ci/run runs it after the README command
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=from_schema(RESPONSE_SCHEMA))
def test_every_spec_valid_response_parses(body):
    response = httpx.Response(
        200,
        content=json.dumps(body).encode(),
        request=httpx.Request(spec().method, "https://api.test" + spec().path),
    )
    images = [item for item in body["data"] if item.get("url") or item.get("b64_json")]
    if not images:
        # Spec-valid, but no image to be had: the paid-unreadable error, carrying the body.
        with pytest.raises(APIResponseValidationError) as info:
            parse_response(response, Downloader(httpx.Client()))
        assert info.value.body == body
        return
    before = int(time.time())
    result = parse_response(response, Downloader(httpx.Client()))
    try:
        datetime.fromtimestamp(body["created"], tz=UTC)
    except (OverflowError, OSError, ValueError):
        # An integer no clock can show: read as the time the response arrived, image kept.
        assert before <= result.created <= time.time()
    else:
        assert result.created == body["created"]
    assert [(i.url, i.b64_json, i.revised_prompt) for i in result.images] == [
        (item.get("url") or None, item.get("b64_json") or None, item.get("revised_prompt") or None)
        for item in body["data"]
    ]
    assert result.raw is not None
    # The generated models hold what was sent, but nulls in the spec's fields (not nullable).
    declared = spec().image_properties
    assert result.raw.to_dict()["data"] == [
        {key: value for key, value in item.items() if value is not None or key not in declared}
        for item in body["data"]
    ]


def test_aspect_ratios_are_exactly_the_vendor_prose_list():
    description = REQUEST_SCHEMA["properties"]["aspect_ratio"]["description"]
    prose = re.findall(r"`([^`]+)`", description.split("Possible enum values:")[1])
    vendor_values = {value.strip(" ,") for value in prose}
    assert set(spec().aspect_ratios) == vendor_values
    assert len(spec().aspect_ratios) == 7


def test_output_formats_are_exactly_the_vendor_enum():
    assert set(spec().output_formats) == set(REQUEST_SCHEMA["properties"]["output_format"]["enum"])


def test_the_default_output_format_is_the_specs_and_a_default_outside_the_enum_is_refused():
    assert spec().default_output_format == REQUEST_SCHEMA["properties"]["output_format"]["default"]
    corrected = json.loads((ROOT / "openapi" / "corrected.openapi.json").read_bytes())
    schemas = corrected["components"]["schemas"]
    schemas["RemixRequest"]["properties"]["output_format"] = {"enum": ["url"], "default": "png"}
    with pytest.raises(SpecError, match="the default 'png' is not one of its enum"):
        read(corrected)


@pytest.mark.parametrize("bad", ["21:9", "16/9", "", "1:1 ", 1.5])
def test_values_outside_the_spec_are_refused(bad, client, reve_remix_mock):
    from reve_remix import ValidationError

    with pytest.raises(ValidationError, match="aspect_ratio"):
        client.remix("<img>0</img>", ["https://example.com/a.png"], aspect_ratio=bad)
    with pytest.raises(ValidationError, match="output_format"):
        client.remix("<img>0</img>", ["https://example.com/a.png"], output_format=str(bad))
    assert reve_remix_mock.requests == []


# --- today's vendor values, pinned on purpose: expected to change with the vendor's spec ---------


def test_defaults_are_the_spec_server_and_the_provider_model():
    assert VENDOR["servers"][0]["url"] == DEFAULT_BASE_URL
    assert DEFAULT_MODEL == "reve-remix-image-to-image"
    assert REQUEST_SCHEMA["properties"]["image_urls"]["maxItems"] == 4
    assert REQUEST_SCHEMA["properties"]["image_urls"]["minItems"] == 1


def test_the_operation_is_the_one_the_prose_names():
    """The README and the docs name the operation in prose."""
    assert (spec().method, spec().path) == ("POST", "/v1/images/edits")
    for prose in ("README.md", "docs/index.md"):
        assert f"{spec().method} {spec().path}" in (ROOT / prose).read_text(encoding="utf-8")


def test_the_documented_example_is_what_the_script_prints():
    """docs/spec-changes.md's example report: drills a, c, d and f on today's spec."""
    doc = (ROOT / "docs" / "spec-changes.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in doc.split("```text\n")[1:]]
    changed = regen_tree.moved(additive_spec())
    report = change_report.compare(regen_tree.vendor(), changed, LOCATOR)
    report.header = change_report.VENDOR_ONLY
    assert blocks[0] == report.text()
    with pytest.raises(corrections.CorrectionError) as caught:
        corrections.apply(changed, committed_corrections())
    assert blocks[1] == f"openapi/corrections.json: {caught.value}\n"
    commands = doc.split("```bash\n")[1].split("```", 1)[0]
    assert "scripts/regenerate.py --from NEW_SPEC" in commands
    assert len(commands.strip().splitlines()) == 3
