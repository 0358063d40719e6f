"""A spoken conversation's loop, shared by the TUI's voice mode and ``assistant talk``.

    listening ──(a pause of speech.pause s)──▶ thinking ──(first text)──▶ speaking ──(read to the end)──┐
        ▲                                                                                               │
        └───────────────────────────────────────────────────────────────────────────────────────────────┘

The fronts do the input and output their own way (the TUI in thread workers and messages, the CLI in a
plain loop); ``VoiceLoop`` holds the state and decides each step, so both behave alike:

* ``heard(text, language, latency)``: a spoken turn ended; the text to send, or None (nothing was said:
  listen on). The language heard (whisper's detection, or ``speech.language``) picks the reading voice;
* ``speaker()``: the voice that reads this reply (``tts.voice_for`` that language), None when not reading;
* ``reply_text()`` for each piece of the reply: the first one turns thinking into speaking;
* ``reply_read()``: the reading ended (or was silenced): listening resumes, unless the loop was left;
* ``listen_while_replying``: with ``speech.barge_in`` (headphones) the microphone stays open during the
  reply and ``speech_heard()`` says to interrupt it; without, the app never transcribes its own voice;
* ``barge_in()``: the user's key: whatever the app is doing, it listens now;
* ``timings(text)``: the turn's latency marks (wall clock): what ``talk --timings`` writes and
  ``benchmarks/voice_loop.py`` reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import SpeechSettings
    from .tts import Speaker


class VoiceState(StrEnum):
    OFF = "off"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass
class VoiceLoop:
    pause: float = 1.0  # seconds of silence that end a turn
    barge_in: bool = False  # speech while the app replies interrupts it (headphones)
    language: str | None = None  # speech.language; None: read replies in the language heard
    speak: bool = True  # read replies aloud
    voice: str | None = None  # an espeak-ng voice for every reply (``talk --voice``); None: the language's
    speed: int | None = None  # words per minute (``talk --speed``); None: espeak-ng's 175
    state: VoiceState = VoiceState.OFF
    heard_language: str | None = None  # the last turn's language, as whisper detected it
    marks: dict[str, float] = field(default_factory=dict)  # this turn's wall-clock marks

    @classmethod
    def from_settings(
        cls,
        speech: SpeechSettings,
        *,
        pause: float | None = None,
        speak: bool = True,
        voice: str | None = None,
        speed: int | None = None,
    ) -> VoiceLoop:
        return cls(
            pause=pause or speech.pause,
            barge_in=speech.barge_in,
            language=speech.language,
            speak=speak,
            voice=voice,
            speed=speed,
        )

    @property
    def on(self) -> bool:
        return self.state is not VoiceState.OFF

    def start(self) -> None:
        self.state = VoiceState.LISTENING

    def stop(self) -> None:
        self.state = VoiceState.OFF

    def heard(self, text: str, *, language: str | None = None, latency: float = 0.0) -> str | None:
        """A turn ended ``latency`` seconds after the speech did: the text to send, or None to listen on."""
        text = text.strip()
        if not text:
            if self.on:
                self.state = VoiceState.LISTENING
            return None
        now = time.time()
        self.marks = {"speech_end": now - latency, "final": now}
        self.heard_language = language or self.heard_language
        if self.on:
            self.state = VoiceState.THINKING
        return text

    @property
    def reply_language(self) -> str | None:
        """The language replies are read in: the configured one, else the one last heard."""
        return self.language or self.heard_language

    def speaker(self) -> Speaker | None:
        """A voice for this reply (one ``Speaker`` reads one reply): the one asked for, else the user's language's."""
        if not self.speak:
            return None
        from .tts import Speaker, voice_for

        return Speaker(voice=self.voice or voice_for(self.reply_language), speed=self.speed, marks=self.marks)

    def reply_text(self) -> bool:
        """A piece of the reply arrived; True for the first (thinking turns into speaking)."""
        if "first_text" in self.marks:
            return False
        self.marks["first_text"] = time.time()
        if self.state is VoiceState.THINKING:
            self.state = VoiceState.SPEAKING
        return True

    def reply_read(self) -> bool:
        """The reply was read to its end (or silenced): True when listening resumes."""
        if not self.on:
            return False
        self.state = VoiceState.LISTENING
        return True

    @property
    def listen_while_replying(self) -> bool:
        return self.on and self.barge_in

    def speech_heard(self) -> bool:
        """Words were heard while the app replies: True when that interrupts it (barge-in is on)."""
        return self.listen_while_replying and self.state in (VoiceState.THINKING, VoiceState.SPEAKING)

    def barge_in_now(self) -> None:
        """The interrupt key: the reply and its reading stop, and the loop listens."""
        if self.on:
            self.state = VoiceState.LISTENING

    def timings(self, text: str) -> dict[str, Any]:
        """This turn's latency breakdown: what was heard, in which language, and when each step happened."""
        doc: dict[str, Any] = {"text": text, "language": self.heard_language}
        doc.update({k: round(v, 4) for k, v in self.marks.items()})
        return doc
