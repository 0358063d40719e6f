"""Continuous batching: the replies to several requests for one model decode together, one llama.cpp step each.

A ``Batcher`` owns a second llama.cpp context on the loaded model's weights (the model itself is not loaded
twice) with one sequence per slot. Its KV cache is ``n_ctx × slots``: each slot gets a whole context of its own
(``kv_unified`` off, so llama.cpp keeps one KV stream per sequence), the layout llama-server uses with an
explicit ``--parallel``, except that llama-server splits ``n_ctx`` between its slots while here every slot holds
as much as the engine's own context, so a request that fits ``assistant chat`` fits here too. One stream per
sequence also keeps a reply independent of its neighbours: a sequence's cells sit where they would sit if it
ran alone, so a greedy reply in a batch is the reply a lone client gets.

Each step, on the llama thread: waiting requests take free slots (the slot whose cached tokens share the longest
prefix with the new prompt, so a client's next turn reuses its KV; the rest of that slot's cache is dropped),
cancelled ones leave (a client that disconnects frees its slot within one step), then one ``llama_decode``
evaluates every generating sequence's last token, another up to ``n_batch`` tokens of the oldest newcomer's prompt
and of the newcomers whose next chunk is as long (apart, and never one token alone: see ``_prompt_group``, which is
what keeps a batched reply bit-identical to a lone one), and each sequence draws its next token from its own logits
with its own sampler (temperature, top_p, seed, and a grammar for ``response_format``): the samplers
``LlamaEngine.stream`` uses, so replies read as they do in the CLI (never empty, no leading or trailing
whitespace). With ``runtime.speculative`` on, a greedy sequence without a grammar also puts a prompt-lookup draft
of its next tokens in the step (``_draft``: ``speculative.Lookup`` and ``DraftLength`` per sequence) and takes the
draft's tokens up to the first its logits do not pick, its KV cache cut after them (``_advance``): the reply is the
lone one but where a weight type's kernel differs between one row and several (see ``speculative.py``). A raw
prompt (``/v1/completions``, Ollama's ``raw``) is continued as it is, as ``create_completion`` does.

Only the steps run on the llama thread: a driver thread hands them over, and they run back to back until
other work is queued there (``llama_thread.waiting``), so a model load, an embedding or a new request's
tokenizing runs between two steps instead of waiting for every reply to end. The event loop only hands
requests in (``stream``) and takes text out (``generation.Handoff``: one wake-up per batch of pieces).

A model served with one slot (``--parallel 1``, or too little memory for two) has no ``Batcher``: its requests
take turns through ``generation.stream`` on the engine's own context, as before.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AssistantError
from ..llama import chunk_length, llama_thread
from ..prompt import shared_prefix
from ..speculative import DraftLength, Lookup
from .errors import APIError, from_domain
from .generation import DONE, Handoff, Job, StopCutter, Usage, prompt_tokens

if TYPE_CHECKING:
    from ..engine import FirstTokenSampler, LlamaEngine, ReplyText

log = logging.getLogger("assistant.serve")

# --parallel's default: two sequences per core (a decode step of a small batch costs little more than one token,
# as llama-bench's pp2/pp4 against pp1 shows), at most four, and only as many as memory holds (``fitting_slots``).
AUTO_PER_CORE = 2
AUTO_MAX = 4


def auto_parallel(cores: int | None = None) -> int:
    """How many requests a model serves at once when ``--parallel`` is not given: 4 on 2 cores."""
    return max(1, min(AUTO_MAX, AUTO_PER_CORE * (cores or os.cpu_count() or 1)))


def fitting_slots(engine: LlamaEngine, wanted: int) -> int:
    """The most slots, up to ``wanted``, whose KV cache (a whole context each) and compute buffer fit in the
    memory left next to the loaded model."""
    from .. import fit

    free = fit.available_bytes()
    for n in range(wanted, 1, -1):
        extra = fit.kv_cache_bytes(engine.info, engine.context_size * n)
        extra += fit.reserved_compute_bytes(engine.info, engine.n_batch)
        if fit.verdict(extra, free) == "fits":
            return n
    return 1


def _runs(ids: set[int]) -> int:
    """How many runs of consecutive numbers ``ids`` make ({0, 1, 3}: two)."""
    return sum(1 for i in ids if i - 1 not in ids)


@dataclass(eq=False)
class _Seq:
    """One request in the batch: its prompt, its samplers and text, and where its output goes."""

    job: Job
    tokens: list[int]
    out: Callable[[Any], object]  # hands an item to the request's event loop (from the llama thread)
    max_new: int
    pending: list[int] = field(default_factory=list)  # prompt tokens not evaluated yet
    next: int | None = None  # the token drawn last step, evaluated this step
    admitted: int = 0  # when it took its slot: prompts are evaluated first come, first served
    n: int = 0
    usage: Usage = field(default_factory=Usage)
    main: Any = None
    first: FirstTokenSampler | None = None
    text: ReplyText | None = None  # a chat reply's text; None for a raw prompt (``decoder`` then)
    decoder: Any = None
    cutter: StopCutter = field(default_factory=lambda: StopCutter([]))
    lookup: Lookup | None = None  # prompt-lookup drafts (``runtime.speculative``): greedy, no grammar
    length: DraftLength | None = None
    matched: int = 0  # the length of the match this step's draft came from

    def start(self, engine: LlamaEngine) -> None:
        """Build the samplers and the text state (on the llama thread: samplers are llama.cpp objects)."""
        if engine.speculative != "off" and self.job.options.temperature == 0 and self.job.grammar is None:
            self.lookup, self.length = Lookup(self.tokens), DraftLength(adapt=False)
        self.main, first = engine.samplers(self.job.options, self.job.grammar)
        if self.job.messages is not None:
            self.first, self.text = first, engine.reply_text()
        else:
            first.close()
            self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.cutter = StopCutter(self.job.stops)
        self.usage.prompt_tokens = len(self.tokens)

    def draw(self, ctx: Any, idx: int) -> int:
        if self.first is not None and self.text is not None and not self.text.visible:
            token = self.first.sample(ctx, idx)
            self.main.accept(token)  # a grammar in the main sampler follows what the first one drew
            return token
        return int(self.main.sample(ctx, idx))

    def ends(self, engine: LlamaEngine, token: int) -> bool:
        return engine.ends_reply(token) if self.text is not None else engine.is_eog(token)

    def take(self, engine: LlamaEngine, token: int) -> bool:
        """Add the token's text to the reply; whether a stop string (ours or the request's) ended it."""
        piece = engine.piece(token)
        if self.text is not None:
            ready, stopped = self.text.add(piece), self.text.stopped
        else:
            ready, stopped = self.decoder.decode(piece), False
        self._send(ready)
        return stopped or self.cutter.stopped

    def _send(self, text: str) -> None:
        if text and not self.cutter.stopped and (ready := self.cutter.feed(text)):
            self.emit(ready)

    def emit(self, item: Any) -> None:
        try:
            self.out(item)
        except RuntimeError:  # the event loop is gone (shutdown): nobody reads this reply any more
            self.job.cancel.cancel()

    def finish(self, reason: str) -> None:
        """Send the held-back tail, the usage and the end; free the samplers."""
        if self.text is not None:
            self._send(self.text.tail())
        elif self.decoder is not None:
            self._send(self.decoder.decode(b"", final=True))
        if not self.cutter.stopped and (rest := self.cutter.flush()):
            self.emit(rest)
        self.usage.completion_tokens = self.n
        self.usage.finish_reason = "length" if reason == "length" and not self.cutter.stopped else "stop"
        self.emit(self.usage)
        self.emit(DONE)
        self.close()

    def fail(self, error: BaseException) -> None:
        self.emit(error)
        self.emit(DONE)
        self.close()

    def close(self) -> None:
        if self.main is not None:
            self.main.close()
            self.main = None
        if self.first is not None:
            self.first.close()
            self.first = None


@dataclass(eq=False)
class _Slot:
    id: int  # its llama.cpp sequence id
    cached: list[int] = field(default_factory=list)  # the tokens in its KV stream, in order
    seq: _Seq | None = None
    last_used: int = 0


class Batcher:
    """See the module docstring. ``stream`` from the event loop; ``close`` from a helper thread."""

    def __init__(self, engine: LlamaEngine, n_slots: int) -> None:
        self.engine = engine
        self.n_slots = n_slots
        self.generated = 0  # tokens drawn for all requests so far (a test watches it stop growing)
        self.drafted = self.accepted = 0  # prompt-lookup draft tokens put in batches, and those taken
        self.peak = 0  # the most sequences one decode step has carried
        self.joined = 0  # requests that joined while others were decoding (instead of waiting for them)
        self._slots = [_Slot(i) for i in range(n_slots)]
        self._pending: deque[_Seq] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._uses = itertools.count(1)
        self._ctx: Any = None
        self._batch: Any = None
        self.n_batch = max(engine.n_batch, n_slots)  # room for every slot's next token in one step
        llama_thread.call(self._open)
        self._driver = threading.Thread(target=self._drive, name=f"batch {engine.model_id}", daemon=True)
        self._driver.start()

    @property
    def active(self) -> int:
        return sum(1 for s in self._slots if s.seq is not None)

    def _open(self) -> None:
        from llama_cpp import _internals

        llm = self.engine.llama
        params = type(llm.context_params).from_buffer_copy(llm.context_params)
        params.n_ctx = self.engine.context_size * self.n_slots
        params.n_seq_max = self.n_slots
        params.kv_unified = False
        params.n_batch = params.n_ubatch = self.n_batch
        self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        self._batch = _internals.LlamaBatch(
            n_tokens=max(self.n_batch, self.n_slots), embd=0, n_seq_max=1, verbose=False
        )

    # -- the event loop's side -------------------------------------------------------------------------
    async def stream(self, job: Job) -> AsyncIterator[str | Usage]:
        """Yield the reply's text pieces, then its ``Usage`` (the contract of ``generation.stream``)."""
        handoff = Handoff(asyncio.get_running_loop())
        try:
            tokens = await asyncio.to_thread(llama_thread.call, prompt_tokens, self.engine, job)
            max_new = max(1, min(job.options.max_tokens, self.engine.context_size - len(tokens)))
            seq = _Seq(job, tokens, handoff.put, max_new)
            with self._wake:
                if self._closed:
                    raise APIError(503, f"{self.engine.model_id} is being unloaded; try again", type="server_error")
                self._pending.append(seq)
                self._wake.notify()
            async for item in handoff.pieces():
                yield item
        finally:
            job.cancel.cancel()  # no-op once finished; a client that went away leaves at the next step

    def close(self) -> None:
        """Stop the driver, end what is left, free the context (before the engine frees the model)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._driver.join()
        llama_thread.call(self._free)

    # -- the driver thread -----------------------------------------------------------------------------
    def _drive(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._pending and not self.active:
                    self._wake.wait()
                if self._closed:
                    return
            try:
                llama_thread.call(self._run)
            except Exception as exc:  # a failed step must not leave its clients waiting forever
                log.exception("batch step failed")
                llama_thread.call(self._fail, [s for s in self._slots if s.seq is not None], exc)

    # -- the llama thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        """Steps, back to back on the llama thread, until there is no work or other work waits for the thread
        (a hop to the driver thread and back per step would cost each token a thread wake-up or two)."""
        while True:
            self._step()
            with self._wake:
                idle = not self._pending and not self.active
            if idle or self._closed or llama_thread.waiting():
                return

    def _step(self) -> None:
        """One step: admit, drop the cancelled, decode every generating sequence's last token together, then
        evaluate the newcomers' prompts (a chunk of each) in a call of their own (see ``_prompt_group``)."""
        self._admit()
        for slot in self._slots:
            if slot.seq is not None and slot.seq.job.cancel.cancelled:
                self._finish(slot, "stop")
        decoding = [s for s in self._slots if s.seq is not None and s.seq.next is not None]
        if decoding:
            self.peak = max(self.peak, len(decoding))
            room = self.n_batch - len(decoding)  # the batch's rows left for drafts
            plan = []
            for slot in decoding:
                token = self._take_next(slot)
                draft = self._draft(slot, room)
                room -= len(draft)
                plan.append((slot, self._add(slot, [token, *draft], True, every=bool(draft)), draft))
            self._decode(plan)
        waiting = [s for s in self._slots if s.seq is not None and s.seq.pending]
        if waiting:
            self._decode([(slot, self._prompt_chunk(slot, take), []) for slot, take in self._prompt_group(waiting)])

    def _decode(self, plan: list[tuple[_Slot, int, list[int]]]) -> None:
        """Evaluate the batch ``plan`` filled, then draw for each slot that asked for logits."""
        try:
            self._ctx.decode(self._batch)
        except RuntimeError as exc:  # llama_decode failed (out of memory): these replies cannot go on
            self._fail([slot for slot, _, _ in plan], exc)
        else:
            for slot, idx, draft in plan:
                if idx >= 0:
                    self._advance(slot, idx, draft)
        finally:
            self._batch.batch.n_tokens = 0

    def _draft(self, slot: _Slot, room: int) -> list[int]:
        """The tokens a greedy sequence guesses will follow its next one, from its prompt and reply
        (``speculative.Lookup``), as many as pay (``DraftLength``) and fit the batch, the reply and the context."""
        seq = slot.seq
        assert seq is not None
        if seq.lookup is None or seq.length is None or (seq.text is not None and not seq.text.visible):
            return []
        left = min(room, seq.max_new - seq.n - 1, self.engine.context_size - len(slot.cached) - 2)
        candidate = seq.lookup.draft(min(left, seq.length.max_draft))
        seq.matched = seq.lookup.matched
        draft = candidate[: seq.length.length(len(candidate), seq.matched)] if candidate else []
        if not draft:
            seq.length.plain()
        return draft

    def _admit(self) -> None:
        """Waiting requests into free slots, each where its prompt's longest prefix is cached."""
        while any(s.seq is None for s in self._slots):
            with self._wake:
                if not self._pending:
                    return
                seq = self._pending.popleft()
            if seq.job.cancel.cancelled:  # the client left while it waited
                seq.finish("stop")
                continue
            try:
                seq.start(self.engine)
            except AssistantError as exc:  # its grammar does not parse: this request's error, not the batch's
                seq.fail(from_domain(exc, self.engine.model_id))
                continue
            self._assign(self._pick(seq.tokens), seq)

    def _pick(self, tokens: list[int]) -> _Slot:
        """The free slot for a prompt: the longest cached prefix first (a client's next turn finds its KV);
        among equals, the one that keeps the decoding sequences' ids in the fewest runs (llama.cpp decodes a
        run of consecutive ids in one pass, but needs a pass per run), then the least recently used."""
        active = {s.id for s in self._slots if s.seq is not None}
        free = [s for s in self._slots if s.seq is None]
        return max(free, key=lambda s: (shared_prefix(s.cached, tokens), -_runs(active | {s.id}), -s.last_used))

    def _assign(self, slot: _Slot, seq: _Seq) -> None:
        # at least two prompt tokens are evaluated again: the last one's logits draw the first token, and a chunk
        # of one would be read with another kernel (``_prompt_group``)
        n = max(0, min(shared_prefix(slot.cached, seq.tokens), len(seq.tokens) - 2))
        if not self._ctx.kv_cache_seq_rm(slot.id, n, -1):  # a model whose cache cannot be cut keeps nothing
            self._ctx.kv_cache_seq_rm(slot.id, -1, -1)
            n = 0
        slot.cached = seq.tokens[:n]
        seq.pending = seq.tokens[n:]
        seq.usage.cached_tokens = n
        seq.admitted = next(self._uses)
        self.joined += any(s.seq is not None for s in self._slots)
        slot.seq = seq

    @staticmethod
    def _take_next(slot: _Slot) -> int:
        assert slot.seq is not None and slot.seq.next is not None
        token, slot.seq.next = slot.seq.next, None
        return token

    def _prompt_group(self, waiting: list[_Slot]) -> list[tuple[_Slot, int]]:
        """The prompts evaluated together this step, and how many tokens of each: the oldest newcomer's next chunk
        (up to ``n_batch`` tokens, never one alone: ``llama.chunk_length``), and the other newcomers' whose next
        chunk is as long, as many as the batch holds, in slot order.

        A prompt goes into a ``llama_decode`` of its own, apart from the decoding sequences' tokens: with one KV
        stream per sequence, llama.cpp splits a call into micro-batches of an equal number of tokens from each
        sequence, so a prompt next to other sequences' single tokens would be read one token at a time, at
        times in a micro-batch of one row, which llama.cpp's CPU backend multiplies with another kernel than two
        or more (the logits, and at a near-tie the greedy reply, would differ from a lone client's). Prompts of
        one length share a call: each micro-batch then holds that many of each one's tokens. So clients that
        arrive together (or a wave taking the slots a wave left) all get their first token after one call."""
        oldest = min(waiting, key=lambda s: s.seq.admitted if s.seq is not None else 0)
        assert oldest.seq is not None
        take = chunk_length(len(oldest.seq.pending), self.n_batch)
        same = [s for s in waiting if s.seq is not None and chunk_length(len(s.seq.pending), self.n_batch) == take]
        same.sort(key=lambda s: (s is not oldest, s.seq.admitted if s.seq is not None else 0))
        return [(slot, take) for slot in sorted(same[: max(1, self.n_batch // take)], key=lambda s: s.id)]

    def _prompt_chunk(self, slot: _Slot, take: int) -> int:
        """Put the next ``take`` of the slot's prompt tokens in the batch; the last one's output index once the
        prompt is all evaluated (its logits draw the first token), else -1."""
        seq = slot.seq
        assert seq is not None
        tokens, seq.pending = seq.pending[:take], seq.pending[take:]
        return self._add(slot, tokens, not seq.pending)

    def _add(self, slot: _Slot, tokens: list[int], logits: bool, every: bool = False) -> int:
        """Append ``tokens`` of ``slot``'s sequence to the batch; the last one's output index if ``logits`` (else
        -1), and with ``every`` the others' logits too (a draft's), at the indices before it.
        Slots are added in id order: llama.cpp decodes each run of consecutive sequence ids in one pass."""
        batch = self._batch.batch
        start, pos = batch.n_tokens, len(slot.cached)
        for k, token in enumerate(tokens):
            i = start + k
            batch.token[i] = token
            batch.pos[i] = pos + k
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = slot.id
            batch.logits[i] = every
        end = start + len(tokens) - 1
        batch.logits[end] = logits
        batch.n_tokens = end + 1
        slot.cached.extend(tokens)
        return end if logits else -1

    def _advance(self, slot: _Slot, idx: int, draft: list[int]) -> None:
        """Draw the sequence's next token from its logits and hand its text out; after a draft, one token per
        position (its logits at ``idx - len(draft)`` on) while the draws are the draft's, and the KV cache cut
        after the last draft token taken."""
        seq = slot.seq
        assert seq is not None
        first, base = idx - len(draft), len(slot.cached) - len(draft)
        for j in range(len(draft) + 1):
            token = seq.draw(self._ctx, first + j)
            end = self._ending(seq, token)
            if end is None and j < len(draft) and token == draft[j]:
                if seq.lookup is not None:
                    seq.lookup.append(token)
                continue
            if draft:
                self._cut(slot, base + j)
                self.drafted += len(draft)
                self.accepted += j
                if seq.length is not None:
                    seq.length.update(len(draft), j, seq.matched)
            if end is not None:
                self._finish(slot, end)
            else:
                seq.next = token
                if seq.lookup is not None:
                    seq.lookup.append(token)
            return

    def _ending(self, seq: _Seq, token: int) -> str | None:
        """Count the drawn ``token`` and hand its text out; why the reply ends with it ("stop", "length"), or None."""
        if seq.ends(self.engine, token):
            return "stop"
        seq.n += 1
        self.generated += 1
        if seq.take(self.engine, token):
            return "stop"
        return "length" if seq.n >= seq.max_new else None

    def _cut(self, slot: _Slot, keep: int) -> None:
        """Drop the slot's KV cells past ``keep`` (a draft's tokens the model did not take)."""
        if keep < len(slot.cached):
            self._ctx.kv_cache_seq_rm(slot.id, keep, -1)
            del slot.cached[keep:]

    def _finish(self, slot: _Slot, reason: str) -> None:
        seq, slot.seq = slot.seq, None
        slot.last_used = next(self._uses)
        if seq is not None:
            seq.finish(reason)

    def _fail(self, slots: list[_Slot], exc: BaseException) -> None:
        error = APIError(500, f"{self.engine.model_id}: llama.cpp failed: {exc}", type="server_error")
        for slot in slots:
            seq, slot.seq = slot.seq, None
            with contextlib.suppress(Exception):
                self._ctx.kv_cache_seq_rm(slot.id, -1, -1)
            slot.cached = []
            if seq is not None:
                seq.fail(error)

    def _free(self) -> None:
        gone = APIError(503, f"{self.engine.model_id} was unloaded", type="server_error")
        for slot in self._slots:
            seq, slot.seq = slot.seq, None
            if seq is not None:
                seq.fail(gone)
        while self._pending:
            self._pending.popleft().fail(gone)
        if self._batch is not None:
            self._batch.close()
        if self._ctx is not None:
            self._ctx.close()
        self._ctx = self._batch = None
