"""Forward-compatible requests: ``extra_body``, ``extra_headers`` and ``timeout`` per call.

As in the OpenAI and Anthropic SDKs: a field the vendor adds after this SDK was written can be
sent without waiting for a release. Fields the spec defines are checked against its schema
before anything is sent; others go as given. Both clients, ``remix_many`` jobs and batch lines
share the one code path (``prepare_remix`` and ``_BaseClient._build_request``), tested here
against the mock server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reve_remix import APITimeoutError, AsyncReveRemix, RemixJob, ReveRemix, ValidationError
from reve_remix._client import DEFAULT_MODEL
from reve_remix._jobs_file import read_jobs
from reve_remix._spec import spec
from reve_remix.testing import Fault

from .conftest import API_KEY, IMAGE_URL
from .test_batch import run_batch, sample_png  # noqa: F401 - a fixture


@pytest.fixture(params=["sync", "async"])
def remix(request, server):
    """``remix(...)`` through ``ReveRemix`` or ``AsyncReveRemix``: the same behaviour is owed."""

    def call(*args, **kwargs):
        if request.param == "sync":
            with ReveRemix(API_KEY, base_url=server.base_url, max_retries=0) as client:
                return client.remix(*args, **kwargs)

        async def run():
            async with AsyncReveRemix(API_KEY, base_url=server.base_url, max_retries=0) as client:
                return await client.remix(*args, **kwargs)

        return asyncio.run(run())

    return call


# Request fields no spec will define (the vendor's next fields, such as a seed, may be defined by
# the time this runs: the tests of what is sent "as given" must not depend on which).
UNDECLARED = ("x_seed", "x_style", "x_note")


def test_fields_the_spec_does_not_define_are_sent_as_given(server, remix):
    assert not set(UNDECLARED) & set(spec().request_properties)
    extra = {"x_seed": 7, "x_style": {"strength": 0.5, "tags": ["ink"]}, "x_note": None}
    remix("<img>0</img> in ink", [IMAGE_URL], extra_body=extra)
    sent = server.requests[-1].json
    assert {key: sent[key] for key in extra} == extra
    assert sent["prompt"] == "<img>0</img> in ink"
    assert sent["image_urls"] == [IMAGE_URL]


def test_a_field_the_spec_defines_is_checked_before_sending(server, remix):
    with pytest.raises(ValidationError, match=r"^extra_body: 'n' must be one of \[1\], got 2$"):
        remix("<img>0</img>", [IMAGE_URL], extra_body={"n": 2})
    with pytest.raises(ValidationError, match=r"^extra_body: 'n' must be of type integer, got str"):
        remix("<img>0</img>", [IMAGE_URL], extra_body={"n": "1"})
    assert not server.requests
    remix("<img>0</img>", [IMAGE_URL], extra_body={"n": 1})
    assert server.requests[-1].json["n"] == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"prompt": "x"}, "extra_body: 'prompt' is set by remix's prompt= argument"),
        (
            {"image_urls": [IMAGE_URL]},
            "extra_body: 'image_urls' is set by remix's images= argument",
        ),
        ({"aspect_ratio": "1:1"}, "extra_body: 'aspect_ratio' is set by remix's aspect_ratio="),
        ({"x_seed": float("nan")}, "extra_body: cannot be sent as JSON: Out of range float"),
        ({"x_style": {1, 2}}, "extra_body: cannot be sent as JSON: Object of type set"),
        ({"x_note": "\ud800"}, "extra_body: cannot be sent as JSON: 'utf-8' codec"),
        ({1: "x"}, "extra_body: field names must be strings, got 1"),
        ([("seed", 7)], "extra_body: expected a mapping of request fields, got list"),
    ],
)
def test_bad_extra_body_is_a_validation_error_and_nothing_is_sent(server, remix, extra, message):
    with pytest.raises(ValidationError) as caught:
        remix("<img>0</img>", [IMAGE_URL], extra_body=extra)
    assert str(caught.value).startswith(message)
    assert not server.requests


def test_extra_headers_are_sent_and_the_key_keeps_its_one_way_in(server, remix):
    remix("<img>0</img>", [IMAGE_URL], extra_headers={"X-Trace-Id": "abc-1", "User-Agent": "me/1"})
    sent = server.requests[-1].headers
    assert sent["x-trace-id"] == "abc-1"
    assert sent["user-agent"] == "me/1"
    assert sent["authorization"] == f"Bearer {API_KEY}"
    with pytest.raises(ValidationError, match="'authorization': the client sets it from api_key="):
        remix("<img>0</img>", [IMAGE_URL], extra_headers={"authorization": "Bearer other"})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Token": "sk-secret\n"}, "extra_headers: the value of 'X-Token' must be printable"),
        ({"X-Token": "clé"}, "extra_headers: the value of 'X-Token' must be printable"),
        ({"X-Token": 7}, "extra_headers: the value of 'X-Token' must be printable"),
        ({"Bad Name": "x"}, "extra_headers: 'Bad Name' is not a valid header name"),
        ("X-Token: x", "extra_headers: expected a mapping of header names to values, got str"),
        ({"Content-Length": "1"}, "extra_headers: 'Content-Length': the client sets it from"),
        ({"transfer-encoding": "x"}, "extra_headers: 'transfer-encoding': the client sets it"),
        ({"Host": "x.test"}, "extra_headers: 'Host': the client sets it from base_url="),
    ],
)
def test_bad_extra_headers_never_echo_the_value(server, remix, headers, message):
    with pytest.raises(ValidationError) as caught:
        remix("<img>0</img>", [IMAGE_URL], extra_headers=headers)
    assert str(caught.value).startswith(message)
    assert "sk-secret" not in str(caught.value)
    assert not server.requests


def test_a_per_call_timeout_replaces_the_clients(server, remix):
    # An answer held until the server stops: the client's 180 s would wait for it, so a timeout
    # is the call's.
    server.enqueue(Fault(delay=3600))
    with pytest.raises(APITimeoutError):
        remix("<img>0</img>", [IMAGE_URL], timeout=0.2)
    remix("<img>0</img>", [IMAGE_URL], timeout=httpx.Timeout(30.0))


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "10", True, 10**400])
def test_a_bad_timeout_is_a_validation_error(server, remix, timeout):
    with pytest.raises(
        ValidationError, match=r"^timeout: expected seconds above 0 and at most 86400, got "
    ):
        remix("<img>0</img>", [IMAGE_URL], timeout=timeout)
    assert not server.requests


def test_remix_many_jobs_carry_extra_body_and_headers(server, client):
    jobs = [
        RemixJob("<img>0</img> one", [IMAGE_URL], extra_body={"seed": 1}),
        {
            "prompt": "<img>0</img> two",
            "images": [IMAGE_URL],
            "extra_body": {"seed": 2},
            "extra_headers": {"X-Job": "two"},
        },
    ]
    outcomes = client.remix_many(jobs)
    assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    sent = {request.json["prompt"]: request for request in server.requests if request.json}
    assert sent["<img>0</img> one"].json["seed"] == 1
    assert sent["<img>0</img> two"].json["seed"] == 2
    assert sent["<img>0</img> two"].headers["x-job"] == "two"


@pytest.mark.anyio
async def test_async_remix_many_jobs_carry_extra_body(server, aclient):
    job = RemixJob("<img>0</img> one", [IMAGE_URL], extra_body={"n": 3})
    [outcome] = await aclient.remix_many([job])
    assert isinstance(outcome, ValidationError)
    assert str(outcome) == "extra_body: 'n' must be one of [1], got 3"
    assert not server.requests


def test_batch_lines_take_extra_body_checked_before_anything_is_sent(tmp_path, sample_png):  # noqa: F811
    jobs_file = tmp_path / "jobs.jsonl"
    lines = [
        {"prompt": "<img>0</img> a", "images": ["in.png"], "id": "a", "extra_body": {"seed": 7}},
        {"prompt": "<img>0</img> b", "images": ["in.png"], "id": "b", "extra_body": [7]},
        {"prompt": "<img>0</img> c", "images": ["in.png"], "id": "c", "extra_body": {"n": 9}},
    ]
    jobs_file.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    jobs, problems = read_jobs(jobs_file)
    assert [str(problem) for problem in problems] == [
        'line 2: "extra_body" must be an object, got an array'
    ]
    assert jobs[0].job.extra_body == {"seed": 7}
    with pytest.raises(ValidationError, match=r"^extra_body: 'n' must be one of \[1\], got 9$"):
        jobs[1].fingerprint("reve-remix-image-to-image")


def test_a_batch_sends_each_lines_extra_body(server, tmp_path, sample_png):  # noqa: F811
    jobs_file = tmp_path / "jobs.jsonl"
    line = {"prompt": "<img>0</img> a", "images": ["in.png"], "id": "a", "extra_body": {"seed": 7}}
    jobs_file.write_text(json.dumps(line) + "\n")
    completed = run_batch(server, jobs_file, tmp_path / "out")
    assert completed.returncode == 0, completed.stderr
    [sent] = [request for request in server.requests if request.method == "POST"]
    assert sent.json["seed"] == 7


@given(
    prompt=st.text(st.characters(exclude_categories=("Cs",)), min_size=1),
    aspect_ratio=st.sampled_from([None, *spec().aspect_ratios]),
    output_format=st.sampled_from(spec().output_formats),
    model=st.sampled_from([DEFAULT_MODEL, "another-model"]),
)
@settings(max_examples=60, deadline=None)
def test_a_body_without_extra_body_is_what_the_model_makes_of_it(
    prompt, aspect_ratio, output_format, model
):
    """Without ``extra_body`` the fields go through the generated model once for each value
    and the prompt is filled in: the body must be byte for byte what a request read and written
    by the model for that very prompt gives."""
    from reve_remix_api.models import AspectRatio, OutputFormat

    from reve_remix._request import (
        PreparedRemix,
        _own_fields,
        _through_model,
        default_fields,
        encode_body,
    )

    ratio = None if aspect_ratio is None else AspectRatio(aspect_ratio)
    fmt = OutputFormat(output_format)
    prepared = PreparedRemix(model, prompt, [IMAGE_URL], ratio, fmt)
    through = _through_model({**default_fields(), **_own_fields(model, prompt, ratio, fmt)})
    for _ in range(2):  # the second reads the fields checked the first time
        assert prepared.body([IMAGE_URL]) == encode_body(through, [IMAGE_URL])
