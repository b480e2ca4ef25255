"""Engine tests run outside the default test run (pyproject's addopts ignores this folder):
.ci/run installs the ``ray`` and ``spark`` extras and runs ``pytest tests/engines``."""

from __future__ import annotations

import os

import pytest

# Both engines otherwise pick the machine's outward-facing address for their own processes'
# traffic; the tests keep every byte on loopback (subprocesses inherit this environment).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # Ray's single-node mode: 127.0.0.1
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Ray and Spark warn about their own deprecated settings while starting up; the SDK's warnings
    # still fail the run everywhere else.
    for item in items:
        item.add_marker(pytest.mark.timeout(300))  # an engine's start-up on 2 busy cores is slow
        item.add_marker(pytest.mark.filterwarnings("ignore::DeprecationWarning"))
        item.add_marker(pytest.mark.filterwarnings("ignore::FutureWarning"))
