"""How many requests ``assistant serve`` decodes together by default, and how a slot is matched to a prompt."""

from __future__ import annotations

import pytest

from assistant.prompt import shared_prefix
from assistant.server.batch import AUTO_MAX, _runs, auto_parallel


@pytest.mark.parametrize(("cores", "slots"), [(1, 2), (2, 4), (16, AUTO_MAX)])
def test_auto_parallel_is_two_per_core_at_most_four(cores: int, slots: int) -> None:
    assert auto_parallel(cores) == slots


def test_shared_prefix_counts_the_leading_tokens_in_common() -> None:
    assert shared_prefix([1, 2, 3, 4], [1, 2, 9]) == 2
    assert shared_prefix([], [1, 2]) == 0
    assert shared_prefix([1, 2], [1, 2, 3]) == 2


def test_runs_counts_the_stretches_of_consecutive_slot_ids() -> None:
    assert _runs({0, 1, 3}) == 2
    assert _runs({0, 1, 2, 3}) == 1
    assert _runs(set()) == 0
