"""The code under test: a small app built on reve-remix, as a user would write it."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from reve_remix import ReveRemix
from reve_remix._spec import spec


def watercolour(photo: Path, out: Path) -> Path:
    """Turn ``photo`` into a 3:2 watercolour saved at ``out``."""
    with ReveRemix() as client:
        result = client.remix("<img>0</img> as a watercolour", [photo], aspect_ratio="3:2")
        return result.save(out)


def post_raw(body: dict[str, object]) -> httpx.Response:
    """A hand-rolled adapter that posts a body it built itself, bypassing the SDK's checks."""
    base_url = os.environ["REVE_REMIX_BASE_URL"]
    key = os.environ["ONEROUTER_API_KEY"]
    return httpx.post(
        f"{base_url}{spec().path}", json=body, headers={"Authorization": f"Bearer {key}"}
    )
