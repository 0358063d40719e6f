"""The terminal app: chats in a sidebar, a streaming chat view, a prompt, a status line, a footer.

Every blocking call (model load, generation, downloads, database reads and writes) runs in a thread
worker; workers post past-tense messages (``ReplyStreamed``, ``ModelLoaded``...) and never touch widgets.
Worker failures all go through ``handle_worker_state``: one notification line, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import os
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState, get_current_worker

from .. import errors
from ..errors import AssistantError
from ..untrusted import clean, escape_content
from .backend import Backend, EngineFactory
from .chat_log import ChatLog, NoticeView, ReplyTurn, UserTurn, code_blocks
from .messages import (
    ChatCreated,
    ChatOpened,
    ChatsListed,
    ChatSummary,
    ModelLoaded,
    ReplyFinished,
    ReplyPainted,
    ReplyStreamed,
    Settle,
)
from .prompt_bar import PromptBar
from .sidebar import ChatList, Sidebar
from .status_bar import State, StatusBar
from .voice import VoicePanel

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from ..chat import CancelToken, ChatEngine, Chunk, Stats
    from ..config import Settings
    from ..tts import Speaker
    from .first_run import StarterPuller

# Screens and dialogs not needed for the first frame are imported when first shown: a shorter first paint.

# Below this many columns the sidebar is hidden unless toggled on (it then covers the chat).
SIDEBAR_BREAKPOINT = 80
# Streaming repaints. Each ReplyStreamed costs the UI thread a Markdown append, a layout and a paint (5-10 ms
# with Textual, more as a reply grows). When the model's threads take every core, that CPU comes straight
# out of generation: on a 2-core laptop each 1 % of a core the UI uses costs about 1-2 % of tok/s. So the
# pace adapts: the app measures the UI thread's CPU per update and spaces the next one so updates use at
# most STREAM_CPU_SHARE_BUSY of a core (STREAM_CPU_SHARE_SPARE when a core is left over for the UI),
# never more often than STREAM_INTERVAL_MIN (10 a second reads as smooth) nor rarer than _MAX.
STREAM_INTERVAL_MIN = 0.1
STREAM_INTERVAL_MAX = 0.5
STREAM_CPU_SHARE_BUSY = 0.02
STREAM_CPU_SHARE_SPARE = 0.25
# After mounting, the settings are read once the footer's keys are on screen (see _after_first_frame),
# or after this long at most; FRAME is about one repaint at Textual's 60 Hz.
FIRST_FRAME_WAIT = 0.3
FRAME = 0.02
# Before a reply starts, the worker waits this long at most for the UI to paint the new turn (see Settle).
SETTLE_TIMEOUT = 0.5
# While a reply streams, the generation thread re-takes the GIL after every llama.cpp call; with
# CPython's default 5 ms switch interval a busy UI thread can hold it that long each time. 1 ms bounds it.
GIL_SWITCH_INTERVAL = 0.001
# The live tok/s figure changes at most this often (each change re-lays out the status line).
SPEED_INTERVAL = 0.5
# On quit, how long to let a cancelled reply store itself (it stops after the current token).
QUIT_WAIT = 5.0

WORKER_LABELS = {
    "generate": "reply failed",
    "model": "model load failed",
    "download": "download failed",
    "chats": "chat history",
    "db": "saving failed",
    "startup": "startup",
    "model-list": "model list",
    "dictation": "dictation",
}


class KeyFooter(Footer):
    """Textual's Footer, with its keys in the first frame: the stock one composes them only after the
    bindings-changed signal, a few repaints later (50-60 ms of first paint here). It relies on Footer's
    ``_bindings_ready`` flag; a test checks the keys are there at mount, so a Textual change shows up."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(Footer._bindings_ready, True)


class DictationPanel(VoicePanel):
    """The speech helper's ``VoicePanel``, with its worker failures sent to the app's one handler."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Textual also runs VoicePanel's own handler (it hides the panel): handlers run along the MRO.
        self.app.handle_worker_state(event.worker, event.state)  # type: ignore[attr-defined]


def one_line(error: BaseException | None) -> str:
    """What the user sees for a failure: the message itself, one line, no traceback."""
    return errors.one_line(error, typed=True)


def _main_screen_only(handler: Callable[..., Any]) -> Callable[..., Any]:
    """For handlers of worker results, which update the main screen's widgets: a result that arrives after
    those widgets were removed (the user quit while a reply or a load was finishing) is dropped, not turned
    into a NoMatches crash on the way out."""

    @functools.wraps(handler)
    async def handle(app: AssistantApp, message: Any) -> None:
        if not app.screen_stack or not app.screen_stack[0].query(StatusBar):
            return
        result = handler(app, message)
        if inspect.isawaitable(result):
            await result

    return handle


def stream_cpu_share(model_threads: int) -> float:
    """The share of a core streaming repaints may use: small when the model's threads take every core."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return STREAM_CPU_SHARE_BUSY if model_threads >= cores else STREAM_CPU_SHARE_SPARE


class _ReplyPump:
    """Takes a reply's chunks on the engine's thread (``Backend.reply``) and posts them to the app in
    batches, at most every ``app.stream_interval`` seconds. Never blocks: the model is waiting on it."""

    def __init__(self, app: AssistantApp, worker: Worker[Any], cancel: CancelToken, speaker: Speaker | None) -> None:
        self.app = app
        self.worker = worker
        self.cancel = cancel
        self.speaker = speaker
        self.parts: list[str] = []
        self.stats: Stats | None = None
        self._buffer: list[str] = []
        self._notices: list[str] = []
        self._tokens = 0
        self._first = self._last_post = 0.0

    def __call__(self, chunk: Chunk) -> None:
        if self.worker.is_cancelled:
            self.cancel.cancel()  # keep going: the session finishes and stores the partial reply
        if chunk.notice:
            self._notices.append(chunk.notice)
        if chunk.text:
            now = time.perf_counter()
            if not self._tokens:
                self._first, self._last_post = now, now - STREAM_INTERVAL_MAX  # the first text goes at once
            self._tokens += 1
            self._buffer.append(chunk.text)
            self.parts.append(chunk.text)
            if self.speaker is not None:
                self.speaker.feed(chunk.text)
            if now - self._last_post >= self.app.stream_interval:
                self.flush(now)
        if chunk.stats is not None:
            self.stats = chunk.stats

    def flush(self, now: float | None = None) -> None:
        """Post what has not been posted yet."""
        if self._buffer or self._notices:
            now = time.perf_counter() if now is None else now
            elapsed = now - self._first if self._tokens else 0.0
            self.app.post_message(ReplyStreamed("".join(self._buffer), self._notices, self._tokens, elapsed))
            self._buffer, self._notices, self._last_post = [], [], now


class AssistantApp(App[None]):
    """Chat with local models. ``engine_factory`` and ``puller`` exist so tests can script them."""

    # Anchored to this file, not to the class: Textual resolves a relative CSS_PATH next to the module of
    # the class being run, which breaks subclasses defined elsewhere (tests, benchmarks).
    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "assistant"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (SIDEBAR_BREAKPOINT, "-wide")]  # noqa: RUF012

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "new_chat", "New chat", id="new_chat", tooltip="Start a new chat"),
        Binding("escape", "stop", "Stop", id="stop", tooltip="Stop the reply (what was written is kept)"),
        Binding("ctrl+b", "toggle_sidebar", "Chats", id="toggle_sidebar", tooltip="Show or hide the chat list"),
        Binding("ctrl+o", "pick_model", "Model", id="pick_model", tooltip="Choose the chat model"),
        Binding("ctrl+t", "dictate", "Dictate", id="dictate", tooltip="Start or stop dictation (speech to text)"),
        Binding("f2", "copy_reply", "Copy reply", id="copy_reply", tooltip="Copy the last reply"),
        Binding("f3", "copy_code", "Copy code", id="copy_code", tooltip="Copy the last code block"),
        Binding("f9", "open_bench", "Benchmarks", id="open_bench", tooltip="Stored benchmark runs and plots"),
        Binding("ctrl+r", "rename_chat", "Rename", id="rename_chat", show=False, tooltip="Rename this chat"),
        Binding("f8", "delete_chat", "Delete chat", id="delete_chat", show=False, tooltip="Delete this chat"),
        Binding("ctrl+q", "quit", "Quit", id="quit", tooltip="Quit (a reply in progress is stopped and kept)"),
    ]

    # action -> (palette title, palette help); every binding is also a palette command.
    PALETTE: ClassVar[dict[str, tuple[str, str]]] = {
        "new_chat": ("New chat", "Start a new, empty chat"),
        "stop": ("Stop reply", "Stop generating; the partial reply is kept and marked"),
        "toggle_sidebar": ("Toggle chat list", "Show or hide the sidebar of chats"),
        "pick_model": ("Choose model", "Installed models with size, quantization and memory fit"),
        "dictate": ("Dictate", "Speak instead of typing: start, or stop and put the text in the prompt"),
        "copy_reply": ("Copy last reply", "Copy the last assistant reply to the clipboard"),
        "copy_code": ("Copy last code block", "Copy the last fenced code block to the clipboard"),
        "rename_chat": ("Rename chat", "Give this chat a new title"),
        "delete_chat": ("Delete chat", "Delete this chat and its messages"),
        "open_bench": ("Benchmarks", "Stored benchmark runs: speed and quality of each model variant"),
        "focus_prompt": ("Focus prompt", "Move the cursor to the message box"),
    }

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        engine_factory: EngineFactory | None = None,
        puller: StarterPuller | None = None,
        backend: Backend | None = None,
        voice_options: dict[str, Any] | None = None,
    ) -> None:
        # config.toml is validated just after the first frame (see settings): pydantic takes ~50 ms to
        # import. The first frame only needs the theme and the keymap, read from the file as they are.
        self._settings = settings
        theme, self._keymap_setting = (settings.ui.theme, dict(settings.ui.keymap)) if settings else peek_ui_settings()
        self.fatal: AssistantError | None = None  # a config error found after the first frame; run() raises it
        super().__init__()
        self._backend = backend
        self._engine_factory = engine_factory
        self.puller = puller
        self.voice_options = voice_options or {}  # VoicePanel factories (tests script the audio)
        self.engine: ChatEngine | None = None
        self.model_id: str | None = None
        self.chat: ChatSummary | None = None
        self.chats: list[ChatSummary] = []
        self.generating = False
        # A model is loading, or about to be (the app is starting): a message sent meanwhile waits for it.
        self._model_coming = True
        # That message: shown as sent, its reply starts once the model is loaded (see on_model_loaded).
        self._waiting: str | None = None
        self._waiting_turn: UserTurn | None = None
        self._cancel: CancelToken | None = None
        self._reply: ReplyTurn | None = None
        self._reply_chat: ChatSummary | None = None
        self._notices_shown: set[str] = set()
        self._speaker: Speaker | None = None
        self._said_no_tts = False
        self._switch_interval = sys.getswitchinterval()
        self._gc_was_enabled = True
        self._gc_frozen = False
        self._speed_shown = 0.0
        # Read by the reply's thread (_ReplyPump), set here after each update (_pace_stream).
        self.stream_interval = STREAM_INTERVAL_MIN
        self._stream_cpu: float | None = None
        self._stream_share = STREAM_CPU_SHARE_BUSY  # set from the thread count once settings are read
        self.theme = theme if theme in self.available_themes else "textual-dark"

    @property
    def settings(self) -> Settings:
        """config.toml, validated: read on the UI thread after the first frame (``_after_first_frame``),
        before any worker starts."""
        if self._settings is None:
            from .. import config

            self._settings = config.load()
        return self._settings

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = Backend(self.settings, self._engine_factory)
        return self._backend

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield Sidebar(id="sidebar")
            with Vertical(id="main"):
                yield ChatLog(id="chat-log")
                yield DictationPanel(id="voice", **self.voice_options)
                yield PromptBar(id="prompt")
        yield StatusBar(id="status")
        yield KeyFooter(id="footer")

    def on_mount(self) -> None:
        self._apply_keymap()
        prompt = self.query_one(PromptBar)
        prompt.gate = self._may_send
        prompt.focus()
        self._refresh_title()
        self._first_frame_deadline = time.monotonic() + FIRST_FRAME_WAIT
        self.set_timer(FRAME, self._after_first_frame)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification, the screens' too (``Widget.notify`` calls this): plain text, control codes
        stripped, whatever ``markup`` says. They carry error texts, chat titles and model names: data."""
        super().notify(
            clean(message), title=clean(title, one_line=True), severity=severity, timeout=timeout, markup=False
        )

    def _after_first_frame(self) -> None:
        """Once the first complete frame is out (it includes the footer's keys, which Textual adds a few
        repaints in), read what would have delayed it: the settings, then the models and chats."""
        keys = self.query_one(Footer).children
        if not (keys and all(key.region for key in keys)) and time.monotonic() < self._first_frame_deadline:
            self.set_timer(FRAME, self._after_first_frame)  # timers, not call_after_refresh: that waits for a repaint
            return
        self.set_timer(FRAME, self._read_settings_and_start)  # a frame later: the keys are painted first

    def _read_settings_and_start(self) -> None:
        try:
            settings = self.settings
        except AssistantError as exc:  # a bad config.toml: quit, and run() reports it in one line
            self.fatal = exc
            self.exit(return_code=1)
            return
        if settings.ui.keymap != self._keymap_setting:
            self._keymap_setting = dict(settings.ui.keymap)
            self._apply_keymap()
        self._stream_share = stream_cpu_share(settings.threads())
        self._startup()

    def on_resize(self, event: events.Resize) -> None:
        # A phone-sized terminal fits more keys in the footer without the padding.
        self.query_one(Footer).compact = event.size.width < SIDEBAR_BREAKPOINT

    def _apply_keymap(self) -> None:
        keymap = self._keymap_setting
        known = {b.id for b in self._bindings_with_ids() if b.id}
        unknown = sorted(set(keymap) - known)
        if unknown:
            self.notify(
                f"ui.keymap: unknown binding id {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                severity="warning",
            )
        self.set_keymap({k: v for k, v in keymap.items() if k in known})

    def _bindings_with_ids(self) -> list[Binding]:
        found = [b for b in self.BINDINGS if isinstance(b, Binding) and b.id]
        found += [b for b in PromptBar.BINDINGS if isinstance(b, Binding) and b.id]
        return found

    @property
    def on_main_screen(self) -> bool:
        return len(self.screen_stack) == 1

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("quit", "command_palette"):
            return True
        if action in self.PALETTE and not self.on_main_screen:
            return False
        return self._allowed(action)

    def _allowed(self, action: str) -> bool | None:
        """Whether an action can run now, on the main screen (see ``check_action``)."""
        if action == "stop":
            voice = self._voice()
            return self.generating or (voice is not None and voice.busy)
        if action in ("rename_chat", "delete_chat") and self.chat is None:
            return False
        if action in ("pick_model", "delete_chat", "new_chat"):
            return None if self.generating else True
        return True

    # ---------------------------------------------------------------- command palette

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        # ``screen`` is the one the palette was opened from (the palette itself is on top while it asks).
        if not self.screen_stack or screen is not self.screen_stack[0]:
            return
        keys = {b.action: self._keymap.get(b.id or "", b.key) for b in self._bindings_with_ids()}
        for action, (title, help_text) in self.PALETTE.items():
            if self._allowed(action) is not True:
                continue
            shown = keys.get(action)
            yield SystemCommand(title, f"{help_text} ({shown})" if shown else help_text, self._palette_action(action))
        for n, block in enumerate(self.query_one(ChatLog).all_code_blocks(), start=1):
            first = block.strip().splitlines()[0] if block.strip() else ""
            help_text = escape_content(first[:60], one_line=True)  # the palette parses titles and help as markup
            yield SystemCommand(f"Copy code block {n}", help_text, self._copy_callback(block, f"code block {n}"))
        for chat in self.chats:
            if self.chat is None or chat.id != self.chat.id:
                title = f"Open chat: {escape_content(chat.title, one_line=True)}"
                yield SystemCommand(title, "Switch to this chat", self._open_callback(chat), False)

    def _palette_action(self, action: str) -> Callable[[], Any]:
        return lambda: self.run_action(action)

    def _copy_callback(self, text: str, what: str) -> Callable[[], None]:
        return lambda: self._copy(text, what)

    def _open_callback(self, chat: ChatSummary) -> Callable[[], None]:
        return lambda: self.open_chat(chat)

    # ---------------------------------------------------------------- startup, models

    @work(thread=True, exclusive=True, exit_on_error=False, group="startup")
    def _startup(self) -> None:
        # Off the UI thread, so the first reply does not stop the screen to import them.
        from textual.widgets import Markdown  # noqa: F401

        from .. import chat  # noqa: F401

        models = self.backend.installed_llms()
        self.post_message(ChatsListed(self.backend.list_chats()))
        if not models:
            self.call_from_thread(self.call_later, self._no_model_coming)
            starters = self.backend.starters()
            self.call_from_thread(self._show_first_run, starters)
            return
        wanted = self.settings.models.chat
        model_id = wanted if wanted in models else models[0]
        self.call_from_thread(self.load_model, model_id)

    def _show_first_run(self, starters: list[tuple[str, int | None]]) -> None:
        from .first_run import FirstRunScreen

        self.push_screen(FirstRunScreen(starters, self.puller), self._first_run_done)

    def _first_run_done(self, installed: bool | None) -> None:
        if installed:
            self._startup()

    def load_model(self, model_id: str) -> None:
        self.engine = None
        self.model_id = model_id
        self._model_coming = True
        status = self.query_one(StatusBar)
        status.model_id = model_id
        status.state = "loading"
        status.tokens_per_second = None
        prompt = self.query_one(PromptBar)
        prompt.placeholder = Content(clean(f"Loading {model_id}…", one_line=True))  # a str is parsed as markup
        self._load_model(model_id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="model")
    def _load_model(self, model_id: str) -> None:
        engine = self.backend.load_engine(model_id)
        if not get_current_worker().is_cancelled:  # else another model was chosen meanwhile
            self.post_message(ModelLoaded(model_id, engine, engine.context_size))

    @_main_screen_only
    def on_model_loaded(self, message: ModelLoaded) -> None:
        if message.model_id != self.model_id:
            return  # a later choice is loading; the backend unloads this one then
        self.engine = message.engine
        if not self._gc_frozen:
            # Everything loaded so far lives as long as the app: keep it out of every later collection,
            # which makes each one several times shorter. No collection first: it would stall the screen
            # as long as the ones this shortens; the little startup garbage is simply frozen too.
            self._gc_frozen = True
            gc.freeze()
        status = self.query_one(StatusBar)
        status.state = "ready"
        status.context_total = message.context_size
        self.query_one(PromptBar).placeholder = PromptBar.DEFAULT_PLACEHOLDER
        self.refresh_bindings()
        if self._waiting is not None and self._cancel is not None:  # sent while the model was loading: go
            text, self._waiting, self._waiting_turn = self._waiting, None, None
            status.state = "generating"
            self._generate(self.engine, self._reply_chat, text, self._cancel)
        elif self.chat is not None:
            self._count_context(self.chat.id)

    async def _no_model_coming(self) -> None:
        """No model will load (none installed, or the load failed): a message waiting for one goes back
        into the box."""
        self._model_coming = False
        await self._take_back_waiting()

    async def _take_back_waiting(self) -> None:
        """Put a message that waits for the model back into the box, where the user typed it (it was never
        stored), before anything typed since."""
        text, self._waiting = self._waiting, None
        if text is None:
            return
        for widget in (self._waiting_turn, self._reply):  # the message and its empty reply leave the chat
            if widget is not None:
                await widget.remove()
        self._waiting_turn = self._reply = None
        log = self.query_one(ChatLog)
        if not log.turns:
            await log.clear()  # the chat's hint comes back
        self._set_generating(False)
        self.query_one(PromptBar).give_back(text)

    def action_pick_model(self) -> None:
        runtime = self.settings.runtime
        from .model_picker import ModelPicker

        self.push_screen(ModelPicker(self.model_id, runtime.context_size, runtime.batch_size), self._model_picked)

    def _model_picked(self, model_id: str | None) -> None:
        if model_id and model_id != self.model_id and not self.generating:
            self.load_model(model_id)

    # ---------------------------------------------------------------- chats

    @_main_screen_only
    def on_chats_listed(self, message: ChatsListed) -> None:
        self.chats = message.chats
        current = message.select if message.select is not None else (self.chat.id if self.chat else None)
        self.query_one(ChatList).show(self.chats, current)

    @on(ChatList.ChatChosen)
    def _chat_chosen(self, event: ChatList.ChatChosen) -> None:
        self.open_chat(event.chat)
        if self.screen.has_class("-narrow"):
            self.screen.remove_class("-sidebar-open")
        self.query_one(PromptBar).focus()

    def open_chat(self, chat: ChatSummary) -> None:
        if self.generating:
            self.notify("Stop the reply first (Esc).", severity="warning")
            return
        self.chat = chat
        self._refresh_title()
        self._read_chat(chat)

    @work(thread=True, exclusive=True, exit_on_error=False, group="chats")
    def _read_chat(self, chat: ChatSummary) -> None:
        summary, turns = self.backend.open_chat(chat.id)
        used = self.backend.count_context(chat.id, self.engine) if self.engine is not None else None
        if not get_current_worker().is_cancelled:
            self.post_message(ChatOpened(summary, turns, used))

    @_main_screen_only
    async def on_chat_opened(self, message: ChatOpened) -> None:
        if self.chat is None or message.chat.id != self.chat.id:
            return
        log = self.query_one(ChatLog)
        await log.clear()
        self._notices_shown.clear()
        for turn in message.turns:
            if turn.notice:
                await log.add_notice(turn.notice)
            if turn.role == "user":
                await log.add_user(turn.content)
            elif turn.role == "assistant":
                await log.add_reply(turn.content, partial=turn.partial)
        self.query_one(ChatList).mark(message.chat.id)
        status = self.query_one(StatusBar)
        status.context_used = message.context_used
        status.tokens_per_second = None

    @work(thread=True, exclusive=True, exit_on_error=False, group="context")
    def _count_context(self, chat_id: int | str) -> None:
        engine = self.engine
        if engine is None:
            return
        used = self.backend.count_context(chat_id, engine)
        self.call_from_thread(self._set_context_used, chat_id, used)

    def _set_context_used(self, chat_id: int | str, used: int | None) -> None:
        if self.chat is not None and self.chat.id == chat_id:
            self.query_one(StatusBar).context_used = used

    async def action_new_chat(self) -> None:
        if self.generating:
            self.notify("Stop the reply first (Esc).", severity="warning")
            return
        self.chat = None
        self._notices_shown.clear()
        await self.query_one(ChatLog).clear()
        self.query_one(ChatList).mark(None)
        status = self.query_one(StatusBar)
        status.context_used = None
        status.tokens_per_second = None
        self._refresh_title()
        self.query_one(PromptBar).focus()

    def action_rename_chat(self) -> None:
        chat = self.chat
        if chat is None:
            return

        def renamed(title: str | None) -> None:
            if title and title != chat.title:
                chat.title = title
                self._refresh_title()
                self._rename(chat.id, title)

        from .dialogs import RenameChat

        self.push_screen(RenameChat(clean(chat.title, one_line=True)), renamed)

    @work(thread=True, exit_on_error=False, group="db")
    def _rename(self, chat_id: int | str, title: str) -> None:
        # Writes are never exclusive: a later write must not cancel an earlier one.
        self.backend.rename_chat(chat_id, title)
        self.post_message(ChatsListed(self.backend.list_chats()))

    def action_delete_chat(self) -> None:
        chat = self.chat
        if chat is None or self.generating:
            return

        async def confirmed(yes: bool | None) -> None:
            if yes:
                await self.action_new_chat()
                self._delete(chat.id)

        from .dialogs import Confirm

        self.push_screen(Confirm(f"Delete “{clean(chat.title, one_line=True)}”?"), confirmed)

    @work(thread=True, exit_on_error=False, group="db")
    def _delete(self, chat_id: int | str) -> None:
        self.backend.delete_chat(chat_id)
        self.post_message(ChatsListed(self.backend.list_chats()))

    def _refresh_title(self) -> None:
        self.sub_title = clean(self.chat.title, one_line=True) if self.chat else "new chat"

    # ---------------------------------------------------------------- sending, streaming

    def _may_send(self, text: str) -> bool:
        """Asked by the prompt on Enter: a message can go while a model is loaded or on its way."""
        if self.generating:
            return False  # one reply at a time; the text stays in the box
        if self.engine is None and not self._model_coming:
            self.notify("No model loaded.", severity="warning")
            return False
        return True

    @on(PromptBar.Submitted)
    async def _send(self, event: PromptBar.Submitted) -> None:
        text = event.text  # it left the box on Enter: what was typed after it is the next message
        if not self._may_send(text):  # something changed since Enter (a second Enter came first)
            event.prompt.give_back(text)
            return
        log = self.query_one(ChatLog)
        log.anchor()  # sending always follows the reply, even if the user had scrolled up
        user_turn = await log.add_user(text)
        self._reply = await log.add_reply(streaming=True)
        self._reply_chat = self.chat
        from ..chat import CancelToken

        self._cancel = CancelToken()
        self._set_generating(True)
        status = self.query_one(StatusBar)
        status.tokens_per_second = None
        self._stream_cpu = None  # the pace carries over from the last reply; its first update goes at once
        if self.engine is None:  # the app is starting or the model loading: the reply starts once it is loaded
            self._waiting, self._waiting_turn = text, user_turn
            status.state = self._idle_state()
            return
        self._generate(self.engine, self.chat, text, self._cancel)

    def _set_generating(self, value: bool) -> None:
        if value and not self.generating:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch_interval, GIL_SWITCH_INTERVAL))
            # A full garbage collection of a Textual app takes 40-70 ms: a stall of the keys and of
            # generation. None runs while a reply streams (the little cyclic garbage waits); one may run after.
            self._gc_was_enabled = gc.isenabled()
            gc.disable()
        elif not value and self.generating:
            sys.setswitchinterval(self._switch_interval)
            if self._gc_was_enabled:
                gc.enable()
        self.generating = value
        # The prompt's blinking cursor repaints twice a second: CPU the model would use (see STREAM_CPU_SHARE_BUSY)
        self.query_one(PromptBar).cursor_blink = not value
        self.query_one(StatusBar).state = "generating" if value else self._idle_state()
        self.refresh_bindings()

    def _idle_state(self) -> State:
        if self.engine is not None:
            return "ready"
        return "loading" if self._model_coming and self.model_id else "no model"

    @work(thread=True, exclusive=True, exit_on_error=False, group="generate")
    def _generate(self, engine: ChatEngine, chat: ChatSummary | None, text: str, cancel: CancelToken) -> None:
        if chat is None:
            chat = self.backend.create_chat(text, engine.model_id)
            self.post_message(ChatCreated(chat))
        # The new turn (and a new chat's sidebar row) is laid out and painted before the reply starts, so
        # that work does not compete with generation for the CPU; it costs the reply a few milliseconds.
        settled = threading.Event()
        self.post_message(Settle(settled))
        settled.wait(SETTLE_TIMEOUT)
        pump = _ReplyPump(self, get_current_worker(), cancel, self._new_speaker())
        self._speaker = pump.speaker
        self.backend.reply(chat.id, engine.model_id, text, cancel, pump)
        pump.flush()
        stats = pump.stats
        partial = cancel.cancelled or (stats is not None and stats.finish_reason == "cancelled")
        if pump.speaker is not None:
            if partial:
                pump.speaker.stop()
            else:
                pump.speaker.finish(timeout=0)  # speak the rest in its own thread; do not wait for it
        self.post_message(ReplyFinished(chat.id, stats, partial, "".join(pump.parts)))

    def on_settle(self, message: Settle) -> None:
        self.call_after_refresh(message.done.set)

    def _new_speaker(self) -> Speaker | None:
        """A reader for this reply when ``speech.speak_replies`` is on (espeak-ng missing: said once)."""
        if not self.settings.speech.speak_replies:
            return None
        from .. import tts

        if not tts.available():
            if not self._said_no_tts:
                self._said_no_tts = True
                self.call_from_thread(
                    self.notify, f"cannot read replies aloud ({tts.MISSING_HINT})", severity="warning"
                )
            return None
        if self._speaker is not None:
            self._speaker.stop()  # one voice at a time: a new reply interrupts the last one
        return tts.Speaker()

    @_main_screen_only
    def on_chat_created(self, message: ChatCreated) -> None:
        if self._reply_chat is None and self.chat is None:
            self.chat = message.chat
            self._reply_chat = message.chat
            self._refresh_title()
        self.chats = [message.chat, *[c for c in self.chats if c.id != message.chat.id]]
        self.query_one(ChatList).show(self.chats, self.chat.id if self.chat else None)

    @_main_screen_only
    async def on_reply_streamed(self, message: ReplyStreamed) -> None:
        self._pace_stream()
        for notice in message.notices:
            await self._show_notice(notice)
        if self._reply is not None and message.text:
            await self._reply.append(message.text)
            self.call_after_refresh(self._painted, message.tokens)
        now = time.monotonic()
        if message.elapsed > 0 and message.tokens > 1 and now - self._speed_shown >= SPEED_INTERVAL:
            self._speed_shown = now
            self.query_one(StatusBar).tokens_per_second = (message.tokens - 1) / message.elapsed

    def _painted(self, tokens: int) -> None:
        self.post_message(ReplyPainted(tokens, time.perf_counter()))

    def _pace_stream(self) -> None:
        """Space the next update by what the UI thread spent since the last one (see STREAM_CPU_SHARE_BUSY)."""
        cpu = time.thread_time()  # this thread's CPU: the last update's append, layout and paint, and the rest
        if self._stream_cpu is not None:
            wanted = (cpu - self._stream_cpu) / self._stream_share
            self.stream_interval = min(STREAM_INTERVAL_MAX, max(STREAM_INTERVAL_MIN, wanted))
        self._stream_cpu = cpu

    async def _show_notice(self, notice: str) -> None:
        if notice in self._notices_shown:  # once per chat: a base model says "completion mode" every turn
            return
        self._notices_shown.add(notice)
        log = self.query_one(ChatLog)
        if self._reply is not None and self._reply.is_mounted:
            await log.mount(NoticeView(notice), before=self._reply)
        else:
            await log.add_notice(notice)

    @_main_screen_only
    async def on_reply_finished(self, message: ReplyFinished) -> None:
        stats = message.stats
        if stats is not None:
            # Engines are expected to send these as Chunk.notice; say it ourselves if this chat has not heard it.
            said = " ".join(self._notices_shown)
            if stats.completion_mode and "completion mode" not in said:
                await self._show_notice("completion mode: this model has no chat template, it continues your text")
            if stats.dropped_messages and "trimmed" not in said:
                await self._show_notice(f"history trimmed: {stats.dropped_messages} oldest messages dropped")
        if self._reply is not None:
            await self._reply.finish(partial=message.partial, text=message.text or None)
        self._reply = None
        self._set_generating(False)
        status = self.query_one(StatusBar)
        if stats is not None:
            if stats.tokens_per_second:
                status.tokens_per_second = stats.tokens_per_second
            if self.chat is not None and self.chat.id == message.chat_id:
                status.context_used = stats.prompt_tokens + stats.completion_tokens
        if stats is not None and stats.finish_reason == "length":
            await self._show_notice("reply cut at the max_tokens limit (chat.max_tokens)")

    def action_stop(self) -> None:
        voice = self._voice()
        if voice is not None and voice.busy and not self.generating:
            voice.cancel()  # Esc drops a recording: no text
            return
        if self._waiting is not None:  # not sent yet: back into the box
            self.call_later(self._take_back_waiting)
            return
        if self._cancel is not None and self.generating:
            self._cancel.cancel()
        if self._speaker is not None:
            self._speaker.stop()

    # ---------------------------------------------------------------- misc actions

    def action_toggle_sidebar(self) -> None:
        screen = self.screen
        if screen.has_class("-narrow"):
            screen.toggle_class("-sidebar-open")
            if screen.has_class("-sidebar-open"):
                self.query_one(ChatList).focus()
            else:
                self.query_one(PromptBar).focus()
        else:
            screen.toggle_class("-sidebar-closed")

    # ---------------------------------------------------------------- dictation (assistant/ui/voice.py)

    def _voice(self) -> DictationPanel | None:
        """The dictation panel, which lives on the main screen (bindings are checked while other screens
        are on top, and while the app shuts down)."""
        if not self.screen_stack:
            return None
        found = self.screen_stack[0].query(DictationPanel)
        return found.first() if found else None

    def action_dictate(self) -> None:
        voice = self._voice()
        if voice is not None:
            voice.toggle()
        self.refresh_bindings()

    def on_voice_panel_dictation_started(self, message: VoicePanel.DictationStarted) -> None:
        self.refresh_bindings()

    def on_voice_panel_dictation_finished(self, message: VoicePanel.DictationFinished) -> None:
        self.refresh_bindings()
        text = message.text.strip()
        if not text:
            self.notify("Nothing was heard.", severity="warning", timeout=3)
            return
        prompt = self.query_one(PromptBar)
        if prompt.text and not prompt.text.endswith((" ", "\n")):
            text = " " + text
        prompt.insert(text, prompt.document.end)
        prompt.focus()
        if self.settings.speech.auto_send:
            prompt.action_submit()

    def on_voice_panel_dictation_failed(self, message: VoicePanel.DictationFailed) -> None:
        self.refresh_bindings()
        self.notify(message.error, title="dictation", severity="error", timeout=8)

    def on_voice_panel_dictation_cancelled(self, message: VoicePanel.DictationCancelled) -> None:
        self.refresh_bindings()

    # ---------------------------------------------------------------- other screens

    def action_open_bench(self) -> None:
        from .bench_screen import BenchScreen  # imported on use: it pulls in the plotting code

        self.push_screen(BenchScreen())

    def action_focus_prompt(self) -> None:
        self.query_one(PromptBar).focus()

    def action_copy_reply(self) -> None:
        text = self.query_one(ChatLog).last_reply_text()
        if not text:
            self.notify("No reply to copy yet.", severity="warning")
            return
        self._copy(text, "reply")

    def action_copy_code(self) -> None:
        text = self.query_one(ChatLog).last_reply_text() or ""
        blocks = code_blocks(text) or self.query_one(ChatLog).all_code_blocks()
        if not blocks:
            self.notify("No code block in this chat.", severity="warning")
            return
        self._copy(blocks[-1], "code block")

    def _copy(self, text: str, what: str) -> None:
        self.copy_to_clipboard(text)
        self.notify(f"Copied the {what} ({len(text)} characters).", timeout=2)

    # ---------------------------------------------------------------- worker failures

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.handle_worker_state(event.worker, event.state)

    def handle_worker_state(self, worker: Worker[Any], state: WorkerState) -> None:
        """The one place a worker failure becomes visible: a one-line notification, then cleanup."""
        if state != WorkerState.ERROR:
            return
        from ..errors import Cancelled

        message = one_line(worker.error)
        label = WORKER_LABELS.get(worker.group) or worker.group or ""
        if isinstance(worker.error, Cancelled):  # the user stopped it: not an error
            self.notify(message, title=label, timeout=4)
        else:
            self.notify(message, title=label, severity="error", timeout=8)
        if worker.group == "generate":
            self.call_later(self._generation_failed)
        elif worker.group == "startup":
            self.call_later(self._no_model_coming)
        elif worker.group == "model":
            self.call_later(self._model_failed)
        elif worker.group == "download":
            download_failed = getattr(self.screen, "download_failed", None)  # the first-run screen
            if download_failed is not None:
                download_failed(message)

    async def _model_failed(self) -> None:
        await self._no_model_coming()
        self.query_one(StatusBar).state = "error"
        self.query_one(PromptBar).placeholder = "No model: choose one with the model picker"

    async def _generation_failed(self) -> None:
        if self._reply is not None:
            await self._reply.finish(partial=True)
        self._reply = None
        self._set_generating(False)

    async def action_quit(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()  # the reply stops after this token and is stored as partial
        running = self._busy_workers()
        if self._waiting is not None:  # sent while the model was loading: only the screen has it so far
            text, self._waiting = self._waiting, None
            running.append(self._keep_unsent(self._reply_chat, text))
        if running:
            with contextlib.suppress(asyncio.TimeoutError, WorkerFailed, WorkerCancelled):
                await asyncio.wait_for(asyncio.gather(*(w.wait() for w in running)), QUIT_WAIT)
        self.exit()

    @work(thread=True, exit_on_error=False, group="db")
    def _keep_unsent(self, chat: ChatSummary | None, text: str) -> None:
        self.backend.keep_unsent(chat.id if chat else None, text, self.model_id)

    def _busy_workers(self) -> list[Worker[Any]]:
        """Workers that use the engine: it must not be freed under them."""
        return [w for w in self.workers if w.group in ("generate", "model", "context") and not w.is_finished]

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)
        if self.generating and self._gc_was_enabled:
            gc.enable()
        if self._gc_frozen:
            gc.unfreeze()  # the process may go on (tests, embedding): its objects are collectable again
        if self._speaker is not None:
            self._speaker.stop()
        self.engine = None
        if self._backend is not None and not self._busy_workers():
            self._backend.close()
        # else a worker still runs in llama.cpp: closing the model under it could crash; the process exit frees it


def run() -> None:
    """Open the app (bare ``assistant``). A bad config.toml closes it at once with a one-line error."""
    app = AssistantApp()
    app.run()
    if app.fatal is not None:
        raise app.fatal
    if app.return_code:  # Textual caught a crash (it printed the error): the exit status must say so too
        raise SystemExit(app.return_code)


def peek_ui_settings() -> tuple[str, dict[str, str]]:
    """``ui.theme`` and ``ui.keymap`` from config.toml, unvalidated (a bad value is reported once the
    settings are validated, just after the first frame)."""
    from .. import paths

    try:
        with paths.config_file().open("rb") as f:
            ui = tomllib.load(f).get("ui", {})
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return "textual-dark", {}
    theme = ui.get("theme") if isinstance(ui, dict) else None
    keymap = ui.get("keymap") if isinstance(ui, dict) else None
    if not isinstance(keymap, dict) or not all(isinstance(v, str) for v in keymap.values()):
        keymap = {}
    return (theme if isinstance(theme, str) else "textual-dark"), dict(keymap)
