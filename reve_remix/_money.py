"""Money: how an amount is read (:func:`amount`) and how it is written (:func:`usd`), once.

The API reports no cost, so every amount the SDK shows is one the user gave (a price, a cap) or
a count of generations times a price: exact decimals, never floats. Every message about money
(``reve-remix spend``, a dry run's estimate, a cap, ``BudgetExceededError``, the contact sheet)
writes it with :func:`usd`, so a figure reads the same wherever it appears. The choices:

- **the currency is USD, written after the number** (``0.12 USD``): OneRouter bills in US
  dollars and the options say ``--price USD``; a bare ``$`` would not say which dollar;
- **at least two decimals** (cents, as money is read: ``1.00 USD``, never ``1 USD`` or
  ``1.0 USD``), **and every further digit the amount has**, never rounded: a generation may cost
  a fraction of a cent (``0.035 USD``), and a price shown rounded would not be the price the
  caps are computed with;
- **no exponent, no thousands separator**: a figure can be pasted back into ``--price`` or
  ``--max-cost`` as it is.

Machine-readable outputs (``--json``) keep numbers, not this text.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ._exceptions import ValidationError

CURRENCY = "USD"
"""The currency of every amount: what OneRouter bills in."""


def amount(value: object, name: str) -> Decimal:
    """``value`` as an amount of USD: a finite number (or its text) of 0 or more, exact.

    A float is read as the decimal it prints as (``0.1`` is ``Decimal('0.1')``), so that three
    generations at 0.1 cost exactly 0.3.

    Example::

        >>> amount("0.25", "max_cost")
        Decimal('0.25')
    """
    parsed: Decimal | None = None
    if isinstance(value, Decimal | int | float | str) and not isinstance(value, bool):
        try:
            parsed = Decimal(str(value).strip())
        except InvalidOperation:
            parsed = None
    if parsed is None or not parsed.is_finite() or parsed < 0:
        raise ValidationError(
            f"{name}: expected an amount in {CURRENCY} of 0 or more, got {value!r}"
        )
    return parsed.copy_abs()  # "-0" is 0


def usd(value: Decimal | int) -> str:
    """``value`` as every message writes money: two decimals or more, exact, then ``USD``.

    Example::

        >>> usd(Decimal("0.04") * 3), usd(Decimal("0.5") * 2), usd(Decimal("0.0025"))
        ('0.12 USD', '1.00 USD', '0.0025 USD')
        >>> usd(Decimal("1E+1")), usd(Decimal("0.120")), usd(0)
        ('10.00 USD', '0.12 USD', '0.00 USD')
    """
    whole, _, cents = f"{Decimal(value):f}".partition(".")
    return f"{whole}.{cents.rstrip('0').ljust(2, '0')} {CURRENCY}"
