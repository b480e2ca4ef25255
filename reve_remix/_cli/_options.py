"""The parser's shared pieces: option groups several commands take, argument types, the client.

A command module adds itself with ``add(commands, shared)`` (see ``reve_remix._cli.COMMANDS``):
``shared.command(...)`` makes its parser with the option groups it names and ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, NoReturn, TypeAlias

import httpx

from .. import _config
from .._budget import Budget
from .._client import BASE_URL_ENV, DEFAULT_MAX_RETRIES, ReveRemix
from .._exceptions import ValidationError
from .._money import amount, usd
from .._pool import tls_context
from .._request import check_extra_body, check_model
from .._retry import RATE_LIMIT_RETRIES
from .._spec import IMAGES_FIELD, spec
from ._console import Console, UsageError

MAX_RETRIES = 100
"""The most ``--max-retries`` takes: with backoff, more would only delay a failure by hours."""

# The values and the default are the spec's: a format the vendor adds is listed with no edit here.
FORMAT_HELP = "one of {} (default: {}); url: downloaded, b64_json: inline; the same image"


NO_METADATA_HELP = (
    "save images exactly as the API sent them, without their recipe (prompt, references, "
    "request id; see 'reve-remix info')"
)


class CommandParser(argparse.ArgumentParser):
    """A command's parser: a mistake is one line naming the command and its ``--help``.

    argparse would print the whole usage first (ten lines for ``batch``) and report a command's
    unknown arguments through the top-level parser, whose usage says nothing of the command.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


Commands: TypeAlias = "argparse._SubParsersAction[CommandParser]"


class SharedOptions:
    """The option groups several commands share, each defined once: ``connection`` (where and
    how to call the API), ``generation`` (what to ask for), ``spending`` (``--price`` and the
    caps, for every command that runs jobs), ``price`` (``--price`` alone, for commands that
    only count) and ``--debug`` (every command)."""

    def __init__(self) -> None:
        self.connection = CommandParser(add_help=False)
        group = self.connection.add_argument_group("connection")
        group.add_argument(
            "--base-url",
            metavar="URL",
            help=f"API base URL (default: ${BASE_URL_ENV} or OneRouter)",
        )
        group.add_argument(
            "--timeout",
            type=checked(_config.timeout, float),
            metavar="SECONDS",
            help="wait this long for a result",
        )
        group.add_argument(
            "--max-retries",
            type=number(int, 0, MAX_RETRIES),
            metavar="N",
            default=DEFAULT_MAX_RETRIES,
            help="retries of failures that cannot have been billed "
            f"(default: {DEFAULT_MAX_RETRIES}, at most {MAX_RETRIES}); a 429 has "
            f"{RATE_LIMIT_RETRIES} of its own, or N if more (0: no retries at all)",
        )
        self.generation = CommandParser(add_help=False)
        group = self.generation.add_argument_group("generation")
        ratios = spec().aspect_ratios
        group.add_argument(
            "--aspect-ratio", choices=ratios, metavar="W:H", help=f"one of {', '.join(ratios)}"
        )
        group.add_argument(
            "--format",
            dest="output_format",
            choices=spec().output_formats,
            metavar="|".join(sorted(spec().output_formats, reverse=True)),
            help=FORMAT_HELP.format(", ".join(spec().output_formats), spec().default_output_format),
        )
        group.add_argument(
            "--model",
            type=checked(check_model),
            help="model name (default: reve-remix-image-to-image)",
        )
        group.add_argument(
            "--fit",
            action="store_true",
            help="re-encode local images that are too large or in an unsupported format "
            "(needs Pillow)",
        )
        group.add_argument(
            "--field",
            dest="fields",
            action="append",
            type=request_field,
            metavar="NAME=JSON",
            help="send this request field too, its value as JSON (seed=7, 'quality=\"high\"'): "
            "one the API added since this version, checked against the spec; repeatable",
        )
        self.price = CommandParser(add_help=False)
        add_price(self.price.add_argument_group("cost"))
        self.spending = CommandParser(add_help=False)
        group = self.spending.add_argument_group("spending")
        add_price(group)
        group.add_argument(
            "--max-generations",
            type=number(int, 0),
            metavar="N",
            help="send at most N requests that may be billed in this run (a retry of an attempt "
            "that provably made nothing does not count); the rest is left pending",
        )
        group.add_argument(
            "--max-cost",
            type=checked(lambda value: amount(value, "--max-cost")),
            metavar="USD",
            help="spend at most this in this run, at --price USD a generation",
        )
        self.debug = CommandParser(add_help=False)
        self.debug.add_argument(
            "--debug", action="store_true", help="show tracebacks and the debug log"
        )

    def command(
        self,
        commands: Commands,
        name: str,
        summary: str,
        examples: str,
        *parents: CommandParser,
    ) -> argparse.ArgumentParser:
        """Add the command ``name``, with ``parents``' options and ``--debug``."""
        return commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=examples,
            parents=[*parents, self.debug],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )


def checked(
    check: Callable[[Any], object], convert: Callable[[str], object] = str
) -> Callable[[str], Any]:
    """An argparse ``type`` that applies the library's own ``check``, so both say the same."""

    def parse(text: str) -> object:
        try:
            return check(convert(text))
        except ValueError as exc:  # ValidationError is one; float("x") raises another
            message = str(exc).partition(": ")[2] if isinstance(exc, ValidationError) else ""
            raise argparse.ArgumentTypeError(message or f"not a number: {text!r}") from None

    parse.__name__ = getattr(check, "__name__", "value")
    return parse


def number(
    kind: type[int] | type[float], minimum: float, maximum: float | None = None
) -> Callable[[str], int | float]:
    """An argparse ``type`` that parses ``kind`` and checks its range."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum:g}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}{upper}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


# The options that set the request fields remix has an argument for: --field does not.
_FIELD_OPTIONS = {
    "model": "--model",
    "prompt": "the PROMPT argument",
    IMAGES_FIELD: "-i/--image",
    "aspect_ratio": "--aspect-ratio",
    "output_format": "--format",
}


def request_field(text: str) -> tuple[str, Any]:
    """An argparse ``type`` for ``--field NAME=JSON``: the field, checked as ``extra_body`` is.

    The value is JSON, so that a number, a boolean or an object is sent as one: a string is
    written in quotes (``--field 'quality="high"'``).
    """
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=JSON, such as seed=7")
    if name in _FIELD_OPTIONS:
        raise argparse.ArgumentTypeError(f"{name}: set it with {_FIELD_OPTIONS[name]}")
    try:
        parsed = json.loads(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name}: {value!r} is not JSON; write a string in quotes: --field '{name}=\"{value}\"'"
        ) from None
    except RecursionError:
        raise argparse.ArgumentTypeError(f"{name}: nested too deeply to read") from None
    try:
        check_extra_body({name: parsed}, label="--field")
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc).partition(": ")[2]) from None
    return name, parsed


def request_fields(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``--field`` options as request fields (``extra_body``), ``None`` without any."""
    given: list[tuple[str, Any]] = getattr(args, "fields", None) or []
    fields: dict[str, Any] = {}
    for name, value in given:
        if name in fields:
            raise UsageError(f"--field {name} is given twice")
        fields[name] = value
    return fields or None


def folder(text: str) -> str:
    """An argparse ``type`` for a folder: not empty (``""`` would silently mean ``.``)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder, got an empty string")
    return text


def add_price(group: argparse._ActionsContainer) -> None:
    """Add ``--price`` to ``group``: what one generation costs (the API does not say)."""
    group.add_argument(
        "--price",
        type=checked(_config.price),
        metavar="USD",
        help=f"what one generation costs, in USD (default: ${_config.PRICE_ENV}); the API "
        "does not say",
    )


def price(args: argparse.Namespace) -> Decimal | None:
    """The price of a generation: ``--price``, else ``$REVE_REMIX_PRICE``, else ``None``."""
    given: Decimal | None = getattr(args, "price", None)
    try:
        return given if given is not None else _config.price(None)
    except ValidationError as exc:
        raise UsageError(str(exc)) from None


def budget(args: argparse.Namespace) -> Budget:
    """The run's :class:`Budget`, from the spending options (a command without them: no cap).

    ``--max-cost`` without a price is a usage error: nothing can be sent against it.
    """
    max_cost = getattr(args, "max_cost", None)
    cost = price(args)
    if max_cost is not None and cost is None:
        raise UsageError(
            f"--max-cost needs the price of a generation: pass --price USD or set "
            f"{_config.PRICE_ENV} (the API does not report what a generation costs)"
        )
    return Budget(getattr(args, "max_generations", None), max_cost, cost)


def caps(args: argparse.Namespace) -> str:
    """The spending options given, as the command line wrote them (for messages)."""
    given = []
    if getattr(args, "max_generations", None) is not None:
        given.append(f"--max-generations {args.max_generations}")
    if getattr(args, "max_cost", None) is not None:
        given.append(f"--max-cost {usd(args.max_cost)} at {usd(price(args) or 0)} a generation")
    return " and ".join(given)


def client(args: argparse.Namespace, console: Console) -> ReveRemix:
    """The client for the connection options, once the key is known to be set and the TLS
    certificates can be loaded; its retries are shown on ``console``."""
    if _config.api_key(None) is None:  # also refuses a malformed key, before anything is read
        raise _config.missing_api_key()
    tls_context()  # SSL_CERT_FILE naming no file: said now, before anything is sent
    options: dict[str, Any] = {
        "base_url": args.base_url,
        "max_retries": args.max_retries,
        "on_retry": console.notices,
        "budget": budget(args),
    }
    if args.model:
        options["model"] = args.model
    if args.timeout is not None:
        options["timeout"] = httpx.Timeout(args.timeout, connect=min(args.timeout, 10.0))
    return ReveRemix(**options)
