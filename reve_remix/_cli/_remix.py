"""``reve-remix remix``: one image, through the paid-job runner, saved where ``-o`` says.

The remix runs as a one-job lifecycle over a ``MemoryLedger`` with a destination that saves to
the output path, so its rules are the batch's: the 2xx is recorded before the download, and an
interrupt (Ctrl-C, SIGTERM, SIGHUP) after it prints the URL, the request id and the
``reve-remix fetch`` command that gets the image without paying again.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .._images import image_extension
from .._jobs_file import Target, file_name_problem, slugify, unwritable
from .._ledger import JobRecord, MemoryLedger
from .._lifecycle import JobState
from .._progress import spinner_line
from .._recipe import save_image
from .._runner import Call, PaidJob, lifecycle
from .._spec import spec
from .._tags import IMAGE_NAME
from . import _signals
from ._console import EXIT_OK, PROG, Console, UsageError, fetch_command
from ._dry_run import dry_run
from ._options import NO_METADATA_HELP, Commands, SharedOptions, client, request_fields


def add(commands: Commands, shared: SharedOptions) -> None:
    """Add the ``remix`` command."""
    summary = f"Remix {spec().images_text()} images with a prompt and save the result."
    remix = shared.command(
        commands, "remix", summary, _EXAMPLES, shared.generation, shared.connection,
        shared.spending,
    )  # fmt: skip
    remix.add_argument("prompt", help="what to make; refer to images as <img>N</img> or {name}")
    add_images(remix)
    remix.add_argument(
        "-o", "--output", help="file or folder to save to (default: ./<prompt>-<time>.<ext>)"
    )
    remix.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    remix.add_argument("--json", action="store_true", help="print a JSON object, not the path")
    remix.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing: print the endpoint and the JSON body that would be sent",
    )
    remix.add_argument("--no-metadata", action="store_true", help=NO_METADATA_HELP)
    remix.set_defaults(run=run)


_EXAMPLES = """\
Examples:
  export ONEROUTER_API_KEY=sk-...
  reve-remix remix "<img>0</img> as a watercolour" -i cat.jpg
  reve-remix remix "Put {cat} on {sofa}" -i cat=cat.jpg -i sofa=https://example.com/sofa.png \\
      --aspect-ratio 16:9 -o out/cat-on-sofa.png
  reve-remix remix "<img>0</img> at night" -i city.jpg --json
  reve-remix remix "<img>0</img> at night" -i city.jpg --dry-run   # sends nothing

The image is saved as ./<prompt>-<UTC time>.<ext> (or in/as -o); an existing -o file is kept
unless --force. A value NAME=IMAGE names an image; write ./a=b.png for a file called a=b.png.
The image carries its recipe (see 'reve-remix info'); --no-metadata saves it as it came.
Interrupted after the image was generated, it prints a 'reve-remix fetch' command that saves it
without paying again.
"""


@dataclass(frozen=True, slots=True)
class Output:
    """Where ``remix`` saves: a ``Target``; ``unique`` names get ``-2``, ``-3``... on a clash."""

    target: Target
    unique: bool

    def path_for(self, data: bytes) -> Path:
        path = self.target.path_for(data)
        number = 1
        while self.unique and path.exists():
            number += 1
            path = self.target.path_for(data).with_stem(f"{self.target.path.name}-{number}")
        return path


@dataclass(slots=True)
class SaveTo:
    """The runner's destination for ``remix``: the output path (``saved`` after), with the
    image's recipe unless ``metadata`` is off."""

    output: Output
    metadata: bool = True
    saved: Path | None = field(default=None)

    def holds(self, record: JobRecord) -> bool:
        return False

    def saved_bytes(self, record: JobRecord) -> bytes | None:
        return None

    def save(self, record: JobRecord, data: bytes) -> str:
        recipe = record.recipe if self.metadata else None
        self.saved = save_image(self.output.path_for(data), data, recipe)
        return str(self.saved)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run ``remix``: the image saved, its path (or ``--json``) on stdout."""
    images = parse_images(args.images)
    output = output_for(args.output, slugify(args.prompt), force=args.force)
    if args.dry_run:
        return dry_run(args, images)
    destination = SaveTo(output, metadata=not args.no_metadata)
    call = Call(
        args.prompt,
        images,
        aspect_ratio=args.aspect_ratio,
        output_format=args.output_format,
        fit=args.fit,
        extra_body=request_fields(args),
    )
    ledger = MemoryLedger()
    with client(args, console) as remixer:
        try:
            with (
                _signals.raising(),
                console.status(lambda elapsed, retry: spinner_line(elapsed, "remixing", retry)),
            ):
                job = PaidJob("remix", call, destination=destination)
                settled = remixer._drive(lifecycle(job, ledger, remixer))
        except KeyboardInterrupt as exc:
            _interrupted(console, ledger, output, exc)
            raise
    if settled.error is not None:
        if settled.result is not None and not settled.record.url:
            ledger.abandon("not saved")  # inline bytes: written to a file it names, not lost
        raise settled.error
    assert settled.result is not None
    assert destination.saved is not None
    path, result = destination.saved, settled.result
    warn_extension(console, path)
    if args.json:
        summary = {
            "path": str(path),
            "url": result.image.url,
            "revised_prompt": result.image.revised_prompt,
            "created": result.created,
            "request_id": result.request_id,
        }
        print(json.dumps(summary))  # ASCII: a server's lone surrogate cannot break stdout
    else:
        print(path)
    return EXIT_OK


def _interrupted(
    console: Console, ledger: MemoryLedger, output: Output, exc: KeyboardInterrupt
) -> None:
    """Say what the interrupt left: a paid image and how to get it, or a request that was out.

    The ledger logs each (an inline image is first written to a file, whose path it gives); a
    paid URL also gets the command that saves it without paying again.
    """
    paid = [record for record in ledger.unsettled() if record.status is JobState.PAID]
    ledger.abandon(
        f"interrupted ({exc})" if isinstance(exc, _signals.Interrupted) else "interrupted"
    )
    for record in paid:
        if record.url:
            command = fetch_command(record.url, output.target.path)
            console.say(f"{PROG}: get it without paying: {command}")


def add_images(parser: argparse.ArgumentParser) -> None:
    """Add ``-i``/``--image`` (the reference images, read by :func:`parse_images`)."""
    parser.add_argument(
        "-i",
        "--image",
        dest="images",
        action="append",
        required=True,
        metavar="IMAGE",
        help="a path or http(s) URL; NAME=IMAGE names it for {NAME} in the prompt "
        f"(repeat {spec().images_text()} times)",
    )


def parse_images(values: list[str]) -> list[str] | dict[str, str]:
    """``-i`` values: all plain (a list), or all ``NAME=IMAGE`` (a mapping)."""
    named: dict[str, str] = {}
    plain: list[str] = []
    for value in values:
        name, equals, image = value.partition("=")
        if equals and IMAGE_NAME.fullmatch(name):
            if not image:
                raise UsageError(f"-i {value}: no image after '='; write -i {name}=IMAGE")
            if name in named:
                raise UsageError(f"-i {name}=...: the name {name!r} is used twice")
            named[name] = image
        else:
            plain.append(value)
    if named and plain:
        raise UsageError(
            f"-i: name every image (NAME=IMAGE) or none of them; unnamed: {', '.join(plain)}"
        )
    return named or plain


def output_for(option: str | None, stem: str, *, force: bool, flag: str = "-o") -> Output:
    """The save location, checked before anything is sent: writable, and no existing file
    unless ``force``. Without ``option``: ``./<stem>-<UTC time>.<ext>``."""
    stem = f"{stem}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    if option is None:
        output = Output(Target(Path(stem), add_extension=True), unique=True)
    else:
        problem = file_name_problem(option)
        if problem:
            raise UsageError(f"{flag} {option!r} {problem}")
        path = Path(option)
        if path.is_dir() or option.endswith(("/", os.sep)):
            output = Output(Target(path / stem, add_extension=True), unique=True)
        else:
            output = Output(Target(path, add_extension=not path.suffix), unique=False)
            existing = output.target.existing()
            if existing is not None and not force:
                raise UsageError(f"{existing} already exists; pass --force to overwrite it")
    problem = unwritable(output.target.path.parent)
    if problem:
        raise UsageError(f"{flag} {option or '.'}: {problem}; nothing was sent")
    return output


def warn_extension(console: Console, path: Path) -> None:
    """Warn when a file's extension is not its bytes' format (an ``-o cat.jpg`` of a PNG)."""
    with path.open("rb") as file:
        actual = image_extension(file.read(4096))
    suffix = path.suffix.lower().replace(".jpeg", ".jpg")
    if suffix != actual:
        console.say(f"{PROG}: warning: {path} holds {actual[1:].upper()} data")
