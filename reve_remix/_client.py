"""``ReveRemix`` and ``AsyncReveRemix``: configuration, one request, retries.

Both clients share ``_BaseClient``, which holds the configuration, validates arguments, builds
the request, decides on retries and parses the response. The subclasses differ only where I/O
happens: sending, sleeping and uploading local images.

``asyncio``, the batch machinery and the generated package are imported on first use, not with
``reve_remix``, so that a script, a CLI run or a cold start does not pay for what it never uses
(the import row of ``scripts/bench.py`` measures ``import reve_remix`` against ``import httpx``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import platform
import time
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypeVar

import httpx

from . import _config
from ._budget import Budget
from ._config import API_KEY_ENV as API_KEY_ENV  # re-exported: their home was here
from ._config import BASE_URL_ENV as BASE_URL_ENV
from ._config import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._download import Downloader
from ._exceptions import ValidationError, connection_error, status_error
from ._images import LocalImage, Uploader, check_uploaded_url, data_url
from ._jobs import RemixJob, check_concurrency, progress_counter
from ._ledger import MemoryLedger
from ._pool import DEFAULT_MAX_CONNECTIONS, AsyncShardedTransport, ShardedTransport
from ._redact import redact
from ._request import Images, PreparedRemix, RequestOptions, check_model, prepare_remix
from ._results import RemixImage, RemixResult, paid_image, parse_response
from ._retry import (
    AdaptiveRate,
    CallRetries,
    Line,
    RateLimiter,
    RetryEvent,
    RetryPolicy,
    check_rate_limiter,
)
from ._runner import Build, Call, Effect, Lifecycle, PaidJob, Read, Send, Settled, lifecycle
from ._spec import spec
from ._urls import http_url_problem
from ._version import __version__

if TYPE_CHECKING:
    from reve_remix_api._literals import AspectRatioValue, OutputFormatValue
    from reve_remix_api.models import AspectRatio, OutputFormat

    from ._jobs import BatchProgress, Outcome

logger = logging.getLogger("reve_remix")
retry_logger = logging.getLogger("reve_remix.retry")
"""Where each retry is logged (INFO), as well as passed to ``on_retry``."""

DEFAULT_MODEL = "reve-remix-image-to-image"
# A generation takes tens of seconds: the read timeout must outlast it.
DEFAULT_TIMEOUT = httpx.Timeout(180.0, connect=10.0)
DEFAULT_MAX_RETRIES = 2
DEFAULT_CONCURRENCY = 4
_RECIPE = "reve_remix.recipe"  # the request extension holding what a saved image's recipe says
USER_AGENT = f"reve-remix-python/{__version__} python/{platform.python_version()}"

AuthScheme = Literal["bearer", "bare"]
HttpClient = TypeVar("HttpClient", httpx.Client, httpx.AsyncClient)
JobT = TypeVar("JobT", bound="RemixJob | Mapping[str, Any]")


class _BaseClient(Generic[HttpClient]):
    """Everything about a remix call that does not touch the network.

    The options are documented on :class:`ReveRemix`; both clients take the same ones. They are
    all checked here (``_config`` holds the rules for the key, the URL and the timeout), so a
    mistake is a ``ValidationError`` now rather than a network error at the first paid call.
    """

    _http_class: type[HttpClient]

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_on_ambiguous: bool = False,
        auth_scheme: AuthScheme = "bearer",
        uploader: Uploader = data_url,
        rate_limiter: RateLimiter | type[RateLimiter] | None = AdaptiveRate,
        on_retry: Callable[[RetryEvent], None] | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        http_client: HttpClient | None = None,
        budget: Budget | None = None,
    ) -> None:
        if budget is not None and not isinstance(budget, Budget):
            raise ValidationError(f"budget: expected a Budget, got {type(budget).__name__}")
        if auth_scheme not in ("bearer", "bare"):
            raise ValidationError(f"auth_scheme: {auth_scheme!r} is not 'bearer' or 'bare'")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValidationError(f"max_retries: expected an integer >= 0, got {max_retries!r}")
        if (
            not isinstance(max_connections, int)
            or isinstance(max_connections, bool)
            or max_connections < 1
        ):
            raise ValidationError(
                f"max_connections: expected an integer >= 1, got {max_connections!r}"
            )
        if not callable(uploader):
            raise ValidationError(f"uploader: expected a function, got {type(uploader).__name__}")
        if on_retry is not None and not callable(on_retry):
            raise ValidationError(f"on_retry: expected a function, got {type(on_retry).__name__}")
        if http_client is not None and not isinstance(http_client, self._http_class):
            raise ValidationError(
                f"http_client: {type(self).__name__} needs an httpx.{self._http_class.__name__}, "
                f"got {type(http_client).__name__}"
            )
        timeout = _config.timeout(timeout)
        self._api_key = _config.api_key(api_key)
        self.base_url = _config.base_url(base_url)
        self.model = check_model(model)
        self.auth_scheme = auth_scheme
        # The headers of every request, and what they were made from (see _headers).
        self._made_headers: (
            tuple[tuple[str, bytes, list[tuple[bytes, bytes]]], httpx.Headers] | None
        ) = None
        self.uploader = uploader
        self.on_retry = on_retry
        self.retry_policy = RetryPolicy(max_retries, retry_on_ambiguous)
        self.budget: Budget = Budget() if budget is None else budget
        """What this client may spend and has spent (without ``budget=``, counted, not capped)."""
        self._rate_limiter = check_rate_limiter(rate_limiter)
        # Awaited instead of next_slot by the async client, if the limiter waits on I/O.
        self._anext_slot: Callable[[], Awaitable[float]] | None = getattr(
            self._rate_limiter, "anext_slot", None
        )
        self._line = Line()
        self._owns_http = http_client is None
        # The pool the client made (grown by a batch); an injected client's pool is the caller's.
        self._pool: ShardedTransport | AsyncShardedTransport | None = None
        self._http: HttpClient
        if http_client is None:
            self._http, self._pool = self._new_http(timeout, max_connections)
        else:
            self._http = http_client
        self._downloader = Downloader(self._http)  # results fetch their URLs through the pool
        # The iter_remix loops not yet finished: closing the client settles them first.
        self._open_runs: weakref.WeakSet[Any] = weakref.WeakSet()

    @staticmethod
    def _new_http(
        timeout: float | httpx.Timeout, max_connections: int
    ) -> tuple[HttpClient, ShardedTransport | AsyncShardedTransport]:
        """The httpx client a client makes for itself when none is injected, and its pool."""
        raise NotImplementedError

    def _batch_concurrency(self, concurrency: object) -> int:
        """``concurrency``, checked, with the client's own pool grown to serve it.

        An injected ``http_client`` is left as it is: its pool is the caller's choice.
        """
        checked = check_concurrency(concurrency)
        if self._pool is not None:
            self._pool.ensure_capacity(checked)
        return checked

    def __repr__(self) -> str:
        key = "set" if self._api_key else "missing"
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key=<{key}>, max_retries={self.retry_policy.max_retries})"
        )

    def _prepare(self, call: Call) -> PreparedRemix:
        self._authorization()  # fail on a missing key before reading any image
        if self._http.is_closed:  # httpx's RuntimeError would read as "may have been generated"
            raise ValidationError(f"{type(self).__name__} is closed: make a new client to send")
        return prepare_remix(
            call.prompt,
            call.images,
            model=self.model if call.model is None else call.model,
            aspect_ratio=call.aspect_ratio,
            output_format=call.output_format,
            fit=call.fit,
            extra_body=call.extra_body,
            extra_headers=call.extra_headers,
            timeout=call.timeout,
        )

    def _build_request(
        self, prepared: PreparedRemix, images: list[str | LocalImage]
    ) -> httpx.Request:
        """The HTTP request: the spec's method and path, the body, the call's options, and the
        recipe of what it asks for (``extensions``, read back by ``_result``).

        The request is what ``httpx.Client.build_request`` makes (the ``http_client``'s
        headers, then this client's, then the call's; ``Host`` and ``Content-Length``; the
        timeout as an extension), built from headers merged once (:meth:`_headers`): httpx
        merges and prepares them again for every request, which costs more than the rest of the
        request together. The body is a stream with its length, as httpx documents
        ``Request(stream=...)``: a ``RequestBody`` when it has inline images (httpx would send
        an iterator chunked), else the bytes. An ``http_client`` with cookies or query
        parameters of its own has its part merged by httpx.
        """
        operation = spec()
        options: RequestOptions = prepared.options
        content = prepared.body(images)
        method, url = operation.method, _parsed_url(self.base_url + operation.path)
        client = self._http
        timeout = client.timeout if options.timeout is None else httpx.Timeout(options.timeout)
        extensions = {"timeout": timeout.as_dict(), _RECIPE: prepared.recipe()}
        if client.cookies or client.params:
            built = client.build_request(
                method, url, headers={**self._own_headers(), **options.headers}
            )
            url, headers = built.url, built.headers  # its Content-Length is replaced below
        else:
            headers = self._headers(url)
            if options.headers:  # after the client's own, so that they replace them (not the key)
                headers = headers.copy()
                headers.update(options.headers)
        stream = httpx.ByteStream(content) if isinstance(content, bytes) else content
        request = httpx.Request(method, url, headers=headers, stream=stream, extensions=extensions)
        # On the request's own copy of the headers (httpx.Request copies them).
        request.headers["Content-Length"] = str(
            len(content) if isinstance(content, bytes) else content.length
        )
        if isinstance(stream, httpx.ByteStream):
            request.read()  # as httpx reads a body it holds: ``request.content`` is there
        return request

    def _headers(self, url: httpx.URL) -> httpx.Headers:
        """The headers of every request to ``url``: its ``Host``, the ``http_client``'s own
        headers, then :meth:`_own_headers`, in the order httpx gives them.

        Merged once, and again only when the host, the ``http_client``'s headers or the auth
        scheme change.
        """
        key = (self.auth_scheme, url.netloc, self._http.headers.raw)
        made = self._made_headers
        if made is None or made[0] != key:
            merged: httpx.Headers = httpx.Headers(self._http.headers)
            merged.update(self._own_headers())
            if "Host" not in merged:  # first, where httpx puts it
                merged = httpx.Headers([(b"Host", url.netloc), *merged.raw])
            made = (key, merged)
            self._made_headers = made
        return made[1]

    def _own_headers(self) -> dict[str, str]:
        """What this client adds to every request's headers: the key, the JSON body, its name."""
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Authorization": self._authorization(),
        }

    def _redacted(self, response: httpx.Response) -> httpx.Response:
        """A 2xx that echoes the key (a proxy repeating the request's headers), without it: no
        field of the result, its pickle, a ledger or a log line may carry the key."""
        text = self._redact(response.content.decode("utf-8", "replace"))
        headers = [(name, self._redact(value)) for name, value in response.headers.items()]
        return httpx.Response(
            response.status_code,
            headers=[(n, v) for n, v in headers if n.lower() != "content-length"],
            content=text.encode(),
            request=response.request,
        )

    def _redact(self, text: str) -> str:
        """``text`` without this client's key in any form (for text that leaves the client)."""
        return redact(text, self._api_key)

    def _authorization(self) -> str:
        """The ``Authorization`` header value; a clear error, naming the variable, if no key."""
        if not self._api_key:
            raise _config.missing_api_key(f"pass api_key=... to {type(self).__name__} or ")
        return self._api_key if self.auth_scheme == "bare" else f"Bearer {self._api_key}"

    def _decide(
        self,
        request: httpx.Request,
        outcome: httpx.Response | httpx.TransportError,
        retries: CallRetries,
        sent_at: float,
    ) -> httpx.Response | float:
        """The final response, or how many seconds to wait before sending ``request`` again.

        ``retries`` counts the call's retries so far; ``sent_at`` is when this attempt went out
        (``RateLimiter.on_sent``). Raises ``APIConnectionError`` when a transport error is final.
        """
        if isinstance(outcome, httpx.Response):
            if outcome.is_success:  # what was asked for: never sent again
                return outcome
            event = self.retry_policy.after_response(outcome, retries)
            limiter = self._rate_limiter
            if outcome.status_code == 429 and limiter is not None:  # retried or not: it learns
                limiter.on_rate_limited(0.0 if event is None else event.delay, sent_at)
            if event is None:
                return outcome
        else:
            event = self.retry_policy.after_error(outcome, retries)
            if event is None:
                raise connection_error(outcome, request) from outcome
        retry_logger.info("%s", event)
        if self.on_retry is not None:
            self.on_retry(event)
        return event.delay

    def _result(self, response: httpx.Response) -> RemixResult:
        if not response.is_success:
            raise status_error(response)
        key = self._api_key
        if key and key.strip().encode("utf-8", "surrogatepass") in response.content:
            response = self._redacted(response)
        recipe = response.request.extensions.get(_RECIPE)  # set by _build_request
        result = parse_response(response, self._downloader, recipe)
        logger.debug("remix done (request id %s)", result.request_id)
        return result

    def _runs_to_settle(self) -> list[Any]:
        """The ``iter_remix`` loops to settle before the pool closes (each settled once)."""
        runs = list(self._open_runs)
        self._open_runs.clear()
        return runs

    def paid_image(
        self, url: str, *, request_id: str | None = None, revised_prompt: str | None = None
    ) -> RemixImage:
        """An image paid for earlier, from its URL: read or save it again without paying.

        For a URL a ledger, a log line or an error recorded (``ImageNotSavedError.url``, a batch
        manifest's ``url``): the download goes through this client's pool and retries, without
        the API key, and checks that the bytes are an image.

        Example::

            image = client.paid_image(exc.url, request_id=exc.request_id)
            image.save("cat.png")  # a GET: free
        """
        problem = _fetchable(url)
        if problem:  # nothing to fetch: bad input, not a paid image
            raise ValidationError(f"url {url!r}: {problem}")
        return paid_image(self._downloader, url, request_id, revised_prompt)


class ReveRemix(_BaseClient[httpx.Client]):
    """The synchronous client.

    Options (all keyword-only but ``api_key``):

    - ``api_key``: defaults to ``$ONEROUTER_API_KEY``; surrounding whitespace is stripped; a
      missing or blank key is a ``ValidationError`` at the first call, naming the variable;
    - ``base_url``: defaults to ``$REVE_REMIX_BASE_URL``, else the spec's server; an http(s) URL
      without credentials, query or fragment;
    - ``model``: defaults to ``reve-remix-image-to-image``; overridable per call;
    - ``timeout``: seconds or an ``httpx.Timeout``; 180 s read by default, as a generation takes
      tens of seconds;

    - ``max_retries`` and ``retry_on_ambiguous``: see the retry table in
      ``docs/errors-and-retries.md``;
    - ``auth_scheme``: ``"bearer"`` sends ``Authorization: Bearer <key>``, ``"bare"`` the key alone;
    - ``uploader``: ``(bytes, mime) -> url`` for local images; by default a ``data:`` URL;
    - ``rate_limiter``: what paces the attempts, retries included, and is told of every 429: by
      default a fresh ``AdaptiveRate``, which learns the rate the API admits from its 429s; a
      ``RateLimiter`` such as ``SteadyRate(5)`` replaces it (share one to pace many clients
      together), and ``None`` sends without pacing;
    - ``on_retry``: called with a ``RetryEvent`` (reason, wait, retry number) before each retry's
      wait, in the thread or task that waits; each retry is also logged on ``reve_remix.retry``;
    - ``max_connections``: the most connections the client's own pool opens at once (100 by
      default), every one kept alive; ``remix_many`` and ``iter_remix`` grow it to their
      ``concurrency``, so the concurrency asked for is the concurrency served;
    - ``http_client``: an ``httpx.Client`` to use (and leave open) instead of a pool of its own;
    - ``budget``: a :class:`Budget` capping the generations (or USD) this client may spend, shared
      with other clients if you like; every attempt is counted on ``client.budget`` in any case.

    Every option is checked here: a bad one is a ``ValidationError`` now, not at the first call.

    Example::

        from reve_remix import ReveRemix

        with ReveRemix() as client:  # reads ONEROUTER_API_KEY
            result = client.remix("<img>0</img> as a watercolour", ["cat.png"])
            result.save("cat-watercolour.png")
    """

    _http_class = httpx.Client

    @staticmethod
    def _new_http(
        timeout: float | httpx.Timeout, max_connections: int
    ) -> tuple[httpx.Client, ShardedTransport]:
        pool = ShardedTransport(max_connections)
        return httpx.Client(timeout=timeout, transport=pool), pool

    def remix(
        self,
        prompt: str,
        images: Images,
        *,
        aspect_ratio: AspectRatio | AspectRatioValue | None = None,
        output_format: OutputFormat | OutputFormatValue | None = None,
        model: str | None = None,
        fit: bool = False,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> RemixResult:
        """Generate an image from a prompt and reference images (as many as the spec allows).

        ``images`` is a list (refer to them as ``<img>0</img>`` …) or a mapping of names (refer to
        them as ``{name}``). Each image is an http(s) or ``data:`` URL, a path, bytes, a binary
        file or a PIL image; local ones are checked and turned into URLs by the uploader.
        ``fit=True`` re-encodes local images that are too large or of an unsupported format
        (needs Pillow). Raises ``ValidationError`` before sending anything if an argument is bad.

        For what this method has no argument for, as in the OpenAI and Anthropic SDKs:
        ``extra_body`` adds request fields (those the spec defines are checked against it, any
        other is sent as given), ``extra_headers`` adds headers, and ``timeout`` (seconds or an
        ``httpx.Timeout``) replaces the client's timeout for this request.

        Example::

            result = client.remix("Put {cat} on {sofa}", {"cat": "cat.jpg", "sofa": "sofa.png"},
                                  aspect_ratio="16:9", extra_body={"seed": 7})
            result.save("cat-on-sofa.png")
        """
        call = Call(
            prompt, images, aspect_ratio, output_format, model, fit,
            extra_body, extra_headers, timeout,
        )  # fmt: skip
        return _outcome(self._drive(lifecycle(PaidJob("remix", call), MemoryLedger(), self)))

    def remix_many(
        self,
        jobs: Iterable[RemixJob | Mapping[str, Any]],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_progress: Callable[[BatchProgress], None] | None = None,
    ) -> list[Outcome]:
        """Run many remixes, ``concurrency`` at a time on a thread pool; one outcome per job.

        Each job is a :class:`RemixJob` or a mapping of its fields. The list returned is in
        input order and holds each job's ``RemixResult`` or the ``ReveRemixError`` that ended
        it: one failure never stops the others. A 429 slows every job of the client, not just
        the one that got it. Keep ``concurrency`` (summed over everything sharing a key) within
        what the account allows: OneRouter's community tier allows 30 tasks at once and 600
        requests a minute. With a ``budget``, jobs it cannot afford end with
        ``BudgetExceededError``, unsent. Jobs (and so a custom uploader) run on worker threads;
        ``on_progress`` is called in the calling thread after each job.
        Any other exception (a bug in ``on_progress``, Ctrl-C) stops the batch: jobs not yet
        started are dropped, running ones finish, and the exception propagates.

        Example::

            seasons = ["spring", "summer", "autumn", "winter"]
            jobs = [RemixJob(f"<img>0</img> in {s}", ["park.jpg"], id=s) for s in seasons]
            for job, outcome in zip(jobs, client.remix_many(jobs, concurrency=4)):
                if isinstance(outcome, ReveRemixError):
                    print(job.id, "failed:", outcome)
                else:
                    outcome.save(f"park-{job.id}.png")
        """
        from ._schedule import run_in_threads

        items = list(jobs)
        ledger = MemoryLedger()
        with _abandoned_on_exit(ledger, "remix_many stopped early"):
            return run_in_threads(
                functools.partial(self._remix_job, ledger),
                list(enumerate(items)),
                concurrency=self._batch_concurrency(concurrency),
                on_outcome=progress_counter(len(items), on_progress),
            )

    def iter_remix(
        self,
        jobs: Iterable[JobT],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> Iterator[tuple[JobT, Outcome]]:
        """Run many remixes like :meth:`remix_many`, yielding ``(job, outcome)`` as each finishes.

        Jobs are drawn from ``jobs`` (any iterable, a generator included) only as slots free
        up, and nothing is kept once yielded, so a million-job loop holds only the
        ``concurrency`` jobs in flight. ``job`` is the item as given; ``outcome`` its
        ``RemixResult`` or the ``ReveRemixError`` that ended it. A job's slot is handed on
        once the loop body has dealt with its outcome. Leaving the loop early (``break``, an
        exception) starts nothing more and waits for the running jobs; a paid result the loop
        did not deliver is logged at WARNING with its URL and request id. Closing the client
        under a loop left with ``break`` but still referenced settles it the same way first.

        Example::

            jobs = ({"prompt": "<img>0</img> as a sketch", "images": [path]} for path in paths)
            for job, outcome in client.iter_remix(jobs, concurrency=8):
                if isinstance(outcome, ReveRemixError):
                    print(job["images"][0], "failed:", outcome)
                else:
                    outcome.save(Path(job["images"][0]).with_suffix(".sketch.png"))
        """
        from ._schedule import iter_in_threads

        ledger = MemoryLedger()
        work = functools.partial(self._remix_job, ledger)
        run = iter_in_threads(
            work, enumerate(jobs), concurrency=self._batch_concurrency(concurrency)
        )
        delivered = _delivered(run, ledger)
        self._open_runs.add(delivered)
        return delivered

    def _remix_job(
        self, ledger: MemoryLedger, numbered: tuple[int, RemixJob | Mapping[str, Any]]
    ) -> RemixResult:
        job = _paid_job(*numbered)
        return _outcome(self._drive(lifecycle(job, ledger, self, looked_up=True)))

    def _drive(self, run: Lifecycle) -> Settled:
        """Run a job's lifecycle, doing each of its effects with this client's transport."""
        step = _advance(run, None, None)
        while not isinstance(step, Settled):
            try:
                if isinstance(step, Send):
                    reply: Any = self._send(step.request)
                elif isinstance(step, Read):
                    reply = step.image.read()
                else:
                    reply = self._build(step)
            except BaseException as exc:  # the lifecycle records it, then decides
                step = _advance(run, None, exc)
            else:
                step = _advance(run, reply, None)
        return step

    def _build(self, build: Build) -> httpx.Request:
        call = build.call
        prepared = self._prepare(call)
        urls = [self._upload(item) for item in prepared.images]
        return self._build_request(prepared, urls)

    def _upload(self, item: str | LocalImage) -> str | LocalImage:
        if isinstance(item, str) or self.uploader is data_url:
            return item  # a local one as it is: the body writes its data: URL as it is sent
        url = self.uploader(item.data, item.mime)
        if inspect.isawaitable(url):
            _discard(url)
            raise ValidationError("uploader: it is async; use AsyncReveRemix for async uploaders")
        return check_uploaded_url(url, item.label)

    def _send(self, request: httpx.Request) -> httpx.Response:
        retries, limiter, sent_at = CallRetries(), self._rate_limiter, 0.0
        billed = False
        while True:
            if limiter is not None:
                with self._line.sync:  # one attempt at a time asks: see RateLimiter
                    while wait := limiter.next_slot():
                        time.sleep(wait)
                sent_at = limiter.on_sent()
            _log_attempt(request, retries)
            # BudgetExceededError, before sending: see _budget
            with self.budget.hold(billed_before=billed) as held:
                try:
                    outcome: httpx.Response | httpx.TransportError = _acyclic(
                        self._http.send(request)
                    )
                except httpx.TransportError as exc:
                    outcome = exc
                billed |= held.settle(outcome)
            decision = self._decide(request, outcome, retries, sent_at)
            if isinstance(decision, httpx.Response):
                return decision
            time.sleep(decision)

    def close(self) -> None:
        """Settle the client's open ``iter_remix`` loops, then close the connection pool (only if
        this client created it).

        A loop left with ``break`` while its iterator is still referenced has requests out: they
        are answered over the pool before it closes, and each paid result the loop did not
        deliver is logged at WARNING with its URL and request id (see :meth:`iter_remix`).
        """
        self._close(None)

    def _close(self, exc: BaseException | None) -> None:
        paid: list[RemixResult] = []
        for run in self._runs_to_settle():
            with _settling(paid, run) as closing:
                run.throw(closing)
        _attach_on_close(exc, paid)
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close(exc)


class AsyncReveRemix(_BaseClient[httpx.AsyncClient]):
    """The asyncio client: the options of :class:`ReveRemix`, and async uploaders too.

    Example::

        from reve_remix import AsyncReveRemix

        async with AsyncReveRemix() as client:
            result = await client.remix("<img>0</img> at night", ["city.jpg"])
            await result.asave("city-night.png")
    """

    _http_class = httpx.AsyncClient

    @staticmethod
    def _new_http(
        timeout: float | httpx.Timeout, max_connections: int
    ) -> tuple[httpx.AsyncClient, AsyncShardedTransport]:
        pool = AsyncShardedTransport(max_connections)
        return httpx.AsyncClient(timeout=timeout, transport=pool), pool

    async def remix(
        self,
        prompt: str,
        images: Images,
        *,
        aspect_ratio: AspectRatio | AspectRatioValue | None = None,
        output_format: OutputFormat | OutputFormatValue | None = None,
        model: str | None = None,
        fit: bool = False,
        extra_body: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | httpx.Timeout | None = None,
    ) -> RemixResult:
        """Async twin of :meth:`ReveRemix.remix`; local images are uploaded concurrently.

        Example::

            result = await client.remix("<img>0</img> in autumn", ["park.jpg"], timeout=60)
        """
        call = Call(
            prompt, images, aspect_ratio, output_format, model, fit,
            extra_body, extra_headers, timeout,
        )  # fmt: skip
        job = PaidJob("remix", call)
        return _outcome(await self._drive(lifecycle(job, MemoryLedger(), self)))

    async def remix_many(
        self,
        jobs: Iterable[RemixJob | Mapping[str, Any]],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_progress: Callable[[BatchProgress], None] | None = None,
    ) -> list[Outcome]:
        """Async twin of :meth:`ReveRemix.remix_many`: at most ``concurrency`` jobs in flight.

        ``on_progress`` is called on the event loop after each job. Cancelling the call cancels
        the jobs still running.

        Example::

            outcomes = await client.remix_many(jobs, concurrency=8)
            results = [outcome for outcome in outcomes if isinstance(outcome, RemixResult)]
        """
        from ._schedule import run_in_tasks

        items = list(jobs)
        ledger = MemoryLedger()
        with _abandoned_on_exit(ledger, "remix_many stopped early"):
            return await run_in_tasks(
                functools.partial(self._remix_job, ledger),
                list(enumerate(items)),
                concurrency=self._batch_concurrency(concurrency),
                on_outcome=progress_counter(len(items), on_progress),
            )

    def iter_remix(
        self,
        jobs: Iterable[JobT],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> AsyncIterator[tuple[JobT, Outcome]]:
        """Async twin of :meth:`ReveRemix.iter_remix`: ``async for job, outcome in ...``.

        Leaving the loop early starts nothing more and waits for the jobs still running, when
        the iterator is closed: with ``contextlib.aclosing``, when it is collected, or when the
        client closes, whichever comes first.

        Example::

            async for job, outcome in client.iter_remix(jobs, concurrency=8):
                if isinstance(outcome, RemixResult):
                    await outcome.asave(f"{job['id']}.png")
        """
        from ._schedule import iter_in_tasks

        ledger = MemoryLedger()
        work = functools.partial(self._remix_job, ledger)
        run = iter_in_tasks(work, enumerate(jobs), concurrency=self._batch_concurrency(concurrency))
        delivered = _adelivered(run, ledger)
        self._open_runs.add(delivered)
        return delivered

    async def _remix_job(
        self, ledger: MemoryLedger, numbered: tuple[int, RemixJob | Mapping[str, Any]]
    ) -> RemixResult:
        job = _paid_job(*numbered)
        return _outcome(await self._drive(lifecycle(job, ledger, self, looked_up=True)))

    async def _drive(self, run: Lifecycle) -> Settled:
        """Async twin of :meth:`ReveRemix._drive`: the same lifecycle, awaited effects."""
        step = _advance(run, None, None)
        while not isinstance(step, Settled):
            try:
                if isinstance(step, Send):
                    reply: Any = await self._send(step.request)
                elif isinstance(step, Read):
                    reply = await step.image.aread()
                else:
                    reply = await self._build(step)
            except BaseException as exc:  # the lifecycle records it, then decides
                step = _advance(run, None, exc)
            else:
                step = _advance(run, reply, None)
        return step

    async def _build(self, build: Build) -> httpx.Request:
        import asyncio

        prepared = self._prepare(build.call)
        urls = await asyncio.gather(*(self._upload(item) for item in prepared.images))
        return self._build_request(prepared, urls)

    async def _upload(self, item: str | LocalImage) -> str | LocalImage:
        if isinstance(item, str) or self.uploader is data_url:
            return item  # a local one as it is: the body writes its data: URL as it is sent
        url = self.uploader(item.data, item.mime)
        if inspect.isawaitable(url):
            url = await url
        return check_uploaded_url(url, item.label)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        import asyncio

        retries, limiter, sent_at = CallRetries(), self._rate_limiter, 0.0
        billed = False
        while True:
            if limiter is not None:
                async with self._line.for_loop():  # one attempt at a time asks: see RateLimiter
                    while wait := await self._next_slot(limiter):
                        await asyncio.sleep(wait)
                sent_at = limiter.on_sent()
            _log_attempt(request, retries)
            # BudgetExceededError, before sending: see _budget
            with self.budget.hold(billed_before=billed) as held:
                try:
                    outcome: httpx.Response | httpx.TransportError = _acyclic(
                        await self._http.send(request)
                    )
                except httpx.TransportError as exc:
                    outcome = exc
                billed |= held.settle(outcome)
            decision = self._decide(request, outcome, retries, sent_at)
            if isinstance(decision, httpx.Response):
                return decision
            await asyncio.sleep(decision)

    async def _next_slot(self, limiter: RateLimiter) -> float:
        """The limiter's ``anext_slot()`` if it has one (it waits on I/O), else ``next_slot()``."""
        if self._anext_slot is not None:
            return await self._anext_slot()
        return limiter.next_slot()

    async def aclose(self) -> None:
        """Async twin of :meth:`ReveRemix.close`: open ``iter_remix`` loops are settled first."""
        await self._aclose(None)

    async def _aclose(self, exc: BaseException | None) -> None:
        paid: list[RemixResult] = []
        for run in self._runs_to_settle():
            with _settling(paid, run) as closing:
                await run.athrow(closing)
        _attach_on_close(exc, paid)
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._aclose(exc)


def _discard(awaitable: Awaitable[object]) -> None:
    """Close an un-awaited coroutine so Python does not warn that it was never awaited."""
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def _acyclic(response: httpx.Response) -> httpx.Response:
    """``response`` without httpx's reference cycle (response -> its stream -> response).

    The body has been read and the stream closed, so the stream is not needed; without the cycle
    a response, its request and the request's body (megabytes of inline images) are freed as
    soon as nothing uses them, rather than at the next full garbage collection, which a batch
    of large jobs reaches only after gigabytes (``scripts/bench.py`` prints the peak).
    """
    response.stream = httpx.ByteStream(response.content)
    return response


@functools.lru_cache(maxsize=32)
def _parsed_url(url: str) -> httpx.URL:
    """``url`` parsed once: httpx would parse a ``str`` URL again on every request."""
    return httpx.URL(url)


def _log_attempt(request: httpx.Request, retries: CallRetries) -> None:
    """The debug line of each attempt, made only when debug logging is on: its arguments cost
    more than the check, on every call."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s %s (attempt %d)", request.method, request.url, retries.attempt)


def _advance(run: Lifecycle, reply: object, failure: BaseException | None) -> Effect | Settled:
    """The lifecycle's next effect, given the last one's ``reply`` (or ``failure``), or how the
    job settled: the one way both clients' drivers step a lifecycle."""
    try:
        return run.send(reply) if failure is None else run.throw(failure)
    except StopIteration as stop:
        settled: Settled = stop.value
        return settled


def _fetchable(url: object) -> str | None:
    """Why ``url`` cannot be a result image's URL (an http(s) URL with a host), or ``None``."""
    if not isinstance(url, str):
        return f"expected a URL string, got {type(url).__name__}"
    if url.split(":", 1)[0].lower() not in ("http", "https"):
        return "is not an http(s) URL"
    return http_url_problem(url)


def _outcome(settled: Settled) -> RemixResult:
    """The result the caller asked for, or the error that ended the job, raised."""
    if settled.error is not None:
        raise settled.error
    if settled.result is None:  # a memory ledger holds nothing back: never reached
        raise ValidationError(f"job {settled.record.id} was not sent ({settled.action.value})")
    return settled.result


def _paid_job(index: int, job: RemixJob | Mapping[str, Any]) -> PaidJob:
    """The runner's job for item ``index`` of ``remix_many`` or ``iter_remix``."""
    checked = RemixJob._coerce(job)
    call = Call(
        checked.prompt,
        checked.images,
        checked.aspect_ratio,
        checked.output_format,
        checked.model,
        extra_body=checked.extra_body,
        extra_headers=checked.extra_headers,
    )
    return PaidJob(str(index), call)


@contextlib.contextmanager
def _abandoned_on_exit(ledger: MemoryLedger, why: str) -> Iterator[None]:
    """Whatever stops a call early, its paid results are logged and attached, never dropped."""
    try:
        yield
    except BaseException as exc:
        closed = " (its client was closed)" if isinstance(exc, _ClientClosing) else ""
        _attach(exc, ledger.abandon(why + closed))
        raise


class _ClientClosing(BaseException):
    """Thrown into an ``iter_remix`` loop the caller still holds when its client closes.

    The loop stops as a ``break`` would (nothing more starts, the requests out are answered),
    its undelivered paid results are logged and attached here, and ``close()`` collects them.
    A ``BaseException`` so that no ``except Exception`` in between takes it for a failure.
    """


@contextlib.contextmanager
def _settling(paid: list[RemixResult], run: object) -> Iterator[_ClientClosing]:
    """Settle one open loop, ``run`` (the body throws the signal in): its paid results join
    ``paid``.

    A loop another thread or task is stepping at that moment cannot be entered: it is left to
    that thread, whose requests the closing pool cuts off, and said so (close a client once the
    loops using it have stopped).
    """
    closing = _ClientClosing()
    try:
        yield closing
    except _ClientClosing as settled:
        paid.extend(getattr(settled, "paid_results", ()))
    except (ValueError, RuntimeError) as exc:  # "generator already executing", and only that
        if not (getattr(run, "gi_running", False) or getattr(run, "ag_running", False)):
            raise
        logger.warning(
            "iter_remix was running in another thread or task when its client closed: "
            "its requests still out may have been generated (%s)",
            exc,
        )


def _attach_on_close(exc: BaseException | None, paid: list[RemixResult]) -> None:
    """Put the paid results of loops settled by closing on the exception leaving ``with``, if
    one is; otherwise their WARNING lines are their record."""
    if exc is not None:
        _attach(exc, paid)


def _attach(exc: BaseException, results: list[RemixResult]) -> None:
    """Put paid results the caller will not receive on the exception that stopped the call."""
    if not results:
        return
    exc.add_note(
        f"reve_remix: {len(results)} paid result(s) were not received; they are logged on the "
        "'reve_remix' logger and attached as .paid_results"
    )
    exc.paid_results = results  # type: ignore[attr-defined]


def _delivered(
    run: Generator[tuple[int, tuple[int, JobT], Outcome]], ledger: MemoryLedger
) -> Iterator[tuple[JobT, Outcome]]:
    """``iter_remix``'s pairs; each outcome is the caller's once yielded.

    Leaving early (``break``, an exception) closes the scheduler, which waits for the running
    jobs; what they were paid for is then logged by the ledger.
    """
    with _abandoned_on_exit(ledger, "iter_remix was left early"), contextlib.closing(run):
        for _position, (index, job), outcome in run:
            ledger.delivered(str(index))
            yield job, outcome


async def _adelivered(
    run: AsyncGenerator[tuple[int, tuple[int, JobT], Outcome]], ledger: MemoryLedger
) -> AsyncIterator[tuple[JobT, Outcome]]:
    """Async twin of :func:`_delivered`."""
    with _abandoned_on_exit(ledger, "iter_remix was left early"):
        async with contextlib.aclosing(run):
            async for _position, (index, job), outcome in run:
                ledger.delivered(str(index))
                yield job, outcome
