"""The terminal app: chats in a sidebar, the conversation, a status line, a footer.

The app only coordinates: it reads the settings and applies the keymap, loads the model, keeps the list
of chats (sidebar, rename, delete), pushes the other screens and quits. The chat itself (log, prompt,
reply, streaming, Esc) is ``widgets.conversation.Conversation``; how a reply is paced is ``ui.pacing``;
the keys and palette commands are ``ui.actions``.

Every blocking call (model load, generation, downloads, database reads and writes) runs in a thread
worker; workers post past-tense messages (``ReplyStreamed``, ``ModelLoaded``...) and never touch widgets.
Worker failures all go through ``ui.workers.report_failure``: one notification line, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer
from textual.worker import Worker, WorkerCancelled, WorkerFailed, get_current_worker

from ..errors import AssistantError
from ..untrusted import clean, escape_content
from . import actions, chat_tools
from .backend import Backend, ChatSummary, EngineFactory
from .messages import ChatCreated, ChatOpened, ChatsListed, ModelLoaded, Settle
from .pacing import GcFreeze, stream_cpu_share
from .widgets.conversation import Conversation
from .widgets.footer import KeyFooter
from .widgets.prompt_bar import PromptBar
from .widgets.sidebar import ChatList, Sidebar
from .widgets.status_bar import State, StatusBar
from .workers import report_failure

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from ..chat import ChatEngine
    from ..config import Settings
    from .screens.first_run import StarterPuller

# Screens and dialogs not needed for the first frame are imported when first shown: a shorter first paint.

# Below this many columns the sidebar is hidden unless toggled on (it then covers the chat).
SIDEBAR_BREAKPOINT = 80
# After mounting, the settings are read once the footer's keys are on screen (see _after_first_frame),
# or after this long at most; FRAME is about one repaint at Textual's 60 Hz.
FIRST_FRAME_WAIT = 0.3
FRAME = 0.02
# On quit, how long to let a cancelled reply store itself (it stops after the current token).
QUIT_WAIT = 5.0


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


class AssistantApp(App[None]):
    """Chat with local models. ``engine_factory`` and ``puller`` exist so tests can script them."""

    # Anchored to this file, not to the class: Textual resolves a relative CSS_PATH next to the module of
    # the class being run, which breaks subclasses defined elsewhere (tests, benchmarks).
    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "assistant"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (SIDEBAR_BREAKPOINT, "-wide")]  # noqa: RUF012

    BINDINGS: ClassVar[list[BindingType]] = actions.bindings()

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
        self.engine: ChatEngine | None = None
        self.model_id: str | None = None
        # A model is loading, or about to be (the app is starting): a message sent meanwhile waits for it.
        self.model_coming = True
        self.chats: list[ChatSummary] = []
        # The chat on screen and its reply; voice_options are VoicePanel factories (tests script the audio).
        self.conversation = Conversation(self, voice_options=voice_options, id="main")
        self.status_bar = StatusBar(id="status")
        self._gc = GcFreeze()
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

    @property
    def chat(self) -> ChatSummary | None:
        """The chat on screen (None: a new chat, not stored until its first message)."""
        return self.conversation.chat

    @property
    def generating(self) -> bool:
        """A reply is under way, or waits for the model: the conversation's ``generating``, which tests and
        ``benchmarks/tui.py`` wait on (with ``conversation.reply``, the turn still being written)."""
        return self.conversation.generating

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield Sidebar(id="sidebar")
            yield self.conversation
        yield self.status_bar
        yield KeyFooter(id="footer")

    def on_mount(self) -> None:
        self._apply_keymap()
        # The status line shows what the conversation reports, as it changes.
        self.watch(self.conversation, "generating", self._show_state, init=False)
        for figure in ("tokens_per_second", "context_used", "speculation"):  # the status line's fields of that name
            self.watch(self.conversation, figure, self._show(figure), init=False)
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
        self.conversation.pacer.share = stream_cpu_share(settings.threads())
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

    # ---------------------------------------------------------------- the status line

    def _status(self) -> StatusBar | None:
        """The status line while it is on screen (not once the app is closing)."""
        return self.status_bar if self.status_bar.is_attached else None

    def _show_state(self, _generating: bool = False) -> None:
        status = self._status()
        if status is not None:
            status.state = "generating" if self.generating and self.engine is not None else self._idle_state()

    def _idle_state(self) -> State:
        if self.engine is not None:
            return "ready"
        return "loading" if self.model_coming and self.model_id else "no model"

    def _show(self, field: str) -> Callable[[Any], None]:
        """A watcher that copies a conversation figure onto the status line's ``field``."""

        def show(value: Any) -> None:
            status = self._status()
            if status is not None:
                setattr(status, field, value)

        return show

    def _refresh_title(self) -> None:
        chat = self.chat
        self.sub_title = clean(chat.title, one_line=True) if chat else "new chat"

    # ---------------------------------------------------------------- actions, palette

    @property
    def on_main_screen(self) -> bool:
        return len(self.screen_stack) == 1

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("quit", "command_palette"):
            return True
        if action in actions.NAMES and not self.on_main_screen:
            return False
        return self._allowed(action)

    def _allowed(self, action: str) -> bool | None:
        """Whether an action can run now, on the main screen (see ``check_action``)."""
        if action == "stop":
            return self.conversation.can_stop
        if action in ("rename_chat", "delete_chat") and self.chat is None:
            return False
        if action in ("regenerate", "edit_message", "branch_prev", "branch_next"):
            return False if self.chat is None else None if self.generating else True
        if action in ("pick_model", "delete_chat", "new_chat"):
            return None if self.generating else True
        return True

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        # ``screen`` is the one the palette was opened from (the palette itself is on top while it asks).
        if not self.screen_stack or screen is not self.screen_stack[0]:
            return
        keys = {b.action: self._keymap.get(b.id or "", b.key) for b in self._bindings_with_ids()}
        for action, title in actions.PALETTE:
            if self._allowed(action.name) is not True:
                continue
            shown = keys.get(action.name)
            help_text = f"{action.help} ({shown})" if shown else action.help
            yield SystemCommand(title, help_text, self._palette_action(action.name))
        for n, block in enumerate(self.conversation.code_blocks(), start=1):
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
        return lambda: self.conversation.copy(text, what)

    def _open_callback(self, chat: ChatSummary) -> Callable[[], None]:
        return lambda: self.open_chat(chat)

    # The conversation's own actions: the keys are the app's, so they work wherever the focus is.

    def action_stop(self) -> None:
        self.conversation.stop()

    def action_voice_mode(self) -> None:
        self.conversation.toggle_voice_mode()

    def action_dictate(self) -> None:
        self.conversation.dictate()

    # Chat tools (their dialogs and workers live in ``chat_tools``).
    def action_attach(self) -> None:
        chat_tools.attach(self)

    def action_export_chat(self) -> None:
        chat_tools.export_chat(self)

    def action_chat_settings(self) -> None:
        chat_tools.chat_settings(self)

    def action_search(self) -> None:
        chat_tools.search(self)

    def action_catalog(self) -> None:
        chat_tools.catalog(self)

    async def action_regenerate(self) -> None:
        await self.conversation.regenerate()

    def action_edit_message(self) -> None:
        self.conversation.edit_message()

    def action_branch_prev(self) -> None:
        self.conversation.step_branch(-1)

    def action_branch_next(self) -> None:
        self.conversation.step_branch(1)

    def action_copy_reply(self) -> None:
        self.conversation.copy_reply()

    def action_copy_code(self) -> None:
        self.conversation.copy_code()

    def action_focus_prompt(self) -> None:
        self.conversation.focus_prompt()

    def action_toggle_sidebar(self) -> None:
        screen = self.screen
        if screen.has_class("-narrow"):
            screen.toggle_class("-sidebar-open")
            if screen.has_class("-sidebar-open"):
                self.query_one(ChatList).focus()
            else:
                self.conversation.focus_prompt()
        else:
            screen.toggle_class("-sidebar-closed")

    def action_open_bench(self) -> None:
        from .screens.bench_screen import BenchScreen  # imported on use: it pulls in the plotting code

        self.push_screen(BenchScreen())

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
        from .screens.first_run import FirstRunScreen

        self.push_screen(FirstRunScreen(starters, self.puller), self._first_run_done)

    def _first_run_done(self, installed: bool | None) -> None:
        if installed:
            self._startup()

    def load_model(self, model_id: str) -> None:
        self.engine = None
        self.model_id = model_id
        self.model_coming = True
        status = self.query_one(StatusBar)
        status.model_id = model_id
        status.state = "loading"
        self.conversation.model_loading(model_id)
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
        self._gc.freeze()
        self.query_one(StatusBar).context_total = message.context_size
        self.conversation.model_ready()  # a message sent while it loaded goes now
        self._show_state()

    async def _no_model_coming(self, *, failed: bool = False) -> None:
        """No model will load (none installed, or the load failed)."""
        self.model_coming = False
        await self.conversation.model_missing(failed=failed)

    def action_pick_model(self) -> None:
        runtime = self.settings.runtime
        from .screens.model_picker import ModelPicker

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

    @_main_screen_only
    def on_chat_created(self, message: ChatCreated) -> None:
        # The conversation has taken it as its chat if it still shows the chat the message was sent in.
        self._refresh_title()
        self.chats = [message.chat, *[c for c in self.chats if c.id != message.chat.id]]
        self.query_one(ChatList).show(self.chats, self.chat.id if self.chat else None)

    @_main_screen_only
    def on_chat_opened(self, message: ChatOpened) -> None:
        if self.chat is not None and message.chat.id == self.chat.id:
            self.query_one(ChatList).mark(message.chat.id)
            wanted = message.chat.model_id
            if wanted and wanted != self.model_id and message.model_installed and not self.generating:
                self.notify(f"this chat uses {clean(wanted, one_line=True)}: loading it", markup=False)
                self.load_model(wanted)  # a chat continues with its own model (as oterm and Jan do)

    def on_settle(self, message: Settle) -> None:
        # Every message posted before it has been handled (they bubble here in order); answer after the paint.
        self.call_after_refresh(message.done.set)

    @on(ChatList.ChatChosen)
    def _chat_chosen(self, event: ChatList.ChatChosen) -> None:
        self.open_chat(event.chat)
        if self.screen.has_class("-narrow"):
            self.screen.remove_class("-sidebar-open")
        self.conversation.focus_prompt()

    def open_chat(self, chat: ChatSummary, at_message: int | None = None) -> None:
        if self.generating:
            self.notify("Stop the reply first (Esc).", severity="warning")
            return
        self.conversation.open_chat(chat, at_message)
        self._refresh_title()

    async def action_new_chat(self) -> None:
        if self.generating:
            self.notify("Stop the reply first (Esc).", severity="warning")
            return
        await self.conversation.new_chat()
        self.query_one(ChatList).mark(None)
        self._refresh_title()
        self.conversation.focus_prompt()

    def action_rename_chat(self) -> None:
        chat = self.chat
        if chat is None:
            return

        def renamed(title: str | None) -> None:
            if title and title != chat.title:
                chat.title = title
                self._refresh_title()
                self._rename(chat.id, title)

        from .screens.dialogs import RenameChat

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

        from .screens.dialogs import Confirm

        self.push_screen(Confirm(f"Delete “{clean(chat.title, one_line=True)}”?"), confirmed)

    @work(thread=True, exit_on_error=False, group="db")
    def _delete(self, chat_id: int | str) -> None:
        self.backend.delete_chat(chat_id)
        self.post_message(ChatsListed(self.backend.list_chats()))

    # ---------------------------------------------------------------- worker failures, quitting

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if report_failure(self, event) is None:
            return
        if event.worker.group == "startup":
            self.call_later(self._no_model_coming)
        elif event.worker.group == "model":
            self.call_later(self._model_failed)

    async def _model_failed(self) -> None:
        await self._no_model_coming(failed=True)
        self.query_one(StatusBar).state = "error"

    async def action_quit(self) -> None:
        self.conversation.cancel()  # the reply stops after this token and is stored as partial
        running = self._busy_workers()
        unsent = self.conversation.keep_unsent()  # sent while the model was loading: only the screen has it
        if unsent is not None:
            running.append(unsent)
        if running:
            with contextlib.suppress(asyncio.TimeoutError, WorkerFailed, WorkerCancelled):
                await asyncio.wait_for(asyncio.gather(*(w.wait() for w in running)), QUIT_WAIT)
        self.exit()

    def _busy_workers(self) -> list[Worker[Any]]:
        """Workers that use the engine: it must not be freed under them."""
        return [w for w in self.workers if w.group in ("generate", "model", "context") and not w.is_finished]

    def on_unmount(self) -> None:
        self._gc.unfreeze()
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
