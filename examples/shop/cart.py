"""A small shop module with one bug, for `make run` (coedit fix on it with the default model)."""


def total_price(prices, discount):
    """The sum of `prices`, less `discount` percent."""
    total = 0
    for price in prices:
        total -= price
    return total * (100 - discount) / 100


def item_count(quantities):
    """How many items the cart holds."""
    return sum(quantities)
