"""A refusal by content policy is a ``ContentPolicyError`` whatever its status, never retried; an
error object inside a 2xx body carries the vendor's words and is held as possibly billed."""

from __future__ import annotations

import traceback

import pytest

from reve_remix import (
    APIResponseValidationError,
    APIStatusError,
    BadRequestError,
    ContentPolicyError,
    InternalServerError,
    PermissionDeniedError,
    UnprocessableEntityError,
)
from reve_remix._lifecycle import JobState
from reve_remix._runner import state_after_error
from reve_remix.testing import Fault

from .conftest import IMAGE_URL

PROMPT = "<img>0</img> in the rain"
# OneRouter's documented refusal.
REFUSAL = {
    "error": {
        "code": 422,
        "type": "content_policy_violation",
        "message": "Your request was rejected by the safety system.",
    }
}


def posts(server):
    return sum(1 for request in server.requests if request.method == "POST")


@pytest.mark.parametrize(
    ("status", "status_class"),
    [
        (422, UnprocessableEntityError),
        (403, PermissionDeniedError),
        (400, BadRequestError),
        (500, InternalServerError),
    ],
)
def test_any_status_whose_type_names_content_policy_is_a_content_policy_error(
    server, twin, status, status_class
):
    server.enqueue(Fault(status=status, body=REFUSAL))
    with pytest.raises(ContentPolicyError) as info:
        twin.remix(PROMPT, [IMAGE_URL])
    error = info.value
    assert isinstance(error, status_class)  # still the error of its status
    assert not isinstance(error, APIResponseValidationError)
    assert (error.status_code, error.error_type, error.body) == (
        status,
        "content_policy_violation",
        REFUSAL,
    )
    assert error.request_id
    assert error.request_id in str(error)
    assert "rejected by the safety system" in str(error)
    assert not error.in_2xx_body
    assert state_after_error(error) is JobState.FLAGGED
    assert traceback.format_exception_only(error)[0].startswith("reve_remix.ContentPolicyError: ")
    assert posts(server) == 1


@pytest.mark.parametrize("field", ["type", "code"])
@pytest.mark.parametrize("word", ["moderation", "content_policy", "flagged"])
def test_the_type_or_the_code_may_name_it(server, twin, field, word):
    server.enqueue(Fault(status=403, body={"error": {"message": "no", field: f"{word}_error"}}))
    with pytest.raises(ContentPolicyError):
        twin.remix(PROMPT, [IMAGE_URL])


@pytest.mark.parametrize("status", [503, 429, 500])
def test_a_refusal_is_never_retried(server, make_twin, status, fast_backoff):
    twin = make_twin(
        api_key="sk-test", base_url=server.base_url, retry_on_ambiguous=True, max_retries=3
    )
    server.enqueue(Fault(status=status, body=REFUSAL, headers={"Retry-After": "0"}))
    with pytest.raises(ContentPolicyError):
        twin.remix(PROMPT, [IMAGE_URL])
    assert posts(server) == 1


def test_other_errors_are_not_content_policy_errors(server, twin):
    server.enqueue(Fault(status=422, body={"error": {"type": "invalid_request", "message": "x"}}))
    with pytest.raises(UnprocessableEntityError) as info:
        twin.remix(PROMPT, [IMAGE_URL])
    assert not isinstance(info.value, ContentPolicyError)


# --- an error inside a 2xx ------------------------------------------------------------------------


def test_an_error_inside_a_2xx_carries_the_vendors_message_and_type(server, twin):
    body = {"error": {"type": "upstream_error", "message": "the model crashed", "code": 500}}
    server.enqueue(Fault(status=200, body=body))
    with pytest.raises(APIStatusError) as info:
        twin.remix(PROMPT, [IMAGE_URL])
    error = info.value
    assert not isinstance(error, ContentPolicyError)
    assert isinstance(error, APIResponseValidationError)  # a 2xx without an image: held
    assert error.in_2xx_body
    assert (error.status_code, error.error_type, error.error_code) == (200, "upstream_error", 500)
    assert "the model crashed" in str(error)
    assert "may have been generated" in str(error)
    assert error.request_id in str(error)
    assert state_after_error(error) is JobState.AMBIGUOUS
    assert posts(server) == 1


def test_a_refusal_inside_a_2xx_is_a_content_policy_error_that_may_have_been_billed(server, twin):
    server.enqueue(Fault(status=200, body=REFUSAL))
    with pytest.raises(ContentPolicyError) as info:
        twin.remix(PROMPT, [IMAGE_URL])
    error = info.value
    assert error.in_2xx_body
    assert isinstance(error, APIResponseValidationError)
    assert error.error_type == "content_policy_violation"
    assert state_after_error(error) is JobState.AMBIGUOUS  # may have been billed: held
    assert traceback.format_exception_only(error)[0].startswith("reve_remix.ContentPolicyError: ")


def test_a_2xx_with_an_image_and_an_error_keeps_the_image(server, twin):
    """The image was paid for: a stray error object never loses it."""
    body = {"created": 1, "data": [{"url": IMAGE_URL}], "error": {"type": "moderation"}}
    server.enqueue(Fault(status=200, body=body))
    assert twin.remix(PROMPT, [IMAGE_URL]).image.url == IMAGE_URL
