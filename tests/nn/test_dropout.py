import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab.nn.dropout import rows_seen_once, unk_dropout


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=40))
def test_rows_seen_once_matches_a_count(rows):
    once = rows_seen_once(torch.tensor(rows), 10, never=(0, 1))
    assert once.tolist() == [r not in (0, 1) and rows.count(r) == 1 for r in range(10)]


def test_unk_dropout_rate_and_where():
    torch.manual_seed(0)
    ids = torch.full((200, 50), 7)
    where = torch.zeros(200, 50, dtype=torch.bool)
    where[:, :25] = True
    out = unk_dropout(ids, 1, 0.3, where)
    assert set(out.unique().tolist()) == {1, 7}
    assert bool((out[:, 25:] == 7).all())  # never outside ``where``
    rate = float((out[:, :25] == 1).float().mean())
    assert abs(rate - 0.3) < 0.02  # 5,000 draws: 3 standard deviations is 0.02
    assert torch.equal(unk_dropout(ids, 1, 0.0), ids)
    assert float((unk_dropout(ids, 1, 0.5) == 1).float().mean()) > 0.45  # no ``where``: every position
