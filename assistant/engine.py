"""The llama.cpp chat engine: one loaded model, streaming replies token by token.

``LlamaEngine`` implements ``chat.ChatEngine`` over llama-cpp-python, but drives llama.cpp's decode and
sampler itself instead of going through ``Llama.create_completion``/``generate``, because it needs:

* exact KV-cache reuse figures: the tokens already evaluated for the previous turn are matched against the new prompt
  (longest common prefix) and only the rest is evaluated, so turn N costs the new tokens, not the history
  (``Stats.cached_tokens``);
* a different sampler for the first visible token (end-of-generation banned: a reply is never empty),
  which ``generate`` cannot switch without a per-token numpy logits processor over the whole vocabulary;
* cancellation between prompt batches and between tokens;
* little per-token work: one ``token_to_piece`` into a reused buffer and an incremental UTF-8 decoder
  (``create_completion`` re-detokenizes the whole reply on every token).

A model whose GGUF has no ``tokenizer.chat_template`` (a base model) runs in completion mode: the messages become a
plain ``User:``/``Assistant:`` transcript, and the reply stops at the next speaker tag. Building and trimming the
prompt is ``assistant.prompt``'s; the one thread every llama.cpp call runs on is ``assistant.llama``'s. Every file
passes ``gguf.read`` and the memory-fit check before llama.cpp sees it.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import random
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import drafts, fit, gguf, prompt, template
from .chat import CancelToken, ChatOptions, Chunk, Message, Stats
from .errors import AssistantError
from .llama import Greedy, chunk_length, llama_thread, log_to
from .prompt import Plan
from .speculative import MAX_DRAFT, DraftModel, Sampling, Speculation

if TYPE_CHECKING:
    from .config import Settings
    from .store import Installed

# Same cut-offs llama-cpp-python's create_completion uses by default, so replies (and the benchmark
# against raw llama-cpp-python) sample from the same distribution.
TOP_K = 40
MIN_P = 0.05
# Until the reply has visible text, end-of-generation is banned; a model that picks another control
# token or bare whitespace gets that banned too and is resampled, this many times at most.
MAX_BANNED_RETRIES = 16
# How long a second caller waits for a reply in progress on the same model before giving up.
BUSY_TIMEOUT_S = 60.0

T = TypeVar("T")
Finish = Literal["stop", "length", "cancelled"]


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB"


def check_fit(info: gguf.GGUFInfo, n_ctx: int, n_batch: int, model_id: str) -> fit.Estimate:
    """Refuse a model that cannot fit in free memory at this context size (before llama.cpp tries)."""
    estimate = fit.estimate_llm(info, n_ctx, n_batch)
    free = fit.available_bytes()
    if fit.verdict(estimate.total, free) == "won't fit":
        smaller = max(256, n_ctx // 4)
        raise AssistantError(
            f"{model_id} won't fit in memory with a {n_ctx}-token context: needs about {_mib(estimate.total)},"
            f" {_mib(free)} is free",
            f"lower --ctx (e.g. --ctx {smaller}) or close other programs",
        )
    return estimate


class LlamaEngine:
    """One GGUF model loaded in llama.cpp. Not re-entrant: one reply at a time (others wait)."""

    def __init__(
        self,
        model: str | os.PathLike[str] | Installed,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        model_id: str | None = None,
        speculative: str = "off",
        draft: Installed | None = None,
    ) -> None:
        if isinstance(model, str | os.PathLike):
            path, installed_id = Path(model), None
        else:
            path, installed_id = Path(model.path), model.id
        self.info = gguf.read(path)  # raises a one-line GGUFError before llama.cpp can crash on it
        self.model_id: str = model_id or installed_id or self.info.name or path.stem
        if self.info.context_length and n_ctx > self.info.context_length:
            n_ctx = self.info.context_length  # past its training context a model only produces noise
        n_batch = max(1, min(n_batch, n_ctx))
        self.estimate = check_fit(self.info, n_ctx, n_batch, self.model_id)
        self.path = path
        self.n_threads = n_threads or os.cpu_count() or 1
        self.n_batch = n_batch
        self.speculative = speculative  # runtime.speculative: auto | lookup | draft:ID | off (see speculative.py)
        self.max_draft = MAX_DRAFT  # the longest draft (benchmarks/speculative.py varies it)

        import llama_cpp

        log_to()  # llama.cpp's log goes to logging, not the user's terminal
        try:
            self._llm: Any = llama_thread.call(
                template.load_llama,
                str(path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_ubatch=n_batch,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                flash_attn=True,  # faster on a CPU, and a batch attends as one token does (see speculative.py)
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise AssistantError(
                f"{self.model_id}: llama.cpp could not load {path}: {exc}", "is it a model llama.cpp supports?"
            ) from None
        self._n_ctx: int = self._llm.n_ctx()
        self._draft: DraftModel | None = None  # the draft model (drafts.resolve chose it), in its own context
        if draft is not None:
            self._draft = self._load_draft(draft, n_batch)
        self._vocab = self._llm._model.vocab
        self._n_vocab: int = self._llm.n_vocab()
        self._is_eog = llama_cpp.llama_vocab_is_eog
        self._is_control = llama_cpp.llama_vocab_is_control
        self._token_to_piece = llama_cpp.llama_token_to_piece
        self._piece_buf = ctypes.create_string_buffer(256)
        self._end_tokens = {
            t for t in (llama_cpp.llama_vocab_eos(self._vocab), llama_cpp.llama_vocab_eot(self._vocab)) if t >= 0
        }
        self._bos: int = llama_cpp.llama_vocab_bos(self._vocab)
        self._lock = threading.Lock()
        self._close_when_idle = False
        self._anchor: Message | None = None  # first kept message after the last trim (see plan)

        self.chat_template = self.info.chat_template
        self.completion_mode = self.chat_template is None
        self._template: Any = None
        self.template_error: str | None = None  # why a template present in the file is not used
        if self.chat_template is not None:
            self._template, self.template_error = template.compile_chat_template(self.chat_template, self.model_id)
            self.completion_mode = self._template is None
        # the texts a chat template may write as {{ bos_token }} / {{ eos_token }} (a transcript needs neither)
        self._bos_text = self._eos_text = ""
        if self._template is not None:
            self._bos_text = self._token_text(self._bos)
            self._eos_text = self._token_text(next(iter(self._end_tokens), -1))

    # -- ChatEngine ---------------------------------------------------------------------------------
    @property
    def context_size(self) -> int:
        return self._n_ctx

    @property
    def llama(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (None once closed): the public way to the weights themselves, for
        benchmarks that run raw llama-cpp-python on them and tests that read llama.cpp's own counters. Call
        it through ``llama_thread``, never while a reply streams."""
        return self._llm

    def count_tokens(self, messages: list[Message]) -> int:
        return len(self._prompt_tokens(messages))

    def on_engine_thread(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the thread that calls llama.cpp (see ``ChatSession``'s ``Turn.run``)."""
        return llama_thread.call(fn)

    def close(self) -> None:
        """Free the model. A reply in progress (another thread) finishes first; it closes the model."""
        if self._lock.acquire(timeout=5):
            try:
                self._release()
            finally:
                self._lock.release()
        else:
            self._close_when_idle = True

    def _release(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llama_thread.call(llm.close)
        draft, self._draft = self._draft, None
        if draft is not None:
            draft.close()

    def _load_draft(self, draft: Installed, n_batch: int) -> DraftModel:
        """Load ``draft`` next to the model (same context size and threads); on failure free both."""
        try:
            check_fit(gguf.read(draft.path), self._n_ctx, n_batch, draft.id)
            size = {"n_ctx": self._n_ctx, "n_batch": n_batch, "n_ubatch": n_batch}
            threads = {"n_threads": self.n_threads, "n_threads_batch": self.n_threads}
            return DraftModel.load(
                str(draft.path), cost=draft.size_bytes / max(1, self.info.file_size), **size, **threads
            )
        except (ValueError, RuntimeError, AssistantError) as exc:
            self._release()
            if isinstance(exc, AssistantError):
                raise
            raise AssistantError(f"{draft.id}: llama.cpp could not load the draft model: {exc}") from None

    def stream(
        self, messages: list[Message], options: ChatOptions, cancel: CancelToken | None = None
    ) -> Iterator[Chunk]:
        """Yield the reply's text as it is generated; the last chunk carries ``Stats``.

        Raises ``AssistantError`` (before any text) if the newest message cannot fit the context.
        """
        if not messages:
            raise AssistantError("nothing to reply to: no messages")
        if not self._lock.acquire(timeout=BUSY_TIMEOUT_S):
            raise AssistantError(f"{self.model_id} is busy with another reply", "wait for it or cancel it")
        try:
            if self._llm is None:
                raise AssistantError(f"{self.model_id} has been unloaded")
            try:
                token = cancel or CancelToken()
                yield from llama_thread.iterate(lambda: self._generate(messages, options, token))
            except RuntimeError as exc:  # llama_decode failures (out of memory, a full KV cache)
                raise AssistantError(f"{self.model_id}: llama.cpp failed: {exc}", "try a smaller --ctx") from None
        finally:
            if self._close_when_idle:
                self._release()
            self._lock.release()

    # -- prompt -----------------------------------------------------------------------------------
    def render(self, messages: list[Message], cancel: CancelToken | None = None) -> str:
        """The prompt text for ``messages``, ending where the assistant's reply begins (``prompt.render``)."""
        return prompt.render(
            messages, self._template, self._bos_text, self._eos_text, model_id=self.model_id, cancel=cancel
        )

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return str(self._llm._model.token_get_text(token))

    def _prompt_tokens(self, messages: list[Message], cancel: CancelToken | None = None) -> list[int]:
        return prompt.encode(self.render(messages, cancel), self._llm, self._bos, special=not self.completion_mode)

    def plan(self, messages: list[Message], options: ChatOptions, cancel: CancelToken | None = None) -> Plan:
        """What ``stream`` would send: the prompt tokens and the messages kept after trimming (``prompt.plan``,
        which leaves the reply room for ``options.max_tokens``, or half the context if that is less)."""
        result = prompt.plan(
            messages,
            lambda kept: self._prompt_tokens(kept, cancel),
            self._llm,
            n_ctx=self._n_ctx,
            max_tokens=options.max_tokens,
            anchor=self._anchor,
            model_id=self.model_id,
        )
        self._anchor = result.anchor
        return result

    # -- generation -------------------------------------------------------------------------------
    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the KV cache for the longest prefix shared with what is already evaluated, less two tokens at least:
        the last one's logits draw the first token, and one alone would be read with another matrix kernel
        (``llama.chunk_length``)."""
        import numpy as np

        llm = self._llm
        n = 0
        limit = min(llm.n_tokens, len(tokens) - 2)
        if limit > 0:
            differ = np.flatnonzero(llm.input_ids[:limit] != np.asarray(tokens[:limit], dtype=np.intc))
            n = int(differ[0]) if differ.size else limit
        if n > 0 and llm._ctx.kv_cache_seq_rm(-1, n, -1):
            llm.n_tokens = n
            return n
        llm.reset()
        return 0

    def _sampler(self, options: ChatOptions, seed: int, banned: set[int] | None = None, grammar: Any = None) -> Any:
        from llama_cpp._internals import LlamaSampler

        if options.temperature == 0 and not banned and grammar is None:
            return Greedy(self._n_vocab)
        sampler = LlamaSampler()
        if banned:
            sampler.add_logit_bias(self._n_vocab, dict.fromkeys(banned, float("-inf")))
        if grammar is not None:  # a llama_cpp.LlamaGrammar: tokens it does not allow get -inf before the draw
            self._add_grammar(sampler, grammar)
        if options.temperature == 0:
            sampler.add_greedy()
        else:
            sampler.add_top_k(TOP_K)
            self._add_filters(sampler, options)
            sampler.add_dist(seed)
        return sampler

    @staticmethod
    def _add_filters(sampler: Any, options: ChatOptions) -> Any:
        """What a sampled draw sees after the top-k: top-p, min-p, the temperature."""
        sampler.add_top_p(options.top_p, 1)
        sampler.add_min_p(MIN_P, 1)
        sampler.add_temp(options.temperature)
        return sampler

    def filters(self, options: ChatOptions) -> Any:
        """The sampler chain of a sampled reply between its top-k (``TOP_K``) and its draw: speculative sampling
        (``speculative.Sampling``) draws from what it leaves."""
        from llama_cpp._internals import LlamaSampler

        return self._add_filters(LlamaSampler(), options)

    def _add_grammar(self, sampler: Any, grammar: Any) -> None:
        """``LlamaSampler.add_grammar``, but a grammar llama.cpp cannot parse is an error here instead of a null
        sampler in the chain (which would crash the process at the first draw)."""
        import llama_cpp

        made = llama_cpp.llama_sampler_init_grammar(
            self._vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
        )
        if not made:
            raise AssistantError(f"{self.model_id}: llama.cpp could not parse the grammar", "check the JSON schema")
        llama_cpp.llama_sampler_chain_add(sampler.sampler, made)

    def samplers(self, options: ChatOptions, grammar: Any = None) -> tuple[Any, FirstTokenSampler]:
        """The two samplers a reply draws with: the first visible token's (end-of-generation banned, see
        ``FirstTokenSampler``) and the rest's. ``server.batch`` draws each of its sequences' replies with these,
        so a batched reply samples exactly as ``stream`` does."""
        seed = options.seed if options.seed is not None else random.getrandbits(32)
        first = FirstTokenSampler(
            lambda banned: self._sampler(options, seed, banned, grammar), self._end_tokens, self._makes_empty
        )
        return self._sampler(options, seed, grammar=grammar), first

    def ends_reply(self, token: int) -> bool:
        """Does ``token`` end a reply (end of generation, or any other control token)?"""
        return bool(self._is_eog(self._vocab, token) or self._is_control(self._vocab, token))

    def is_eog(self, token: int) -> bool:
        return bool(self._is_eog(self._vocab, token))

    def reply_text(self) -> ReplyText:
        """A reply's text as its pieces arrive, cut at completion mode's speaker tags."""
        return ReplyText(prompt.COMPLETION_STOPS if self.completion_mode else ())

    def piece(self, token: int) -> bytes:
        """``token``'s bytes (a piece may be part of a UTF-8 character)."""
        n = self._token_to_piece(self._vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        if n < 0:
            self._piece_buf = ctypes.create_string_buffer(-n)
            n = self._token_to_piece(self._vocab, token, self._piece_buf, len(self._piece_buf), 0, False)
        return self._piece_buf.raw[:n]

    def _check_prompt(self, tokens: list[int]) -> None:
        """Refuse what llama.cpp would abort the whole process on (GGML_ASSERT): no tokens at all (nothing to
        sample from), a token outside the vocabulary, more tokens than the context holds."""
        if not tokens:
            raise AssistantError(
                f"{self.model_id}: the prompt is 0 tokens (the model's chat template rendered nothing,"
                " or its vocabulary cannot encode the text)",
                template.HINT,
            )
        if min(tokens) < 0 or max(tokens) >= self._n_vocab:
            bad = next(t for t in tokens if not 0 <= t < self._n_vocab)
            raise AssistantError(
                f"{self.model_id}: the prompt holds token {bad}, outside the model's vocabulary of {self._n_vocab}",
                "check the file with 'assistant models verify'",
            )
        if len(tokens) >= self._n_ctx:
            raise AssistantError(
                f"{self.model_id}: the prompt is {len(tokens)} tokens, the context holds {self._n_ctx}", "raise --ctx"
            )

    def _generate(self, messages: list[Message], options: ChatOptions, cancel: CancelToken) -> Iterator[Chunk]:
        """One reply, on the llama thread: plan the prompt, evaluate what the KV cache lacks, decode."""
        t0 = time.perf_counter()
        plan = self.plan(messages, options, cancel)
        tokens = plan.tokens
        self._check_prompt(tokens)
        stats = Stats(prompt_tokens=len(tokens), dropped_messages=plan.dropped, completion_mode=self.completion_mode)
        yield from self._notices(plan.dropped)
        yield Chunk(prompt_tokens=len(tokens))
        stats.cached_tokens = self._evaluate(tokens, cancel)
        t_prompt = time.perf_counter()
        max_new = min(options.max_tokens, self._n_ctx - len(tokens))
        n, finish, t_first = yield from self._decode(options, max_new, cancel, stats)
        t_end = time.perf_counter()
        stats.completion_tokens = n
        stats.finish_reason = finish
        stats.ttft_ms = ((t_first or t_end) - t0) * 1000
        stats.total_ms = (t_end - t0) * 1000
        gen_s = t_end - t_prompt
        stats.tokens_per_second = n / gen_s if n and gen_s > 0 else 0.0
        yield Chunk(stats=stats)

    def _notices(self, dropped: int) -> Iterator[Chunk]:
        """What the user should know before the reply: completion mode (and why), a trimmed history."""
        if self.completion_mode:
            why = f"'s chat template does not compile ({self.template_error})" if self.template_error else ""
            yield Chunk(notice=f"{self.model_id}{why or ' has no chat template'}: completion mode")
        if dropped:
            yield Chunk(notice=f"history trimmed: {dropped} oldest messages dropped")

    def _evaluate(self, tokens: list[int], cancel: CancelToken) -> int:
        """Evaluate the prompt past the reused KV-cache prefix, in batches; return how many were reused."""
        start = cached = self._reuse_prefix(tokens)
        while start < len(tokens) and not cancel.cancelled:
            take = chunk_length(len(tokens) - start, self.n_batch)
            self._llm.eval(tokens[start : start + take])
            start += take
        return cached

    def _makes_empty(self, token: int) -> bool:
        """Would ``token`` as the reply's first leave it empty: an end, a control token, bare whitespace?"""
        vocab = self._vocab
        return bool(self._is_eog(vocab, token) or self._is_control(vocab, token) or not self.piece(token).strip())

    def _decode(
        self, options: ChatOptions, max_new: int, cancel: CancelToken, stats: Stats | None = None
    ) -> Generator[Chunk, None, tuple[int, Finish, float]]:
        """Sample and evaluate up to ``max_new`` tokens, yielding the reply's text as it becomes final.

        With speculation (``_speculation``) a token is evaluated together with a draft of the next ones; the
        draft's tokens the model agrees with come back already evaluated, and the token picked after them not.
        Returns how many tokens were generated, why it ended, and when the first token was sampled."""
        llm = self._llm
        sampler, first = self.samplers(options)
        text = self.reply_text()
        vocab, is_eog, is_control, piece = self._vocab, self._is_eog, self._is_control, self.piece
        speculation = self._speculation(options)
        pending: list[int] = []  # accepted draft tokens (already evaluated), then the token sampled after them
        t_first = 0.0
        n = 0
        finish: Finish = "length"
        while n < max_new:
            if cancel.cancelled:
                finish = "cancelled"
                break
            if pending:
                token = pending.pop(0)
                evaluated = bool(pending)
            else:
                token = sampler.sample(llm._ctx, -1) if text.visible else first.sample(llm._ctx)
                evaluated = False
            if not t_first:
                t_first = time.perf_counter()
            if is_eog(vocab, token) or is_control(vocab, token):
                finish = "stop"
                break
            n += 1
            ready = text.add(piece(token))
            if ready:
                yield Chunk(ready)
            if text.stopped:
                finish = "stop"
                break
            if speculation is not None:
                speculation.seen(token)
            if evaluated or n >= max_new:
                continue
            if speculation is not None and text.visible:
                room = min(max_new - n - 1, self._n_ctx - llm.n_tokens - 2)  # tokens a draft may take
                pending = speculation.step(token, sampler, room)
            else:
                llm.eval((token,))
        tail = text.tail()
        if tail:
            yield Chunk(tail)
        if stats is not None and speculation is not None:
            speculation.report(stats)
        return n, finish, t_first

    def _speculation(self, options: ChatOptions) -> Speculation | None:
        """This reply's speculative decoding (``speculative.Speculation``): prompt lookup; a greedy reply checks
        drafts against the model's pick, a sampled one by rejection sampling from plain decoding's distribution."""
        if self.speculative == "off":
            return None
        sampling = None
        if options.temperature != 0:
            import numpy as np

            seed = options.seed if options.seed is not None else random.getrandbits(32)
            sampling = Sampling(top_k=TOP_K, filters=self.filters(options), rng=np.random.default_rng(seed))
        repeatable = options.temperature == 0 or options.seed is not None
        return Speculation(
            self._llm,
            max_draft=min(self.max_draft, self.n_batch - 1),
            sampling=sampling,
            repeatable=repeatable,
            draft_model=None if self.speculative == "lookup" else self._draft,
            costs_key=f"{self.path.name}:{self.info.file_size}:{self.n_threads}:{self.n_batch}",
        )


class FirstTokenSampler:
    """Draws tokens until the reply has visible text, so a reply is never empty.

    End-of-generation is banned from the start (``banned``); a token that would still leave the reply
    empty (``makes_empty``) is banned too and resampled, ``MAX_BANNED_RETRIES`` times at most. The sampler is
    rebuilt for each ban and kept for the next token (a first piece can be a partial UTF-8 character)."""

    def __init__(self, make: Callable[[set[int]], Any], banned: set[int], makes_empty: Callable[[int], bool]) -> None:
        self._make = make
        self._banned = set(banned)
        self._makes_empty = makes_empty
        self._sampler: Any = None

    def sample(self, ctx: Any, idx: int = -1) -> int:
        """Draw from the logits of output ``idx`` (the last one by default; a batch names its sequence's)."""
        if self._sampler is None:
            self._sampler = self._make(self._banned)
        token: int = self._sampler.sample(ctx, idx)
        retries = 0
        while retries < MAX_BANNED_RETRIES and self._makes_empty(token):
            self._banned.add(token)
            self._replace(self._make(self._banned))
            token = self._sampler.sample(ctx, idx)
            retries += 1
        return token

    def _replace(self, sampler: Any) -> None:
        if self._sampler is not None:
            self._sampler.close()  # now, on the llama thread, not whenever the garbage collector runs
        self._sampler = sampler

    def close(self) -> None:
        self._replace(None)


class ReplyText:
    """The reply's text as token pieces arrive: what is final so far, and whether a stop string ended it.

    Leading whitespace is dropped (a reply starts with text); trailing whitespace is held back (a reply
    never ends with it), and so is whatever may be the start of a stop string (completion mode's next
    speaker tag), until the next piece shows what it is."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.visible = False
        self.stopped = False
        self._pending = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def add(self, piece: bytes) -> str:
        """Take one token's bytes; return the text now final ("" if none)."""
        text = self._decoder.decode(piece)
        if not self.visible:
            text = text.lstrip()
            self.visible = bool(text)
        pending = self._pending + text
        stops = self.stops
        if stops:
            cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                self._pending = pending[:cut]
                self.stopped = True
                return ""
        ready = len(pending) - prompt.stop_prefix_len(pending, stops) if stops else len(pending)
        ready = len(pending[:ready].rstrip())
        self._pending = pending[ready:]
        return pending[:ready]

    def tail(self) -> str:
        """The rest once decoding ends, without trailing whitespace or a half-written stop string."""
        pending = self._pending + self._decoder.decode(b"", final=True)
        if self.stops:  # cut off by max_tokens while starting the next speaker's tag
            pending = pending[: len(pending) - prompt.stop_prefix_len(pending, self.stops)]
        return pending.rstrip()


def load_engine(
    model_id: str | None = None,
    settings: Settings | None = None,
    *,
    n_ctx: int | None = None,
    n_threads: int | None = None,
    n_batch: int | None = None,
) -> LlamaEngine:
    """Load an installed chat model (default: the configured one) with the configured runtime settings."""
    from . import config, store

    settings = settings or config.load()
    installed = store.Store()
    try:
        item = installed.require(model_id or settings.models.chat)
        if item.kind != "llm":
            raise AssistantError(f"{item.id} is a speech model, not a chat model", "see 'assistant models list'")
        draft = drafts.resolve(settings.runtime.speculative, item, installed)
    finally:
        installed.conn.close()
    return LlamaEngine(
        item,
        n_ctx=n_ctx or settings.runtime.context_size,
        n_threads=n_threads or settings.threads(),
        n_batch=n_batch or settings.runtime.batch_size,
        model_id=item.id,
        speculative=settings.runtime.speculative,
        draft=draft,
    )
