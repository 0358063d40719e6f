"""Speculative decoding's drafting side: guess the next tokens cheaply, so the model can check several at once.

One-token-at-a-time decoding reads the whole model from memory for every token; on a laptop CPU a batch of
tokens costs less per token (SmolLM2 Q4_1 on 2 cores, timed in the engine: 2 tokens cost 1.7 single steps,
4 cost 2.2, 8 cost 3.5). So the engine (``engine.LlamaEngine._decode``) evaluates the token it just sampled
*plus a draft* of the next ones in one batch, checks each position, keeps the draft's tokens up to the first
one the model does not take, and removes the rest from the KV cache. A greedy reply takes a draft token when it
is the model's own pick, so at temperature 0 the reply is plain decoding's token for token as far as llama.cpp
computes a position in a batch as it computes a single token. Its attention does (the engine runs flash
attention; without it a batch went through a matrix kernel that sums in another order). Its matrix products do
for some weight types only: on x86 llamafile's sgemm multiplies Q8_0, Q5_0, Q4_0 and F16 weights from two rows
on, and AVX2 repacks Q4_K and multiplies it four rows at a time, so those rows differ from a single step's in
the last bits, and at a near-tie a greedy pick can go the other way (SmolLM2 Q4_1, whose Q8_0 output head is
the one such tensor: 59 of 60 bench prompts identical; Gemma 3 270M Q4_K_M, Q5_0 and Q8_0 throughout: 46 of
60). Nothing at run time turns sgemm off. A sampled reply takes a draft token with the probability the model
gives it and otherwise draws from the rest (``Speculation._pick``), which keeps plain sampling's distribution
exactly. The speed-up is the draft tokens accepted, less what the batches (and a draft
model's guesses) cost over single steps (``BATCH_STEPS``).

* ``Lookup`` — prompt-lookup decoding (Saxena, 2023; llama.cpp's ``llama-lookup``): the draft is what followed
  the latest earlier occurrence of the reply's longest recurring n-gram (3 to 8 tokens), in the prompt or the
  reply so far. Replies that repeat their input (rewrite this, fix this code, extract these fields, continue
  this list) accept long drafts; no extra model, no extra memory.
* ``DraftModel`` — a smaller model with the same vocabulary (``drafts.py`` finds them) guesses where the
  reply does not repeat its input.
* ``DraftLength`` — how long a draft pays: from the acceptance rate seen so far (per match length) and the
  cost of a batch, the length with the most tokens per unit of work, or none (plain decoding) while drafts
  do not pay.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .chat import Stats

MIN_NGRAM = 3  # shorter matches ("of the") predict little, and a batch of 2 costs 1.7 steps
MAX_NGRAM = 8  # a longer match tells repeated lines apart and says the reply is copying
MAX_DRAFT = 7  # a batch of 8 costs 3.5 steps; of 11, 5.5


class Lookup:
    """N-gram index of a token history (the prompt, then every reply token as it is decided)."""

    def __init__(self, tokens: list[int], *, min_n: int = MIN_NGRAM, max_n: int = MAX_NGRAM) -> None:
        self.min_n, self.max_n = min_n, max_n
        self.tokens: list[int] = []
        self.matched = 0  # the length of the n-gram the last draft came from (0: no match)
        self._last: dict[tuple[int, ...], int] = {}  # n-gram -> index just after its latest occurrence
        self._seen: dict[tuple[int, ...], int] = {}  # the same, one occurrence back (before the newest)
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        self.tokens.append(token)
        end = len(self.tokens)
        for n in range(self.min_n, min(self.max_n, end) + 1):
            gram = tuple(self.tokens[end - n : end])
            previous = self._last.get(gram)
            if previous is not None:
                self._seen[gram] = previous
            self._last[gram] = end

    def draft(self, k: int) -> list[int]:
        """Up to ``k`` tokens that followed the longest suffix n-gram's latest earlier occurrence (the suffix
        itself is always the newest occurrence, so the one before it is the match)."""
        self.matched = 0
        if k <= 0:
            return []
        end = len(self.tokens)
        for n in range(min(self.max_n, end), self.min_n - 1, -1):
            start = self._seen.get(tuple(self.tokens[end - n : end]))
            if start is not None:
                self.matched = n
                return self.tokens[start : start + k]
        return []


# What a batch of m tokens costs, in single steps (SmolLM2 Q4_1, 2 cores of an Intel Xeon: 2 tokens 1.70, 3 2.15,
# 4 2.20, 6 2.83, 8 3.53, 11 5.50; of an AMD EPYC: 2 1.63, 3 2.32, 4 2.50, 6 3.37, 8 4.50). Machines differ this
# much, so the engine times them once per model and thread count (``batch_costs``); this is the fallback.
BATCH_STEPS = {1: 1.0, 2: 1.7, 3: 2.15, 4: 2.2, 5: 2.5, 6: 2.83, 7: 3.2, 8: 3.53, 9: 4.2, 10: 4.8, 11: 5.5}
COSTS_FILE = "batch_costs.json"  # in the cache folder: {model file, size, threads, batch: {m: steps}}
_costs: dict[str, dict[int, float]] = {}  # the same, as read or timed in this process


def batch_costs(llm: Any, token: int, key: str, largest: int) -> dict[int, float]:
    """What batches of 1 to ``largest`` tokens cost on this machine, in single steps, for the model and
    settings ``key`` names: timed here once (a few decodes at the next position, removed from the KV cache
    after) and kept in the cache folder, so every later reply, in this run or the next, chooses the same
    drafts from the same tokens (a seed repeats its reply). Call it just before a decode that replaces the
    logits it leaves."""
    import json

    from . import paths
    from .errors import AssistantError

    if key in _costs and max(_costs[key]) >= largest:
        return _costs[key]
    path = paths.cache_dir() / COSTS_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    stored = stored if isinstance(stored, dict) else {}  # the other models' and settings' costs are kept
    try:
        found = {int(m): float(v) for m, v in stored[key].items()}
        if max(found) >= largest and all(v >= 1.0 for v in found.values()):
            _costs[key] = found = monotone(found)  # (a table kept before costs were made non-decreasing)
            return found
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    found = _time_batches(llm, token, largest)
    _costs[key] = found
    try:
        stored[key] = found
        paths.write_text_atomic(paths.ensure(path.parent) / COSTS_FILE, json.dumps(stored, indent=1))
    except (AssistantError, OSError):  # a cache that cannot be written costs a timing next run, nothing else
        pass
    return found


def _time_batches(llm: Any, token: int, largest: int, rounds: int = 5) -> dict[int, float]:
    """Each batch size timed ``rounds`` times, interleaved; the fastest of each over the fastest single step,
    made non-decreasing (a batch never costs less than a smaller one: a size timed lower than a smaller one's
    was a moment of load on the smaller). The table is kept for good, so one timing under load must not
    leave a batch of 8 cheaper than one of 4 (seen: 4.82 against 4.08 steps, with a build running)."""
    start = llm.n_tokens
    seconds: dict[int, float] = {}
    for _ in range(rounds):
        for m in range(1, largest + 1):
            llm._batch.set_batch(batch=[token] * m, n_past=start, logits_all=True)
            started = time.perf_counter()
            llm._ctx.decode(llm._batch)
            seconds[m] = min(seconds.get(m, float("inf")), time.perf_counter() - started)
            llm._ctx.kv_cache_seq_rm(-1, start, -1)
    return monotone({m: t / seconds[1] for m, t in seconds.items()})


def monotone(costs: dict[int, float]) -> dict[int, float]:
    """Batch costs in single steps, at least 1 and non-decreasing with the batch size (each size gets the
    lowest cost that the sizes above it allow), rounded to two places; a single step costs 1."""
    out: dict[int, float] = {}
    ceiling = float("inf")
    for m in sorted(costs, reverse=True):
        ceiling = min(ceiling, costs[m])
        out[m] = 1.0 if m == 1 else round(max(1.0, ceiling), 2)
    return dict(sorted(out.items()))


# How likely a draft token is right, before a reply has shown anything, by the length of the match it came
# from: a 3-gram recurs by chance in open-ended text, an 8-gram mostly because the reply copies its input.
# A draft model's guesses (``DRAFT_MODEL``) keep a rate of their own.
DRAFT_MODEL = -1  # (a lookup match is 3 tokens or more; 0 is no match)
PRIOR_RATE = {DRAFT_MODEL: 0.7, 3: 0.55, 4: 0.65, 5: 0.7, 6: 0.75, 7: 0.8, 8: 0.85}


@dataclass
class DraftLength:
    """Chooses each draft's length from the acceptance rate so far and what batches cost.

    A draft of k tokens whose tokens are each accepted with probability ``rate`` (given the ones before)
    yields on average ``1 + rate (1 - rate^k) / (1 - rate)`` tokens for the cost of a batch of k + 1 (in
    single steps: ``BATCH_STEPS``, corrected by the reply's own timings, ``timed``); the length with the most
    tokens per step is used, and 0 (no draft) when none beats plain decoding. The rate is kept per length of
    the match the draft came from (``PRIOR_RATE`` to start with). When drafts do not pay, one short draft is
    tried anyway after ``PROBE_EVERY`` plain steps, so a reply that starts repeating its input is noticed; each
    probe that fails doubles the wait, so open-ended text pays for few of them."""

    max_draft: int = MAX_DRAFT
    adapt: bool = True  # correct the costs by this reply's timings (False: the choices follow the tokens alone)
    draft_cost: float = 0.0  # single steps each drafted token costs to make (a draft model's; a lookup's is 0)
    memory: float = 0.8  # weight the average keeps per draft
    plain_steps: int = 0
    drafted: int = 0
    accepted: int = 0

    PROBE_EVERY = 16
    PROBE_LENGTH = 3
    PROBE_LONGEST_WAIT = 256

    def __post_init__(self) -> None:
        self.steps = dict(BATCH_STEPS)
        self.rates = dict(PRIOR_RATE)
        self.probe_every = self.PROBE_EVERY
        self._probing = False
        self._seconds: dict[int, float] = {}  # batch size -> seconds, as timed in this reply

    def rate(self, matched: int) -> float:
        """The acceptance rate of drafts from a match of ``matched`` tokens (``DRAFT_MODEL``: a draft model's)."""
        return self.rates[self._key(matched)]

    @staticmethod
    def _key(matched: int) -> int:
        return matched if matched == DRAFT_MODEL else max(min(matched, MAX_NGRAM), MIN_NGRAM)

    def length(self, limit: int, matched: int = MAX_NGRAM) -> int:
        """The next draft's length (at most ``limit``) for a match of ``matched`` tokens, 0 for a plain step."""
        best, best_gain = 0, 1.0
        rate = min(self.rate(matched), 0.99)
        for k in range(1, min(self.max_draft, limit, max(self.steps) - 1) + 1):
            gain = (1 + rate * (1 - rate**k) / (1 - rate)) / (self.steps[k + 1] + k * self.draft_cost)
            if gain > best_gain + 1e-9:
                best, best_gain = k, gain
        self._probing = best == 0 and self.plain_steps >= self.probe_every
        if self._probing:
            best = min(self.PROBE_LENGTH, limit, self.max_draft)
        return best

    def plain(self) -> None:
        self.plain_steps += 1

    def timed(self, size: int, seconds: float) -> None:
        """A batch of ``size`` tokens (1: a plain step) took ``seconds``: the costs follow this machine."""
        if not self.adapt:
            return
        old = self._seconds.get(size)
        self._seconds[size] = seconds if old is None else 0.8 * old + 0.2 * seconds
        single = self._seconds.get(1)
        if single and size > 1 and size in self.steps:
            self.steps[size] = max(1.0, self._seconds[size] / single)

    def timed_draft(self, size: int, seconds: float) -> None:
        """Making a draft of ``size`` tokens took ``seconds`` (a draft model's cost follows this machine too)."""
        single = self._seconds.get(1)
        if self.adapt and single and size:
            self.draft_cost = 0.8 * self.draft_cost + 0.2 * seconds / size / single

    def update(self, drafted: int, accepted: int, matched: int = MAX_NGRAM) -> None:
        """A draft of ``drafted`` tokens, from a match of ``matched``, had its first ``accepted`` taken."""
        if self._probing:
            self.probe_every = (
                self.PROBE_EVERY if accepted == drafted else min(2 * self.probe_every, self.PROBE_LONGEST_WAIT)
            )
        self._probing = False
        self.plain_steps = 0
        self.drafted += drafted
        self.accepted += accepted
        # each token up to the first rejection is a trial; a fully accepted draft says nothing beyond itself
        trials = accepted + (1 if accepted < drafted else 0)
        key = self._key(matched)
        observed = accepted / trials if trials else self.rates[key]
        self.rates[key] = self.memory * self.rates[key] + (1 - self.memory) * observed


class DraftModel:
    """A smaller model with the same vocabulary guessing the next tokens itself, greedily, in its own context
    (on the llama thread, as every llama.cpp call): drafts where the reply does not repeat its input.

    It keeps no state of its own beyond its KV cache: ``draft`` first brings its context up to the reply's
    tokens (keeping the prefix they share, so an accepted draft is never evaluated twice), then picks and
    evaluates one token at a time. ``cost`` is the prior of what a drafted token costs in the target's single
    steps: on a CPU a step costs about what reading the weights does, so the ratio of the two files' sizes."""

    matched = DRAFT_MODEL  # a draft model's drafts keep their own acceptance rate (``DraftLength.rate``)

    def __init__(self, llm: Any, cost: float) -> None:
        self.llm = llm
        self.cost = cost
        self.tokens: list[int] = []

    @classmethod
    def load(cls, path: str, *, cost: float, **kwargs: Any) -> DraftModel:
        """Load the draft model's GGUF (``llama_cpp.Llama`` keyword arguments as the target's)."""
        from . import template
        from .llama import llama_thread

        return cls(llama_thread.call(template.load_llama, path, flash_attn=True, verbose=False, **kwargs), cost)

    def close(self) -> None:
        from .llama import llama_thread

        llm, self.llm = self.llm, None
        if llm is not None:
            llama_thread.call(llm.close)

    def start(self, tokens: list[int]) -> None:
        self.tokens = list(tokens)

    def append(self, token: int) -> None:
        self.tokens.append(token)

    def draft(self, k: int) -> list[int]:
        import llama_cpp

        llm = self.llm
        if k <= 0 or not self.tokens or len(self.tokens) + k >= llm.n_ctx():
            return []
        have = llm.input_ids[: llm.n_tokens].tolist()
        keep = 0
        for a, b in zip(have, self.tokens[:-1], strict=False):  # the last token is evaluated again: its logits
            if a != b:
                break
            keep += 1
        llm._ctx.kv_cache_seq_rm(-1, keep, -1)
        llm.n_tokens = keep
        llm.eval(self.tokens[keep:])
        out: list[int] = []
        n_vocab = llm.n_vocab()
        while True:
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
            out.append(int(np.argmax(logits)))
            if len(out) == k:
                return out
            llm.eval(out[-1:])


@dataclass
class Sampling:
    """What a sampled reply (temperature > 0) draws from at a verified position: the ``top_k`` highest logits,
    then ``filters`` (llama.cpp's own top-p, min-p and temperature samplers: plain decoding's chain without its
    top-k and its draw), then a draw from ``rng``."""

    top_k: int
    filters: Any  # llama_cpp._internals.LlamaSampler
    rng: Any  # numpy.random.Generator


class Speculation:
    """One reply's speculative decoding on a ``llama_cpp.Llama`` (its one sequence, on the llama thread).

    ``seen(token)`` for every token of the reply; ``step(token, sampler, room)`` evaluates a token the reply
    took, with a draft when one pays, and returns what follows: the draft's accepted tokens (already
    evaluated) and then the token picked after them (not), or [] after a plain step (the caller samples).
    ``report(stats)`` fills the reply's drafted / accepted figures and its plain steps' speed.

    A greedy reply checks a draft token against the model's own pick; a sampled one (``sampling``) accepts it
    with the probability the model gives it and otherwise draws from the rest of the distribution (speculative
    sampling, Leviathan et al. 2023, with a draft that is certain of its tokens), so every token is drawn from
    the distribution plain decoding draws from."""

    def __init__(
        self,
        llm: Any,
        *,
        max_draft: int = MAX_DRAFT,
        sampling: Sampling | None = None,
        repeatable: bool = False,
        draft_model: DraftModel | None = None,
        costs_key: str | None = None,
    ) -> None:
        self.llm = llm
        self.n_vocab: int = llm.n_vocab()
        self.sampling = sampling
        context = llm.input_ids[: llm.n_tokens].tolist()
        self.lookup = Lookup(context)
        self.draft_model = draft_model
        if draft_model is not None:
            draft_model.start(context)
        # which positions are drafted decides how the reply is computed (batch kernels, which random draws), so
        # a reply that must come out the same again (greedy, or seeded) chooses its drafts from its tokens alone
        self.length = DraftLength(
            max_draft=max_draft, adapt=not repeatable, draft_cost=draft_model.cost if draft_model else 0.0
        )
        self.plain_s, self.plain_steps = 0.0, 0
        self.costs_key = costs_key  # batch_costs' key: this machine's batch costs, timed at the first step

    def seen(self, token: int) -> None:
        self.lookup.append(token)
        if self.draft_model is not None:
            self.draft_model.append(token)

    def _draft(self, room: int) -> tuple[list[int], int]:
        """The next draft, and the length of the match it came from: the prompt's own words where the reply
        repeats them, else the draft model's guess (when there is one and it pays)."""
        candidate = self.lookup.draft(min(room, self.length.max_draft))
        if candidate:
            return candidate[: self.length.length(len(candidate), self.lookup.matched)], self.lookup.matched
        if self.draft_model is None:
            return [], 0
        k = self.length.length(room, DRAFT_MODEL)
        started = time.perf_counter()
        draft = self.draft_model.draft(k)
        self.length.timed_draft(len(draft), time.perf_counter() - started)
        return draft, DRAFT_MODEL

    def step(self, token: int, sampler: Any, room: int) -> list[int]:
        if self.costs_key is not None:  # before this step's decode, which replaces the logits the timing leaves
            self.length.steps.update(batch_costs(self.llm, token, self.costs_key, self.length.max_draft + 1))
            self.costs_key = None
        draft, matched = self._draft(room)
        if not draft:
            self.length.plain()
            started = time.perf_counter()
            self.llm.eval((token,))
            seconds = time.perf_counter() - started
            self.plain_s += seconds
            self.plain_steps += 1
            self.length.timed(1, seconds)
            return []
        started = time.perf_counter()
        out = self._verify(token, draft, sampler)
        self.length.timed(len(draft) + 1, time.perf_counter() - started)
        self.length.update(len(draft), len(out) - 1, matched)
        return out

    def report(self, stats: Stats) -> None:
        stats.drafted_tokens, stats.accepted_tokens = self.length.drafted, self.length.accepted
        if self.plain_steps:  # (the evaluation alone: a little faster than a whole step; the gain is understated)
            stats.plain_tokens_per_second = self.plain_steps / self.plain_s

    def _verify(self, token: int, draft: list[int], sampler: Any) -> list[int]:
        """Evaluate ``token`` and ``draft`` in one batch; return the draft's tokens up to the first the model
        does not take, then the token it picks there. The KV cache keeps what was accepted only.

        With flash attention (the engine's) a batch's attention is that of single steps; without it the logits
        moved a little (SmolLM2 Q4_1: the top-2 margin by 0.11 logits at the median, 0.76 at most over 300
        positions), and at a near-tie a greedy pick could differ from plain decoding's (10 of 30 replies did).
        The matrix products of some weight types still differ in the last bits (the module docstring)."""
        llm = self.llm
        start = llm.n_tokens
        batch = [token, *draft]
        llm._ctx.kv_cache_seq_rm(-1, start, -1)
        llm._batch.set_batch(batch=batch, n_past=start, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[start : start + len(batch)] = batch
        out: list[int] = []
        for i in range(len(batch)):
            proposed = draft[i] if i < len(draft) else None
            picked = self._pick(i, proposed, sampler)
            out.append(picked)
            if picked != proposed:
                break
        llm.n_tokens = start + len(out)  # the token, and the accepted draft tokens
        if len(out) <= len(draft):
            llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        return out

    def _pick(self, i: int, proposed: int | None, sampler: Any) -> int:
        """The token at batch position ``i``: ``proposed`` (the draft's) if the model takes it."""
        if self.sampling is None:
            return int(sampler.sample(self.llm._ctx, i))
        ids, probs = self.distribution(i)
        rng = self.sampling.rng
        if proposed is not None:
            hit = ids == proposed
            if rng.random() < float(probs[hit].sum()):
                return proposed
            probs = np.where(hit, 0.0, probs)  # rejected: draw from what is left (the residual p - q)
            probs = probs / probs.sum()
        return int(rng.choice(ids, p=probs))

    def distribution(self, i: int) -> tuple[Any, Any]:
        """The tokens a sampled reply can draw at batch position ``i`` and their probabilities: the top-k in
        numpy (over the whole vocabulary, as llama.cpp's top-k), the rest by llama.cpp's own samplers."""
        import llama_cpp

        assert self.sampling is not None
        row = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, i)
        logits = np.ctypeslib.as_array(row, shape=(self.n_vocab,))
        k = min(self.sampling.top_k, self.n_vocab)
        top = np.argpartition(logits, -k)[-k:]
        top = top[np.argsort(-logits[top], kind="stable")]
        data = (llama_cpp.llama_token_data * k)(
            *(llama_cpp.llama_token_data(int(t), float(logits[t]), 0.0) for t in top)
        )
        array = llama_cpp.llama_token_data_array(data=data, size=k, selected=-1, sorted=True)
        llama_cpp.llama_sampler_apply(self.sampling.filters.sampler, ctypes.byref(array))
        kept = array.data[: array.size]
        ids = np.array([d.id for d in kept], dtype=np.int64)
        scaled = np.array([d.logit for d in kept], dtype=np.float64)  # after the temperature
        probs = np.exp(scaled - scaled.max())
        return ids, probs / probs.sum()
