"""The llama.cpp chat engine: one loaded model, streaming replies token by token.

``LlamaEngine`` implements ``chat.ChatEngine`` over llama-cpp-python, but drives llama.cpp's decode and
sampler itself instead of going through ``Llama.create_completion``/``generate``, because it needs:

* exact KV-cache reuse figures: the tokens already evaluated for the previous turn are matched against the
  new prompt (longest common prefix) and only the rest is evaluated, so turn N costs the new tokens, not
  the history (``Stats.cached_tokens``);
* a different sampler for the first visible token (end-of-generation banned: a reply is never empty),
  which ``generate`` cannot switch without a per-token numpy logits processor over the whole vocabulary;
* cancellation between prompt batches and between tokens;
* little per-token work: one ``token_to_piece`` into a reused buffer and an incremental UTF-8 decoder
  (``create_completion`` re-detokenizes the whole reply on every token).

A model whose GGUF has no ``tokenizer.chat_template`` (a base model) runs in completion mode: the messages
become a plain ``User:``/``Assistant:`` transcript, and the reply stops at the next speaker tag.

Every file passes ``gguf.read`` and the memory-fit check before llama.cpp sees it.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import fit, gguf, template
from .chat import CancelToken, ChatOptions, Chunk, Message, Stats
from .errors import AssistantError

if TYPE_CHECKING:
    from .config import Settings
    from .store import Installed

# Same cut-offs llama-cpp-python's create_completion uses by default, so replies (and the benchmark
# against raw llama-cpp-python) sample from the same distribution.
TOP_K = 40
MIN_P = 0.05
# Transcript speaker tags for completion mode; generation stops when the model starts the next turn.
USER_TAG = "User:"
ASSISTANT_TAG = "Assistant:"
COMPLETION_STOPS = ("\nUser:", "\nAssistant:")
# Until the reply has visible text, end-of-generation is banned; a model that picks another control
# token or bare whitespace gets that banned too and is resampled, this many times at most.
MAX_BANNED_RETRIES = 16
# After trimming, keep this share of the context free so the next few turns can reuse the KV cache
# instead of re-trimming (which changes the prompt's start and forces a full re-evaluation).
TRIM_SLACK = 0.25
# Tokens a template may add around the messages (tags, separators) before a too-long prompt is its fault.
TEMPLATE_OVERHEAD = 256
# How long a second caller waits for a reply in progress on the same model before giving up.
BUSY_TIMEOUT_S = 60.0

_log_callback: Any = None  # keeps the ctypes callback alive for the life of the process

T = TypeVar("T")


class LlamaThread:
    """The one thread that calls into llama.cpp in this process.

    llama.cpp is built with OpenMP here, and OpenMP keeps a team of worker threads per *calling* thread. When
    a second thread calls in (the TUI loads a model in one worker and replies in another; a benchmark runs
    its baseline on the main thread), two teams spin against each other for the same cores: on 2 cores
    SmolLM2 drops from ~170 to ~106 tok/s. So every llama.cpp call — load, generate, free — runs here, and
    replies reach the caller's thread through a queue (a few microseconds a token).
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._ident: int | None = None
        self._guard = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
                self._ident = self._executor.submit(threading.get_ident).result()
            return self._executor

    def on_thread(self) -> bool:
        return self._ident is not None and threading.get_ident() == self._ident

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the llama thread and return its result (or raise its exception)."""
        if self.on_thread():
            return fn(*args, **kwargs)
        return self._pool().submit(fn, *args, **kwargs).result()

    def iterate(self, make: Callable[[], Iterator[T]]) -> Iterator[T]:
        """Run the iterator ``make()`` on the llama thread, yielding its items here as they come.

        If the consumer stops early (closes the generator, or an exception such as KeyboardInterrupt
        unwinds it), the producer closes its iterator after the current item, so its cleanup runs."""
        if self.on_thread():
            yield from make()
            return
        items: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        abandoned = threading.Event()

        def produce() -> None:
            source = make()
            try:
                for item in source:
                    items.put((_ITEM, item))
                    if abandoned.is_set():
                        break
            except BaseException as exc:
                items.put((_ERROR, exc))
                return
            finally:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
            items.put((_DONE, None))

        self._pool().submit(produce)
        try:
            while True:
                kind, value = items.get()
                if kind == _ITEM:
                    yield value
                elif kind == _ERROR:
                    raise value
                else:
                    return
        finally:
            abandoned.set()


_ITEM, _ERROR, _DONE = 0, 1, 2
llama_thread = LlamaThread()


def _leave_stdio_alone(self: Any, disable: bool = True) -> None:
    """Stands in for ``llama_cpp._utils.suppress_stdout_stderr.__init__``: always disabled (see below)."""
    self.disable = True


def _quiet_llama_logs() -> None:
    """Route llama.cpp's log through ``logging`` instead of stderr.

    llama-cpp-python maps ggml's log levels with an outdated enum (WARN arrives as ERROR), so even with
    ``verbose=False`` warnings such as "using full-size SWA cache" would land on the user's terminal.

    With ``verbose=False`` it also silences stderr its own way while a model loads: it ``dup2()``s /dev/null
    over file descriptors 1 and 2, for the whole process, from the loading thread. Whatever another thread
    writes there meanwhile is lost: the TUI's screen (Textual paints to fd 2), so what it painted during a
    load (a command palette closing, a chat opening) never reached the terminal and stayed stale until a
    full repaint -- a screen that looked frozen. With the callback below nothing of llama.cpp's needs it.
    """
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp
    from llama_cpp import _utils

    _utils.suppress_stdout_stderr.__init__ = _leave_stdio_alone  # type: ignore[method-assign]

    levels = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
    llama_log = logging.getLogger("assistant.llama_cpp")
    llama_log.addHandler(logging.NullHandler())  # no handler configured must not mean "print to stderr"

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator,misc]
    def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if llama_log.isEnabledFor(levels.get(level, logging.DEBUG)):
            llama_log.log(levels.get(level, logging.DEBUG), text.decode("utf-8", "replace").rstrip())

    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    _log_callback = _callback


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB"


@dataclass
class Plan:
    """A prompt ready to evaluate: its tokens, the messages it holds, how many old ones were dropped."""

    tokens: list[int]
    messages: list[Message]
    dropped: int


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

        import llama_cpp

        _quiet_llama_logs()
        try:
            self._llm: Any = llama_thread.call(
                template.load_llama,
                str(path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_ubatch=n_batch,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise AssistantError(
                f"{self.model_id}: llama.cpp could not load {path}: {exc}", "is it a model llama.cpp supports?"
            ) from None
        self._n_ctx: int = self._llm.n_ctx()
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

    # -- ChatEngine ---------------------------------------------------------------------------------
    @property
    def context_size(self) -> int:
        return self._n_ctx

    @property
    def llama(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (None once closed), for benchmarks that run raw llama-cpp-python on
        the same weights; call it through ``llama_thread``, never while a reply streams."""
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
        """The prompt text for ``messages``, ending where the assistant's reply begins (the model's template
        runs under a time and size budget in its own thread: ``template.chat_prompt``)."""
        if self.completion_mode or self._template is None:
            return _transcript(messages)
        bos, eos = self._token_text(self._bos), self._token_text(next(iter(self._end_tokens), -1))
        return template.chat_prompt(self._template, messages, bos, eos, model_id=self.model_id, cancel=cancel)

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return str(self._llm._model.token_get_text(token))

    def _prompt_tokens(self, messages: list[Message], cancel: CancelToken | None = None) -> list[int]:
        text = self.render(messages, cancel).encode("utf-8")
        # Chat templates write special tokens as text (<|im_start|>...), so parse them; a plain transcript
        # must not turn a user's "<eos>" into a real end-of-sequence.
        tokens: list[int] = self._llm.tokenize(text, add_bos=True, special=not self.completion_mode)
        if len(tokens) > 1 and tokens[0] == tokens[1] == self._bos:
            tokens = tokens[1:]  # the template wrote {{ bos_token }} and llama.cpp added one too
        return tokens

    def plan(self, messages: list[Message], options: ChatOptions, cancel: CancelToken | None = None) -> Plan:
        """What ``stream`` would send: the prompt tokens and the messages kept after trimming.

        The reply is guaranteed room for ``options.max_tokens`` tokens, or half the context if that is
        less (a max_tokens as large as the context would otherwise leave no room for any history).
        """
        reserve = min(options.max_tokens, self._n_ctx // 2)
        tokens = self._prompt_tokens(messages, cancel)
        budget = self._n_ctx - reserve
        if len(tokens) <= budget:
            return Plan(tokens, list(messages), 0)
        # The system prompt and the newest message always stay. Turns are dropped whole (a user message
        # and the replies after it) so role alternation, which strict templates check, is kept. A trim
        # leaves some slack and remembers where it cut, so the next turns cut at the same message and
        # keep reusing the KV cache instead of re-evaluating a prompt whose start moved.
        head = messages[:1] if messages[0].role == "system" else []
        rest = messages[len(head) :]
        starts = [i for i, m in enumerate(rest) if i > 0 and m.role == "user"]
        if not starts or starts[-1] != len(rest) - 1:
            starts.append(len(rest) - 1)
        slack_budget = max(1, budget - int(self._n_ctx * TRIM_SLACK))
        if self._anchor is not None and self._anchor in rest:
            i = rest.index(self._anchor)
            if i in starts:
                candidate = self._prompt_tokens(head + rest[i:], cancel)
                if len(candidate) <= budget:
                    return Plan(candidate, head + rest[i:], i)
        fallback: Plan | None = None
        for i in starts:
            candidate = self._prompt_tokens(head + rest[i:], cancel)
            if len(candidate) <= slack_budget:
                self._anchor = rest[i]
                return Plan(candidate, head + rest[i:], i)
            if fallback is None and len(candidate) <= budget:
                fallback = Plan(candidate, head + rest[i:], i)
        if fallback is not None:
            self._anchor = fallback.messages[len(head)]
            return fallback
        newest = len(self._prompt_tokens(head + rest[-1:], cancel))
        own = sum(len(self._llm.tokenize(m.content.encode(), add_bos=False, special=False)) for m in head + rest[-1:])
        if own + reserve + TEMPLATE_OVERHEAD <= self._n_ctx:  # the text fits: the template blew it up
            raise AssistantError(
                f"{self.model_id}: the model's chat template makes a {newest}-token prompt out of {own} tokens"
                f" of conversation, more than the context holds ({self._n_ctx})",
                template.HINT,
            )
        raise AssistantError(
            f"the message is too long for {self.model_id}'s context: it needs {newest} tokens"
            + (" with the system prompt" if head else "")
            + f" plus {reserve} for the reply, the context holds {self._n_ctx}",
            "shorten it, lower --max-tokens, or raise --ctx",
        )

    # -- generation -------------------------------------------------------------------------------
    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the KV cache for the longest prefix shared with what is already evaluated."""
        import numpy as np

        llm = self._llm
        n = 0
        # at least one prompt token must be evaluated again: its logits sample the first token
        limit = min(llm.n_tokens, len(tokens) - 1)
        if limit > 0:
            differ = np.flatnonzero(llm.input_ids[:limit] != np.asarray(tokens[:limit], dtype=np.intc))
            n = int(differ[0]) if differ.size else limit
        if n > 0 and llm._ctx.kv_cache_seq_rm(-1, n, -1):
            llm.n_tokens = n
            return n
        llm.reset()
        return 0

    def _sampler(self, options: ChatOptions, seed: int, banned: set[int] | None = None) -> Any:
        from llama_cpp._internals import LlamaSampler

        sampler = LlamaSampler()
        if banned:
            sampler.add_logit_bias(self._n_vocab, dict.fromkeys(banned, float("-inf")))
        if options.temperature == 0:
            sampler.add_greedy()
        else:
            sampler.add_top_k(TOP_K)
            sampler.add_top_p(options.top_p, 1)
            sampler.add_min_p(MIN_P, 1)
            sampler.add_temp(options.temperature)
            sampler.add_dist(seed)
        return sampler

    def _piece(self, token: int) -> bytes:
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
        t0 = time.perf_counter()
        llm = self._llm
        plan = self.plan(messages, options, cancel)
        tokens, dropped = plan.tokens, plan.dropped
        self._check_prompt(tokens)
        stats = Stats(prompt_tokens=len(tokens), dropped_messages=dropped, completion_mode=self.completion_mode)
        if self.completion_mode:
            why = f"'s chat template does not compile ({self.template_error})" if self.template_error else ""
            yield Chunk(notice=f"{self.model_id}{why or ' has no chat template'}: completion mode")
        if dropped:
            yield Chunk(notice=f"history trimmed: {dropped} oldest messages dropped")

        stats.cached_tokens = cached = self._reuse_prefix(tokens)
        for start in range(cached, len(tokens), self.n_batch):
            if cancel.cancelled:
                break
            llm.eval(tokens[start : start + self.n_batch])
        t_prompt = time.perf_counter()

        seed = options.seed if options.seed is not None else random.getrandbits(32)
        sampler = self._sampler(options, seed)
        banned = set(self._end_tokens)
        first_sampler: Any = None  # used until the reply has visible text: never an empty reply
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stops = COMPLETION_STOPS if self.completion_mode else ()
        vocab, is_eog, is_control, piece = self._vocab, self._is_eog, self._is_control, self._piece
        max_new = min(options.max_tokens, self._n_ctx - len(tokens))
        visible = False  # leading whitespace is held back: a reply starts with text
        pending = ""  # text not yielded yet (see below)
        t_first = 0.0
        n = 0
        finish: Literal["stop", "length", "cancelled"] = "length"
        while n < max_new:
            if cancel.cancelled:
                finish = "cancelled"
                break
            if visible:
                token = sampler.sample(llm._ctx, -1)
            else:
                if first_sampler is None:
                    first_sampler = self._sampler(options, seed, banned)
                token = first_sampler.sample(llm._ctx, -1)
                retries = 0
                # an end, a control token or bare whitespace now would make an empty reply: ban, resample
                while retries < MAX_BANNED_RETRIES and (
                    is_eog(vocab, token) or is_control(vocab, token) or not piece(token).strip()
                ):
                    banned.add(token)
                    first_sampler = self._sampler(options, seed, banned)
                    token = first_sampler.sample(llm._ctx, -1)
                    retries += 1
            if not t_first:
                t_first = time.perf_counter()
            if is_eog(vocab, token) or is_control(vocab, token):
                finish = "stop"
                break
            n += 1
            text = decoder.decode(piece(token))
            if not visible:
                text = text.lstrip()
                visible = bool(text)
            # hold back trailing whitespace (a reply never ends with it) and what may start a stop string
            pending += text
            if stops:
                cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
                if cut >= 0:
                    pending = pending[:cut]
                    finish = "stop"
                    break
            ready = len(pending) - _stop_prefix_len(pending, stops) if stops else len(pending)
            ready = len(pending[:ready].rstrip())
            if ready:
                yield Chunk(pending[:ready])
                pending = pending[ready:]
            if n < max_new:
                llm.eval((token,))
        pending += decoder.decode(b"", final=True)
        if stops:  # cut off by max_tokens while starting the next speaker's tag
            pending = pending[: len(pending) - _stop_prefix_len(pending, stops)]
        tail = pending.rstrip()
        if tail:
            yield Chunk(tail)
        t_end = time.perf_counter()
        stats.completion_tokens = n
        stats.finish_reason = finish
        stats.ttft_ms = ((t_first or t_end) - t0) * 1000
        stats.total_ms = (t_end - t0) * 1000
        gen_s = t_end - t_prompt
        stats.tokens_per_second = n / gen_s if n and gen_s > 0 else 0.0
        yield Chunk(stats=stats)


def _stop_prefix_len(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that could be the start of a stop string."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


def _transcript(messages: list[Message]) -> str:
    """Completion-mode prompt: the system prompt as a preamble, then a User:/Assistant: transcript."""
    parts: list[str] = []
    for m in messages:
        if m.role == "system":
            parts.append(m.content.strip() + "\n")
        else:
            tag = USER_TAG if m.role == "user" else ASSISTANT_TAG
            parts.append(f"{tag} {m.content.strip()}")
    if messages and messages[-1].role == "assistant":
        return "\n".join(parts)  # continue the assistant's own text
    parts.append(ASSISTANT_TAG)
    return "\n".join(parts)


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
    finally:
        installed.conn.close()
    if item.kind != "llm":
        raise AssistantError(f"{item.id} is a speech model, not a chat model", "see 'assistant models list'")
    return LlamaEngine(
        item,
        n_ctx=n_ctx or settings.runtime.context_size,
        n_threads=n_threads or settings.threads(),
        n_batch=n_batch or settings.runtime.batch_size,
        model_id=item.id,
    )
