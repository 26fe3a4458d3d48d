"""Money: amounts with at most two decimal places, their text form and exact integer cents."""

from __future__ import annotations

from decimal import Decimal

CENTS = Decimal("0.01")


def amount_pattern(whole_digits: int) -> str:
    """The text of an amount: 1 to `whole_digits` digits, then at most two decimals."""
    return rf"^[0-9]{{1,{whole_digits}}}(\.[0-9]{{1,2}})?$"


def cents(amount: Decimal) -> int:
    """Exact integer cents of a two-place decimal amount."""
    return int(amount.scaleb(2).to_integral_value())


def from_cents(cents: int) -> str:
    """Integer cents as a two-place decimal string."""
    return str((Decimal(cents) / 100).quantize(CENTS))
