"""``split_padded``: the least-cost cut of a length-sorted batch, against brute force over every
cut (not only the ends of runs of equal length, which are all it searches)."""
from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab.data.collate import split_padded


def cost(groups, lengths, call_cost, step_cost):
    return sum(max(lengths[i] for i in g) * (len(g) + step_cost) + call_cost for g in groups)


def brute_force(lengths, call_cost, step_cost):
    """Every contiguous cut of the sorted rows: the least total cost."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = float("inf")
    for cuts in itertools.product((False, True), repeat=len(order) - 1):
        groups, current = [], [order[0]]
        for cut, i in zip(cuts, order[1:]):
            if cut:
                groups.append(current)
                current = []
            current.append(i)
        groups.append(current)
        best = min(best, cost(groups, lengths, call_cost, step_cost))
    return best


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.integers(1, 6), st.integers(1, 60)), min_size=1, max_size=10), st.floats(0, 200), st.floats(0, 3))
def test_least_cost_partition_of_the_sorted_rows(lengths, call_cost, step_cost):
    indices = list(range(len(lengths)))
    groups = split_padded(indices, lengths, call_cost, step_cost)
    assert sorted(i for g in groups for i in g) == indices  # every row once
    flat = [lengths[i] for g in groups for i in g]
    assert flat == sorted(flat)  # contiguous runs of the length order
    assert abs(cost(groups, lengths, call_cost, step_cost) - brute_force(lengths, call_cost, step_cost)) < 1e-6


def test_mixed_lengths_split_and_equal_lengths_stay_whole():
    lengths = {10: 3, 11: 3, 12: 50, 13: 48}  # indices need not be 0..n-1
    assert split_padded([12, 10, 13, 11], lengths, call_cost=20, step_cost=1.5) == [[10, 11], [13, 12]]
    assert split_padded([0, 1, 2], [7, 7, 7], call_cost=0.0) == [[0, 1, 2]]
    assert split_padded([], [], call_cost=5) == []
