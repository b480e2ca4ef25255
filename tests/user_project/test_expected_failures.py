"""Tests that must FAIL at teardown (the driver checks that they do), and their opt-outs."""

import pytest
from remix_app import post_raw

BAD_BODY = {"prompt": "<img>0</img> as a watercolour", "image_urls": []}


def test_unused_response_fails_at_teardown(reve_remix_mock):
    reve_remix_mock.add_response(status_code=429)  # the code under test never calls the API


@pytest.mark.reve_remix_mock(assert_all_responses_were_requested=False)
def test_unused_response_allowed_by_the_marker(reve_remix_mock):
    reve_remix_mock.add_response(status_code=429)


def test_spec_violation_fails_at_teardown(reve_remix_mock):
    assert post_raw(BAD_BODY).status_code == 422  # the adapter ignores the error; the kit does not


@pytest.mark.reve_remix_mock(assert_all_requests_were_valid=False)
def test_spec_violation_allowed_by_the_marker(reve_remix_mock):
    assert post_raw(BAD_BODY).status_code == 422
