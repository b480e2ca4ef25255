"""``Budget``: a cap on what a client sends, exact under concurrency, over real loopback HTTP.

Every test counts what a 127.0.0.1 server received (``PaidServer.generations`` counts the 200s it
answered, ``MockServer.requests`` every POST), on both clients: a budget is only as good as the
number of requests that actually left.
"""

from __future__ import annotations

import asyncio
import threading
from decimal import Decimal

import pytest

from reve_remix import (
    AsyncReveRemix,
    Budget,
    BudgetExceededError,
    ContentPolicyError,
    InternalServerError,
    RemixResult,
    ReveRemix,
    ReveRemixError,
    ValidationError,
)
from reve_remix._lifecycle import JobState
from reve_remix._runner import state_after_error
from reve_remix.testing import Fault, MockServer

from .conftest import API_KEY, IMAGE_URL, Twin
from .paid_server import PaidServer

PROMPT = "<img>0</img> in the rain"


def posts(server: MockServer) -> int:
    return sum(1 for request in server.requests if request.method == "POST")


def remix_many(twin: Twin, jobs: list[dict[str, object]], concurrency: int) -> list[object]:
    client = twin.client
    if isinstance(client, AsyncReveRemix):
        return twin._run(client.remix_many(jobs, concurrency=concurrency))
    return list(client.remix_many(jobs, concurrency=concurrency))


@pytest.fixture(autouse=True)
def no_price_in_the_environment(monkeypatch):
    monkeypatch.delenv("REVE_REMIX_PRICE", raising=False)


# --- the cap is exact under concurrency ----------------------------------------------------------


def test_six_jobs_at_concurrency_four_with_a_cap_of_three_send_exactly_three(make_twin):
    budget = Budget(max_generations=3)
    # Each answer takes a while, so the four workers are all in flight together.
    with PaidServer(post_latency=0.2) as server:
        twin = make_twin(api_key=API_KEY, base_url=server.base_url, budget=budget)
        jobs = [{"prompt": f"<img>0</img> job {n}", "images": [IMAGE_URL]} for n in range(6)]
        outcomes = remix_many(twin, jobs, concurrency=4)
        assert server.generations == 3
        assert sum(server.posted.values()) == 3
    assert sum(isinstance(outcome, RemixResult) for outcome in outcomes) == 3
    refused = [outcome for outcome in outcomes if isinstance(outcome, BudgetExceededError)]
    assert len(refused) == 3
    assert all(isinstance(error, ReveRemixError) and error.budget is budget for error in refused)
    assert (budget.spent, budget.reserved, budget.remaining, budget.refused) == (3, 0, 0, 3)


def test_one_budget_caps_a_sync_and_an_async_client_together(server):
    budget = Budget(max_generations=4)
    with (
        Twin("sync", api_key=API_KEY, base_url=server.base_url, budget=budget) as sync,
        Twin("async", api_key=API_KEY, base_url=server.base_url, budget=budget) as async_,
    ):
        jobs = [{"prompt": f"<img>0</img> job {n}", "images": [IMAGE_URL]} for n in range(4)]
        outcomes: list[list[object]] = []
        threads = [
            threading.Thread(target=lambda t=t: outcomes.append(remix_many(t, jobs, 4)))
            for t in (sync, async_)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert posts(server) == 4
    results = [o for batch in outcomes for o in batch if isinstance(o, RemixResult)]
    assert len(results) == 4
    assert budget.spent == 4
    assert budget.refused == 4


def test_an_exhausted_budget_raises_before_anything_is_sent(server, twin):
    twin.client.budget = budget = Budget(max_generations=1)
    twin.remix(PROMPT, [IMAGE_URL])
    with pytest.raises(BudgetExceededError, match=r"1 generation\(s\) may have been billed"):
        twin.remix(PROMPT, [IMAGE_URL])
    assert posts(server) == 1
    assert budget.spent == 1


def test_a_zero_budget_sends_nothing(server, twin):
    twin.client.budget = Budget(max_generations=0)
    with pytest.raises(BudgetExceededError) as info:
        twin.remix(PROMPT, [IMAGE_URL])
    assert posts(server) == 0
    assert state_after_error(info.value) is JobState.PENDING  # unsent: a resume sends it


# --- what counts: anything that may have been billed --------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=429, headers={"Retry-After": "0"}),
        Fault(status=503, headers={"Retry-After": "0"}),
        Fault(status=502),
    ],
    ids=["429", "503", "502"],
)
def test_a_retry_of_an_attempt_that_made_nothing_does_not_count(server, twin, fault, fast_backoff):
    twin.client.budget = budget = Budget(max_generations=1)
    server.enqueue(fault)
    twin.remix(PROMPT, [IMAGE_URL])  # the retry fits in the one generation allowed
    assert posts(server) == 2
    assert (budget.spent, budget.reserved) == (1, 0)


def test_a_refused_request_gives_its_generation_back(server, twin):
    twin.client.budget = budget = Budget(max_generations=1)
    server.enqueue(Fault(status=400))
    with pytest.raises(ReveRemixError):
        twin.remix(PROMPT, [IMAGE_URL])
    assert (budget.spent, budget.remaining) == (0, 1)


def test_a_500_counts_as_it_may_have_been_billed(server, twin):
    twin.client.budget = budget = Budget(max_generations=1)
    server.enqueue(Fault(status=500))
    with pytest.raises(InternalServerError):
        twin.remix(PROMPT, [IMAGE_URL])
    assert budget.spent == 1
    with pytest.raises(BudgetExceededError):
        twin.remix(PROMPT, [IMAGE_URL])
    assert posts(server) == 1


def test_each_ambiguous_retry_counts(server, make_twin, fast_backoff):
    budget = Budget(max_generations=2)
    twin = make_twin(
        api_key=API_KEY, base_url=server.base_url, budget=budget, retry_on_ambiguous=True
    )
    server.enqueue(Fault(status=500), Fault(status=500), Fault(status=500))
    with pytest.raises(BudgetExceededError) as info:  # the third attempt does not fit
        twin.remix(PROMPT, [IMAGE_URL])
    assert posts(server) == 2
    assert budget.spent == 2
    # The earlier attempts may have been billed: the job is held, not left pending.
    assert info.value.earlier_attempt_billed
    assert state_after_error(info.value) is JobState.AMBIGUOUS


def test_a_connection_dropped_after_sending_counts(server, twin):
    twin.client.budget = budget = Budget()
    server.enqueue(Fault(drop=True))
    with pytest.raises(ReveRemixError):
        twin.remix(PROMPT, [IMAGE_URL])
    assert budget.spent == 1


def test_a_connection_refused_before_sending_does_not_count(make_twin):
    with MockServer() as gone:
        base_url = gone.base_url  # nothing listens there once it stops
    budget = Budget(max_generations=1)
    twin = make_twin(api_key=API_KEY, base_url=base_url, budget=budget, max_retries=0)
    with pytest.raises(ReveRemixError):
        twin.remix(PROMPT, [IMAGE_URL])
    assert (budget.spent, budget.reserved, budget.remaining) == (0, 0, 1)


def test_a_content_policy_refusal_counts(server, twin):
    twin.client.budget = budget = Budget()
    body = {"error": {"code": 422, "type": "content_policy_violation", "message": "no"}}
    server.enqueue(Fault(status=422, body=body))
    with pytest.raises(ContentPolicyError):
        twin.remix(PROMPT, [IMAGE_URL])
    assert budget.spent == 1


@pytest.mark.anyio
async def test_a_cancelled_attempt_counts_and_holds_nothing():
    with MockServer(latency=3600) as server:  # held until it stops: the cancel always comes first
        budget = Budget(max_generations=2)
        async with AsyncReveRemix(API_KEY, base_url=server.base_url, budget=budget) as client:
            task = asyncio.create_task(client.remix(PROMPT, [IMAGE_URL]))
            while not server.requests:  # the request has left
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert (budget.spent, budget.reserved) == (1, 0)


# --- prices and caps in USD -----------------------------------------------------------------------


def test_max_cost_allows_what_it_pays_for(server, twin):
    twin.client.budget = budget = Budget(max_cost="0.1", price="0.040")
    for _ in range(2):
        twin.remix(PROMPT, [IMAGE_URL])
    # amounts as every message writes them (reve_remix._money.usd), not as they were typed
    with pytest.raises(BudgetExceededError, match=r"max_cost=0\.10 USD at 0\.04 USD a gen"):
        twin.remix(PROMPT, [IMAGE_URL])
    assert posts(server) == 2
    assert budget.cost == Decimal("0.08")


def test_decimal_prices_are_exact():
    budget = Budget(max_cost=0.3, price=0.1)
    assert budget.limit == 3  # 0.3 / 0.1 in floats is 2.9999999999999996


def test_the_price_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("REVE_REMIX_PRICE", "0.05")
    assert Budget(max_cost=1).limit == 20
    assert Budget(price=0.01).price == Decimal("0.01")  # the argument wins


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_cost": 1}, "max_cost: needs the price"),
        ({"max_generations": -1}, "max_generations: expected an integer >= 0"),
        ({"max_generations": True}, "max_generations: expected an integer >= 0"),
        ({"price": "free"}, "price: expected an amount in USD"),
        ({"price": float("nan")}, "price: expected an amount in USD"),
        ({"max_cost": -1, "price": 1}, "max_cost: expected an amount in USD"),
    ],
)
def test_bad_options_are_validation_errors(options, message):
    with pytest.raises(ValidationError, match=message):
        Budget(**options)


def test_a_bad_price_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("REVE_REMIX_PRICE", "4 cents")
    with pytest.raises(ValidationError, match="REVE_REMIX_PRICE: expected an amount"):
        Budget()


def test_a_client_refuses_a_budget_that_is_not_one():
    with pytest.raises(ValidationError, match="budget: expected a Budget, got int"):
        ReveRemix(API_KEY, budget=3)  # type: ignore[arg-type]


def test_every_client_counts_what_it_sends_without_a_cap(server, twin):
    twin.remix(PROMPT, [IMAGE_URL])
    assert twin.client.budget.spent == 1
    assert twin.client.budget.remaining is None


def test_the_repr_shows_the_state():
    budget = Budget(max_generations=3, price="0.04")
    assert repr(budget) == (
        "Budget(spent=0, reserved=0, remaining=3, max_generations=3, price='0.04', cost='0.00')"
    )
    assert API_KEY not in repr(ReveRemix(API_KEY, budget=budget))


def test_a_cost_cap_at_a_price_of_zero_is_refused():
    # It would cap nothing: every generation free. Said, not silently ignored.
    with pytest.raises(ValidationError, match="the price of a generation is 0"):
        Budget(max_cost=1, price=0)
