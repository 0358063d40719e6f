"""How many requests ``assistant serve`` decodes together by default, how a slot is matched to a prompt, and how
prompts are cut into batches and grouped."""

from __future__ import annotations

import pytest

from assistant.llama import chunk_length
from assistant.prompt import shared_prefix
from assistant.server.batch import AUTO_MAX, Batcher, _runs, _Seq, _Slot, auto_parallel


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


@pytest.mark.parametrize("size", [3, 4, 7, 512])  # (batches of 2 cannot cut an odd prompt without a lone token)
@pytest.mark.parametrize("left", [1, 2, 3, 4, 5, 8, 9, 513, 1025])
def test_chunk_length_never_leaves_one_token_for_a_batch_of_its_own(left: int, size: int) -> None:
    chunks = []
    while left:
        take = chunk_length(left, size)
        assert 1 <= take <= size
        chunks.append(take)
        left -= take
    assert chunks.count(1) <= (1 if chunks == [1] else 0), chunks


def _batcher(n_batch: int, pending: dict[int, int]) -> tuple[Batcher, list[_Slot]]:
    """A Batcher with no model, just its slots: slot id -> prompt tokens still to evaluate (admitted in id order)."""
    batcher = Batcher.__new__(Batcher)
    batcher.n_batch = n_batch
    slots = []
    for i, n in pending.items():
        seq = _Seq(job=None, tokens=[], out=print, max_new=1, pending=list(range(n)), admitted=i + 1)  # type: ignore[arg-type]
        slots.append(_Slot(i, seq=seq))
    return batcher, slots


def test_prompts_of_one_length_are_evaluated_together_in_slot_order() -> None:
    batcher, slots = _batcher(512, {3: 2, 1: 2, 0: 2, 2: 2})
    assert [(s.id, take) for s, take in batcher._prompt_group(slots)] == [(0, 2), (1, 2), (2, 2), (3, 2)]


def test_a_prompt_of_another_length_waits_for_a_call_of_its_own() -> None:
    batcher, slots = _batcher(512, {0: 30, 1: 2, 2: 30})
    assert [(s.id, take) for s, take in batcher._prompt_group(slots)] == [(0, 30), (2, 30)]
    batcher, slots = _batcher(512, {1: 2, 0: 30})  # the oldest newcomer (slot 0's) always goes first
    assert [(s.id, take) for s, take in batcher._prompt_group(slots[::-1])] == [(0, 30)]


def test_a_group_never_overfills_the_batch_and_keeps_the_oldest() -> None:
    batcher, slots = _batcher(8, {0: 20, 1: 20, 2: 20})
    group = batcher._prompt_group(slots)
    assert [(s.id, take) for s, take in group] == [(0, 8)]  # 8 of each would not fit twice
    batcher, slots = _batcher(8, {0: 3, 1: 3, 2: 3})
    assert [(s.id, take) for s, take in batcher._prompt_group(slots)] == [(0, 3), (1, 3)]
