"""The conversation: the chat log, the dictation panel and the prompt, and everything about one reply.

The app hands it a chat to show (``open_chat``, ``new_chat``) and tells it how the model is doing
(``model_loading``, ``model_ready``, ``model_missing``); it sends what the user types, streams the reply
into the log and stops it on Esc, keeping what was written (as oterm's ChatContainer does). Its workers
post past-tense messages (``ChatCreated``, ``ReplyStreamed``, ``ReplyFinished``...) to it; they bubble on
to the app, which keeps the sidebar in step and answers ``Settle``.

Public state, for the app and for whatever measures the app (``benchmarks/tui.py``, the tests):

* ``generating``: a reply is under way, or waits for the model (reactive: the footer's keys follow it);
* ``reply``: the turn being streamed, None once it is finished (stored, and shown as stored);
* ``tokens_per_second``, ``context_used``: what the status line shows for this chat (reactive);
* ``ReplyPainted`` messages: a streamed batch is on screen.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.worker import Worker, get_current_worker

from ...untrusted import clean
from ...voice_loop import VoiceLoop
from ..messages import ChatCreated, ChatOpened, ReplyFinished, ReplyPainted, ReplyRead, ReplyStreamed, Settle
from ..pacing import QuietStreaming, ReplyPump, StreamPacer
from ..workers import report_failure
from .chat_log import ChatLog, NoticeView, ReplyTurn, UserTurn, code_blocks
from .prompt_bar import PromptBar
from .status_bar import speculation_text
from .versions import Versions
from .voice import VoicePanel
from .voice_mode import VoiceMode

if TYPE_CHECKING:
    from ...chat import CancelToken, ChatEngine
    from ...config import Settings
    from ...tts import Speaker
    from ..backend import Backend, ChatSetup, ChatSummary

# Before a reply starts, the worker waits this long at most for the UI to paint the new turn (see Settle).
SETTLE_TIMEOUT = 0.5
# The live tok/s figure changes at most this often (each change re-lays out the status line).
SPEED_INTERVAL = 0.5


class Host(Protocol):
    """What the conversation needs from the app it lives in (``AssistantApp`` is one; it is passed in, so
    the conversation never imports the app)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def backend(self) -> Backend: ...

    @property
    def engine(self) -> ChatEngine | None: ...

    @property
    def model_coming(self) -> bool:
        """A model is loading, or about to be (the app is starting): a message sent meanwhile waits for it."""
        ...


class DictationPanel(VoicePanel):
    """The speech helper's ``VoicePanel`` as the conversation uses it: its worker failures go to the one
    failure report, and whether it is busy (Esc then stops the recording) keeps the footer's keys right."""

    dictating: reactive[bool] = reactive(False, bindings=True, init=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Textual also runs VoicePanel's own handler (it hides the panel): handlers run along the MRO.
        report_failure(self, event)
        self.dictating = self.busy


class Conversation(Versions, VoiceMode, Vertical):
    """One chat on screen and the reply being written into it; see the module docstring."""

    generating: reactive[bool] = reactive(False, bindings=True, init=False)
    tokens_per_second: reactive[float | None] = reactive(None, init=False)
    speculation: reactive[str] = reactive("", init=False)  # the last reply's drafts (status_bar.speculation_text)
    context_used: reactive[int | None] = reactive(None, init=False)

    def __init__(self, host: Host, *, voice_options: dict[str, Any] | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.host = host
        self.voice = DictationPanel(id="voice", **(voice_options or {}))  # tests script its audio
        self.pacer = StreamPacer()
        self.chat: ChatSummary | None = None  # None: a new chat, stored with its first message
        self._quiet = QuietStreaming()
        # A message sent while the model was still on its way: shown as sent, its reply starts once the
        # model is loaded (see model_ready).
        self._waiting: str | None = None
        self._waiting_turn: UserTurn | None = None
        self._cancel: CancelToken | None = None
        self._reply: ReplyTurn | None = None
        self._reply_chat: ChatSummary | None = None
        self._notices_shown: set[str] = set()
        self._speaker: Speaker | None = None
        self._voice_loop = VoiceLoop()  # voice mode's state (``VoiceMode``); off until F10
        self._said_no_tts = False
        self._speed_shown = 0.0
        self._at_message: int | None = None  # the message a search hit opens the chat at
        self._editing = self._redo = self._focus_turn = None  # the versions of a turn (``Versions``)
        self.pending_setup: ChatSetup | None = None  # chat settings set before a new chat's first message

    def compose(self) -> ComposeResult:
        yield ChatLog(id="chat-log")
        yield self.voice
        yield PromptBar(id="prompt")

    def on_mount(self) -> None:
        self.prompt.gate = self._may_send
        self.prompt.focus()

    def on_unmount(self) -> None:
        self._quiet.stop()
        if self._speaker is not None:
            self._speaker.stop()

    @property
    def chat_log(self) -> ChatLog:
        return self.query_one(ChatLog)

    @property
    def prompt(self) -> PromptBar:
        return self.query_one(PromptBar)

    @property
    def reply(self) -> ReplyTurn | None:
        """The reply being streamed; None once it has finished (and when none was asked for)."""
        return self._reply

    @property
    def can_stop(self) -> bool:
        """Whether Esc has something to stop: a reply, a dictation, an edit, voice mode."""
        return self.generating or self.voice.busy or self._editing is not None or self.voice_mode

    def focus_prompt(self) -> None:
        self.prompt.focus()

    # -- the model, as the app reports it ---------------------------------------------------------------

    def model_loading(self, model_id: str) -> None:
        self.tokens_per_second = None
        self.prompt.placeholder = Content(clean(f"Loading {model_id}…", one_line=True))  # a str is parsed as markup

    def model_ready(self) -> None:
        """The model is loaded: a message sent meanwhile goes now; else the open chat's context is counted."""
        self.prompt.placeholder = PromptBar.DEFAULT_PLACEHOLDER
        engine = self.host.engine
        if self._waiting is not None and self._cancel is not None and engine is not None:
            text, self._waiting, self._waiting_turn = self._waiting, None, None
            self._generate(engine, self._reply_chat, text, self._cancel)
        elif self.chat is not None:
            self._count_context(self.chat.id)

    async def model_missing(self, *, failed: bool) -> None:
        """No model will load (none installed, or the load failed): a message waiting for one goes back
        into the box."""
        await self._take_back_waiting()
        if failed:
            self.prompt.placeholder = "No model: choose one with the model picker"

    # -- which chat -----------------------------------------------------------------------------------

    def open_chat(self, chat: ChatSummary, at_message: int | None = None) -> None:
        """Show a stored chat (read in a worker), scrolled to ``at_message`` when given (a search hit); the
        app checks no reply is streaming first."""
        self.chat = chat
        self._at_message = at_message
        self._read_chat(chat)

    async def new_chat(self) -> None:
        self.chat = None
        self.pending_setup = None
        self._notices_shown.clear()
        await self.chat_log.clear()
        self.context_used = None
        self.tokens_per_second = None

    @work(thread=True, exclusive=True, exit_on_error=False, group="chats")
    def _read_chat(self, chat: ChatSummary) -> None:
        backend, engine = self.host.backend, self.host.engine
        summary, turns = backend.open_chat(chat.id, self._at_message)
        used = backend.count_context(chat.id, engine) if engine is not None else None
        installed = summary.model_id is not None and summary.model_id in backend.installed_llms()
        if not get_current_worker().is_cancelled:
            self.post_message(ChatOpened(summary, turns, used, installed))

    async def on_chat_opened(self, message: ChatOpened) -> None:
        if self.chat is None or message.chat.id != self.chat.id:
            return
        log = self.chat_log
        await log.clear()
        self._notices_shown.clear()
        found: Widget | None = None
        for turn in message.turns:
            if turn.notice:
                await log.add_notice(turn.notice)
            shown: Widget | None = None
            if turn.role == "user":
                shown = await log.add_user(turn.content, turn.message_id, turn.alternative)
            elif turn.role == "assistant":
                shown = await log.add_reply(
                    turn.content, partial=turn.partial, message_id=turn.message_id, alternative=turn.alternative
                )
            if shown is not None and turn.message_id is not None and turn.message_id == self._at_message:
                found = shown
        self._at_message = None
        if self._focus_turn is not None:  # a branch step: the turn stepped keeps the focus
            turns = log.messages
            if self._focus_turn < len(turns) and turns[self._focus_turn].can_focus:
                turns[self._focus_turn].focus(scroll_visible=False)
            self._focus_turn = None
        if found is not None:  # a search hit: show its message (the log stops following the end)
            found.add_class("-found")
            log.release_anchor()
            self.call_after_refresh(log.scroll_to_widget, found, top=True, animate=False)
        self.context_used = message.context_used
        self.tokens_per_second = None

    @work(thread=True, exclusive=True, exit_on_error=False, group="context")
    def _count_context(self, chat_id: int | str) -> None:
        engine = self.host.engine
        if engine is None:
            return
        used = self.host.backend.count_context(chat_id, engine)
        self.app.call_from_thread(self._set_context_used, chat_id, used)

    def _set_context_used(self, chat_id: int | str, used: int | None) -> None:
        if self.chat is not None and self.chat.id == chat_id:
            self.context_used = used

    def on_chat_created(self, message: ChatCreated) -> None:
        if self._reply_chat is None and self.chat is None:
            self.chat = message.chat
            self._reply_chat = message.chat

    # -- sending, streaming -----------------------------------------------------------------------------

    def _may_send(self, text: str) -> bool:
        """Asked by the prompt on Enter: a message can go while a model is loaded or on its way. An
        ``/attach PATH`` line is not sent: the file takes its place in the box (``attach``)."""
        from ... import attach

        path = attach.command_path(text)
        if path is not None:
            if path:
                self.attach(Path(path), replace_command=True)
            else:
                self.notify("/attach needs a path: /attach notes.txt", severity="warning")
            return False
        if self.generating:
            return False  # one reply at a time; the text stays in the box
        if self.host.engine is None and not self.host.model_coming:
            self.notify("No model loaded.", severity="warning")
            return False
        return True

    # -- attaching ------------------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="attach")
    def attach(self, path: Path, replace_command: bool = False) -> None:
        """Put the text file at ``path`` in the prompt as a fenced block (``assistant.attach``), once it is
        known to fit the context next to this chat; otherwise say so, with the token counts, and attach
        nothing. ``replace_command``: the block takes the place of the prompt's ``/attach`` line."""
        from ... import attach
        from ...chat import Message

        found = attach.read(path)
        engine = self.host.engine
        total = engine.context_size if engine is not None else None
        # no model loaded yet: no tokenizer, so a rough count (said as such)
        tokens = engine.count_tokens([Message("user", found.block)]) if engine is not None else len(found.block) // 4
        used = self.context_used or 0
        if total is not None and used + tokens > total:
            self.app.call_from_thread(
                self.notify,
                f"{clean(found.name, one_line=True)} is {tokens:,} tokens; the context holds {total:,}"
                f" ({used:,} in use): attach a smaller file or raise runtime.context_size",
                severity="error",
                markup=False,
            )
            return
        self.app.call_from_thread(self._insert_attachment, found.block, replace_command)
        about = "" if engine is not None else "about "
        self.app.call_from_thread(
            self.notify, f"attached {clean(found.name, one_line=True)} ({about}{tokens:,} tokens)", markup=False
        )

    def _insert_attachment(self, block: str, replace_command: bool) -> None:
        prompt = self.prompt
        if replace_command:  # the /attach line goes; what was typed under it stays, after the file
            rest = prompt.text.split("\n", 1)[1] if "\n" in prompt.text else ""
            prompt.text = block + rest
            prompt.move_cursor(prompt.document.end)
        else:
            prompt.insert(block)
        prompt.focus()

    @on(PromptBar.Submitted)
    async def _send(self, event: PromptBar.Submitted) -> None:
        text = event.text  # it left the box on Enter: what was typed after it is the next message
        if not self._may_send(text):  # something changed since Enter (a second Enter came first)
            event.prompt.give_back(text)
            return
        log = self.chat_log
        log.anchor()  # sending always follows the reply, even if the user had scrolled up
        if self._editing is not None:  # the edited message and what followed it leave the view (not the chat)
            self._redo = ("edit", self._editing[0])
            await self._drop_from(self._editing)
            self._end_edit()
        user_turn = await log.add_user(text)
        await self._start_reply()
        self.voice_reply_sent()
        engine = self.host.engine
        if engine is None:  # the app is starting or the model loading: the reply starts once it is loaded
            self._waiting, self._waiting_turn = text, user_turn
            return
        self._generate(engine, self.chat, text, self._cancel)

    async def _start_reply(self) -> None:
        log = self.chat_log
        self._reply = await log.add_reply(streaming=True)
        self._reply_chat = self.chat
        from ...chat import CancelToken

        self._cancel = CancelToken()
        self.tokens_per_second = None
        self.generating = True
        self.pacer.restart()

    def watch_generating(self, generating: bool) -> None:
        if generating:
            self._quiet.start()
        else:
            self._quiet.stop()
        # The prompt's blinking cursor repaints twice a second: CPU the model would use (see ui.pacing)
        self.prompt.cursor_blink = not generating

    @work(thread=True, exclusive=True, exit_on_error=False, group="generate")
    def _generate(self, engine: ChatEngine, chat: ChatSummary | None, text: str, cancel: CancelToken) -> None:
        backend = self.host.backend
        if chat is None:
            chat = backend.create_chat(text, engine.model_id, self.pending_setup)
            self.pending_setup = None
            self.post_message(ChatCreated(chat))
        # The new turn (and a new chat's sidebar row) is laid out and painted before the reply starts, so
        # that work does not compete with generation for the CPU; it costs the reply a few milliseconds.
        # Settle bubbles to the app behind ChatCreated, and the app answers it after its next paint.
        settled = threading.Event()
        self.post_message(Settle(settled))
        settled.wait(SETTLE_TIMEOUT)
        pump = ReplyPump(self.post_message, self.pacer, get_current_worker(), cancel, self._new_speaker())
        self._speaker = pump.speaker
        redo = self._redo
        if redo is None:
            backend.reply(chat.id, engine.model_id, text, cancel, pump)
        elif redo[1] is None:
            backend.regenerate(chat.id, engine.model_id, cancel, pump)
        else:
            backend.edit(chat.id, engine.model_id, redo[1], text, cancel, pump)
        pump.flush()
        stats = pump.stats
        partial = cancel.cancelled or (stats is not None and stats.finish_reason == "cancelled")
        if pump.speaker is not None:
            if partial:
                pump.speaker.stop()
            else:
                pump.speaker.finish(timeout=0)  # speak the rest in its own thread; do not wait for it
        self.post_message(ReplyFinished(chat.id, stats, partial, "".join(pump.parts)))
        if self.voice_mode:  # listening resumes once the reply has been read out (or silenced)
            if pump.speaker is not None:
                pump.speaker.wait()
            self.post_message(ReplyRead())

    def _new_speaker(self) -> Speaker | None:
        """A reader for this reply when ``speech.speak_replies`` is on (espeak-ng missing: said once)."""
        if not (self.host.settings.speech.speak_replies or self.voice_mode):
            return None
        from ... import tts

        if not tts.available():
            if not self._said_no_tts:
                self._said_no_tts = True
                self.app.call_from_thread(
                    self.notify, f"cannot read replies aloud ({tts.MISSING_HINT})", severity="warning"
                )
            return None
        if self._speaker is not None:
            self._speaker.stop()  # one voice at a time: a new reply interrupts the last one
        if self.voice_mode:
            return self._voice_loop.speaker()  # in the language you spoke
        return tts.Speaker()

    async def on_reply_streamed(self, message: ReplyStreamed) -> None:
        self.pacer.pace()
        for notice in message.notices:
            await self._show_notice(notice)
        if self._reply is not None and message.text:
            if self.voice_mode and not self._reply.text:
                self.voice_reply_started()
            await self._reply.append(message.text)
            self.call_after_refresh(self._painted, message.tokens)
        if message.prompt_tokens is not None and self._reply is not None:  # the meter moves as the reply streams
            self.context_used = message.prompt_tokens + message.tokens
        now = time.monotonic()
        if message.elapsed > 0 and message.tokens > 1 and now - self._speed_shown >= SPEED_INTERVAL:
            self._speed_shown = now
            self.tokens_per_second = (message.tokens - 1) / message.elapsed

    def _painted(self, tokens: int) -> None:
        self.post_message(ReplyPainted(tokens, time.perf_counter()))

    async def _show_notice(self, notice: str) -> None:
        if notice in self._notices_shown:  # once per chat: a base model says "completion mode" every turn
            return
        self._notices_shown.add(notice)
        log = self.chat_log
        if self._reply is not None and self._reply.is_mounted:
            await log.mount(NoticeView(notice), before=self._reply)
        else:
            await log.add_notice(notice)

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
        self.generating = False
        if stats is not None:
            if stats.tokens_per_second:
                self.tokens_per_second = stats.tokens_per_second
            self.speculation = speculation_text(stats.drafted_tokens, stats.accepted_tokens, stats.speed_up)
            if self.chat is not None and self.chat.id == message.chat_id:
                self.context_used = stats.prompt_tokens + stats.completion_tokens
        if stats is not None and stats.finish_reason == "length":
            await self._show_notice("reply cut at the max_tokens limit (chat.max_tokens)")
        if self._redo is not None:
            self._redo = None
            if self.chat is not None and self.chat.id == message.chat_id:
                self._read_chat(self.chat)  # the turn's versions, "‹ 2/2 ›", as stored

    async def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if report_failure(self, event) is not None and event.worker.group == "generate":
            if self._reply is not None:
                await self._reply.finish(partial=True)
            self._reply = None
            self.generating = False
            if self._redo is not None and self.chat is not None:
                self._redo = None
                self._read_chat(self.chat)  # the chat as stored: the old version is still there

    # -- stopping ---------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Esc: drop a recording, take back a message still waiting for the model, or stop the reply (what
        was written is kept) and the voice reading it."""
        if self.voice_mode:
            self.leave_voice_mode()
            return
        if self.voice.busy and not self.generating:
            self.voice.cancel()  # Esc drops a recording: no text
            return
        if self._editing is not None and not self.generating:
            self._end_edit()
            self.prompt.clear()
            return
        if self._waiting is not None:  # not sent yet: back into the box
            self.call_later(self._take_back_waiting)
            return
        if self._cancel is not None and self.generating:
            self._cancel.cancel()
        if self._speaker is not None:
            self._speaker.stop()

    def keep_unsent(self) -> Worker[None] | None:
        """On quit: a message sent while the model was loading exists only on screen so far; store it (in a
        worker the app waits for) so nothing typed is lost. None when there is no such message."""
        if self._waiting is None:
            return None
        text, self._waiting, self._waiting_turn = self._waiting, None, None
        return self._keep_unsent(self._reply_chat, text)

    @work(thread=True, exit_on_error=False, group="db")
    def _keep_unsent(self, chat: ChatSummary | None, text: str) -> None:
        self.host.backend.keep_unsent(chat.id if chat else None, text, None)  # the model it waited for

    def cancel(self) -> None:
        """Stop the reply after its current token; it is stored as partial (the app is quitting)."""
        if self._cancel is not None:
            self._cancel.cancel()

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
        log = self.chat_log
        if not log.turns:
            await log.clear()  # the chat's hint comes back
        self.generating = False
        self.prompt.give_back(text)

    # -- dictation (ui/widgets/voice.py) --------------------------------------------------------------

    def dictate(self) -> None:
        if self.voice_mode:
            self.barge_in()
        else:
            self.voice.toggle()

    def on_reply_read(self, message: ReplyRead) -> None:
        self.voice_reply_done()

    def on_voice_panel_speech_heard(self, message: VoicePanel.SpeechHeard) -> None:
        if self.voice_mode:
            self.voice_speech_heard()

    def on_voice_panel_dictation_finished(self, message: VoicePanel.DictationFinished) -> None:
        if self.voice_mode:
            self.voice_heard(message.text, message.language, message.latency)
            return
        text = message.text.strip()
        if not text:
            self.notify("Nothing was heard.", severity="warning", timeout=3)
            return
        prompt = self.prompt
        if prompt.text and not prompt.text.endswith((" ", "\n")):
            text = " " + text
        prompt.insert(text, prompt.document.end)
        prompt.focus()
        if self.host.settings.speech.auto_send:
            prompt.action_submit()

    def on_voice_panel_dictation_failed(self, message: VoicePanel.DictationFailed) -> None:
        self.notify(message.error, title="dictation", severity="error", timeout=8)

    # -- copying --------------------------------------------------------------------------------------

    def code_blocks(self) -> list[str]:
        """Every fenced code block in the chat, in order."""
        return self.chat_log.all_code_blocks()

    def copy_reply(self) -> None:
        text = self.chat_log.last_reply_text()
        if not text:
            self.notify("No reply to copy yet.", severity="warning")
            return
        self.copy(text, "reply")

    def copy_code(self) -> None:
        text = self.chat_log.last_reply_text() or ""
        blocks = code_blocks(text) or self.code_blocks()
        if not blocks:
            self.notify("No code block in this chat.", severity="warning")
            return
        self.copy(blocks[-1], "code block")

    def copy(self, text: str, what: str) -> None:
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied the {what} ({len(text)} characters).", timeout=2)
