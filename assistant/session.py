"""The one chat orchestration the CLI and the TUI share: history in, streamed reply out, nothing lost.

Usage (from any thread; a TUI runs the iteration in a thread worker)::

    session = ChatSession()                      # History() + load_engine, settings from config.toml
    chat = session.new_chat()                    # or new_chat(model_id=..., system_prompt=..., options={...})
    turn = session.send(chat.id, "Hello!")       # the user's message is committed here, before anything else
    for chunk in turn:                           # loads the model on first use (cached per model id)
        if chunk.notice: show_notice(chunk.notice)   # "history trimmed: ...", "... completion mode"
        append(chunk.text)
    turn.stats, turn.text, turn.reply            # Stats, the full reply, its StoredMessage row

    turn.cancel()   # from any thread (Esc): stops after the current token; the reply is kept, partial
    turn.run(on_chunk)   # instead of iterating: the whole reply on the engine's own thread (see Turn.run)

Guarantees:

* The user's message is stored by ``send`` itself. The reply row is created when generation starts,
  rewritten every ``flush_seconds`` or ``flush_tokens`` tokens from the streaming thread (so a kill -9
  keeps nearly all of it), and finished with its stats. Cancelled, failed, interrupted (Ctrl+C, the
  iterator closed early) replies are kept and marked ``partial``; one with no text at all is dropped.
* The message list sent to the model is: the chat's system prompt, then every stored message in order.
  Partial replies are included as ordinary assistant turns: the user saw that text and may refer to it.
  Consecutive messages with the same role (e.g. a user message whose reply failed, then another user
  message) are joined, because strict chat templates require user/assistant alternation.
* Engines are cached per model id and shared by all chats (loading takes seconds; the engine's KV cache
  then also reuses the common prefix between chats, e.g. the system prompt). At most ``max_engines``
  stay loaded; the least recently used is closed.

Chat options: ``chat.options`` holds only what the chat sets; the rest comes from config.toml
(``[chat]``), and ``send(..., options=)`` overrides for one turn.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .chat import CancelToken, ChatEngine, ChatOptions, Chunk, Message, Stats
from .errors import AssistantError, one_line
from .history import Chat, History, StoredMessage

if TYPE_CHECKING:
    from .config import Settings

EngineFactory = Callable[[str], ChatEngine]

# Progressive saves while streaming: often enough that a crash loses under a second of text, rarely
# enough to cost nothing next to generation (one small UPDATE in WAL mode).
FLUSH_SECONDS = 0.5
FLUSH_TOKENS = 32


class Turn:
    """One user message and the reply being generated for it. Iterate it once to run the generation."""

    def __init__(
        self,
        session: ChatSession,
        chat: Chat,
        user_message: StoredMessage,
        options: ChatOptions,
        cancel: CancelToken,
    ) -> None:
        self.session = session
        self.chat = chat
        self.chat_id = chat.id
        self.user_message = user_message
        self.options = options
        self.cancel_token = cancel
        self.model_id: str = chat.model_id or session.settings.models.chat
        self._parts: list[str] = []
        self.stats: Stats | None = None
        self.notices: list[str] = []
        self.reply: StoredMessage | None = None  # the stored reply, once finished (None if it had no text)
        self.reply_id: int | None = None
        self._started = False

    @property
    def text(self) -> str:
        """The reply so far (all of it once the iteration is over)."""
        return "".join(self._parts)

    @property
    def finish_reason(self) -> str | None:
        return self.stats.finish_reason if self.stats else None

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def __iter__(self) -> Iterator[Chunk]:
        if self._started:
            raise RuntimeError("a Turn can only be iterated once")
        self._started = True
        return self._run()

    def run(self, on_chunk: Callable[[Chunk], None]) -> None:
        """Generate the reply, calling ``on_chunk`` with each chunk, on the engine's own thread if it has one.

        The same as ``for chunk in turn: on_chunk(chunk)``, minus a thread hand-off per token: llama.cpp
        runs on one thread (``llama.LlamaThread``), and iterating from another thread wakes both threads
        for every token. When the model's threads take every core (the TUI on a 2-core laptop), that CPU
        comes out of generation. ``on_chunk`` must not block on the calling thread (it is waiting here).
        """
        engine = self.session.engine(self.model_id)

        def loop() -> None:
            for chunk in self:
                on_chunk(chunk)

        on_engine_thread = getattr(engine, "on_engine_thread", None)
        if on_engine_thread is None:
            loop()
        else:
            on_engine_thread(loop)

    def _run(self) -> Iterator[Chunk]:
        session, history = self.session, self.session.history
        engine = session.engine(self.model_id)
        self.model_id = engine.model_id
        messages = session.build_messages(self.chat_id, upto=self.user_message.id)
        reply_id = self.reply_id = history.start_reply(self.chat_id, engine.model_id, parent=self.user_message.id)
        parts = self._parts
        unsaved = 0
        last_save = time.monotonic()
        flush_s, flush_n = session.flush_seconds, session.flush_tokens
        try:
            for chunk in engine.stream(messages, self.options, self.cancel_token):
                if chunk.text:
                    parts.append(chunk.text)
                    unsaved += 1
                    now = time.monotonic()
                    if unsaved >= flush_n or now - last_save >= flush_s:
                        history.update_reply(reply_id, "".join(parts))
                        unsaved, last_save = 0, now
                if chunk.notice:
                    self.notices.append(chunk.notice)
                if chunk.stats is not None:
                    self.stats = chunk.stats
                yield chunk
        except BaseException:
            # cancelled by Ctrl+C, the consumer closed the iterator, or the engine failed: keep the text
            self._finish(partial=True)
            raise
        self._finish(partial=self.stats is None or self.stats.finish_reason == "cancelled")

    def _finish(self, *, partial: bool) -> None:
        text = self.text
        history = self.session.history
        assert self.reply_id is not None
        if not text:
            history.delete_message(self.reply_id)  # nothing was said: no empty reply in the chat
            return
        self.reply = history.finish_reply(self.reply_id, text, self.stats, partial=partial)


class ChatSession:
    """Chats over ``History`` with engines loaded on demand. See the module docstring."""

    def __init__(
        self,
        history: History | None = None,
        engine_factory: EngineFactory | None = None,
        *,
        settings: Settings | None = None,
        max_engines: int = 2,
        flush_seconds: float = FLUSH_SECONDS,
        flush_tokens: int = FLUSH_TOKENS,
    ) -> None:
        self._own_history = history is None
        self.history = history or History()
        self._settings = settings
        self._factory = engine_factory
        self.max_engines = max(1, max_engines)
        self.flush_seconds = flush_seconds
        self.flush_tokens = max(1, flush_tokens)
        self._engines: OrderedDict[str, ChatEngine] = OrderedDict()
        self._aliases: dict[str, str] = {}
        self._engines_lock = threading.Lock()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from . import config

            self._settings = config.load()
        return self._settings

    # -- engines ----------------------------------------------------------------------------------
    def engine(self, model_id: str | None = None) -> ChatEngine:
        """The loaded engine for ``model_id`` (default: the configured chat model), loading it if needed."""
        key = model_id or self.settings.models.chat
        with self._engines_lock:
            canonical = self._aliases.get(key, key)
            engine = self._engines.get(canonical)
            if engine is not None:
                self._engines.move_to_end(canonical)
                return engine
            engine = self._load(key)
            # "smollm2-135m-instruct" and "smollm2-135m-instruct:q4_1" must not load the model twice
            self._aliases[key] = engine.model_id
            self._engines[engine.model_id] = engine
            while len(self._engines) > self.max_engines:
                _, old = self._engines.popitem(last=False)
                old.close()
            return engine

    def _load(self, model_id: str) -> ChatEngine:
        if self._factory is not None:
            return self._factory(model_id)
        from .engine import load_engine

        return load_engine(model_id, self.settings)

    def loaded(self) -> list[str]:
        with self._engines_lock:
            return list(self._engines)

    def unload(self, model_id: str | None = None) -> None:
        """Close one engine (or all) to free memory."""
        with self._engines_lock:
            keys = [self._aliases.get(model_id, model_id)] if model_id else list(self._engines)
            for key in keys:
                engine = self._engines.pop(key, None)
                if engine is not None:
                    engine.close()

    def close(self) -> None:
        """Unload the engines (and close the history if this session opened it)."""
        self.unload()
        if self._own_history:
            self.history.close()

    # -- chats ------------------------------------------------------------------------------------
    def new_chat(
        self,
        *,
        model_id: str | None = None,
        system_prompt: str | None = None,
        options: dict[str, Any] | ChatOptions | None = None,
        title: str = "",
    ) -> Chat:
        """A chat with the given settings; the model and system prompt default to config.toml's."""
        return self.history.create_chat(
            title=title,
            model_id=model_id or self.settings.models.chat,
            system_prompt=self.settings.chat.system_prompt if system_prompt is None else system_prompt,
            options=options_dict(options),
        )

    def chat_options(self, chat: Chat, override: dict[str, Any] | ChatOptions | None = None) -> ChatOptions:
        """config.toml's [chat] defaults, then the chat's own options, then ``override``."""
        c = self.settings.chat
        merged: dict[str, Any] = {
            "temperature": c.temperature,
            "top_p": c.top_p,
            "max_tokens": c.max_tokens,
            "seed": c.seed,
        }
        merged.update(chat.options)
        merged.update(options_dict(override))
        try:
            return ChatOptions.model_validate(merged)
        except ValueError as exc:
            raise AssistantError(f"chat {chat.id}: bad options: {one_line(exc)}") from None

    def build_messages(self, chat_id: int, upto: int | None = None) -> list[Message]:
        """What the model sees: the system prompt, then the messages of the branch shown (or of the one
        ending at ``upto``; see the module docstring)."""
        chat = self.history.get_chat(chat_id)
        result: list[Message] = []
        if chat.system_prompt.strip():
            result.append(Message("system", chat.system_prompt))
        for m in self.history.messages(chat_id, upto):
            if not m.content.strip():
                continue
            if result and result[-1].role == m.role:
                result[-1] = Message(m.role, result[-1].content + "\n\n" + m.content)
            else:
                result.append(Message(m.role, m.content))
        return result

    def send(
        self,
        chat_id: int,
        text: str,
        *,
        options: dict[str, Any] | ChatOptions | None = None,
        cancel: CancelToken | None = None,
    ) -> Turn:
        """Store the user's message now; the returned ``Turn`` generates the reply when iterated."""
        if not text.strip():
            raise AssistantError("empty message", "type something to send")
        chat = self.history.get_chat(chat_id)
        opts = self.chat_options(chat, options)
        user_message = self.history.add_message(chat_id, "user", text)
        return Turn(self, chat, user_message, opts, cancel or CancelToken())

    def regenerate(
        self, chat_id: int, *, options: dict[str, Any] | ChatOptions | None = None, cancel: CancelToken | None = None
    ) -> Turn:
        """A new reply to the chat's last message: the last reply shown is kept as an alternative (its
        sibling), and the new one is shown. Also answers a last message whose reply failed or was lost."""
        chat = self.history.get_chat(chat_id)
        shown = self.history.messages(chat_id)
        if shown and shown[-1].role == "assistant":
            shown.pop()
        if not shown or shown[-1].role != "user":
            raise AssistantError(f"chat {chat_id} has no message to answer again", "send a message first")
        return Turn(self, chat, shown[-1], self.chat_options(chat, options), cancel or CancelToken())

    def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        options: dict[str, Any] | ChatOptions | None = None,
        cancel: CancelToken | None = None,
    ) -> Turn:
        """Send ``text`` in place of the user's message ``message_id``: stored as its sibling (the original and
        what followed it stay, another branch), shown, and answered."""
        if not text.strip():
            raise AssistantError("empty message", "type something to send")
        chat = self.history.get_chat(chat_id)
        original = self.history.get_message(message_id)
        if original.chat_id != chat_id or original.role != "user":
            raise AssistantError(f"message {message_id} is not one of yours in chat {chat_id}")
        opts = self.chat_options(chat, options)
        edited = self.history.add_message(chat_id, "user", text, parent=original.parent_id)
        return Turn(self, chat, edited, opts, cancel or CancelToken())


def options_dict(options: dict[str, Any] | ChatOptions | None) -> dict[str, Any]:
    if options is None:
        return {}
    if isinstance(options, ChatOptions):
        return options.model_dump(exclude_unset=True)
    try:
        ChatOptions.model_validate(options)  # unknown keys and bad values fail here, not mid-chat
    except ValueError as exc:
        raise AssistantError(f"bad chat options: {one_line(exc)}", "see 'assistant chat --help'") from None
    return dict(options)
