"""Streaming dictation through the exact path a microphone takes: an AudioSource -> Dictation, real model."""

from __future__ import annotations

import importlib.abc
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant import audio as audio_module
from assistant.audio import SAMPLE_RATE, AudioSource, MicrophoneSource, WavFileSource, _Resampler, level
from assistant.dictation import (
    Committed,
    Dictation,
    DictationEvent,
    Final,
    Level,
    LocalAgreement,
    Partial,
    _looks_like_a_loop,
    drop_repeats,
)
from assistant.errors import AssistantError
from assistant.speech import Segment, TranscribeOptions, Transcriber, load_audio, reference_clips, word_error_rate

from conftest import wait_until
from helpers.speech import (
    WER_THRESHOLD,
    joined_clips,
    repeated_ngrams,
    skip_unless,
    split_by_reference,
    write_wav,
)

WHISPER = "whisper-tiny.en:int8"


@pytest.fixture(scope="module")
def transcriber(starter_files: dict[str, Path]) -> Transcriber:
    return Transcriber(starter_files[WHISPER], compute_type="int8", threads=2, options=TranscribeOptions())


def check_committed_never_changes(events: list[DictationEvent]) -> Final:
    """Every event's committed text extends the previous one word for word; the final text extends the last."""
    committed: list[str] = []
    finals = []
    for event in events:
        if isinstance(event, Committed | Partial):
            now = event.committed.split()
            assert now[: len(committed)] == committed, (committed, now)
            committed = now
        if isinstance(event, Committed):
            assert event.committed.endswith(event.text)
        if isinstance(event, Final):
            finals.append(event)
            assert event.text.split()[: len(committed)] == committed
    assert len(finals) == 1 and events[-1] is finals[0]
    return finals[0]


# -- LocalAgreement ------------------------------------------------------------------------------------------


def test_local_agreement_commits_the_common_start_of_two_hypotheses() -> None:
    policy = LocalAgreement()
    assert policy.update(["good", "morning."]) == []  # one hypothesis agrees with nothing yet
    assert policy.update(["good", "morning,", "please"]) == ["good"]
    assert policy.previous == ["morning,", "please"]
    assert policy.update(["morning,", "please", "add"]) == ["morning,", "please"]
    assert policy.update(["milk"]) == []  # the tail changed entirely: nothing new is agreed
    policy.clear()
    assert policy.previous == []


def test_loop_detector() -> None:
    looped = [Segment(0, 5, "Turn off the lights. " * 12)]
    assert _looks_like_a_loop(looped, 5.0)
    assert not _looks_like_a_loop([Segment(0, 5, "Turn off the lights in the kitchen before bed.")], 5.0)
    assert _looks_like_a_loop([Segment(0, 1, " ".join(["w"] * 30))], 1.0)


def words(text: str) -> list[str]:
    return text.split()


def test_a_tail_that_repeats_the_words_before_it_loses_the_repeat() -> None:
    # the hypotheses of two consecutive passes that looped alike (recorded from whisper tiny.en, greedy)
    committed = words("The weather today is sunny with a light breeze from the west. Open the")
    looped = "file and read the first paragraph aloud. Open the file and read the first paragraph aloud."
    assert drop_repeats(committed, words(looped)) == words("file and read the first paragraph aloud.")
    committed += words("file and read the")
    looped = "first paragraph aloud. Open the file and read the first paragraph aloud. Open the file and"
    assert drop_repeats(committed, words(looped)) == words("first paragraph aloud.")
    # a loop inside the tail, its copies ending with or without the full stop
    looped = "Open the file and read the first. Open the file and read the first Open the file and read"
    assert drop_repeats(["west."], words(looped)) == words("Open the file and read the first.")
    # two words said twice, a phrase said again later, and no tail at all stay as they are
    assert drop_repeats([], words("very very good, thank you")) == words("very very good, thank you")
    said = words("Turn off the lights. Then, after dinner, turn off the lights")
    assert drop_repeats([], said) == said
    assert drop_repeats(["a", "b"], []) == []


def test_two_passes_that_loop_alike_commit_the_sentence_once() -> None:
    """LocalAgreement commits what two passes agree on: a loop both make would be committed, unless dropped."""
    committed = words("The weather today is sunny with a light breeze from the west.")
    policy = LocalAgreement()
    for looped in (
        "Open the file and read the first paragraph aloud. Open the file and read the first paragraph aloud.",
        "Open the file and read the first paragraph aloud. Open the file and read the first paragraph",
    ):
        committed += policy.update(drop_repeats(committed, words(looped)))
    assert " ".join(committed).count("Open the file") == 1, committed


# -- real model ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_streamed_partials_converge_to_the_whole_file_transcript(transcriber: Transcriber) -> None:
    clips = reference_clips()
    finals, wholes, late = [], [], []
    for clip in clips:
        dictation = Dictation(transcriber)
        events = list(dictation.run(WavFileSource(clip.path)))
        final = check_committed_never_changes(events)
        assert any(isinstance(e, Level) for e in events)
        if not any(isinstance(e, Committed) for e in events):
            late.append(clip.id)
        assert final.audio_seconds == pytest.approx(len(load_audio(clip.path)) / SAMPLE_RATE, abs=0.01)
        assert dictation.passes >= 2
        finals.append(final.text)
        wholes.append(transcriber.transcribe(clip.path).text())
    # Words commit early only once two passes agree. On a short clip whose first words Whisper keeps changing
    # between passes ("It's a timer" / "Set a timer", seen on the timer clip on some CPUs) nothing may commit
    # before the end, which is right; most clips must still commit while they play.
    assert len(late) <= len(clips) // 5, f"nothing committed before the end of {late}"
    references = [c.text for c in clips]
    # Measured: WER(dictation vs whole file) 0.05; dictation 0.09 and whole file 0.10 against the references.
    assert word_error_rate(wholes, finals) <= 0.12, list(zip(wholes, finals, strict=True))
    assert word_error_rate(references, finals) <= word_error_rate(references, wholes) + 0.03


class _Clock:
    """A clock that only moves when told: passes and audio take exactly the time the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _ClockedSource(AudioSource):
    """A live source (like a microphone) that hands over a file's blocks at once, advancing the clock by each."""

    live = True

    def __init__(self, path: Path, clock: _Clock, block_seconds: float) -> None:
        super().__init__()
        self.samples = load_audio(path)
        self.clock = clock
        self.block_size = int(block_seconds * SAMPLE_RATE)

    def blocks(self) -> Iterator[np.ndarray]:
        for begin in range(0, len(self.samples), self.block_size):
            if self.stopped:
                return
            block = self.samples[begin : begin + self.block_size]
            self.clock.now += len(block) / SAMPLE_RATE
            yield block


class _PacedTranscriber:
    """The real transcriber; each pass takes the next of ``seconds`` on the clock (a slower, busier machine)."""

    def __init__(self, transcriber: Transcriber, clock: _Clock, seconds: list[float]) -> None:
        self.transcriber = transcriber
        self.clock = clock
        self.seconds = itertools.cycle(seconds)

    def transcribe(self, audio: Any, **options: Any) -> Any:
        self.clock.now += next(self.seconds)
        return self.transcriber.transcribe(audio, **options)


# (block seconds, step seconds, seconds each pass takes on a live source: None for a file read at once).
# Each puts the passes, and so the buffer cuts, at other points of the same speech.
STEP_TIMINGS = {
    "file-0.1s-blocks-1s-steps": (0.1, 1.0, None),
    "file-0.25s-blocks-0.75s-steps": (0.25, 0.75, None),
    "file-0.32s-blocks-1.3s-steps": (0.32, 1.3, None),
    "live-passes-0.3-0.9s": (0.1, 0.5, [0.3, 0.9, 0.55, 0.7]),
}


@pytest.mark.slow
@pytest.mark.parametrize("timing", list(STEP_TIMINGS), ids=list(STEP_TIMINGS))
def test_long_dictation_commits_every_sentence_exactly_once(
    transcriber: Transcriber, tmp_path: Path, timing: str
) -> None:
    """A minute of speech (14 sentences): passes rarely re-encode more than ~trim_after + a step, and every
    spoken sentence is committed exactly once: nothing lost, nothing repeated, whatever the step timing."""
    block, step, pass_seconds = STEP_TIMINGS[timing]
    path, reference = joined_clips(tmp_path / "long.wav")
    clips = reference_clips()
    seconds = len(load_audio(path)) / SAMPLE_RATE
    assert seconds > 50
    clock = _Clock()
    source: AudioSource = WavFileSource(path, block_seconds=block)
    engine: Any = transcriber
    longest_step = step
    if pass_seconds is not None:
        source = _ClockedSource(path, clock, block)
        engine = _PacedTranscriber(transcriber, clock, pass_seconds)
        longest_step = max(step, 2 * max(pass_seconds))  # a live source waits 2x a pass before the next
    dictation = Dictation(engine, step_seconds=step, trim_after=8.0, max_buffer=20.0, clock=clock)
    events = list(dictation.run(source))
    final = check_committed_never_changes(events)
    text = final.text
    # Most passes hear at most trim_after + a step or two: the buffer is cut after committed words. While the
    # hypotheses keep changing there is nothing committed to cut after and it grows a few passes more (measured:
    # 12.8 s once, on a CPU whose numerics differ); never past max_buffer + a step.
    lengths = sorted(dictation.pass_seconds)
    assert lengths[-1] <= 20.0 + longest_step, lengths
    assert lengths[int(0.9 * len(lengths))] <= 8.0 + 2 * longest_step, lengths
    assert dictation.passes <= seconds / step + 5
    # committed exactly once: the Committed events, joined, are the committed text, each word once
    committed = [e for e in events if isinstance(e, Committed)]
    assert " ".join(e.text for e in committed) == committed[-1].committed
    # every sentence once: aligned to the reference, each sentence's share of the text is that sentence
    pieces = split_by_reference([c.text for c in clips], text)
    for clip, piece in zip(clips, pieces, strict=True):
        # measured: at most 3 words of 9 wrong (fox); a lost sentence scores 1.0, a doubled one >= 1.0
        assert word_error_rate([clip.text], [piece]) <= 0.5, (clip.text, piece, text)
    assert not repeated_ngrams(reference, text), text
    assert word_error_rate([reference], [text]) <= WER_THRESHOLD, text


@pytest.mark.slow
def test_stop_from_another_thread_finishes_with_the_text_so_far(transcriber: Transcriber) -> None:
    clip = next(c for c in reference_clips() if c.id == "shopping")
    source = WavFileSource(clip.path, realtime=True)
    dictation = Dictation(transcriber)
    events: list[DictationEvent] = []
    worker = threading.Thread(target=lambda: events.extend(dictation.run(source)))
    worker.start()
    wait_until(lambda: any(isinstance(e, Committed) for e in list(events)), timeout=60)
    dictation.stop()
    worker.join(60)
    final = check_committed_never_changes(events)
    committed = [e for e in events if isinstance(e, Committed)]
    assert final.text.startswith(committed[-1].committed)  # the final text keeps every committed word
    assert final.audio_seconds < source.duration - 0.3  # it stopped before the end of the file
    assert final.latency >= 0  # how long it takes is benchmarks/speech.py's stop latency, not a test limit


@pytest.mark.slow
def test_cancel_ends_without_a_final(transcriber: Transcriber) -> None:
    clip = reference_clips()[0]
    source = WavFileSource(clip.path, realtime=True)
    dictation = Dictation(transcriber)
    events: list[DictationEvent] = []
    worker = threading.Thread(target=lambda: events.extend(dictation.run(source)))
    worker.start()
    wait_until(lambda: any(isinstance(e, Level) for e in list(events)), timeout=60)
    dictation.cancel()
    worker.join(60)
    assert not worker.is_alive()
    assert not any(isinstance(e, Final) for e in events)


@pytest.mark.slow
def test_stop_after_silence_ends_the_recording(transcriber: Transcriber) -> None:
    clip = reference_clips()[1]
    source = WavFileSource(clip.path, pad_seconds=8.0)  # a microphone left open after the sentence
    dictation = Dictation(transcriber, stop_after_silence=1.0)
    final = check_committed_never_changes(list(dictation.run(source)))
    speech = len(load_audio(clip.path)) / SAMPLE_RATE
    assert speech + 0.8 <= final.audio_seconds <= speech + 3.5
    assert word_error_rate([clip.text], [final.text]) <= 0.3, final.text


@pytest.mark.slow
def test_the_pause_ends_the_turn_between_passes(transcriber: Transcriber) -> None:
    """The pause is timed on every audio block, not only at passes: with a pass every 2 s, a 1 s pause still
    ends the recording about 1 s after the last word (voice mode's end-of-turn wait), not at the next pass;
    ``silence_after`` says how much of the recording was that pause."""
    clip = reference_clips()[1]
    audio = load_audio(clip.path)
    blocks = audio[: len(audio) // 320 * 320].reshape(-1, 320)
    last_sound = (int(np.nonzero(np.sqrt((blocks**2).mean(axis=1)) > 0.02)[0][-1]) + 1) * 320 / SAMPLE_RATE
    dictation = Dictation(transcriber, step_seconds=2.0, stop_after_silence=1.0)
    final = check_committed_never_changes(list(dictation.run(WavFileSource(clip.path, pad_seconds=8.0))))
    waited = final.audio_seconds - last_sound
    # measured: 1.2 s (silence_after 1.07: the VAD's end of speech is a little after the last loud block);
    # stopping at the next pass instead, as before, it was 2.6 s
    assert 1.0 <= waited <= 1.5, waited
    assert abs(final.silence_after - waited) <= 0.3, (final.silence_after, waited)
    assert word_error_rate([clip.text], [final.text]) <= 0.3, final.text


@pytest.mark.slow
def test_stop_after_silence_also_after_everything_was_committed(transcriber: Transcriber) -> None:
    """A long pause after the last word: no pass is needed any more, and the silence still ends it."""
    clip = reference_clips()[1]
    dictation = Dictation(transcriber, stop_after_silence=3.0)
    final = check_committed_never_changes(list(dictation.run(WavFileSource(clip.path, pad_seconds=30.0))))
    speech = len(load_audio(clip.path)) / SAMPLE_RATE
    assert speech + 2.8 <= final.audio_seconds <= speech + 5.5
    assert final.text


@pytest.mark.slow
def test_silence_only_runs_no_pass_and_says_nothing(transcriber: Transcriber, tmp_path: Path) -> None:
    path = write_wav(tmp_path / "quiet.wav", np.zeros(4 * SAMPLE_RATE, dtype=np.float32))
    dictation = Dictation(transcriber)
    final = check_committed_never_changes(list(dictation.run(WavFileSource(path))))
    assert final.text == ""
    assert dictation.passes == 0


# -- audio sources -------------------------------------------------------------------------------------------


def test_file_source_yields_the_file_in_blocks() -> None:
    clip = reference_clips()[0]
    source = WavFileSource(clip.path, pad_seconds=0.5)
    blocks = list(source)
    assert all(b.dtype == np.float32 and b.ndim == 1 for b in blocks)
    assert all(len(b) == SAMPLE_RATE // 10 for b in blocks[:-1])
    joined = np.concatenate(blocks)
    expected = load_audio(clip.path)
    assert np.array_equal(joined[: len(expected)], expected)
    assert len(joined) == len(expected) + SAMPLE_RATE // 2 and not joined[len(expected) :].any()
    assert source.speech_ended_at is not None


def test_paced_file_source_never_releases_audio_before_it_was_spoken_and_stops_at_once() -> None:
    """Each block comes no earlier than the time it takes to say it (how close to that: benchmarks/speech.py)."""
    clip = reference_clips()[0]
    source = WavFileSource(clip.path, realtime=True)
    started = time.perf_counter()  # before the source's own start: the bound below only gets looser
    received = 0
    for block in source:
        received += len(block)
        assert time.perf_counter() - started >= received / SAMPLE_RATE - 0.005, received
        if received >= SAMPLE_RATE:  # one second in
            source.stop()
    assert received == SAMPLE_RATE  # stopped at once: not one more block after stop()


def test_bad_file_source_is_the_usual_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(AssistantError, match="no such file"):
        WavFileSource(tmp_path / "nope.wav")


def test_level_meter_scale() -> None:
    t = np.arange(SAMPLE_RATE // 10) / SAMPLE_RATE
    loud = (0.9 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    assert level(np.zeros(1600, dtype=np.float32)) == 0.0
    assert 0.9 < level(loud) <= 1.0
    assert 0.25 < level(loud * 0.01) < 0.29  # RMS -44 dBFS: (60 - 44) / 60
    assert level(np.zeros(0, dtype=np.float32)) == 0.0


def test_resampler_keeps_pitch_and_continuity() -> None:
    rate = 48_000
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    resample = _Resampler(rate)
    out = np.concatenate([resample(tone[i : i + 4800]) for i in range(0, rate, 4800)])
    assert abs(len(out) - SAMPLE_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(out[:SAMPLE_RATE]))
    peak = np.argmax(spectrum) * SAMPLE_RATE / len(out[:SAMPLE_RATE])
    assert abs(peak - 440) < 3
    step = 2 * np.pi * 440 / SAMPLE_RATE
    assert np.abs(np.diff(out)).max() < step * 1.05  # no jumps at block edges


class _NoPortAudio(importlib.abc.MetaPathFinder):
    """Behaves like sounddevice on a machine without libportaudio: importing it raises OSError."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_no_portaudio_means_no_microphone_but_everything_else_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    with pytest.raises(AssistantError, match="no microphone found: the PortAudio library is not installed"):
        MicrophoneSource()
    with pytest.raises(AssistantError, match="PortAudio"):
        audio_module.input_devices()
    assert len(list(WavFileSource(reference_clips()[0].path))) > 0


def test_no_input_device_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    try:
        devices = audio_module.input_devices()
    except AssistantError:
        skip_unless(False, "PortAudio is not installed here (apt-get install libportaudio2)")
        return
    skip_unless(not devices, "this machine has a microphone")
    with pytest.raises(AssistantError) as caught:
        MicrophoneSource()
    assert str(caught.value).startswith("no microphone found (")
    with pytest.raises(AssistantError, match="no microphone 'no such mic'"):
        MicrophoneSource("no such mic")


# -- the TUI panel -------------------------------------------------------------------------------------------


def _host(panel_factory: Any) -> Any:
    from textual.app import App, ComposeResult

    from assistant.ui.widgets.voice import VoicePanel

    class Host(App[None]):
        def __init__(self) -> None:
            super().__init__()
            self.finished: list[str] = []
            self.failed: list[str] = []

        def compose(self) -> ComposeResult:
            yield panel_factory()

        def on_voice_panel_dictation_finished(self, message: VoicePanel.DictationFinished) -> None:
            self.finished.append(message.text)

        def on_voice_panel_dictation_failed(self, message: VoicePanel.DictationFailed) -> None:
            self.failed.append(message.error)

    return Host()


@pytest.mark.slow
async def test_voice_panel_shows_level_and_live_text_then_posts_the_final_text(transcriber: Transcriber) -> None:
    from assistant.ui.widgets.voice import LevelMeter, VoicePanel

    from helpers.ui import wait_until as ui_wait_until

    clip = next(c for c in reference_clips() if c.id == "shopping")
    app = _host(
        lambda: VoicePanel(
            transcriber_factory=lambda: transcriber, source_factory=lambda: WavFileSource(clip.path, realtime=True)
        )
    )
    async with app.run_test() as pilot:
        panel = app.query_one(VoicePanel)
        assert not panel.has_class("-active")
        panel.start()
        await ui_wait_until(pilot, lambda: panel.recording, "recording", timeout=60)
        assert panel.has_class("-active") and panel.busy
        await ui_wait_until(pilot, lambda: app.query_one(LevelMeter).level > 0.3, "the level meter", timeout=30)
        await ui_wait_until(pilot, lambda: bool(panel.committed), "committed words", timeout=60)
        shown = str(app.query_one("#voice-text").render())
        assert shown.startswith(panel.committed)
        await ui_wait_until(pilot, lambda: bool(app.finished), "the final text", timeout=60)
        assert word_error_rate([clip.text], app.finished) <= 0.3, app.finished
        await ui_wait_until(pilot, lambda: not panel.has_class("-active"), "the panel to hide", timeout=10)
        assert not panel.recording and not panel.busy


async def test_voice_panel_reports_a_missing_microphone_in_one_line() -> None:
    from assistant.ui.widgets.voice import VoicePanel

    from helpers.ui import wait_until as ui_wait_until

    def no_mic() -> Any:
        raise AssistantError("no microphone found", "plug one in")

    app = _host(lambda: VoicePanel(source_factory=no_mic))
    async with app.run_test() as pilot:
        panel = app.query_one(VoicePanel)
        panel.start()
        await ui_wait_until(pilot, lambda: bool(app.failed), "the failure", timeout=10)
        assert app.failed == ["no microphone found (plug one in)"]
        await ui_wait_until(pilot, lambda: not panel.has_class("-active"), "the panel to hide", timeout=10)
