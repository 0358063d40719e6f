"""Prompt-lookup drafts and the draft length (``assistant.speculative``)."""

from __future__ import annotations

from pathlib import Path

from assistant.speculative import BATCH_STEPS, DraftLength, Lookup


def test_the_draft_is_what_followed_the_last_ngram_before() -> None:
    #            0  1  2  3  4  5  6  7
    lookup = Lookup([5, 6, 7, 8, 9, 1, 5, 6], min_n=2)
    assert lookup.draft(3) == [7, 8, 9]  # "5 6" was followed by 7 8 9
    assert lookup.draft(10) == [7, 8, 9, 1, 5, 6]  # as far as the history goes
    assert lookup.draft(0) == []


def test_the_longest_and_latest_match_wins() -> None:
    lookup = Lookup([1, 2, 3, 40, 9, 2, 3, 50, 1, 2, 3], min_n=2)
    assert lookup.draft(1) == [40]  # "1 2 3" (3 tokens) beats the later "2 3" (2 tokens)
    lookup = Lookup([2, 3, 40, 2, 3, 50, 2, 3], min_n=2)
    assert lookup.draft(1) == [50]  # of two equal matches, the latest


def test_no_match_no_draft_and_short_matches_do_not_count() -> None:
    assert Lookup([1, 2, 3, 4]).draft(4) == []
    assert Lookup([7, 1, 2, 7], min_n=2).draft(2) == []  # a one-token match predicts too little to pay a batch
    assert Lookup([7, 8, 1, 2, 7, 8]).draft(2) == []  # by default not even two ("of the")
    assert Lookup([7, 8, 9, 1, 2, 7, 8, 9]).draft(2) == [1, 2]


def test_appending_keeps_the_index_up_to_date() -> None:
    lookup = Lookup([10, 11, 12, 13], min_n=2)
    for token in (10, 11):
        lookup.append(token)
    assert lookup.draft(2) == [12, 13]
    lookup.append(99)
    assert lookup.draft(2) == []


def test_draft_length_grows_with_acceptance_and_stops_when_drafts_do_not_pay() -> None:
    length = DraftLength()
    start = length.length(16)
    for _ in range(30):
        length.update(8, 8)  # a reply copying its input: every draft taken whole
    assert length.length(16) > start and length.length(16) == length.max_draft
    assert length.length(3) == 3  # never past the room left
    for _ in range(20):
        length.update(4, 0)
    assert length.length(16) == 0  # a draft that is never accepted costs more than it saves
    for _ in range(DraftLength.PROBE_EVERY):
        length.plain()
    assert length.length(16) == DraftLength.PROBE_LENGTH  # now and then one short draft checks again
    assert (length.drafted, length.accepted) == (320, 240)
    tiny = DraftLength(max_draft=0)  # runtime.batch_size = 1: a batch holds one token, so never a draft
    tiny.plain_steps = DraftLength.PROBE_EVERY
    assert tiny.length(16) == 0


def test_a_longer_match_tells_repeated_lines_apart() -> None:
    # "1 2 3" is followed by 40 after a 9 and by 50 after a 7; the reply's suffix is "9 1 2 3"
    lookup = Lookup([9, 1, 2, 3, 40, 7, 1, 2, 3, 50, 9, 1, 2, 3])
    assert lookup.draft(1) == [40] and lookup.matched == 4
    lookup.append(77)
    assert lookup.draft(3) == [] and lookup.matched == 0


def test_each_match_length_keeps_its_own_rate() -> None:
    length = DraftLength()
    for _ in range(10):
        length.update(3, 0, matched=3)  # chance 3-gram matches in open-ended text: never right
    assert length.length(8, matched=3) == 0
    assert length.length(8, matched=8) > 0  # a reply that copies long stretches still drafts
    assert length.rate(20) == length.rate(8) and length.rate(1) == length.rate(3)


def test_a_failed_probe_doubles_the_wait_for_the_next() -> None:
    length = DraftLength()
    for _ in range(10):
        length.update(3, 0, matched=3)
    for _ in range(DraftLength.PROBE_EVERY):
        length.plain()
    assert length.length(8, matched=3) == DraftLength.PROBE_LENGTH
    length.update(3, 0, matched=3)
    assert length.probe_every == 2 * DraftLength.PROBE_EVERY
    for _ in range(DraftLength.PROBE_EVERY):
        length.plain()
    assert length.length(8, matched=3) == 0  # not yet
    for _ in range(DraftLength.PROBE_EVERY):
        length.plain()
    assert length.length(8, matched=3) == DraftLength.PROBE_LENGTH
    length.update(3, 3, matched=3)  # taken whole: the reply repeats its input now
    assert length.probe_every == DraftLength.PROBE_EVERY
    for _ in range(20):
        length.update(3, 0, matched=3)
        for _ in range(DraftLength.PROBE_LONGEST_WAIT):
            length.plain()
        length.length(8, matched=3)
    assert length.probe_every == DraftLength.PROBE_LONGEST_WAIT


def test_timings_correct_the_costs_unless_the_reply_must_repeat() -> None:
    adaptive, fixed = DraftLength(), DraftLength(adapt=False)
    for length in (adaptive, fixed):
        length.timed(1, 0.010)
        length.timed(8, 0.060)  # a batch of 8 costing 6 steps on this machine, not 3.5
    assert adaptive.steps[8] == 6.0
    assert fixed.steps[8] == BATCH_STEPS[8]


class _TimedLlama:
    """Stands in for llama_cpp.Llama where batch_costs touches it: counts decodes, keeps n_tokens."""

    def __init__(self) -> None:
        self.n_tokens = 40
        self.decoded: list[int] = []
        self._batch = self
        self._ctx = self

    def set_batch(self, *, batch: list[int], n_past: int, logits_all: bool) -> None:
        assert n_past == self.n_tokens and logits_all
        self.size = len(batch)

    def decode(self, batch: object) -> None:
        self.decoded.append(self.size)

    def kv_cache_seq_rm(self, seq: int, start: int, end: int) -> None:
        assert start == self.n_tokens


def test_batch_costs_are_timed_once_and_kept_in_the_cache(assistant_home: Path) -> None:
    import json

    from assistant import paths, speculative

    speculative._costs.clear()
    paths.ensure(paths.cache_dir())
    (paths.cache_dir() / speculative.COSTS_FILE).write_text(json.dumps({"other.gguf:9:1:512": {"1": 1.0, "2": 1.5}}))
    llm = _TimedLlama()
    costs = speculative.batch_costs(llm, 7, "model.gguf:1:2:512", 8)
    assert sorted(costs) == list(range(1, 9)) and costs[1] == 1.0 and all(v >= 1.0 for v in costs.values())
    assert sorted(set(llm.decoded)) == list(range(1, 9)) and llm.n_tokens == 40  # nothing left in the cache
    stored = json.loads((paths.cache_dir() / speculative.COSTS_FILE).read_text())
    assert stored["model.gguf:1:2:512"] == {str(m): v for m, v in costs.items()}
    assert stored["other.gguf:9:1:512"] == {"1": 1.0, "2": 1.5}  # another model's costs are kept
    speculative._costs.clear()  # a new process: read from the file, not timed again
    again = _TimedLlama()
    assert speculative.batch_costs(again, 7, "model.gguf:1:2:512", 8) == costs and again.decoded == []
    (paths.cache_dir() / speculative.COSTS_FILE).write_text("{not json")
    speculative._costs.clear()
    assert sorted(speculative.batch_costs(again, 7, "model.gguf:1:2:512", 4)) == [1, 2, 3, 4]  # timed anew


def test_batch_costs_never_fall_as_the_batch_grows() -> None:
    from assistant.speculative import monotone

    # as timed once with a build running: a batch of 4 "cost" more than one of 8
    timed = {1: 1.0, 2: 2.27, 3: 2.84, 4: 4.82, 5: 4.91, 6: 4.87, 7: 6.47, 8: 4.08}
    costs = monotone(timed)
    assert list(costs) == list(range(1, 9)) and costs[1] == 1.0
    assert all(costs[m] <= costs[m + 1] for m in range(1, 8)), costs
    assert all(costs[m] <= timed[m] for m in costs)  # only lowered, never raised: load only inflates a timing
    assert costs == {1: 1.0, 2: 2.27, 3: 2.84, 4: 4.08, 5: 4.08, 6: 4.08, 7: 4.08, 8: 4.08}
    assert monotone({1: 1.0, 2: 0.7, 3: 2.0}) == {1: 1.0, 2: 1.0, 3: 2.0}  # a batch costs a step at least
