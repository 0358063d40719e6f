"""Voice mode: a spoken conversation in the chat, hands free.

    listening ──(a pause of speech.pause seconds)──▶ thinking ──(first text)──▶ speaking ──(read to the end)──┐
        ▲                                                                                                     │
        └─────────────────────────────────────────────────────────────────────────────────────────────────────┘

The loop's state and rules are ``assistant.voice_loop.VoiceLoop``, the same that ``assistant talk`` runs;
this mixin does the TUI's side. The words appear in the voice panel as they settle (``VoicePanel``:
streaming dictation with a level meter); the pause sends them as the chat's next message; the reply streams
on screen and is read aloud sentence by sentence while it is still being generated (``tts.Speaker``, in the
language you spoke); when the reading ends, listening resumes. Esc leaves voice mode at any point (what was
said and replied is stored like any chat; a reply cut short is kept as partial). The dictate key during
thinking or speaking is **barge-in**: the reading and the generation stop at once and listening starts.
With ``speech.barge_in`` (headphones) the microphone also listens while the app speaks, and the first words
heard do the same; without it the microphone is not transcribed while the app speaks, so on loudspeakers
its own voice is never taken for yours.

``VoiceMode`` is a mixin of ``Conversation``: its methods use the conversation's state (``VoiceHost``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ...voice_loop import VoiceLoop
from .prompt_bar import PromptBar

if TYPE_CHECKING:
    from ...chat import CancelToken
    from ...config import Settings
    from ...tts import Speaker
    from .voice import VoicePanel


class _Host(Protocol):
    @property
    def settings(self) -> Settings: ...


class VoiceHost(Protocol):
    """What ``VoiceMode`` uses of the conversation it is mixed into."""

    _cancel: CancelToken | None
    _speaker: Speaker | None
    _voice_loop: VoiceLoop

    @property
    def voice_mode(self) -> bool: ...

    @property
    def voice(self) -> VoicePanel: ...

    @property
    def host(self) -> _Host: ...

    @property
    def generating(self) -> bool: ...

    @property
    def prompt(self) -> PromptBar: ...

    def notify(self, message: str, *, severity: Any = ..., timeout: float | None = ..., markup: bool = ...) -> None: ...

    def _listen(self) -> None: ...

    def _interrupt(self) -> None: ...

    def _speaker_silent(self) -> bool: ...

    def leave_voice_mode(self) -> None: ...


class VoiceMode:
    """Voice mode's steps (see the module docstring)."""

    @property
    def voice_mode(self: VoiceHost) -> bool:
        return self._voice_loop.on

    def toggle_voice_mode(self: VoiceHost) -> None:
        if self.voice_mode:
            self.leave_voice_mode()
            return
        self._voice_loop = VoiceLoop.from_settings(self.host.settings.speech)
        self._voice_loop.start()
        self.voice.stop_after_silence = self._voice_loop.pause
        self.voice.add_class("-voice-mode")
        self.notify("Voice mode: speak, and pause to send. Ctrl+T interrupts the reply, Esc leaves.", timeout=4)
        if not self.generating:
            self._listen()

    def leave_voice_mode(self: VoiceHost) -> None:
        """Esc: stop listening, the reply and the reading (what was said so far is kept)."""
        self._voice_loop.stop()
        self.voice.stop_after_silence = None
        self.voice.remove_class("-voice-mode")
        self._interrupt()
        if self.voice.busy:
            self.voice.cancel()

    def _listen(self: VoiceHost) -> None:
        if self.voice_mode and not self.voice.busy:
            self.voice.start()

    def _interrupt(self: VoiceHost) -> None:
        """Silence the reading and stop the reply (kept, as partial)."""
        if self._speaker is not None:
            self._speaker.stop()
        if self._cancel is not None and self.generating:
            self._cancel.cancel()

    def barge_in(self: VoiceHost) -> None:
        """The dictate key in voice mode: while the app thinks or speaks, stop it and listen; while it listens,
        end the turn now instead of waiting for the pause."""
        if self.voice.busy and not self.generating and self._speaker_silent():
            self.voice.stop()
            return
        self._interrupt()
        self._voice_loop.barge_in_now()
        self._listen()

    def _speaker_silent(self: VoiceHost) -> bool:
        return self._speaker is None or not self._speaker.speaking

    def voice_heard(self: VoiceHost, text: str, language: str | None = None, latency: float = 0.0) -> None:
        """A spoken turn ended (the pause): send it; nothing heard, listen on."""
        sent = self._voice_loop.heard(text, language=language, latency=latency)
        if sent is None:
            self._listen()
            return
        prompt = self.prompt
        prompt.text = sent
        prompt.action_submit()
        self.voice.show_state("thinking…")

    def voice_speech_heard(self: VoiceHost) -> None:
        """Words while the app replies (only listened for with ``speech.barge_in``): the user barges in."""
        if self._voice_loop.speech_heard() and (self.generating or not self._speaker_silent()):
            self._interrupt()
            self._voice_loop.barge_in_now()

    def voice_reply_started(self: VoiceHost) -> None:
        self._voice_loop.reply_text()
        if not self.voice.busy:
            self.voice.show_state("speaking…")

    def voice_reply_done(self: VoiceHost) -> None:
        """The reply was read to its end (or silenced): listen again."""
        if self._voice_loop.reply_read() and not self.generating:
            self._listen()

    def voice_reply_sent(self: VoiceHost) -> None:
        """A turn was sent: with barge-in, listen while the app replies; else wait until it has spoken."""
        if self._voice_loop.listen_while_replying:
            self._listen()
