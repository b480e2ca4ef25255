"""Money is written one way everywhere: ``reve_remix._money.usd`` (its module says why)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

import reve_remix
from reve_remix import Budget, BudgetExceededError, ValidationError
from reve_remix._money import amount, usd


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.04") * 3, "0.12 USD"),  # cents
        (Decimal("0.5") * 2, "1.00 USD"),  # never "1.0"
        (Decimal("0.040"), "0.04 USD"),  # the zeros a user typed past cents are not money
        (Decimal("0.0025"), "0.0025 USD"),  # a fraction of a cent is shown, never rounded away
        (Decimal("0.035") * 7, "0.245 USD"),
        (Decimal("1E+1"), "10.00 USD"),  # no exponent: it can be pasted into --max-cost
        (Decimal("1234567.5"), "1234567.50 USD"),  # no separator, for the same reason
        (Decimal(0), "0.00 USD"),
        (0, "0.00 USD"),
        (amount("-0", "price"), "0.00 USD"),
    ],
)
def test_usd_writes_money_with_cents_and_every_digit_it_has(value: Decimal, text: str) -> None:
    assert usd(value) == text


def test_what_usd_writes_reads_back_as_the_same_amount() -> None:
    for value in ("0.12", "1E+1", "0.0025", "7", "0.333333333333333333333333333333333"):
        written = usd(Decimal(value)).removesuffix(" USD")
        assert amount(written, "price") == Decimal(value)


def test_a_budget_error_writes_its_amounts_with_usd() -> None:
    budget = Budget(max_cost="0.1", price="0.050")
    for _ in range(2):
        with budget.hold():  # left unsettled: spent, as an attempt whose outcome is unknown
            pass
    with pytest.raises(BudgetExceededError) as caught:
        budget.hold()
    assert f"max_cost={usd(Decimal('0.1'))} at {usd(Decimal('0.05'))} a generation" in str(
        caught.value
    )


def test_amounts_are_read_in_one_place_with_one_message() -> None:
    with pytest.raises(ValidationError, match="max_cost: expected an amount in USD"):
        amount("a lot", "max_cost")


def test_no_module_but_money_writes_a_currency() -> None:
    """A figure followed by its currency (``{x} USD``, ``${x}``) is written by ``usd`` only."""
    package = Path(reve_remix.__file__).parent
    # ${NAME} is an environment variable in a message, not money
    writes_money = re.compile(r"\} USD|USD \{|\$\{(?![\w.]*\b[A-Z][A-Z_]*\})")
    offenders = [
        f"{path.relative_to(package)}:{number}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "_money.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if writes_money.search(line)
    ]
    assert offenders == []
