"""Streaming dictation: audio blocks in, text out as you speak, with words that never change once shown.

How it works (the LocalAgreement-2 policy of Macháček et al., "Turning Whisper into Real-Time Transcription
System", 2023, adapted to a forced prefix):

* Audio from an ``AudioSource`` accumulates in a buffer. Every ``step_seconds`` of new audio the buffer is
  transcribed again. Words already *committed* inside the buffer are passed as Whisper's ``prefix``, so the
  decoder only generates the uncommitted tail (the prefix costs one parallel forward pass, not a token each);
  committed text from before the buffer is the ``initial_prompt`` (context, not output).
* The words two consecutive hypotheses agree on, from the start of the uncommitted tail, are committed.
  Committed words are final: they are never revised, only appended to.
* Once the buffer is longer than ``trim_after``, passes also time their words, and the buffer is cut in
  the latest pause (or after the latest sentence) that follows a committed word; after a silence with
  everything committed it is emptied. So a long dictation never re-transcribes what is already done: a
  pass sees a few seconds to ``trim_after`` + a step, however long you talk (while the hypotheses keep
  changing nothing is committed to cut after, and the buffer grows for a few passes, to ``max_buffer`` at most).
* The encoder only sees the buffer plus ``AUDIO_CONTEXT`` seconds of padding instead of Whisper's fixed
  30 s window: for a few seconds of speech that is several times faster, and it is what keeps the final
  pass (the latency after you stop) short. A pass that comes out looping is redone with the full window.
* A tail that repeats, word for word, the words just before it is Whisper looping on the last sentence
  (greedy, on a buffer that ends in a pause): the repeat is dropped before the agreement sees it, or two
  passes that loop alike would commit the sentence twice (``drop_repeats``).
* Passes while recording decode greedily (``pass_beam_size``); the final one uses the configured beam.
* Silero VAD (bundled with faster-whisper) on the newest audio skips silence and, with
  ``stop_after_silence``, ends the recording when the speaker stops.
* When the source ends (or ``stop()``), one last pass transcribes the uncommitted tail (none if nothing but
  silence came since the previous pass): the final text.

``Dictation.run(source)`` yields events: ``Level`` per block (a meter), ``Committed`` when words become
final, ``Partial`` after each pass (committed + tentative text), and one ``Final`` at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .audio import SAMPLE_RATE, AudioSource, level

if TYPE_CHECKING:
    from .speech import Segment, Transcriber, Word


@dataclass(frozen=True)
class Level:
    """Loudness of the latest block, 0..1 (see ``audio.level``)."""

    value: float


@dataclass(frozen=True)
class Committed:
    """Words that just became final; ``committed`` is all final text so far."""

    text: str
    committed: str


@dataclass(frozen=True)
class Partial:
    """The current transcript: ``committed`` (final) then ``tentative`` (may still change)."""

    committed: str
    tentative: str

    @property
    def text(self) -> str:
        return f"{self.committed} {self.tentative}".strip()


@dataclass(frozen=True)
class Final:
    """The whole dictated text. ``latency`` is seconds from the end of speech (or of the recording) to now;
    ``language`` the spoken language (configured, or as whisper detected it; None if nothing was heard).
    The speech itself ended ``latency + silence_after`` seconds ago."""

    text: str
    audio_seconds: float
    latency: float
    language: str | None = None
    silence_after: float = 0.0  # seconds of audio after the last speech the VAD heard (the pause that ended it)


DictationEvent = Level | Committed | Partial | Final

# The spoken language is fixed once whisper is this sure of it, or has heard this many seconds.
LANGUAGE_SURE = 0.8
LANGUAGE_SECONDS = 3.0

# Seconds of padding the encoder sees after the buffer (see speech.MIN_AUDIO_CONTEXT): a pass over 5 s
# of speech encodes a 10 s window instead of 30 s, several times faster, with the same words.
AUDIO_CONTEXT = 3.0
# A pause this long between two words is a safe place to cut the buffer (word times are good to ~0.1 s).
MIN_PAUSE = 0.25
# Speech runs at 2-4 words a second; more than this per second of audio means Whisper is looping.
MAX_WORDS_PER_SECOND = 7.0
# A stretch of this many words or more that repeats the words just before it is Whisper looping.
MIN_REPEAT = 3


def _looks_like_a_loop(segments: list[Segment], seconds: float) -> bool:
    import zlib

    text = " ".join(s.text for s in segments)
    if len(text.split()) > MAX_WORDS_PER_SECOND * seconds + 5:
        return True
    data = text.encode()
    # faster-whisper's own threshold for repetitive output is a zlib compression ratio of 2.4
    return len(data) > 60 and len(data) / len(zlib.compress(data)) > 2.4


def _key(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def drop_repeats(context: list[str], tail: list[str], min_words: int = MIN_REPEAT) -> list[str]:
    """``tail`` without the stretches that repeat, word for word, the ``min_words`` or more words just before them.

    Whisper, greedy on a buffer that ends in a pause or mid-word, can loop on the last sentence ("... read
    the first paragraph aloud. Open the file and read the first paragraph aloud."), too briefly for
    ``_looks_like_a_loop``; two passes that loop alike would commit the repeat. ``context`` is the committed
    text the tail follows. Words compare by their letters and digits (a loop's last copy may lose its full
    stop); once a whole copy was dropped, what is left of the tail that starts another copy goes too. (A
    phrase really said twice in a row, "let it be, let it be", is said once: the price of never doubling
    a sentence.)
    """
    before = [_key(w) for w in context[-len(tail) :]] if tail else []
    kept: list[str] = []
    i = 0
    while i < len(tail):
        rest = [_key(w) for w in tail[i:]]
        size = next(
            (n for n in range(min_words, min(len(before), len(rest)) + 1) if rest[:n] == before[-n:]),
            0,
        )
        if not size:
            before.append(rest[0])
            kept.append(tail[i])
            i += 1
            continue
        i += size  # a whole copy of the block that just ended
        rest = rest[size:]
        if rest and len(rest) < size and rest == before[-size:][: len(rest)]:
            break  # the loop's unfinished last copy
    return kept


def common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LocalAgreement:
    """Commit the words two consecutive hypotheses of the uncommitted tail start with (LocalAgreement-2).

    Words compare exactly, punctuation and case included: "world" and "world," disagree, so a word is
    committed only once its punctuation has settled too.
    """

    def __init__(self) -> None:
        self.previous: list[str] = []

    def update(self, hypothesis: list[str]) -> list[str]:
        """Feed the newest hypothesis of the uncommitted tail; return the words now agreed (in order)."""
        n = common_prefix(self.previous, hypothesis)
        self.previous = hypothesis[n:]
        return hypothesis[:n]

    def clear(self) -> None:
        self.previous = []


class Dictation:
    """Turns an ``AudioSource`` into dictation events; see the module docstring for the method.

    ``step_seconds``: how much new audio triggers a pass (live sources stretch it when passes are slow, so
    recording never falls behind). ``trim_after``: from this buffer length on, passes time their words to
    find a pause to cut at (shorter buffers skip that cost). ``max_buffer``: beyond this the buffer is cut
    even without a pause. ``stop_after_silence``: end the recording after this many seconds without speech
    (once speech was heard). ``audio_context``: see ``AUDIO_CONTEXT`` (None: Whisper's full window).
    ``pass_beam_size``: beam width of the passes while recording (greedy: they are only hypotheses); the
    final pass uses the transcriber's own (config ``speech.beam_size``). None: the transcriber's for all.
    ``clock``: seconds, for pacing passes on a live source and for ``Final.latency`` (a source's
    ``speech_ended_at`` must come from the same clock); tests pass one they advance themselves.
    """

    def __init__(
        self,
        transcriber: Transcriber,
        *,
        step_seconds: float = 1.0,
        trim_after: float = 8.0,
        max_buffer: float = 20.0,
        stop_after_silence: float | None = None,
        prompt_chars: int = 200,
        audio_context: float | None = AUDIO_CONTEXT,
        pass_beam_size: int | None = 1,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.transcriber = transcriber
        self.step_seconds = step_seconds
        self.trim_after = trim_after
        self.max_buffer = max_buffer
        self.stop_after_silence = stop_after_silence
        self.prompt_chars = prompt_chars
        self.audio_context = audio_context
        self.pass_beam_size = pass_beam_size
        self.clock = clock
        self.passes = 0  # transcription passes run (for tests and benchmarks)
        self.pass_seconds: list[float] = []  # seconds of audio each pass heard: the buffer never grows unbounded
        self.language: str | None = None  # the spoken language, once run() has heard some (see _detected)
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._source: AudioSource | None = None

    # -- control (any thread) --------------------------------------------------------------------------------

    def stop(self) -> None:
        """End the recording; ``run`` then yields the ``Final`` text."""
        self._stop.set()
        if self._source is not None:
            self._source.stop()

    def cancel(self) -> None:
        """End the recording and drop it: ``run`` returns without a ``Final``."""
        self._cancel.set()
        self.stop()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- the loop ---------------------------------------------------------------------------------------------

    def run(self, source: AudioSource) -> Iterator[DictationEvent]:
        import numpy as np

        self._source = source
        if self._stop.is_set():
            source.stop()
        self._audio = np.zeros(0, dtype=np.float32)
        self._offset = 0  # absolute sample index of self._audio[0]
        self._total = 0  # samples received
        self._before: list[str] = []  # committed words whose audio has been cut from the buffer
        self._inside: list[str] = []  # committed words still in the buffer (the decoder's prefix)
        self._agreement = LocalAgreement()
        self._stepped_at = 0  # self._total at the last pass
        self._vad_done = 0  # absolute sample index the VAD has looked at
        self._speech_end = -1  # absolute sample index where the latest speech ended (-1: none yet)
        self._speaking = False
        self.language = None  # detected on the first passes, then fixed (see _detected)
        self._language_fixed = False
        step_samples = int(self.step_seconds * SAMPLE_RATE)
        ended_at = self.clock()
        for block in source:
            if self.cancelled:
                return
            yield Level(level(block))
            self._audio = np.concatenate([self._audio, block])
            self._total += len(block)
            if self._total - self._stepped_at >= step_samples:
                started = self.clock()
                yield from self._step()
                if source.live:  # never spend more than ~half the wall time transcribing
                    step_samples = max(
                        int(self.step_seconds * SAMPLE_RATE), int(2 * (self.clock() - started) * SAMPLE_RATE)
                    )
            elif self._silent_long_enough():
                # the pause may have ended the turn between two passes: the VAD on the newest audio says
                # (run only when the last speech it knows of is a pause ago, so about once per pause)
                self._update_vad()
                self._stop_if_silent()
            ended_at = self.clock()
        if self.cancelled:
            return
        speech_ended_at = getattr(source, "speech_ended_at", None) or ended_at
        text = self._finish()
        yield Final(
            text=text,
            audio_seconds=self._total / SAMPLE_RATE,
            latency=self.clock() - speech_ended_at,
            language=self.language,
            silence_after=max(0, self._total - self._speech_end) / SAMPLE_RATE if self._speech_end >= 0 else 0.0,
        )

    @property
    def longest_pass(self) -> float:
        """Seconds of audio in the longest pass."""
        return max(self.pass_seconds, default=0.0)

    @property
    def committed_text(self) -> str:
        return " ".join(self._before + self._inside)

    def _step(self) -> Iterator[DictationEvent]:
        self._update_vad()
        yield from self._pass()
        self._stop_if_silent()

    def _silent_long_enough(self) -> bool:
        """``stop_after_silence`` seconds have passed since the end of the last speech heard."""
        return (
            self.stop_after_silence is not None
            and self._speech_end >= 0
            and self._total - self._speech_end >= self.stop_after_silence * SAMPLE_RATE
        )

    def _stop_if_silent(self) -> None:
        if not self._speaking and self._silent_long_enough():
            self.stop()

    def _pass(self) -> Iterator[DictationEvent]:
        """Transcribe the buffer if there is anything new to hear in it; commit, cut, report."""
        if self._speech_end <= self._offset:  # nothing but silence in the buffer: keep a little, skip the pass
            self._drop_until(max(self._offset, self._total - SAMPLE_RATE // 2))
            self._stepped_at = self._total
            return
        new_speech = self._speech_end > self._stepped_at or self._speaking
        if not new_speech and not self._agreement.previous:
            self._stepped_at = self._total
            # a pause after everything was committed: the buffer's audio is done with
            if self._total - self._speech_end > SAMPLE_RATE:
                self._trim_to(self._speech_end + int(0.2 * SAMPLE_RATE), len(self._inside))
            return
        # Long buffers get word times, to find where to cut; short ones are cheaper without.
        want_cut = len(self._audio) > self.trim_after * SAMPLE_RATE
        words, timed = self._transcribe(word_times=want_cut)
        self._stepped_at = self._total
        agreed = self._agreement.update(words)
        if agreed:
            self._inside.extend(agreed)
            yield Committed(" ".join(agreed), self.committed_text)
        if want_cut:
            self._cut_at_pause(timed)
        if len(self._audio) > self.max_buffer * SAMPLE_RATE:
            yield from self._force_cut(timed)
        yield Partial(self.committed_text, " ".join(self._agreement.previous))

    def _finish(self) -> str:
        """The final text: committed words plus one last pass over the uncommitted tail."""
        tail: list[str] = []
        if self._total > self._vad_done:
            self._update_vad()  # the audio since the last pass may hold the end of a word
        if self._speech_end > self._offset:  # there is speech in the buffer
            if self._total == self._stepped_at or self._speech_end <= self._stepped_at:
                # no audio, or only silence, since the last pass: its hypothesis is already complete
                tail = self._agreement.previous
            else:
                tail, _ = self._transcribe(word_times=False, final=True)
        self._inside.extend(tail)
        self._agreement.clear()
        return self.committed_text

    # -- helpers ----------------------------------------------------------------------------------------------

    def _transcribe(self, *, word_times: bool, final: bool = False) -> tuple[list[str], list[Word]]:
        """One pass over the buffer: the words after the committed prefix, and (if asked) all words timed."""
        prompt = " ".join(self._before)[-self.prompt_chars :]
        if len(prompt) == self.prompt_chars and " " in prompt:
            prompt = prompt.split(" ", 1)[1]  # whole words only
        prefix = " ".join(self._inside)
        options: dict[str, Any] = {
            "vad": False,  # our own VAD already decided there is speech; theirs would re-time the prefix
            "word_timestamps": word_times,
            "timestamps": word_times,  # segment timestamps are only needed to place the words
            "initial_prompt": prompt or None,
            "prefix": prefix or None,
        }
        if not final and self.pass_beam_size is not None:
            options["beam_size"] = self.pass_beam_size
        if self._language_fixed:
            options["language"] = self.language
        seconds = len(self._audio) / SAMPLE_RATE
        self.pass_seconds.append(seconds)
        transcript = self.transcriber.transcribe(self._audio, audio_context=self.audio_context, **options)
        segments = list(transcript)
        self._detected(getattr(transcript, "info", None), seconds)
        self.passes += 1
        if self.audio_context is not None and _looks_like_a_loop(segments, seconds):
            # the short encoder window can (rarely) make Whisper repeat itself: redo this pass in full
            segments = list(self.transcriber.transcribe(self._audio, audio_context=None, **options))
            self.passes += 1
        words = [w for s in segments for w in s.text.split()]
        timed = [w for s in segments for w in (s.words or [])]
        # The prefix is forced, so the output starts with exactly those words. After it, a "word" with no
        # letter or digit is noise (Whisper likes to append "..." to a prefix that already says it all).
        tail = [w for w in words[len(self._inside) :] if any(ch.isalnum() for ch in w)]
        return drop_repeats(self._before + self._inside, tail), timed

    def _detected(self, info: Any, seconds: float) -> None:
        """Whisper's language for this pass. Once it is sure (or has heard a few seconds) it is fixed: later
        passes skip the detection, and a turn does not switch language halfway."""
        if self._language_fixed or info is None or not getattr(info, "language", None):
            return
        self.language = info.language
        self._language_fixed = info.language_probability >= LANGUAGE_SURE or seconds >= LANGUAGE_SECONDS

    def _update_vad(self) -> None:
        from .speech import speech_spans

        context = SAMPLE_RATE // 2  # Silero starts cold each call; half a second of lead-in warms it up
        start = max(self._offset, self._vad_done - context)
        window = self._audio[start - self._offset :]
        spans = speech_spans(window)
        self._vad_done = self._total
        if spans:
            end = start + int(spans[-1][1] * SAMPLE_RATE)
            self._speech_end = max(self._speech_end, end)
            # speech running into the newest 100 ms counts as still speaking
            self._speaking = self._total - end < SAMPLE_RATE // 10
        else:
            self._speaking = False

    def _drop_until(self, sample: int) -> None:
        sample = min(max(sample, self._offset), self._total)
        self._audio = self._audio[sample - self._offset :]
        self._offset = sample

    def _trim_to(self, sample: int, committed_words: int) -> None:
        """Cut the buffer at absolute ``sample``; its first ``committed_words`` committed words go with it."""
        self._drop_until(sample)
        self._before.extend(self._inside[:committed_words])
        del self._inside[:committed_words]

    def _boundaries(self, timed: list[Word]) -> list[tuple[int, int]]:
        """Where committed words end together with a timed word: (committed words so far, timed index).

        Whisper's timed words are tokens grouped its own way ("3 o'clock." may come as "3", "o", "'clock."),
        so the two lists are matched by their letters, not one for one.
        """
        committed = "".join(self._inside)
        ends: dict[int, int] = {}
        length = 0
        for n, committed_word in enumerate(self._inside, start=1):
            length += len(committed_word)
            ends[length] = n
        found = []
        consumed = ""
        for j, word in enumerate(timed):
            consumed += word.text.replace(" ", "")
            if not committed.startswith(consumed):
                break
            if len(consumed) in ends:
                found.append((ends[len(consumed)], j))
        return found

    def _cut_at_pause(self, timed: list[Word]) -> None:
        """Cut in the latest pause (or after the latest sentence end) that follows a committed word."""
        for words, j in reversed(self._boundaries(timed)):
            if j + 1 >= len(timed):
                continue
            gap = timed[j + 1].start - timed[j].end
            if gap >= MIN_PAUSE or timed[j].text.endswith((".", "?", "!")):
                cut = timed[j].end + max(0.0, min(gap / 2, MIN_PAUSE))
                self._trim_to(self._offset + int(cut * SAMPLE_RATE), words)
                return

    def _force_cut(self, timed: list[Word]) -> Iterator[DictationEvent]:
        """The buffer is too long and has no pause to cut at: cut after the last committed word anyway, or,
        with nothing committed in it (rare: hypotheses that keep changing), commit what is heard."""
        boundaries = self._boundaries(timed)
        if boundaries:
            words, j = boundaries[-1]
            self._trim_to(self._offset + int(timed[j].end * SAMPLE_RATE), words)
            return
        rest = self._agreement.previous
        if rest:
            self._inside.extend(rest)
            yield Committed(" ".join(rest), self.committed_text)
        self._agreement.clear()
        self._trim_to(max(self._offset, self._total - SAMPLE_RATE // 2), len(self._inside))
