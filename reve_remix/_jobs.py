"""The job model of ``remix_many``, ``iter_remix`` and the batch file.

:class:`RemixJob` is one job (the arguments of ``remix`` and an ``id``), :func:`check_job_keys` the
one rule for a job mapping's keys, :class:`BatchProgress` what ``on_progress`` receives. The
schedulers that run jobs are in ``_schedule``; the batch file's lines in ``_jobs_file``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._exceptions import ReveRemixError, ValidationError
from ._request import Images
from ._results import RemixResult

if TYPE_CHECKING:
    from reve_remix_api._literals import AspectRatioValue, OutputFormatValue
    from reve_remix_api.models import AspectRatio, OutputFormat

Outcome = RemixResult | ReveRemixError
"""What ``remix_many`` returns for one job: its result, or the error that ended it."""


@dataclass(frozen=True, slots=True)
class RemixJob:
    """One remix for ``remix_many``: the arguments of ``remix``, plus an ``id`` for your records.

    ``output_format`` and ``model`` left as ``None`` use the client's defaults; ``extra_body``
    and ``extra_headers`` are passed to ``remix`` as they are. A plain mapping with the same keys
    works too.

    Example::

        jobs = [
            RemixJob("<img>0</img> as a watercolour", ["cat.png"], id="cat"),
            {"prompt": "Put {cat} on {sofa}", "images": {"cat": "cat.png", "sofa": "sofa.jpg"},
             "extra_body": {"seed": 7}},
        ]
        results = client.remix_many(jobs)
    """

    prompt: str
    images: Images
    aspect_ratio: AspectRatio | AspectRatioValue | None = None
    output_format: OutputFormat | OutputFormatValue | None = None
    model: str | None = None
    id: str | None = None
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = None

    @classmethod
    def _coerce(cls, job: object) -> RemixJob:
        """``job`` itself, or a ``RemixJob`` built from a mapping of its fields.

        Raises ``ValidationError`` for anything else, or for missing or unknown keys.

        Example::

            RemixJob._coerce({"prompt": "<img>0</img> at dusk", "images": ["city.jpg"]})
        """
        if isinstance(job, RemixJob):
            return job
        if not isinstance(job, Mapping):
            raise ValidationError(
                f"job: expected a RemixJob or a mapping, got {type(job).__name__}"
            )
        check_job_keys(job, "job: ")
        return cls(**job)


JOB_FIELDS = tuple(field.name for field in dataclasses.fields(RemixJob))
"""The keys a job mapping may have: ``RemixJob``'s fields."""
REQUIRED_JOB_FIELDS = ("prompt", "images")


def check_job_keys(
    job: Mapping[Any, object],
    prefix: str = "",
    *,
    allowed: Sequence[str] = JOB_FIELDS,
    show: Callable[[str], str] = repr,
) -> None:
    """``ValidationError`` for a job mapping with an unknown key or without prompt and images.

    One rule for ``remix_many``'s mappings and the batch file's lines (which ``show`` keys as JSON).

    Example::

        >>> check_job_keys({"prompt": "<img>0</img>", "imgs": []}, "job: ")
        Traceback (most recent call last):
          ...
        reve_remix.ValidationError: job: unknown key(s) 'imgs'; expected some of prompt, images, \
aspect_ratio, output_format, model, id, extra_body, extra_headers
    """
    unknown = sorted(str(key) for key in job if key not in allowed)
    if unknown:
        raise ValidationError(
            f"{prefix}unknown key(s) {', '.join(map(show, unknown))}; "
            f"expected some of {', '.join(allowed)}"
        )
    missing = [key for key in REQUIRED_JOB_FIELDS if key not in job]
    if missing:
        raise ValidationError(f"{prefix}missing {' and '.join(map(show, missing))}")


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """How far ``remix_many`` has got; passed to ``on_progress`` each time a job finishes.

    Example::

        def show(progress: BatchProgress) -> None:
            print(f"{progress.finished}/{progress.total} ({progress.failed} failed)")

        client.remix_many(jobs, on_progress=show)
    """

    done: int
    """Jobs that ended with a result."""
    failed: int
    """Jobs that ended with an error."""
    total: int

    @property
    def finished(self) -> int:
        """Jobs that ended either way."""
        return self.done + self.failed


def check_concurrency(concurrency: object) -> int:
    """``concurrency`` if it is an integer >= 1; ``ValidationError`` otherwise."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValidationError(f"concurrency: expected an integer >= 1, got {concurrency!r}")
    return concurrency


def progress_counter(
    total: int, on_progress: Callable[[BatchProgress], None] | None
) -> Callable[[int, object], None]:
    """An ``on_outcome`` callback that counts outcomes and reports them to ``on_progress``.

    An outcome that is a ``ReveRemixError`` counts as failed, anything else as done.
    """
    counts = {"done": 0, "failed": 0}

    def count(_index: int, outcome: object) -> None:
        counts["failed" if isinstance(outcome, ReveRemixError) else "done"] += 1
        if on_progress is not None:
            on_progress(BatchProgress(counts["done"], counts["failed"], total))

    return count
