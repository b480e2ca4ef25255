"""Every field of the generated request and response models is reachable through the facade.

A field the vendor adds (an optional response field, a new optional request field: drills a
and d of ``tests/test_regenerate.py``) reaches ``generated/`` by regeneration, and these tests
fail unless a user can then send it (a ``remix`` argument or ``extra_body``) or read it
(``result.raw`` is the generated ``RemixResponse``, ``result.image.raw`` the generated
``RemixImage``, unknown fields in their ``additional_properties``). They walk the generated
models, so they need no edit when a field is added.

The response side relies on ``RemixResult.raw`` / ``RemixImage.raw`` returning the generated
models, which ``_results.parse_response`` builds.
"""

from __future__ import annotations

import base64
import dataclasses
import inspect
import json

import attrs
import pytest
from reve_remix_api.models import RemixImage, RemixRequest, RemixResponse

from reve_remix import AsyncReveRemix, RemixJob, ReveRemix
from reve_remix._spec import ARGUMENT_FIELDS
from reve_remix.testing import Fault
from reve_remix.testing._schema import spec as shipped_spec
from tests.regen_tree import (
    NEW_IMAGE_FIELD,
    NEW_RESPONSE_FIELD,
    copy_tree,
    regenerate,
    run_python,
    vendor,
    with_response_fields,
    write_spec,
)

from .conftest import IMAGE_URL

UNKNOWN = {"x_later": {"added": "by the vendor", "n": [1, 2]}}


def fields(model: type) -> list[str]:
    return [field.name for field in attrs.fields(model) if field.name != "additional_properties"]


def schema_of(component: str) -> dict:
    return shipped_spec()["components"]["schemas"][component]


def sample(schema: dict) -> object:
    """A value valid under ``schema`` (first enum value, else one of its type)."""
    if "$ref" in schema:
        return sample(schema_of(schema["$ref"].rsplit("/", 1)[1]))
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "array":
        return [sample(schema.get("items", {}))]
    if kind == "object":
        return {name: sample(sub) for name, sub in schema.get("properties", {}).items()}
    return {"integer": 7, "number": 0.5, "boolean": True, "null": None}.get(kind, "text")


# --- request side: every field can be sent -------------------------------------------------------


@pytest.mark.parametrize("name", fields(RemixRequest))
def test_every_request_field_is_an_argument_or_reaches_the_wire_through_extra_body(
    server, client, name
):
    if name in ARGUMENT_FIELDS:
        argument = ARGUMENT_FIELDS[name]
        for method in (ReveRemix.remix, AsyncReveRemix.remix):
            assert argument in inspect.signature(method).parameters
        assert argument in {field.name for field in dataclasses.fields(RemixJob)} | {"images"}
        return
    value = sample(schema_of("RemixRequest")["properties"][name])
    client.remix("<img>0</img>", [IMAGE_URL], extra_body={name: value})
    assert server.requests[-1].json[name] == value


def test_extra_body_and_headers_are_arguments_of_both_clients_and_jobs():
    for method in (ReveRemix.remix, AsyncReveRemix.remix):
        assert {"extra_body", "extra_headers", "timeout"} <= set(
            inspect.signature(method).parameters
        )
    assert {"extra_body", "extra_headers"} <= {field.name for field in dataclasses.fields(RemixJob)}


# --- response side: every field can be read -----------------------------------------------------


def response_body(inline: bool) -> dict:
    """A spec-valid 200 body giving every response field a value, plus unknown fields."""
    image = {
        name: sample(schema)
        for name, schema in schema_of("RemixImage")["properties"].items()
        if name != ("url" if inline else "b64_json")
    }
    if inline:
        image["b64_json"] = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode()
    else:
        image["url"] = "https://example.com/out.png"
    body = {
        name: sample(schema) for name, schema in schema_of("RemixResponse")["properties"].items()
    }
    body["data"] = [{**image, **UNKNOWN}]
    body["created"] = 1732480000
    return {**body, **UNKNOWN}


@pytest.mark.parametrize("inline", [False, True])
def test_every_response_field_is_readable_from_the_generated_models(server, client, inline):
    body = response_body(inline)
    server.enqueue(Fault(body=body))
    result = client.remix("<img>0</img>", [IMAGE_URL])
    assert isinstance(result.raw, RemixResponse)
    assert isinstance(result.image.raw, RemixImage)
    assert result.raw.to_dict() == body
    for name in fields(RemixImage):
        if name in body["data"][0]:
            assert getattr(result.image.raw, name) == body["data"][0][name], name
    assert result.image.raw.additional_properties == UNKNOWN
    assert result.raw.additional_properties == UNKNOWN
    assert result.raw.created == body["created"]


# --- drill a: fields the vendor adds to the response are readable after one command -------------

READ_NEW_FIELDS = """
import json
from reve_remix import ReveRemix
from reve_remix.testing import Fault, MockServer

body = {"created": 1732480000, RESPONSE_FIELD: {"cost": 0.02},
        "data": [{"url": "https://example.com/out.png", IMAGE_FIELD: 7}]}
with MockServer() as server, ReveRemix("sk-test", base_url=server.base_url) as client:
    server.enqueue(Fault(body=body))
    result = client.remix("<img>0</img>", ["https://example.com/in.png"])
    image_field = getattr(result.image.raw, IMAGE_FIELD)
    print(json.dumps([image_field, getattr(result.raw, RESPONSE_FIELD).to_dict()]))
"""


def test_a_new_response_fields_reach_users_with_no_facade_edit(tmp_path):
    tree = copy_tree(tmp_path / "repo")
    new_spec = write_spec(tmp_path / "new.json", with_response_fields(vendor()))
    result = regenerate(tree, "--from", str(new_spec))
    assert result.returncode == 3, result.stderr
    names = f"RESPONSE_FIELD = {NEW_RESPONSE_FIELD!r}\nIMAGE_FIELD = {NEW_IMAGE_FIELD!r}\n"
    completed = run_python(tree, names + READ_NEW_FIELDS)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == [7, {"cost": 0.02}]
