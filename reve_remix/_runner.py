"""The one runner of paid jobs: every request that may be billed goes through :func:`lifecycle`.

``remix``, ``remix_many``, ``iter_remix``, the ``batch`` and ``remix`` commands and the Ray and
Spark adapters all run their jobs here, each with its own ledger (:mod:`reve_remix._ledger`), so
the rules of :mod:`reve_remix._lifecycle` are written once:

- **before sending** a job is planned against its last record (:func:`plan`): done jobs are
  skipped, paid ones fetched again, ambiguous, flagged and conflicting ones held;
- **claim**: the job is recorded *sent* before its request leaves;
- **paid**: the moment a 2xx is parsed its URL, request id and revised prompt are recorded (an
  inline image's bytes spooled first), before any download or save;
- **done**: the bytes are fetched (a GET is free and retried), checked, saved atomically, and
  the job recorded done. A failure here leaves it *paid*: a resume fetches, never generates.

The lifecycle is a generator of *effects* (:class:`Build`, :class:`Send`, :class:`Read`): the
only steps that differ between the sync and async clients. Each client drives it with its own
transport (``ReveRemix._drive``, ``AsyncReveRemix._drive``), so there is one lifecycle, not two.
Ledger writes are plain calls: they are local and short, and a write must be durable before the
next step whichever client runs it.

The objects a job passes through here (``Call``, ``PaidJob``, the effects, ``Settled``) are
slotted dataclasses that nothing changes once made, but not ``frozen``: a frozen dataclass sets
every field through ``object.__setattr__``, and every remix makes half a dozen of them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import httpx

from ._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    BudgetExceededError,
    ContentPolicyError,
    ImageNotSavedError,
    ReveRemixError,
    ValidationError,
)
from ._ledger import BODY_CHARS, JobRecord, Ledger, LedgerError
from ._lifecycle import (
    GENERATED_NOT_SAVED,
    MAY_HAVE_BEEN_GENERATED,
    REFUSED_BY_CONTENT_POLICY,
    JobState,
)
from ._retry import classify_error, classify_status

if TYPE_CHECKING:
    from reve_remix_api._literals import AspectRatioValue, OutputFormatValue
    from reve_remix_api.models import AspectRatio, OutputFormat

    from ._request import Images
    from ._results import RemixImage, RemixResult


@dataclass(slots=True)
class Call:
    """The arguments of one remix, as ``remix`` takes them (``None``: the client's default)."""

    prompt: str
    images: Images
    aspect_ratio: AspectRatio | AspectRatioValue | None = None
    output_format: OutputFormat | OutputFormatValue | None = None
    model: str | None = None
    fit: bool = False
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = None
    timeout: float | httpx.Timeout | None = None


class Destination(Protocol):
    """Where a job's image is saved: a batch's output file, an engine store's row, a CLI path."""

    def holds(self, record: JobRecord) -> bool:
        """Whether ``record``'s saved image is already where this job saves it."""
        ...

    def saved_bytes(self, record: JobRecord) -> bytes | None:
        """The image a *done* ``record`` saved, wherever it is now, or ``None``."""
        ...

    def save(self, record: JobRecord, data: bytes) -> str:
        """Save ``data`` atomically; the location to record as ``file``. Raises ``OSError``."""
        ...


@dataclass(slots=True)
class PaidJob:
    """One job for the runner: its id, what to send, and where its image goes.

    ``fingerprint`` is what would be sent (``_identity.fingerprint``); a ledger that outlives the
    process compares it with the record's, and ``parts`` (``_identity.Identity.parts``) says
    what changed when they differ. ``destination`` ``None`` hands the result to the caller
    instead of saving it (``remix``, ``remix_many``).
    """

    id: str
    call: Call
    fingerprint: str | None = None
    line: int | None = None
    destination: Destination | None = None
    parts: str | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """What the user asked to be sent again though it may have been billed or refused."""

    resend_ambiguous: bool = False
    regenerate_paid: bool = False
    resend_flagged: bool = False
    replace_changed: bool = False
    """Send a job whose id is known with another fingerprint (a changed job), replacing it."""


class Action(Enum):
    """What a run does with a job, decided by :func:`plan` before anything is sent."""

    SEND = "send"
    FETCH = "fetch"  # paid earlier: download (or unspool) and save; never generate
    PLACE = "place"  # done earlier under another output: copy the saved image
    SKIP = "skip"
    HOLD = "hold"  # may have been billed, or refused: not sent unless the user asks
    CONFLICT = "conflict"  # the id is known with another fingerprint

    @property
    def sends(self) -> bool:
        """Whether this action may send a paid request."""
        return self is Action.SEND


@dataclass(slots=True)
class Build:
    """Effect: check the call, upload its local images; answer the ``httpx.Request`` to send."""

    call: Call


@dataclass(slots=True)
class Send:
    """Effect: send the request with the client's retries; answer the final response."""

    request: httpx.Request


@dataclass(slots=True)
class Read:
    """Effect: the image's bytes (downloaded, retried, checked); ``ImageNotSavedError`` if not."""

    image: RemixImage


Effect: TypeAlias = Build | Send | Read


@dataclass(slots=True)
class Settled:
    """How a job ended this run: its last record, and the result or error for the caller."""

    record: JobRecord
    action: Action
    result: RemixResult | None = None
    error: ReveRemixError | None = None


class Steps(Protocol):
    """What the lifecycle needs of a client besides its effects."""

    def _redact(self, text: str) -> str: ...
    def _result(self, response: httpx.Response) -> RemixResult: ...
    def paid_image(
        self, url: str, *, request_id: str | None = None, revised_prompt: str | None = None
    ) -> RemixImage: ...


Lifecycle: TypeAlias = Generator[Effect, Any, Settled]


def plan(
    previous: JobRecord | None,
    job: PaidJob,
    policy: Policy = Policy(),
) -> Action:
    """What to do with ``job`` given its last record; pure, so a dry run asks the same question.

    Example::

        >>> from reve_remix._ledger import JobRecord
        >>> job = PaidJob("cat", Call("<img>0</img>", ["cat.png"]), fingerprint="f1")
        >>> plan(None, job), plan(JobRecord("cat", JobState.AMBIGUOUS, fingerprint="f1"), job)
        (<Action.SEND: 'send'>, <Action.HOLD: 'hold'>)
        >>> plan(JobRecord("cat", JobState.DONE, fingerprint="f0"), job)
        <Action.CONFLICT: 'conflict'>
    """
    if previous is None or previous.status is JobState.PENDING:
        return Action.SEND
    if changed(job, previous):
        return Action.SEND if policy.replace_changed else Action.CONFLICT
    status = previous.status
    if status is JobState.DONE:
        destination = job.destination
        if destination is None or destination.holds(previous):
            return Action.SKIP
        if destination.saved_bytes(previous) is not None:
            return Action.PLACE
        return Action.FETCH if previous.recoverable else Action.SEND
    if status is JobState.PAID:
        if previous.recoverable:
            return Action.FETCH
        return Action.SEND if policy.regenerate_paid else Action.HOLD
    if status is JobState.FAILED:
        return Action.SEND
    if status is JobState.FLAGGED:
        return Action.SEND if policy.resend_flagged else Action.HOLD
    return Action.SEND if policy.resend_ambiguous else Action.HOLD  # sent, ambiguous


def changed(job: PaidJob, previous: JobRecord) -> bool:
    """Whether ``previous`` is the record of another request under ``job``'s id (both have a
    fingerprint, and they differ): a conflict, never the job's own."""
    return (
        bool(job.fingerprint and previous.fingerprint) and job.fingerprint != previous.fingerprint
    )


def state_after_error(error: BaseException) -> JobState:
    """The state a job is left in when its attempt ended with ``error``.

    ``failed`` only where nothing can have been generated: bad input, a 4xx, a status or a transport
    error the retry table calls safe. A job the budget refused is still ``pending``. A content-
    policy refusal is ``flagged``, unless it came inside a 2xx (which may have been billed). A 2xx
    that went wrong later is ``paid``. Everything else, an error the SDK does not know included, is
    ``ambiguous``.

    Example::

        >>> state_after_error(ValidationError("bad"))
        <JobState.FAILED: 'failed'>
        >>> state_after_error(RuntimeError("a bug"))
        <JobState.AMBIGUOUS: 'ambiguous'>
    """
    if isinstance(error, APIStatusError) and error.in_2xx_body:  # an error object in a 2xx
        return JobState.AMBIGUOUS
    if isinstance(error, ImageNotSavedError | APIResponseValidationError):
        return JobState.PAID
    if isinstance(error, BudgetExceededError):  # this attempt was not sent
        return JobState.AMBIGUOUS if error.earlier_attempt_billed else JobState.PENDING
    if isinstance(error, ValidationError):  # nothing was sent
        return JobState.FAILED
    if isinstance(error, ContentPolicyError):
        return JobState.FLAGGED if error.status_code >= 300 else JobState.AMBIGUOUS
    if isinstance(error, APIStatusError):
        status = error.status_code
        unpaid = status < 500 or classify_status(status) == "retry"
        return JobState.FAILED if unpaid else JobState.AMBIGUOUS
    if isinstance(error, APIConnectionError):
        cause = error.__cause__
        if isinstance(cause, httpx.TransportError) and classify_error(cause) == "retry":
            return JobState.FAILED
    return JobState.AMBIGUOUS


def lifecycle(
    job: PaidJob,
    ledger: Ledger,
    steps: Steps,
    policy: Policy = Policy(),
    *,
    previous: JobRecord | None = None,
    looked_up: bool = False,
) -> Lifecycle:
    """Drive ``job`` through the paid-job states, writing each step to ``ledger``.

    ``previous`` is the job's last record when the caller has already looked it up (a batch
    reads its whole manifest once); otherwise the ledger is asked. Returns a :class:`Settled`:
    a ``ReveRemixError`` is an outcome here, never raised, except that anything else raised while
    a request is out (Ctrl-C, cancellation) is recorded *ambiguous* and propagates.
    """
    if not looked_up:
        previous = ledger.lookup(job.id)
    action = plan(previous, job, policy)
    prompt = job.call.prompt if isinstance(job.call.prompt, str) else None
    if previous is None:  # never sent: its first record is the claim (plan says SEND)
        return (yield from _send(job, ledger, steps, None, prompt))
    base = previous.evolve(
        line=job.line,
        fingerprint=job.fingerprint or previous.fingerprint,
        prompt=prompt or previous.prompt,
        parts=job.parts if job.fingerprint else previous.parts,  # the fingerprint's parts
    )
    if action in (Action.SKIP, Action.HOLD, Action.CONFLICT):
        return Settled(base, action)
    if action is Action.PLACE:
        return _place(job, ledger, base)
    if action is Action.FETCH:
        settled = yield from _fetch(job, ledger, steps, base)
        if settled.record.status is JobState.DONE or not policy.regenerate_paid:
            return settled
    return (yield from _send(job, ledger, steps, base, prompt))


def _send(
    job: PaidJob, ledger: Ledger, steps: Steps, base: JobRecord | None, prompt: str | None
) -> Lifecycle:
    """Claim, send, and on a 2xx go on to :func:`_paid`; ``base``: the last record, if any."""
    fresh = _next_attempt(job, base, prompt)
    try:
        request = yield Build(job.call)
    except Exception as exc:  # nothing was sent: bad input, or the caller's uploader raising
        error = exc if isinstance(exc, ReveRemixError) else _foreign(exc, sent=False)
        return _settle(ledger, steps, fresh.evolve(JobState.FAILED), error, Action.SEND)
    try:
        claimed = ledger.claim(fresh)
    except OSError as exc:
        error = LedgerError(_ledger_location(ledger), exc, None)
        return Settled(base or _unclaimed(fresh), Action.SEND, error=error)
    if not claimed:
        held = (base or _unclaimed(fresh)).evolve(
            error="claimed by another run that is still sending it"
        )
        return Settled(held, Action.HOLD)
    try:
        response = yield Send(request)
        result = steps._result(response)
    except ReveRemixError as exc:
        return _settle(ledger, steps, fresh, exc, Action.SEND)
    except Exception as exc:  # a bug or a custom transport: what was sent is unknown
        return _settle(ledger, steps, fresh, _foreign(exc, sent=True), Action.SEND)
    except BaseException:  # Ctrl-C, cancellation: the request may be generating now
        _write_quietly(ledger, fresh.evolve(JobState.AMBIGUOUS, error=_INTERRUPTED))
        raise
    return (yield from _paid(job, ledger, steps, fresh, result))


_INTERRUPTED = f"{MAY_HAVE_BEEN_GENERATED}: interrupted while the request was out"


def _unclaimed(fresh: JobRecord) -> JobRecord:
    """What a job never sent before is while its claim is not written: pending."""
    return fresh.evolve(JobState.PENDING, attempt=0)


def _next_attempt(job: PaidJob, base: JobRecord | None, prompt: str | None) -> JobRecord:
    """The *sent* record of the job's next attempt, keeping nothing of an earlier answer."""
    if base is None:  # never recorded: built outright, the one record of most jobs' claim
        return JobRecord(
            job.id, JobState.SENT, job.fingerprint, 1, job.line, prompt, parts=job.parts
        )
    if base.attempt == 0:  # recorded, never sent: nothing of an earlier answer to clear
        return JobRecord(
            base.id, JobState.SENT, base.fingerprint, 1, base.line, base.prompt, time=base.time,
            parts=base.parts,
        )  # fmt: skip
    return base.evolve(
        JobState.SENT,
        attempt=base.attempt + 1,
        request_id=None,
        status_code=None,
        url=None,
        spool=None,
        revised_prompt=None,
        file=None,
        error=None,
        body=None,
        recipe=None,
    )


def _paid(
    job: PaidJob, ledger: Ledger, steps: Steps, sent: JobRecord, result: RemixResult
) -> Lifecycle:
    """A 2xx arrived: make it durable first, then fetch and save."""
    image = result.image
    paid = sent.evolve(
        JobState.PAID,
        request_id=result.request_id,
        status_code=result.status_code,
        url=image.url,
        revised_prompt=image.revised_prompt,
        # Kept for the run that saves the image (this one or a resume); a caller handed the
        # result has it on the result.
        recipe=_recipe_text(image) if job.destination is not None else None,
    )
    inline: bytes | None = None
    unreadable: ImageNotSavedError | None = None
    # Decoded only where this run saves it: a caller handed the result reads it when it likes.
    if image.b64_json is not None and job.destination is not None:
        try:
            inline = image.read()  # decoded and checked; no network
        except ImageNotSavedError as exc:  # keep the raw text: the image may be in it
            unreadable = exc
            inline = image.b64_json.encode("ascii", "replace")
    try:
        paid = ledger.keep(paid, result, inline)
    except OSError as exc:
        unrecorded: OSError | None = exc
    else:
        unrecorded = None
    if unreadable is not None:
        return _settle(ledger, steps, paid, unreadable, Action.SEND, result=result)
    if job.destination is None and unrecorded is None:
        return Settled(paid, Action.SEND, result=result)
    if job.destination is None:
        error = LedgerError(_ledger_location(ledger), unrecorded, paid)
        return Settled(paid, Action.SEND, result=result, error=error)
    if inline is None:
        try:
            inline = yield Read(image)
        except ImageNotSavedError as exc:
            return _unrecorded_or(ledger, unrecorded, _settle(ledger, steps, paid, exc))
    settled = _save(job, ledger, steps, paid, inline, result)
    return _unrecorded_or(ledger, unrecorded, settled)


def _fetch(job: PaidJob, ledger: Ledger, steps: Steps, paid: JobRecord) -> Lifecycle:
    """A job paid in an earlier run: get its image without generating it again."""
    if paid.spool is not None:
        try:
            data = ledger.unspool(paid)
        except OSError as exc:
            if paid.url is None:
                return _settle(ledger, steps, paid, _not_saved(paid, exc), Action.FETCH)
        else:
            return _save(job, ledger, steps, paid, data, None, Action.FETCH)
    assert paid.url is not None
    try:
        image = steps.paid_image(
            paid.url, request_id=paid.request_id, revised_prompt=paid.revised_prompt
        )
    except ValidationError as exc:  # the API gave a URL nothing can fetch: kept, not re-made
        return _settle(ledger, steps, paid, _not_saved(paid, exc), Action.FETCH)
    try:
        data = yield Read(image)
    except ImageNotSavedError as exc:
        return _settle(ledger, steps, paid, exc, Action.FETCH)
    return _save(job, ledger, steps, paid, data, None, Action.FETCH)


def _place(job: PaidJob, ledger: Ledger, done: JobRecord) -> Settled:
    """A job done in an earlier run under another output: copy its image, pay nothing."""
    assert job.destination is not None
    data = job.destination.saved_bytes(done)
    if data is None:  # gone since plan() looked
        error = _not_saved(done, FileNotFoundError(done.file))
        return Settled(done, Action.PLACE, error=error)
    try:  # the saved file already carries its recipe: copied as it is
        file = job.destination.save(done.evolve(recipe=None), data)
        record = done.evolve(JobState.DONE, file=file, error=None)
        ledger.write(record)
    except OSError as exc:
        return Settled(done, Action.PLACE, error=_not_saved(done, exc))
    return Settled(record, Action.PLACE)


def _save(
    job: PaidJob,
    ledger: Ledger,
    steps: Steps,
    paid: JobRecord,
    data: bytes,
    result: RemixResult | None,
    action: Action = Action.SEND,
) -> Settled:
    assert job.destination is not None
    try:
        file = job.destination.save(paid, data)
    except OSError as exc:
        return _settle(ledger, steps, paid, _not_saved(paid, exc), action, result=result)
    done = paid.evolve(JobState.DONE, file=file, error=None, body=None)
    try:
        ledger.write(done)
    except OSError as exc:
        error = LedgerError(_ledger_location(ledger), exc, done)
        return Settled(done, action, result=result, error=error)
    return Settled(done, action, result=result)


def _settle(
    ledger: Ledger,
    steps: Steps,
    record: JobRecord,
    error: ReveRemixError,
    action: Action = Action.SEND,
    *,
    result: RemixResult | None = None,
) -> Settled:
    """Record how an attempt ended with ``error``, in the words of the lifecycle."""
    state = state_after_error(error)
    text = steps._redact(str(error))
    if state is JobState.PAID:
        text = f"{GENERATED_NOT_SAVED} ({record.where}): {text}"
    elif state is JobState.AMBIGUOUS and MAY_HAVE_BEEN_GENERATED not in text:
        text = f"{MAY_HAVE_BEEN_GENERATED}: {text}"
    elif state is JobState.FLAGGED:
        text = f"{REFUSED_BY_CONTENT_POLICY}: {text}"
    record = record.evolve(
        state,
        error=text,
        request_id=getattr(error, "request_id", None) or record.request_id,
        status_code=getattr(error, "status_code", None) or record.status_code,
        body=_raw_body(error, steps) or record.body,
    )
    try:
        ledger.write(record)
    except OSError as exc:
        error = LedgerError(_ledger_location(ledger), exc, record, cause=error)
    return Settled(record, action, result=result, error=error)


def _unrecorded_or(ledger: Ledger, unrecorded: OSError | None, settled: Settled) -> Settled:
    """``settled``, or, when the 2xx itself could not be recorded, the ledger's error."""
    if unrecorded is None:
        return settled
    error = LedgerError(_ledger_location(ledger), unrecorded, settled.record)
    return Settled(settled.record, settled.action, settled.result, error)


def _write_quietly(ledger: Ledger, record: JobRecord) -> None:
    """A last record on the way out of an interrupt: the interrupt is what the caller sees."""
    with contextlib.suppress(OSError):
        ledger.write(record)


def _recipe_text(image: RemixImage) -> str | None:
    return None if image.recipe is None else image.recipe.to_json().decode()


def _not_saved(record: JobRecord, cause: BaseException) -> ImageNotSavedError:
    return ImageNotSavedError(
        cause, request_id=record.request_id, url=record.url, spool=record.spool
    )


def _foreign(exc: Exception, *, sent: bool) -> ReveRemixError:
    """A ``ReveRemixError`` for an exception the SDK did not raise, chained to it."""
    where = MAY_HAVE_BEEN_GENERATED if sent else "nothing was sent"
    error = ReveRemixError(f"{type(exc).__name__}: {exc} ({where})")
    error.__cause__ = exc
    return error


def _raw_body(error: ReveRemixError, steps: Steps) -> str | None:
    """The raw body of a 2xx whose image could not be found, redacted, to keep in the record."""
    if not isinstance(error, APIResponseValidationError):
        return None
    body = error.body if isinstance(error.body, str) else _json(error.body)
    return steps._redact(body[:BODY_CHARS])


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _ledger_location(ledger: Ledger) -> str:
    return str(getattr(ledger, "location", type(ledger).__name__))
