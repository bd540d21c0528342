"""Prices for the shop example (README, Context from other files)."""

TAX_RATE = 0.2


def discount(total: float, percent: float) -> float:
    """`total` less `percent` per cent."""
    return total * (1 - percent / 100)


def with_tax(amount: float) -> float:
    return amount * (1 + TAX_RATE)
