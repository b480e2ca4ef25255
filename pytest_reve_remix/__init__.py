"""The pytest plugin of reve-remix: ``reve_remix_mock`` and ``reve_remix_cassette`` fixtures.

pytest loads it through the ``pytest11`` entry point of the ``reve-remix`` distribution, so a
project that installs ``reve-remix[testing]`` gets the fixtures with no import and no conftest.

It lives outside the ``reve_remix`` package on purpose: importing ``reve_remix`` loads httpx,
which would add ~0.1 s to every pytest run of every project that merely has reve-remix
installed. This module imports only pytest and the standard library; a fixture loads the SDK's
testing kit when a test asks for it, and says how to install it if it is missing.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from vcr.cassette import Cassette  # type: ignore[import-untyped]

    from reve_remix.testing import ReveRemixMock

__all__ = ["reve_remix_cassette", "reve_remix_mock"]

_INSTALL_HINT = "pip install 'reve-remix[testing]'"
_MOCK_OPTIONS = ("assert_all_responses_were_requested", "assert_all_requests_were_valid", "latency")
_RECORD_MODES = ("none", "once", "new_episodes", "all")  # vcrpy's, without importing it


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reve-remix")
    group.addoption(
        "--reve-remix-record",
        choices=_RECORD_MODES,
        default="none",
        help="how reve_remix_cassette treats cassettes: 'none' (the default, for CI) only "
        "replays; 'once' records a missing cassette against the real API, at your cost",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "reve_remix_mock(*, assert_all_responses_were_requested=True, "
        "assert_all_requests_were_valid=True, latency=0.0): configure the reve_remix_mock fixture",
    )
    config.addinivalue_line(
        "markers",
        "reve_remix_cassette(path=None, *, keep_images=False): where reve_remix_cassette "
        "keeps this test's recording, and whether it keeps the full images",
    )


@pytest.fixture
def reve_remix_mock(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ReveRemixMock]:
    """An offline Reve Remix API for this test; every client the test creates talks to it.

    Sets ``ONEROUTER_API_KEY`` and ``REVE_REMIX_BASE_URL`` for the test. At teardown the test
    fails if a queued response was never used or a remix request broke the spec, unless
    ``@pytest.mark.reve_remix_mock(...)`` turns the check off.
    """
    options = _marker_options(request.node, "reve_remix_mock", _MOCK_OPTIONS)
    latency = options.pop("latency", 0.0)
    testing = _testing_module("reve_remix.testing")
    mock = testing.ReveRemixMock(latency=latency).start()
    try:
        for name, value in mock.environment.items():
            monkeypatch.setenv(name, value)
        yield mock
        problems = mock.problems(**options)
    finally:
        mock.stop()
    if problems:
        pytest.fail("reve_remix_mock: " + "\nreve_remix_mock: ".join(problems), pytrace=False)


@pytest.fixture
def reve_remix_cassette(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cassette]:
    """Replay this test's recorded exchanges with the API; record them with
    ``--reve-remix-record=once`` (and a real key, at your cost).

    The cassette is ``cassettes/<module>/<test>.yaml`` next to the test file unless
    ``@pytest.mark.reve_remix_cassette("path.yaml")`` says otherwise. When replaying with no
    ``ONEROUTER_API_KEY`` set, a placeholder key is set so clients can be created.
    """
    options = _marker_options(request.node, "reve_remix_cassette", ("path", "keep_images"))
    marker = request.node.get_closest_marker("reve_remix_cassette")
    if marker is not None and marker.args:
        options["path"] = marker.args[0]
    test_file = Path(request.node.path)
    path = Path(options.get("path") or _default_cassette(test_file, request.node.name))
    if not path.is_absolute():
        path = test_file.parent / path
    mode = request.config.getoption("reve_remix_record")
    if mode == "none" and not path.exists():
        pytest.fail(
            f"reve_remix_cassette: no recording at {path}; record it once with "
            "`pytest --reve-remix-record=once` and a real ONEROUTER_API_KEY (at your cost)",
            pytrace=False,
        )
    cassettes = _testing_module("reve_remix.testing.cassettes")
    if mode == "none":
        for name, value in cassettes.replay_environment().items():
            monkeypatch.setenv(name, value)
    keep_images = bool(options.get("keep_images", False))
    with cassettes.use_cassette(path, record_mode=mode, keep_images=keep_images) as cassette:
        yield cassette


def _marker_options(node: pytest.Item, name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The keyword arguments of ``name`` markers, the closest (the test's own) winning."""
    options: dict[str, Any] = {}
    for marker in node.iter_markers(name):  # closest first
        options = {**marker.kwargs, **options}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        pytest.fail(
            f"@pytest.mark.{name}: unknown option(s) {', '.join(unknown)}; "
            f"it takes {', '.join(allowed)}",
            pytrace=False,
        )
    return options


def _default_cassette(test_file: Path, test_name: str) -> Path:
    safe = re.sub(r"[^\w.-]+", "_", test_name).strip("_")
    return test_file.parent / "cassettes" / test_file.stem / f"{safe}.yaml"


def _testing_module(name: str) -> ModuleType:
    """The testing kit, or a test failure that says how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = exc.name or getattr(exc.__cause__, "name", None) or "a package"
        pytest.fail(
            f"reve-remix's testing kit needs {missing}, which is not installed: {_INSTALL_HINT}",
            pytrace=False,
        )
