"""Speculative decoding's drafting side: guess the next tokens cheaply, so the model can check several at once.

One-token-at-a-time decoding reads the whole model from memory for every token; on a laptop CPU a batch of
tokens costs less per token (SmolLM2 Q4_1 on 2 cores, timed in the engine: 2 tokens cost 1.7 single steps,
4 cost 2.2, 8 cost 3.5). So
the engine (``engine.LlamaEngine._decode``) evaluates the token it just sampled *plus a draft* of the next
ones in one batch, samples each position, keeps the draft's tokens up to the first one the model would not
have picked, and removes the rest from the KV cache. At temperature 0 the reply is plain decoding's except
at near-ties, where batched and single-token kernels can pick differently (``Speculation._verify``); the
speed-up is the draft tokens accepted, less what the batches cost over single steps (``BATCH_STEPS``).

* ``Lookup`` — prompt-lookup decoding (Saxena, 2023; llama.cpp's ``llama-lookup``): the draft is what followed
  the latest earlier occurrence of the reply's last n-gram, in the prompt or the reply so far. Replies that
  repeat their input (rewrite this, fix this code, extract these fields, continue this list) accept long
  drafts; no extra model, no extra memory.
* ``DraftLength`` — how long a draft pays: from the acceptance rate seen so far and the cost of a batch,
  the length with the most tokens per unit of work, or none (plain decoding) while drafts do not pay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .chat import Stats

MIN_NGRAM = 3  # shorter matches ("of the") predict little, and a batch of 2 costs 1.7 steps
MAX_NGRAM = 4
MAX_DRAFT = 7  # a batch of 8 costs 3.5 steps; of 11, 5.5


class Lookup:
    """N-gram index of a token history (the prompt, then every reply token as it is decided)."""

    def __init__(self, tokens: list[int], *, min_n: int = MIN_NGRAM, max_n: int = MAX_NGRAM) -> None:
        self.min_n, self.max_n = min_n, max_n
        self.tokens: list[int] = []
        self._last: dict[tuple[int, ...], int] = {}  # n-gram -> index just after its latest occurrence
        self._seen: dict[tuple[int, ...], int] = {}  # the same, one occurrence back (before the newest)
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        self.tokens.append(token)
        end = len(self.tokens)
        for n in range(self.min_n, self.max_n + 1):
            if end < n:
                break
            gram = tuple(self.tokens[end - n : end])
            previous = self._last.get(gram)
            if previous is not None:
                self._seen[gram] = previous
            self._last[gram] = end

    def draft(self, k: int) -> list[int]:
        """Up to ``k`` tokens that followed the longest suffix n-gram's latest earlier occurrence."""
        if k <= 0:
            return []
        end = len(self.tokens)
        for n in range(min(self.max_n, end), self.min_n - 1, -1):
            gram = tuple(self.tokens[end - n : end])
            start = self._seen.get(gram) if self._last.get(gram) == end else self._last.get(gram)
            if start is not None and start < end:
                return self.tokens[start : min(start + k, end)]
        return []


# What a batch of m tokens costs, in single steps: measured here (SmolLM2 Q4_1, 2 cores: 2 tokens 1.70, 3 2.15,
# 4 2.20, 6 2.83, 8 3.53, 11 5.50). The prior; each reply then times its own steps and batches.
BATCH_STEPS = {1: 1.0, 2: 1.7, 3: 2.15, 4: 2.2, 5: 2.5, 6: 2.83, 7: 3.2, 8: 3.53, 9: 4.2, 10: 4.8, 11: 5.5}


@dataclass
class DraftLength:
    """Chooses each draft's length from the acceptance rate so far and what batches cost.

    A draft of k tokens whose tokens are each accepted with probability ``rate`` (given the ones before)
    yields on average ``1 + rate (1 - rate^k) / (1 - rate)`` tokens for the cost of a batch of k + 1 (in
    single steps: ``BATCH_STEPS``, corrected by the reply's own timings, ``timed``); the length with the most
    tokens per step is used, and 0 (no draft) when none beats plain decoding. After ``PROBE_EVERY`` plain
    steps one short draft is tried anyway, so a reply that starts repeating its input is noticed."""

    max_draft: int = MAX_DRAFT
    rate: float = 0.6
    memory: float = 0.8  # weight the average keeps per draft
    plain_steps: int = 0
    drafted: int = 0
    accepted: int = 0

    PROBE_EVERY = 12
    PROBE_LENGTH = 3

    def __post_init__(self) -> None:
        self.steps = dict(BATCH_STEPS)
        self._seconds: dict[int, float] = {}  # batch size -> seconds, as timed in this reply

    def length(self, limit: int) -> int:
        """The next draft's length (at most ``limit``), 0 for a plain step."""
        best, best_gain = 0, 1.0
        rate = min(self.rate, 0.99)
        for k in range(1, min(self.max_draft, limit, max(self.steps) - 1) + 1):
            gain = (1 + rate * (1 - rate**k) / (1 - rate)) / self.steps[k + 1]
            if gain > best_gain + 1e-9:
                best, best_gain = k, gain
        if best == 0 and self.plain_steps >= self.PROBE_EVERY:
            best = min(self.PROBE_LENGTH, limit, self.max_draft)
        return best

    def plain(self) -> None:
        self.plain_steps += 1

    def timed(self, size: int, seconds: float) -> None:
        """A batch of ``size`` tokens (1: a plain step) took ``seconds``: the costs follow this machine."""
        old = self._seconds.get(size)
        self._seconds[size] = seconds if old is None else 0.8 * old + 0.2 * seconds
        single = self._seconds.get(1)
        if single and size > 1 and size in self.steps:
            self.steps[size] = max(1.0, self._seconds[size] / single)

    def update(self, drafted: int, accepted: int) -> None:
        """A draft of ``drafted`` tokens had its first ``accepted`` taken."""
        self.plain_steps = 0
        self.drafted += drafted
        self.accepted += accepted
        # each token up to the first rejection is a trial; a fully accepted draft says nothing beyond itself
        trials = accepted + (1 if accepted < drafted else 0)
        observed = accepted / trials if trials else self.rate
        self.rate = self.memory * self.rate + (1 - self.memory) * observed


class Speculation:
    """One reply's speculative decoding on a ``llama_cpp.Llama`` (its one sequence, on the llama thread).

    ``seen(token)`` for every token of the reply; ``step(token, sampler, room)`` evaluates a token the reply
    took, with a draft when one pays, and returns what follows: the draft's accepted tokens (already
    evaluated) and then the token picked after them (not), or [] after a plain step (the caller samples).
    ``report(stats)`` fills the reply's drafted / accepted figures and its plain steps' speed."""

    def __init__(self, llm: Any, *, max_draft: int = MAX_DRAFT) -> None:
        self.llm = llm
        self.n_vocab: int = llm.n_vocab()
        self.lookup = Lookup(llm.input_ids[: llm.n_tokens].tolist())
        self.length = DraftLength(max_draft=max_draft)
        self.plain_s, self.plain_steps = 0.0, 0

    def seen(self, token: int) -> None:
        self.lookup.append(token)

    def step(self, token: int, sampler: Any, room: int) -> list[int]:
        length = self.length.length(room)
        draft = self.lookup.draft(length) if length > 0 else []
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
        self.length.update(len(draft), len(out) - 1)
        return out

    def report(self, stats: Stats) -> None:
        stats.drafted_tokens, stats.accepted_tokens = self.length.drafted, self.length.accepted
        if self.plain_steps:  # (the evaluation alone: a little faster than a whole step; the gain is understated)
            stats.plain_tokens_per_second = self.plain_steps / self.plain_s

    def _verify(self, token: int, draft: list[int], sampler: Any) -> list[int]:
        """Evaluate ``token`` and ``draft`` in one batch; return the draft's tokens up to the first the model
        would not have picked, then the token it picks there. The KV cache keeps what was accepted only.

        A batch is computed by other kernels than a single token and its logits differ a little (SmolLM2 Q4_1:
        the top-2 margin moves by 0.11 logits at the median, 0.76 at most over 300 positions), so at a near-tie
        the pick can differ from plain decoding's. Re-deciding such picks token by token (tried: margin < 1.0)
        cost speed and made no more replies identical (20 of 30 either way): the KV entries a batch wrote
        carry the difference on."""
        llm = self.llm
        start = llm.n_tokens
        batch = [token, *draft]
        llm._ctx.kv_cache_seq_rm(-1, start, -1)
        llm._batch.set_batch(batch=batch, n_past=start, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[start : start + len(batch)] = batch
        out: list[int] = []
        for i in range(len(batch)):
            picked = sampler.sample(llm._ctx, i)
            out.append(picked)
            if i == len(draft) or picked != draft[i]:
                break
        llm.n_tokens = start + len(out)  # the token, and the accepted draft tokens
        if len(out) <= len(draft):
            llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)
        return out
