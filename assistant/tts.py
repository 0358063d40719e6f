"""Reading text aloud with espeak-ng (a subprocess: small, offline, in every Linux distribution).

``Speaker.feed(text)`` takes a reply as it streams and speaks each sentence once it is complete, so the
first sentence is heard while the rest is still being generated; ``finish()`` speaks the remainder and
waits. ``synthesize(text, path)`` writes a WAV instead of playing (tests, and making speech clips).
Reading replies aloud is the ``speech.speak_replies`` setting (off by default).
"""

from __future__ import annotations

import functools
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from .errors import AssistantError

INSTALL_HINT = "install espeak-ng (Debian/Ubuntu: apt-get install espeak-ng)"
MISSING_HINT = f"{INSTALL_HINT}, or set speech.speak_replies = false"
# A sentence ends at . ! ? or a newline, followed by whitespace; "3.5" and "e.g.x" do not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# A line that opens or closes a fenced code block: read as one "code block omitted", its code not at all.
_FENCE = re.compile(r"^\s*(```|~~~)")
CODE_OMITTED = "code block omitted."
# Markdown a listener should not hear: emphasis marks, code fences, heading hashes, link targets.
_MARKUP = re.compile(r"```[^\n]*|[*_`#>]+|\]\([^)]*\)|\[")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" ([,.;:!?])")  # "**this**:" -> "this:", not "this :"


def executable() -> str | None:
    """The espeak-ng (or older espeak) program, or None when neither is installed."""
    return shutil.which("espeak-ng") or shutil.which("espeak")


def available() -> bool:
    return executable() is not None


# Whisper's language codes that espeak-ng spells otherwise.
_ESPEAK_LANGUAGE = {"zh": "cmn", "jw": "jv", "haw": "haw", "yue": "yue"}


@functools.cache
def voices() -> frozenset[str]:
    """The languages espeak-ng has a voice for ('en-us', 'de', 'fr-fr', ...); empty without espeak-ng."""
    exe = executable()
    if exe is None:
        return frozenset()
    try:
        out = subprocess.run(
            [exe, "--voices"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    rows = (line.split() for line in out.splitlines()[1:])
    return frozenset(row[1] for row in rows if len(row) > 1)


def voice_for(language: str | None) -> str | None:
    """The espeak-ng voice that reads ``language`` (a whisper code: de, es, ...); None for English (the
    default voice) and for a language espeak-ng cannot speak."""
    if not language or language == "en":
        return None
    code = _ESPEAK_LANGUAGE.get(language, language)
    known = voices()
    if code in known or any(v.startswith(code + "-") for v in known):
        return code
    return None


def _require() -> str:
    exe = executable()
    if exe is None:
        raise AssistantError("cannot read aloud: espeak-ng is not installed", MISSING_HINT)
    return exe


def clean(text: str) -> str:
    """What to say for a piece of Markdown: the words, not the markup."""
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", " ".join(_MARKUP.sub(" ", text).split()))


def _command(exe: str, voice: str | None, speed: int | None, out: Path | None) -> list[str]:
    # Text goes through stdin, never argv: a reply starting with "-" must not become an option.
    cmd = [exe, "--stdin"]
    if voice:
        cmd += ["-v", voice]
    if speed:
        cmd += ["-s", str(speed)]
    if out is not None:
        cmd += ["-w", str(out)]
    return cmd


def synthesize(text: str, path: Path, *, voice: str | None = None, speed: int | None = None) -> Path:
    """Speak ``text`` into the WAV file ``path`` (22.05 kHz mono, espeak-ng's native rate)."""
    exe = _require()
    partial = path.with_name(path.name + ".partial")
    result = subprocess.run(_command(exe, voice, speed, partial), input=text, capture_output=True, text=True)
    if result.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        detail = (result.stderr.strip().splitlines() or ["failed"])[0]
        raise AssistantError(f"espeak-ng: {detail}", "check the voice name: 'espeak-ng --voices'")
    partial.replace(path)
    return path


class Speaker:
    """Speaks sentences one after another in a background thread; ``stop()`` silences it at once."""

    def __init__(
        self, *, voice: str | None = None, speed: int | None = None, marks: dict[str, float] | None = None
    ) -> None:
        self.exe = _require()
        self.voice = voice
        self.speed = speed
        self.marks = marks  # gets the wall-clock times of the first sentence queued and of its voice starting
        self.errors: list[str] = []
        self._pending = ""
        self._in_code = False
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="speaker", daemon=True)
        self._thread.start()

    def say(self, text: str) -> None:
        """Queue ``text`` to be spoken as is (after whatever is already queued)."""
        spoken = clean(text)
        if spoken:
            if self.marks is not None:
                self.marks.setdefault("first_sentence", time.time())
            self._queue.put(spoken)

    def feed(self, text: str) -> None:
        """Add streamed reply text; every sentence completed by it is queued. A fenced code block is said
        as "code block omitted", once, and its code is skipped."""
        self._pending += text
        parts = _SENTENCE_END.split(self._pending)
        self._pending = parts.pop()
        for sentence in parts:
            self._sentence(sentence)

    def _sentence(self, sentence: str) -> None:
        if _FENCE.match(sentence):
            self._in_code = not self._in_code
            if self._in_code:
                self.say(CODE_OMITTED)
        elif not self._in_code:
            self.say(sentence)

    def finish(self, timeout: float | None = None) -> None:
        """Speak what is left of the fed text and wait until everything queued has been said."""
        if self._pending.strip():
            self._sentence(self._pending)
        self._pending = ""
        self._queue.put(None)
        self._thread.join(timeout)

    @property
    def speaking(self) -> bool:
        """Still reading (or waiting for more of the reply to read): not finished and not stopped."""
        return self._thread.is_alive() and not self._stopped.is_set()

    def wait(self, timeout: float | None = None) -> None:
        """After ``finish`` (or ``stop``): wait until the last sentence has been spoken (or silenced)."""
        self._thread.join(timeout)

    def stop(self) -> None:
        """Silence now: drop the queue and end the sentence being spoken."""
        self._stopped.set()
        self._pending = ""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        with self._lock:
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopped.is_set():
                return
            with self._lock:
                self._process = subprocess.Popen(
                    _command(self.exe, self.voice, self.speed, None),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                process = self._process
            if self.marks is not None:
                self.marks.setdefault("voice_start", time.time())
            _, err = process.communicate(item)
            # espeak-ng exits 0 even when it could not open the sound device; it only says so on stderr
            if process.returncode != -15 and err.strip():
                self.errors.append(err.strip().splitlines()[-1])
