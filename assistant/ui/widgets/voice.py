"""Voice input for the TUI: a level meter and the live transcript while you dictate.

``VoicePanel`` runs ``assistant.dictation.Dictation`` in a thread worker (group ``"dictation"``) and shows
what it hears: committed words plain, tentative ones dimmed. The host app decides what the text is for:

    panel = VoicePanel()                 # microphone from config (speech.input_device), model models.speech
    panel.start() / panel.stop()         # stop() ends recording and produces the final text
    panel.toggle()                       # start, or stop if recording (bind it to a key)
    panel.cancel()                       # drop the recording, no text (bind to Escape while recording)

    def on_voice_panel_dictation_finished(self, message):   # message.text: put it in the prompt, or send it
    def on_voice_panel_dictation_failed(self, message):     # message.error: one line ("no microphone found ...")
    def on_voice_panel_dictation_cancelled(self, message): ...

The panel is hidden until started, and hides itself again afterwards. The speech model is loaded on the
first start (in the worker) and kept for the next. Tests pass ``source_factory`` (e.g. a ``WavFileSource``)
and ``transcriber_factory``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label, Static
from textual.worker import Worker, WorkerState, get_current_worker

from ...untrusted import clean

if TYPE_CHECKING:
    from ...audio import AudioSource
    from ...dictation import Dictation
    from ...speech import Transcriber

LEVEL_INTERVAL = 0.08  # at most ~12 meter updates a second: smooth, and the event loop stays free
METER_CELLS = 12


class LevelMeter(Widget):
    """A one-line bar for the input level (0..1)."""

    DEFAULT_CSS = """
    LevelMeter { width: 14; height: 1; color: $success; }
    LevelMeter.-loud { color: $warning; }
    """

    level: reactive[float] = reactive(0.0)

    def render(self) -> Text:
        filled = round(max(0.0, min(1.0, self.level)) * METER_CELLS)
        return Text("▮" * filled + "▯" * (METER_CELLS - filled))

    def watch_level(self, level: float) -> None:
        self.set_class(level > 0.85, "-loud")


class VoicePanel(Widget):
    """Recording indicator, level meter and live transcript; see the module docstring for its API."""

    DEFAULT_CSS = """
    VoicePanel { height: auto; display: none; padding: 0 1; background: $boost; }
    VoicePanel.-active, VoicePanel.-voice-mode { display: block; }
    VoicePanel #voice-bar { height: 1; }
    VoicePanel #voice-dot { width: 2; color: $text-muted; }
    VoicePanel.-recording #voice-dot { color: $error; }
    VoicePanel #voice-state { color: $text-muted; padding-left: 1; }
    VoicePanel #voice-text { height: auto; max-height: 6; }
    """

    class DictationStarted(Message):
        """Recording began (the model is loaded and the microphone is open)."""

    class DictationFinished(Message):
        """Recording ended; ``text`` is the whole dictation (may be empty if nothing was said)."""

        def __init__(self, text: str, audio_seconds: float, latency: float, language: str | None = None) -> None:
            super().__init__()
            self.text = text
            self.audio_seconds = audio_seconds
            self.latency = latency
            self.language = language  # as configured, or as whisper detected it

    class SpeechHeard(Message):
        """The first words of this dictation were heard (voice mode's barge-in listens for it)."""

    class DictationCancelled(Message):
        """The recording was dropped (``cancel()``): no text."""

    class DictationFailed(Message):
        """Dictation could not run: ``error`` is one line saying why and what to do."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    class LevelChanged(Message, bubble=False):
        def __init__(self, level: float) -> None:
            super().__init__()
            self.level = level

    class TranscriptChanged(Message, bubble=False):
        def __init__(self, committed: str, tentative: str) -> None:
            super().__init__()
            self.committed = committed
            self.tentative = tentative

    class StateChanged(Message, bubble=False):
        def __init__(self, state: str) -> None:
            super().__init__()
            self.state = state

    recording: reactive[bool] = reactive(False)

    def __init__(
        self,
        *,
        transcriber_factory: Callable[[], Transcriber] | None = None,
        source_factory: Callable[[], AudioSource] | None = None,
        stop_after_silence: float | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._transcriber_factory = transcriber_factory
        self._source_factory = source_factory
        self.stop_after_silence = stop_after_silence
        self._transcriber: Transcriber | None = None
        self._dictation: Dictation | None = None
        self._worker: Worker[None] | None = None
        self.committed = ""
        self.tentative = ""
        self._stop_requested = False
        self._heard = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="voice-bar"):
            yield Label("●", id="voice-dot")
            yield LevelMeter()
            yield Label("", id="voice-state", markup=False)  # states can quote a device error
        yield Static("", id="voice-text")

    # -- control ----------------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A dictation is loading, recording or finishing."""
        return self._worker is not None and self._worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    def start(self) -> None:
        if self.busy:
            return
        self.committed = self.tentative = ""
        self._stop_requested = self._heard = False
        self._show_text()
        self.add_class("-active")
        self._set_state("starting…")
        self._worker = self._dictate()

    def stop(self) -> None:
        """Stop recording; the final text follows in ``DictationFinished``."""
        self._stop_requested = True  # also honoured if the model is still loading
        dictation = self._dictation
        if dictation is not None:
            dictation.stop()
        if self.busy:
            self._set_state("finishing…")

    def cancel(self) -> None:
        dictation = self._dictation
        if dictation is not None:
            dictation.cancel()
        if self._worker is not None:
            self._worker.cancel()

    def toggle(self) -> None:
        if self.busy:
            self.stop()
        else:
            self.start()

    # -- the worker -------------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="dictation")
    def _dictate(self) -> None:
        from ...dictation import Dictation, Final, Level, Partial
        from ...errors import AssistantError

        worker = get_current_worker()
        source: AudioSource | None = None
        try:
            source = self._open_source()
            if self._transcriber is None:
                self.post_message(self.StateChanged("loading the speech model…"))
                self._transcriber = self._load_transcriber()
            dictation = Dictation(self._transcriber, stop_after_silence=self.stop_after_silence)
            self._dictation = dictation
            if worker.is_cancelled:
                dictation.cancel()
            elif self._stop_requested:
                dictation.stop()
            self.post_message(self.DictationStarted())
            self.post_message(self.StateChanged("listening…"))
            last_level = 0.0
            final: Final | None = None
            for event in dictation.run(source):
                if worker.is_cancelled:
                    dictation.cancel()
                    break
                if isinstance(event, Level):
                    now = time.monotonic()
                    if now - last_level >= LEVEL_INTERVAL:
                        last_level = now
                        self.post_message(self.LevelChanged(event.value))
                elif isinstance(event, Partial):
                    self.post_message(self.TranscriptChanged(event.committed, event.tentative))
                elif isinstance(event, Final):
                    final = event
            if final is None:
                self.post_message(self.DictationCancelled())
            else:
                self.post_message(
                    self.DictationFinished(final.text, final.audio_seconds, final.latency, final.language)
                )
        except AssistantError as exc:
            self.post_message(self.DictationFailed(str(exc)))
        finally:
            self._dictation = None
            if source is not None:
                source.close()

    def _open_source(self) -> AudioSource:
        if self._source_factory is not None:
            return self._source_factory()
        from ... import config
        from ...audio import MicrophoneSource

        return MicrophoneSource(config.load().speech.input_device)

    def _load_transcriber(self) -> Transcriber:
        if self._transcriber_factory is not None:
            return self._transcriber_factory()
        from ...speech import Transcriber

        return Transcriber.from_settings()

    # -- showing it -------------------------------------------------------------------------------------------

    def _set_state(self, text: str) -> None:
        if self.is_mounted:
            self.query_one("#voice-state", Label).update(clean(text, one_line=True))

    def _show_text(self) -> None:
        if not self.is_mounted:
            return
        text = Text(clean(self.committed))
        if self.tentative:
            text.append((" " if self.committed else "") + clean(self.tentative), style="dim")
        self.query_one("#voice-text", Static).update(text)

    def on_voice_panel_level_changed(self, message: VoicePanel.LevelChanged) -> None:
        self.query_one(LevelMeter).level = message.level

    def on_voice_panel_transcript_changed(self, message: VoicePanel.TranscriptChanged) -> None:
        self.committed, self.tentative = message.committed, message.tentative
        self._show_text()
        if (self.committed or self.tentative).strip() and not self._heard:
            self._heard = True
            self.post_message(self.SpeechHeard())

    def show_state(self, text: str) -> None:
        """Say what the panel's host is doing (voice mode: thinking, speaking)."""
        self._set_state(text)

    def on_voice_panel_state_changed(self, message: VoicePanel.StateChanged) -> None:
        self._set_state(message.state)

    def on_voice_panel_dictation_started(self, message: VoicePanel.DictationStarted) -> None:
        self.recording = True

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Finished, cancelled or failed: hide. (The host reports a failure: see widgets.conversation.DictationPanel.)
        if event.worker.group == "dictation" and event.state in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            self.recording = False
            self.query_one(LevelMeter).level = 0.0
            self.remove_class("-active")

    def watch_recording(self, recording: bool) -> None:
        self.set_class(recording, "-recording")
