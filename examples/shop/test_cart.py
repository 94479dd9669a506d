from cart import item_count, total_price


def test_total_price():
    assert total_price([10, 20], 0) == 30
    assert total_price([10, 20, 30], 50) == 30


def test_item_count():
    assert item_count([1, 2, 3]) == 6
