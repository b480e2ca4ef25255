"""The exception hierarchy: one class per thing a caller may want to catch.

::

    ReveRemixError
    ├── ValidationError (also a ValueError)      bad input, caught before anything is sent
    ├── BudgetExceededError                      the client's Budget is spent; nothing was sent
    └── APIError
        ├── APIConnectionError                   no response: refused, reset, dropped
        │   └── APITimeoutError
        ├── APIResponseValidationError           a 2xx whose body does not match the spec
        ├── ImageNotSavedError                   a 2xx whose image could not be fetched or saved
        └── APIStatusError                       an error answer; one subclass per status
            ├── ContentPolicyError               any status whose error type names moderation
            ├── BadRequestError                  400
            ├── AuthenticationError              401
            ├── PaymentRequiredError             402 (out of credits)
            ├── PermissionDeniedError            403
            ├── NotFoundError                    404
            ├── RequestTimeoutError              408
            ├── PayloadTooLargeError             413
            ├── UnprocessableEntityError         422
            ├── RateLimitError                   429
            └── InternalServerError              5xx

A refusal by content policy is a ``ContentPolicyError`` whatever its status, and still an error
of its status too: a flagged 422 is both a ``ContentPolicyError`` and an
``UnprocessableEntityError``, a flagged 403 both a ``ContentPolicyError`` and a
``PermissionDeniedError`` (:func:`status_error` picks the class from the status, then adds
``ContentPolicyError`` when the body's error type or code names content policy or moderation).
An error object inside a 2xx body is an ``APIStatusError`` too (``ContentPolicyError`` when
flagged) whose ``in_2xx_body`` is true, and an ``APIResponseValidationError`` (a 2xx whose body
holds no image): the API said success, so the image may have been billed, and every handler of a
2xx gone wrong holds the job rather than sending it again.

Every ``APIError`` carries the ``request_id`` the server returned (when it returned one) so that
a support ticket can name the request. No message ever contains the API key: every ``APIError``
message, and the body of a status error, go through ``redact`` with the key its request carried,
so a server (or an httpx error) that echoes the key back does not get it into the exception.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from ._lifecycle import MAY_HAVE_BEEN_GENERATED, not_saved_message
from ._redact import redact

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ContentPolicyError",
    "ImageNotSavedError",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "ReveRemixError",
    "UnprocessableEntityError",
    "ValidationError",
]

REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-onerouter-request-id", "cf-ray")
_CONTENT_POLICY = re.compile(r"moderation|content[_ -]?policy|flagged|safety|nsfw", re.IGNORECASE)
_BODY_PREVIEW_CHARS = 500


class ReveRemixError(Exception):
    """Base class of every exception this library raises on purpose.

    Every one pickles and unpickles to the same class, message and fields (status, body, request
    id, URL), so that it can cross a process pool, but without the request and response objects:
    the request carries the API key in its headers. An exception it holds as a field (``cause``)
    that is not the SDK's own travels as its type and message.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        state = {
            name: _portable(value)
            for name, value in self.__dict__.items()
            if name not in _UNPICKLED
        }
        return (_unpickle, (_class_key(type(self)), self.args, state))


# The request carries the key; a budget holds a lock and is the caller's, not the error's.
_UNPICKLED = frozenset({"request", "response", "budget"})


def _portable(value: object) -> object:
    """A field as it is pickled: foreign exceptions as their type and message."""
    if isinstance(value, BaseException) and not isinstance(value, ReveRemixError | OSError):
        return ReveRemixError(f"{type(value).__name__}: {value}")
    return value


def _class_key(cls: type[ReveRemixError]) -> object:
    """How a pickle names an error's class: itself, or the key ``_error_class`` made it from."""
    found = [key for key, made in _ERROR_CLASSES.items() if made is cls]
    return found[0] if found else cls


def _unpickle(cls_key: object, args: tuple[Any, ...], state: dict[str, Any]) -> ReveRemixError:
    cls: type[ReveRemixError] = (
        _error_class(*cls_key) if isinstance(cls_key, tuple) else cls_key  # type: ignore[assignment]
    )
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(dict.fromkeys(_UNPICKLED), **state)
    return error


class ValidationError(ReveRemixError, ValueError):
    """The arguments cannot make a valid request; nothing was sent and nothing was charged.

    Example::

        try:
            client.remix("a cat", [])
        except ValidationError as exc:
            print(exc)  # images: give between 1 and ... images (the spec's limits), got 0
    """


class BudgetExceededError(ReveRemixError):
    """The client's :class:`~reve_remix.Budget` allows no more generations: nothing was sent.

    Raised before the request would go out (``remix_many`` returns it as the outcome of each job
    that did not fit). ``budget`` is the budget that refused, to read what it spent;
    ``earlier_attempt_billed`` says whether an earlier attempt of the same call (a retry with
    ``retry_on_ambiguous=True``) may have been billed before the budget ran out.

    Example::

        try:
            client.remix("<img>0</img> at dusk", ["city.jpg"])
        except BudgetExceededError as exc:
            print(exc, exc.budget.spent)
    """

    def __init__(
        self, message: str, *, budget: object, earlier_attempt_billed: bool = False
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.earlier_attempt_billed = earlier_attempt_billed


class APIError(ReveRemixError):
    """Something went wrong talking to the API. ``request`` is the request that was sent."""

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request | None = None,
        request_id: str | None = None,
    ) -> None:
        message = redact(message, api_key_sent(request))
        super().__init__(message)
        self.message = message
        self.request = request
        self.request_id = request_id


class APIConnectionError(APIError):
    """No usable response arrived: the connection failed, was reset or was dropped."""


class APITimeoutError(APIConnectionError):
    """The request took longer than the client's ``timeout``."""


class _ResponseError(APIError):
    """Shared by the errors that carry a response: status, body and request id."""

    def __init__(self, message: str, *, response: httpx.Response, body: object) -> None:
        super().__init__(
            message, request=_request_of(response), request_id=request_id_of(response.headers)
        )
        self.response = response
        self.status_code = response.status_code
        self.body = body

    def __str__(self) -> str:
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.message}{suffix}"


class APIResponseValidationError(_ResponseError):
    """A successful status whose body does not match the API's response schema.

    The generation may have been charged: ``body`` holds whatever arrived, for inspection.
    """


class ImageNotSavedError(APIError):
    """The image was generated (and billed) but could not be fetched or saved.

    ``request_id`` and ``url`` (or ``spool``, the file an inline image's bytes were kept in) say
    where the paid image is, ``cause`` why it is not on disk (a download that failed after its
    retries, bytes that are not an image, a disk error). Reading or saving again fetches the URL
    again: that is free; generating again is not.

    Example::

        try:
            result.save("out.png")
        except ImageNotSavedError as exc:
            print("fetch it yourself:", exc.url, exc.request_id, exc.cause)
    """

    def __init__(
        self,
        cause: BaseException,
        *,
        request_id: str | None,
        url: str | None,
        spool: str | None = None,
    ) -> None:
        super().__init__(
            not_saved_message(request_id, url, cause, spool),
            request=getattr(cause, "request", None),
            request_id=request_id,
        )
        self.url = url
        self.spool = spool
        self.cause = cause


class APIStatusError(_ResponseError):
    """The API answered with an error: a non-2xx status, or an error object in a 2xx body.

    ``error_type``, ``error_code`` and ``param`` come from the provider's error envelope
    ``{"error": {"message", "type", "param", "code"}}`` when the body has one. ``in_2xx_body``
    says the error came inside a 2xx answer (OneRouter documents that it can): the image may
    have been generated and billed, so a job that ends so is held as ambiguous, not re-sent.

    Example::

        try:
            client.remix("a cat", ["https://example.com/cat.png"])
        except RateLimitError as exc:
            print(exc.status_code, exc.request_id, exc.body)
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: object,
        error_type: str | None = None,
        error_code: str | int | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, response=response, body=body)
        self.error_type = error_type
        self.error_code = error_code
        self.param = param

    @property
    def in_2xx_body(self) -> bool:
        """Whether the error object came inside a 2xx answer (which may have been billed)."""
        return self.response.is_success


class BadRequestError(APIStatusError):
    """400: the API rejected the request's parameters."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, invalid or disabled."""


class PaymentRequiredError(APIStatusError):
    """402: the account or API key is out of credits."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this."""


class ContentPolicyError(APIStatusError):
    """The prompt or an image was refused by content policy, whatever the status.

    Raised for any status (OneRouter documents a 422 ``content_policy_violation`` and a 403 for
    flagged input) whose error type or code names content policy or moderation, and for such an
    error inside a 2xx body (``in_2xx_body``). The error is also an instance of its status's
    class (``UnprocessableEntityError`` for a 422); ``status_code``, ``body`` and ``request_id``
    are there as on any status error. Never retried: the same request would be refused again.

    Example::

        try:
            client.remix("<img>0</img> as a watercolour", ["cat.png"])
        except ContentPolicyError as exc:
            print("refused:", exc.status_code, exc.error_type, exc.message)
    """


class NotFoundError(APIStatusError):
    """404: wrong base URL or unknown model."""


class RequestTimeoutError(APIStatusError):
    """408: the server gave up waiting for the request."""


class PayloadTooLargeError(APIStatusError):
    """413: the request body (usually the images) is too large."""


class UnprocessableEntityError(APIStatusError):
    """422: the request is well-formed JSON but breaks the schema."""


class RateLimitError(APIStatusError):
    """429: too many requests; retried automatically, raised once retries are spent."""


class InternalServerError(APIStatusError):
    """5xx: the provider or the model failed."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def request_id_of(headers: httpx.Headers) -> str | None:
    """The request id the server put in ``headers``, under any of the usual names."""
    for name in REQUEST_ID_HEADERS:  # in order of preference, the commonest first
        value: str | None = headers.get(name)
        if value:
            return value
    return None


def decode_body(response: httpx.Response) -> object:
    """The response body as JSON when it is JSON, else as text (never raises)."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return response.content.decode("utf-8", errors="replace")


def status_error(response: httpx.Response) -> APIStatusError:
    """The ``APIStatusError`` subclass for a non-2xx ``response``, with the provider's words.

    A server that echoes the API key back (``"invalid key sk-…"``) does not get it into the
    exception: the key is replaced by ``<redacted>`` in the body, and so in the message.
    """
    body = _redacted(decode_body(response), api_key_sent(_request_of(response)))
    envelope: dict[str, Any] = {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        envelope = body["error"]
    message = envelope.get("message")
    if not isinstance(message, str) or not message:
        message = _preview(body) or response.reason_phrase or "no body"
    error_type = _str_or_none(envelope.get("type"))
    code = envelope.get("code")
    error_code = code if isinstance(code, str | int) and not isinstance(code, bool) else None

    status = response.status_code
    cls = _BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    cls = _error_class(cls, names_content_policy(error_type, error_code), response.is_success)
    label = f"{status} {response.reason_phrase}".strip()
    kind = f" [{error_type}]" if error_type else ""
    if response.is_success:
        message += f" (an error inside a {status} answer: {MAY_HAVE_BEEN_GENERATED})"
    return cls(
        f"{label}{kind}: {message}",
        response=response,
        body=body,
        error_type=error_type,
        error_code=error_code,
        param=_str_or_none(envelope.get("param")),
    )


def is_content_policy(response: httpx.Response) -> bool:
    """Whether ``response``'s error envelope names content policy or moderation (a refusal that
    the same request would meet again: never retried)."""
    body = decode_body(response)
    envelope = body.get("error") if isinstance(body, dict) else None
    if not isinstance(envelope, dict):
        return False
    return names_content_policy(envelope.get("type"), envelope.get("code"))


def names_content_policy(error_type: object, error_code: object) -> bool:
    """Whether an error envelope's ``type`` or ``code`` names content policy or moderation."""
    return bool(_CONTENT_POLICY.search(f"{error_type} {error_code}"))


def _error_class(
    status_class: type[APIStatusError], flagged: bool, in_2xx_body: bool
) -> type[APIStatusError]:
    """The class of an error answer: its status's, plus ``ContentPolicyError`` when ``flagged``,
    plus ``APIResponseValidationError`` when it came ``in_2xx_body``; made once for each.

    So ``except ContentPolicyError`` catches every refusal while ``except PermissionDeniedError``
    still catches a flagged 403; and an error inside a 2xx is handled wherever a 2xx gone wrong
    is (held, never sent again: it may have been billed). The class prints as the most specific
    public name (``ContentPolicyError``).
    """
    bases: list[type[APIError]] = [ContentPolicyError] if flagged else []
    if status_class is not APIStatusError or not flagged:
        bases.append(status_class)
    if in_2xx_body:
        bases.append(APIResponseValidationError)
    if len(bases) == 1:
        return ContentPolicyError if flagged else status_class
    key = (status_class, flagged, in_2xx_body)
    if key not in _ERROR_CLASSES:
        namespace = {"__module__": bases[0].__module__, "__doc__": bases[0].__doc__}
        _ERROR_CLASSES.setdefault(key, type(bases[0].__name__, tuple(bases), namespace))
    return _ERROR_CLASSES[key]


_ERROR_CLASSES: dict[tuple[type[APIStatusError], bool, bool], type[APIStatusError]] = {}


def api_key_sent(request: httpx.Request | None) -> str | None:
    """The key ``request`` carried in ``Authorization`` (``Bearer <key>`` or the bare key)."""
    if request is None:
        return None
    authorization = request.headers.get("authorization", "")
    scheme, _, key = authorization.partition(" ")
    secret = key.strip() if scheme.lower() == "bearer" else authorization.strip()
    return secret or None


def _request_of(response: httpx.Response) -> httpx.Request | None:
    try:
        return response.request
    except RuntimeError:  # a response built without a request
        return None


def _redacted(value: object, secret: str | None) -> object:
    """``value`` (decoded JSON or text) with every form of ``secret`` replaced."""
    if not secret:
        return value
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, list):
        return [_redacted(item, secret) for item in value]
    if isinstance(value, dict):
        return {redact(str(key), secret): _redacted(item, secret) for key, item in value.items()}
    return value


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _preview(body: object) -> str:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    text = " ".join(text.split())
    if len(text) > _BODY_PREVIEW_CHARS:
        text = text[:_BODY_PREVIEW_CHARS] + "…"
    return text


def connection_error(error: httpx.RequestError, request: httpx.Request) -> APIConnectionError:
    """The library's exception for an httpx transport failure (a timeout keeps its own class)."""
    cls = APITimeoutError if isinstance(error, httpx.TimeoutException) else APIConnectionError
    detail = str(error) or "connection failed"
    return cls(f"{type(error).__name__}: {detail}", request=request)
