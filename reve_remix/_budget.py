"""``Budget``: a cap on what a client may spend, in generations or in USD, exact under concurrency.

The API reports no cost, no usage and no credit, so the SDK counts what it sends. Every attempt
(retries included) holds one generation of the budget just before it leaves
(:meth:`Budget.hold`), under one lock, so threads and tasks sharing a budget cannot overshoot it
between them. The hold is given back when the attempt provably made nothing
(:func:`~reve_remix._retry.made_nothing`: a 429, a 502/503/504, any other 4xx, a connection error
before the request was sent) and is spent otherwise (a 2xx, a 500, a read timeout, a refusal by
content policy, an attempt cut off by cancellation or Ctrl-C): anything that may have been billed
counts. When nothing is left the attempt is refused with ``BudgetExceededError`` before it is
sent.

A job that finds the budget fully held by attempts still in flight is refused at once, not made to
wait for them: the cap is never exceeded, but a job may be refused for room that an attempt in
flight gives back later (a 503 it gets, say).
"""

from __future__ import annotations

import threading
from decimal import Decimal
from types import TracebackType

import httpx

from . import _config
from ._exceptions import BudgetExceededError, ValidationError
from ._money import amount, usd
from ._retry import made_nothing


class Budget:
    """The most a client may spend: ``max_generations``, ``max_cost`` (USD, with a ``price``).

    Give it to a client (``ReveRemix(budget=...)`` or ``AsyncReveRemix(budget=...)``); share one
    between clients, threads and tasks to cap all of them together. Before each attempt is sent
    one generation is held; an attempt that provably made nothing gives it back, any other is
    spent. When the budget is spent, ``remix`` raises ``BudgetExceededError`` without sending, and
    ``remix_many`` returns that error as the outcome of each job that did not fit.

    ``price`` is what one generation costs in USD (default: ``$REVE_REMIX_PRICE``); the SDK
    cannot know it, the API does not say. ``max_cost`` needs a price: it allows
    ``max_cost // price`` generations. Amounts are kept as exact decimals.

    Read it at any time: ``spent`` (generations that may have been billed), ``reserved`` (attempts
    in flight), ``remaining`` (generations that may still be sent, ``None`` without a cap),
    ``refused`` (attempts refused) and ``cost`` (``spent`` x ``price``).

    Example::

        from reve_remix import Budget, ReveRemix

        budget = Budget(max_generations=100, price=0.04)
        with ReveRemix(budget=budget) as client:
            outcomes = client.remix_many(jobs)
        print(budget.spent, budget.cost)  # e.g. 100 Decimal('4.00')
    """

    def __init__(
        self,
        max_generations: int | None = None,
        max_cost: float | str | Decimal | None = None,
        price: float | str | Decimal | None = None,
    ) -> None:
        if max_generations is not None and (
            isinstance(max_generations, bool)
            or not isinstance(max_generations, int)
            or max_generations < 0
        ):
            raise ValidationError(
                f"max_generations: expected an integer >= 0 or None, got {max_generations!r}"
            )
        self.max_generations = max_generations
        self.price: Decimal | None = _config.price(price)
        """USD per generation, or ``None`` if unknown."""
        self.max_cost: Decimal | None = None
        """The most to spend in USD, or ``None`` for no cap on cost."""
        if max_cost is not None:
            self.max_cost = amount(max_cost, "max_cost")
            if self.price is None:
                raise ValidationError(
                    "max_cost: needs the price of a generation: pass price=... or set "
                    f"{_config.PRICE_ENV} (the API does not report what a generation costs)"
                )
            if self.price == 0:  # every generation free: the cap would never stop anything
                raise ValidationError(
                    "max_cost: the price of a generation is 0, so a cost caps nothing; give the "
                    "real price, or cap with max_generations"
                )
        self._limit = _limit(max_generations, self.max_cost, self.price)
        self._lock = threading.Lock()
        self._spent = 0
        self._reserved = 0
        self._refused = 0

    @property
    def limit(self) -> int | None:
        """The most generations this budget allows (from both caps), ``None`` for no cap."""
        return self._limit

    @property
    def spent(self) -> int:
        """Generations that may have been billed: every settled attempt that did not provably
        make nothing."""
        return self._spent

    @property
    def reserved(self) -> int:
        """Attempts in flight: held, not yet known to be spent or given back."""
        return self._reserved

    @property
    def refused(self) -> int:
        """Attempts this budget refused (each raised ``BudgetExceededError``)."""
        return self._refused

    @property
    def remaining(self) -> int | None:
        """Generations that may still be sent, ``None`` without a cap."""
        with self._lock:
            return self._remaining()

    @property
    def cost(self) -> Decimal | None:
        """``spent`` x ``price`` in USD, or ``None`` when the price is unknown."""
        return None if self.price is None else self._spent * self.price

    def hold(self, *, billed_before: bool = False) -> Hold:
        """Hold one generation for an attempt about to be sent; ``BudgetExceededError`` if none is
        left (``billed_before``: an earlier attempt of the same call may have been billed, which the
        error says, so that the job is held as ambiguous rather than left pending). Use the hold as
        a context manager and :meth:`Hold.settle` it with the outcome.

        Example::

            with budget.hold() as held:
                outcome = send()
                held.settle(outcome)  # given back if it provably made nothing, else spent
        """
        with self._lock:
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                self._refused += 1
                raise BudgetExceededError(
                    self._exhausted(), budget=self, earlier_attempt_billed=billed_before
                )
            self._reserved += 1
        return Hold(self)

    def _settle(self, spent: bool, slot: int | None = None) -> None:
        """Count a settled hold (``slot``: a shared budget's reservation, see ``_store_budget``)."""
        with self._lock:
            self._reserved -= 1
            self._spent += spent

    def _remaining(self) -> int | None:
        if self._limit is None:
            return None
        return max(self._limit - self._spent - self._reserved, 0)

    def _exhausted(self) -> str:
        caps = []
        if self.max_generations is not None:
            caps.append(f"max_generations={self.max_generations}")
        if self.max_cost is not None:
            caps.append(f"max_cost={usd(self.max_cost)} at {usd(self.price or 0)} a generation")
        in_flight = f", {self._reserved} more in flight" if self._reserved else ""
        return (
            f"budget spent: {self._spent} generation(s) may have been billed{in_flight} of the "
            f"{self._limit} allowed ({', '.join(caps)}); this request was not sent"
        )

    def __repr__(self) -> str:
        with self._lock:
            spent, reserved, remaining = self._spent, self._reserved, self._remaining()
        parts = [f"spent={spent}", f"reserved={reserved}", f"remaining={remaining}"]
        parts += [f"max_generations={self.max_generations}"]
        if self.max_cost is not None:
            parts.append(f"max_cost={str(self.max_cost)!r}")
        if self.price is not None:
            parts += [f"price={str(self.price)!r}", f"cost={str(spent * self.price)!r}"]
        return f"Budget({', '.join(parts)})"


class Hold:
    """One generation held on a :class:`Budget` for one attempt, until it is settled.

    Leaving the ``with`` block unsettled (an exception while sending: cancellation, Ctrl-C)
    spends it: the request may have gone out.
    """

    __slots__ = ("_budget", "_open", "_slot")

    def __init__(self, budget: Budget, slot: int | None = None) -> None:
        self._budget = budget
        self._open = True
        self._slot = slot

    def settle(self, outcome: httpx.Response | httpx.TransportError) -> bool:
        """Give the generation back if ``outcome`` provably made nothing, else spend it; whether
        it was spent (the attempt may have been billed)."""
        spent = not made_nothing(outcome)
        if self._open:
            self._open = False
            self._budget._settle(spent=spent, slot=self._slot)
        return spent

    def __enter__(self) -> Hold:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._open:
            self._open = False
            self._budget._settle(spent=True, slot=self._slot)


def _limit(
    max_generations: int | None, max_cost: Decimal | None, price: Decimal | None
) -> int | None:
    """The generations both caps allow together (a price of 0 puts no cap on them by cost)."""
    limits = [] if max_generations is None else [max_generations]
    if max_cost is not None and price:
        limits.append(int(max_cost // price))
    return min(limits) if limits else None
