"""The life of a paid job: one set of states and words for every place that runs jobs.

Every generation costs money and the API takes no idempotency key, so ``remix``, ``remix_many``
and its streaming form, the ``batch`` manifest and the Ray and Spark adapters all follow one small
state machine::

                send                2xx parsed              bytes saved
     pending ──────────▶ sent ─────────────────▶ paid ─────────────────▶ done
                          │  │  │
           provably unpaid│  │  │ outcome unknown
                          ▼  │  ▼
                     failed  │  ambiguous
                             ▼
                          flagged (refused by content policy)

- ``pending``: not sent yet; sent on the next run.
- ``sent``: claimed durably before the request left; a crash here leaves the job *ambiguous*.
- ``paid``: a 2xx arrived; what is needed to get the image again (URL or inline bytes saved,
  request id, revised prompt) is recorded before any download. Resuming downloads again and never
  generates again.
- ``done``: the image is saved and checked.
- ``failed``: provably nothing was generated (a 4xx, a 5xx the retry table calls safe, an error
  before the request left). Sent again on resume.
- ``ambiguous``: the request may have been generated and billed (a read timeout, a dropped
  connection after sending, a 500, a 504 or 524 from a gateway that gave up waiting, a crash
  between claim and outcome). Never sent again unless the user asks explicitly.
- ``flagged``: the API refused the content (a content-policy error, whatever the status). Not
  retried and not sent again by a plain resume: it would be refused again.

The one runner that drives a job through these states is :mod:`reve_remix._runner`; where the
records live is a ledger's business (:mod:`reve_remix._ledger`). This module is the one home of
those names, of which states a resume sends again, and of the words messages use, so that a batch
manifest, an exception and a Spark row say the same thing.
"""

from __future__ import annotations

import re
from enum import StrEnum


class JobState(StrEnum):
    """Where a paid job stands; the values are what manifests and outcome rows store.

    Example::

        >>> JobState.PAID.resend_on_resume, JobState.FAILED.resend_on_resume
        (False, True)
    """

    PENDING = "pending"
    SENT = "sent"
    PAID = "paid"
    DONE = "done"
    FAILED = "failed"
    AMBIGUOUS = "ambiguous"
    FLAGGED = "flagged"

    @property
    def resend_on_resume(self) -> bool:
        """Whether a plain resume sends this job's generation again.

        Only jobs that provably produced nothing are: ``pending`` and ``failed``. A ``paid`` job
        is downloaded again, a ``done`` one skipped, ``sent``/``ambiguous`` ones wait for the
        user to ask (they may have been billed), and ``flagged`` ones would be refused again.
        """
        return self in (JobState.PENDING, JobState.FAILED)

    @property
    def may_have_been_billed(self) -> bool:
        """Whether the provider may have charged for this job.

        A ``flagged`` job may have been: a provider may generate first and moderate after, so the
        budget and ``reve-remix spend`` count a refusal by content policy as spent too.
        """
        return self in (
            JobState.SENT,
            JobState.PAID,
            JobState.DONE,
            JobState.AMBIGUOUS,
            JobState.FLAGGED,
        )


JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A job's id, in a batch file and in a paid store alike: it names files, so it is short and
plain."""
JOB_ID_RULE = '1-128 letters, digits, ".", "_" or "-", starting with a letter or digit'
"""``JOB_ID`` in words, for error messages."""

# The words every message uses for the two states a user must act on.
GENERATED_NOT_SAVED = "generated, not saved"
"""A ``paid`` job: the image exists and was billed, but is not on disk yet."""

MAY_HAVE_BEEN_GENERATED = "may have been generated"
"""An ``ambiguous`` job: the request may have been billed; not sent again unless asked."""

REFUSED_BY_CONTENT_POLICY = "refused by content policy"
"""A ``flagged`` job: the API refused the content; sending it again would be refused again."""


def paid_context(request_id: str | None, url: str | None, spool: str | None = None) -> str:
    """How a message names a paid image so the user can get it: request id and where it is.

    ``spool`` is the file an inline (base64) image's bytes were kept in, when there is no URL.

    Example::

        >>> paid_context("req-1", "https://cdn.example.com/a.png")
        'request id req-1, url https://cdn.example.com/a.png'
        >>> paid_context("req-2", None, "out/.reve-remix/spool/cat.png")
        'request id req-2, kept at out/.reve-remix/spool/cat.png'
        >>> paid_context(None, None)
        'no request id, no url'
    """
    rid = f"request id {request_id}" if request_id else "no request id"
    where = f"url {url}" if url else f"kept at {spool}" if spool else "no url"
    return f"{rid}, {where}"


def not_saved_message(
    request_id: str | None, url: str | None, cause: object, spool: str | None = None
) -> str:
    """The message of every error that follows a 2xx: the image exists, here is how to find it.

    Example::

        >>> not_saved_message("req-1", "https://cdn.example.com/a.png", "503 Service Unavailable")
        'the image was generated (request id req-1, url https://cdn.example.com/a.png) but not saved: 503 Service Unavailable'
    """  # noqa: E501 - a doctest's output is one line
    where = paid_context(request_id, url, spool)
    return f"the image was generated ({where}) but not saved: {cause}"


def may_have_been_generated_message(request_id: str | None, cause: object) -> str:
    """The message for an *ambiguous* outcome: the request may have been billed.

    Example::

        >>> may_have_been_generated_message(None, "ReadTimeout")
        'the image may have been generated (no request id): ReadTimeout'
    """
    rid = f"request id {request_id}" if request_id else "no request id"
    return f"the image {MAY_HAVE_BEEN_GENERATED} ({rid}): {cause}"
