"""One cap across every worker of an engine run, kept in the paid store (``StoreBudget``).

The engines run rows in many processes; each gets a pickled copy of the budget, whose only shared
state is the store. These tests give every thread or process its own copy (as Ray and Spark do)
and count what :class:`PaidServer` answered: the cap holds across all of them.
"""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from reve_remix import BudgetExceededError, PaidStore, ValidationError
from reve_remix._engine import capped, remix_rows
from reve_remix._store_budget import BUDGET, StoreBudget

from .conftest import API_KEY, IMAGE_URL, WAIT, child
from .paid_server import PaidServer


def rows(prefix: str, count: int) -> list[dict[str, object]]:
    return [
        {"id": f"{prefix}{n}", "prompt": f"<img>0</img> {prefix} {n}", "images": [IMAGE_URL]}
        for n in range(count)
    ]


def statuses(outcomes) -> list[str]:
    return sorted(outcome.status for outcome in outcomes)


def test_threads_with_their_own_copies_of_one_budget_send_exactly_the_cap(tmp_path):
    store = PaidStore(tmp_path / "store")
    budget = StoreBudget(store, max_generations=5)
    outcomes: list = []
    with PaidServer(post_latency=0.1) as server:

        def worker(name: str) -> None:
            copy = pickle.loads(pickle.dumps(budget))  # what an actor or a task receives
            found = remix_rows(
                rows(name, 4), store=store, concurrency=4, budget=copy,
                api_key=API_KEY, base_url=server.base_url,
            )  # fmt: skip
            outcomes.extend(found)

        threads = [threading.Thread(target=worker, args=(name,)) for name in "abc"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert server.generations == 5
        assert statuses(outcomes) == ["done"] * 5 + ["pending"] * 7
        pending = [o for o in outcomes if o.status == "pending"]
        assert all("budget spent" in str(o.error) for o in pending)
        assert budget.used == 5
        assert budget.remaining == 0

        # the next call is a new run with its own cap: it sends the rows left pending, no others
        again = remix_rows(
            [*rows("a", 4), *rows("b", 4), *rows("c", 4)], store=store, max_generations=20,
            api_key=API_KEY, base_url=server.base_url,
        )  # fmt: skip
    assert statuses(again) == ["done"] * 12
    assert server.generations == 12
    assert set(server.answered.values()) == {1}


def test_processes_sharing_one_store_send_exactly_the_cap(tmp_path):
    store = PaidStore(tmp_path / "store")
    budget_file = tmp_path / "budget.pickle"
    budget_file.write_bytes(pickle.dumps(StoreBudget(store, max_generations=3)))
    script = (
        "import pickle, sys\n"
        "from reve_remix._engine import remix_rows\n"
        "budget = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "rows = [{'id': f'{sys.argv[2]}{n}', 'prompt': f'<img>0</img> {sys.argv[2]} {n}',\n"
        f"         'images': [{IMAGE_URL!r}]}} for n in range(3)]\n"
        "found = remix_rows(rows, store=budget.store, concurrency=3, budget=budget,\n"
        "                   api_key=sys.argv[3], base_url=sys.argv[4])\n"
        "print(' '.join(o.status for o in found))\n"
    )
    with PaidServer(post_latency=0.2) as server, contextlib.ExitStack() as running:
        processes = [
            running.enter_context(
                child(
                    [sys.executable, "-c", script, budget_file, name, API_KEY, server.base_url],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
            for name in "xy"
        ]
        printed = " ".join(process.communicate(timeout=WAIT)[0] for process in processes)
    assert all(process.returncode == 0 for process in processes)
    assert server.generations == 3
    assert sorted(printed.split()) == ["done"] * 3 + ["pending"] * 3


def test_an_attempt_that_made_nothing_gives_its_generation_back(tmp_path):
    store = PaidStore(tmp_path / "store")
    budget = StoreBudget(store, max_generations=2)
    busy_first = lambda prompt, nth: "503" if nth == 1 else "ok"  # noqa: E731
    with PaidServer(post_answer=busy_first) as server:
        outcomes = remix_rows(
            rows("r", 2), store=store, budget=budget, api_key=API_KEY, base_url=server.base_url
        )
    assert statuses(outcomes) == ["done", "done"]
    assert sum(server.posted.values()) == 4
    assert server.generations == 2
    assert sorted((tmp_path / "store" / BUDGET / budget.run).iterdir()) == [
        tmp_path / "store" / BUDGET / budget.run / n for n in ("0", "1")
    ]
    assert (budget.spent, budget.reserved, budget.used) == (2, 0, 2)


def test_a_flagged_row_keeps_its_generation(tmp_path):
    """A refusal by content policy may have been billed: it counts, as in a Budget."""
    store = PaidStore(tmp_path / "store")
    budget = StoreBudget(store, max_generations=2)
    flag = lambda prompt, nth: "flagged" if prompt.endswith(" 0") else "ok"  # noqa: E731
    with PaidServer(post_answer=flag) as server:
        outcomes = remix_rows(
            rows("f", 3), store=store, budget=budget, concurrency=1,
            api_key=API_KEY, base_url=server.base_url,
        )  # fmt: skip
    assert [o.status for o in outcomes] == ["flagged", "done", "pending"]
    assert server.generations == 1


def test_a_budget_on_an_fsspec_store_reserves_atomically(tmp_path):
    """``memory://`` is one process's filesystem: enough to drive the fsspec path's ``"xb"``."""
    budget = StoreBudget(PaidStore("memory://reve-remix-budget-test"), max_generations=3)
    holds = []
    for _ in range(3):
        holds.append(budget.hold())
    with pytest.raises(BudgetExceededError, match="reserved in memory://"):
        budget.hold()
    assert budget.used == 3
    for held in holds:
        held.__exit__(None, None, None)  # left unsettled: spent, as an interrupted attempt is
    assert budget.used == 3
    assert budget.spent == 3


def test_caps_and_a_budget_together_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("REVE_REMIX_PRICE", raising=False)
    store = PaidStore(tmp_path / "store")
    with pytest.raises(ValidationError, match="not both"):
        capped(store, {"budget": StoreBudget(store)}, 1, None, None)
    with pytest.raises(ValidationError, match="max_cost: needs the price"):
        remix_rows(rows("z", 1), store=store, max_cost=1, api_key=API_KEY)
    assert capped(store, {"api_key": "k"}, None, None, None) == {"api_key": "k"}
    assert not Path(tmp_path / "store" / BUDGET).exists()
