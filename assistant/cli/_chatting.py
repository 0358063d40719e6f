"""What ``assistant chat`` and the voice commands share: a chat session over the configured models,
the chat to talk in, and Ctrl+C stopping a reply cleanly."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import AssistantError

if TYPE_CHECKING:
    from ..history import Chat
    from ..session import ChatSession, Turn


def checked_text(text: str, what: str) -> str:
    """``text`` if it can be stored and shown: valid Unicode. A command-line argument that is not UTF-8
    arrives with lone surrogates (Python's surrogateescape); it is refused before anything is stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AssistantError(
            f"{what} is not valid UTF-8 text (bad character at position {exc.start}); nothing was sent",
            "convert it to UTF-8 first, e.g. with iconv",
        ) from None
    return text


def read_stdin() -> str | None:
    """The prompt piped on stdin, or None when stdin is a terminal (the caller holds a conversation).

    Read as bytes and decoded strictly: text that is not UTF-8 is refused, never half-stored. A closed
    stdin (``<&-``: Python sets ``sys.stdin`` to None) is one clear error."""
    stdin = sys.stdin
    if stdin is None:
        raise AssistantError("no prompt: stdin is closed", "pass --prompt TEXT or pipe some text in")
    if stdin.isatty():
        return None
    raw = getattr(stdin, "buffer", None)
    if raw is None:  # replaced by a text-only stream (an embedding, a test runner)
        return checked_text(stdin.read(), "stdin")
    data = raw.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AssistantError(
            f"stdin is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); nothing was sent",
            "convert it to UTF-8 first, e.g. iconv -f latin1 -t utf-8",
        ) from None


def open_session(n_ctx: int | None, speculative: str | None = None) -> ChatSession:
    from .. import config
    from ..engine import load_engine
    from ..session import ChatSession

    settings = config.load()
    if speculative is not None:  # --speculative: this run's runtime.speculative
        settings = config.with_speculative(settings, speculative)
    return ChatSession(settings=settings, engine_factory=lambda mid: load_engine(mid, settings, n_ctx=n_ctx))


def open_chat(
    session: ChatSession,
    chat_id: int | None,
    model_id: str | None,
    system_prompt: str | None,
    overrides: dict[str, Any],
) -> Chat:
    """The chat to talk in, with the model loaded first: a bad --model must not leave an empty chat."""
    history = session.history
    if chat_id is not None:
        existing = history.get_chat(chat_id)
        engine = session.engine(model_id or existing.model_id)
        if model_id or system_prompt is not None or overrides:
            # flags given with --chat become the chat's settings from now on
            return history.update_chat(
                chat_id,
                model_id=engine.model_id if model_id else None,
                system_prompt=system_prompt,
                options={**existing.options, **overrides} if overrides else None,
            )
        return existing
    engine = session.engine(model_id)
    return session.new_chat(model_id=engine.model_id, system_prompt=system_prompt, options=overrides)


@contextlib.contextmanager
def ctrl_c_cancels(turn: Turn) -> Iterator[None]:
    """While a reply streams, Ctrl+C stops it cleanly after the current token; a second Ctrl+C aborts."""

    def handler(signum: int, frame: Any) -> None:
        if turn.cancel_token.cancelled:
            raise KeyboardInterrupt
        turn.cancel()

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
