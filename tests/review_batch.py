"""A batch folder with a job in every status a contact sheet shows, for its tests and docs.

Six jobs run for real through ``reve-remix batch`` against the offline mock API on 127.0.0.1,
its answers scripted: three done (list references, named references, a URL reference), one
flagged by the content policy (403), one failed (400), one ambiguous (a 500, not retried). Four
more are then added to the jobs file in states a mock run cannot leave cheaply, by writing the
records a run would have written: one paid whose download failed, one held (its 2xx had no
image), one sent whose run ended before its outcome, and one never sent (pending, no record).
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from reve_remix._ledger import JobRecord
from reve_remix._lifecycle import JobState
from reve_remix._manifest import Manifest
from reve_remix.testing import Fault, MockServer
from tests.conftest import run_cli

CONTENT_POLICY = {"error": {"type": "content_policy_violation", "message": "flagged by moderation"}}
RUN_LINES = [
    ({"id": "cat-ink", "prompt": "<img>0</img> as an ink drawing, <b>bold</b> & loose",
      "images": ["cat.png"]}, Fault(), "done"),
    ({"id": "cat-on-sofa", "prompt": "Put {cat} on {sofa}, as a watercolour",
      "images": {"cat": "cat.png", "sofa": "sofa.jpg"}, "aspect_ratio": "16:9"}, Fault(), "done"),
    ({"id": "remote-night", "prompt": "<img>0</img> at night, neon signs",
      "images": ["https://example.com/street.png"], "aspect_ratio": "3:4"}, Fault(), "done"),
    ({"id": "sofa-flagged", "prompt": "<img>0</img> in a scene we may not show",
      "images": ["sofa.jpg"]}, Fault(status=403, body=CONTENT_POLICY), "flagged"),
    ({"id": "cat-failed", "prompt": "<img>0</img> as a mosaic", "images": ["cat.png"]},
     Fault(status=400), "failed"),
    ({"id": "cat-ambiguous", "prompt": "<img>0</img> in oil paint", "images": ["cat.png"]},
     Fault(status=500), "ambiguous"),
]  # fmt: skip
LATER_LINES = [
    ({"id": "sofa-paid", "prompt": "{sofa} in a forest", "images": {"sofa": "sofa.jpg"}}, "paid"),
    ({"id": "cat-held", "prompt": "<img>0</img> as pixel art", "images": ["cat.png"]}, "held"),
    ({"id": "cat-sent", "prompt": "<img>0</img> in fog", "images": ["cat.png"]}, "sent"),
    ({"id": "cat-pending", "prompt": "<img>0</img> in the snow", "images": ["cat.png"]}, "pending"),
]

_REFERENCES = [line["images"] for line, *_ in (*RUN_LINES, *LATER_LINES)]
LOCAL_REFERENCES = sum(
    not str(image).startswith("https:")
    for images in _REFERENCES
    for image in (images.values() if isinstance(images, dict) else images)
)
"""How many references of the jobs are local files (shown as images; a URL is a link)."""


def make_batch(folder: Path) -> dict[str, str]:
    """Make ``folder/jobs.jsonl``, the images, and ``folder/out`` (the batch's ``--out``);
    return each job's expected status on the sheet."""
    samples = resources.files("reve_remix") / "_samples"
    for name in ("cat.png", "sofa.jpg"):
        (folder / name).write_bytes((samples / name).read_bytes())
    jobs = folder / "jobs.jsonl"
    jobs.write_text("".join(json.dumps(line) + "\n" for line, _, _ in RUN_LINES))
    with MockServer() as server:
        server.enqueue(*(fault for _, fault, _ in RUN_LINES))
        run = run_cli(
            "batch", jobs, "--out", folder / "out", "--concurrency", 1, "--max-retries", 0,
            "--base-url", server.base_url, cwd=folder,
        )  # fmt: skip
    assert run.returncode == 1, run  # three jobs are not done
    with jobs.open("a") as file:
        file.writelines(json.dumps(line) + "\n" for line, _ in LATER_LINES)
    first = len(RUN_LINES) + 1
    prompts = [line["prompt"] for line, _ in LATER_LINES]
    write_records(
        folder / "out",
        JobRecord("sofa-paid", JobState.SENT, line=first, prompt=prompts[0]),
        JobRecord(
            "sofa-paid",
            JobState.PAID,
            url="https://cdn.example.com/sofa-paid.png",
            request_id="req-paid-1",
            revised_prompt="image 0 in a forest",
            error="the image was generated (request id req-paid-1) but not saved: 503",
            line=first,
            prompt=prompts[0],
        ),
        JobRecord(
            "cat-held",
            JobState.PAID,
            request_id="req-held-1",
            body="{}",
            line=first + 1,
            prompt=prompts[1],
        ),
        JobRecord("cat-sent", JobState.SENT, line=first + 2, prompt=prompts[2]),
    )
    statuses = {line["id"]: status for line, _, status in RUN_LINES}
    statuses.update({line["id"]: status for line, status in LATER_LINES})
    return statuses


def write_records(out_dir: Path, *records: JobRecord) -> None:
    """Write ``records`` to the manifest of ``out_dir``, as a run would have."""
    with Manifest(out_dir) as manifest:
        manifest.open()
        for record in records:
            manifest.write(record)


def copy_batch(source: Path, target: Path) -> Path:
    """A copy of a folder ``make_batch`` made, so that a test may change it."""
    shutil.copytree(source, target)
    return target
