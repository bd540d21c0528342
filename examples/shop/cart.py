from prices import discount, with_tax


def checkout(items: list[float], percent: float) -> float:
    total = sum(items)
    return with_tax(discount(total, percent))
