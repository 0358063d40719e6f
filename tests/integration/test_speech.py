"""The Transcriber on the real whisper-tiny.en model and real espeak-ng clips; input checks; formats; read-aloud."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from assistant import tts
from assistant.errors import AssistantError
from assistant.speech import (
    SAMPLE_RATE,
    Segment,
    TranscribeOptions,
    Transcriber,
    TranscriptInfo,
    dictation_clip,
    evaluate,
    format_srt,
    format_vtt,
    load_audio,
    normalize_text,
    reference_clips,
    speech_spans,
    word_error_rate,
)

from conftest import cannot_run, require_tool
from helpers.speech import (
    WER_THRESHOLD,
    joined_clips,
    parse_srt,
    parse_vtt,
    require_tools,
    skip_unless,
    write_m4a,
    write_wav,
)

WHISPER = "whisper-tiny.en:int8"


@pytest.fixture(scope="module")
def transcriber(starter_files: dict[str, Path]) -> Transcriber:
    """The real model with the shipped defaults (beam 1, VAD), loaded once for the module."""
    return Transcriber(starter_files[WHISPER], compute_type="int8", threads=2, options=TranscribeOptions())


# -- the shipped clips ---------------------------------------------------------------------------------------


def test_shipped_clips_are_small_16k_mono_with_transcripts() -> None:
    clips = reference_clips()
    assert len(clips) >= 10
    total = 0
    for clip in clips:
        audio = load_audio(clip.path)
        assert 2.0 < len(audio) / SAMPLE_RATE < 8.0, clip.id
        assert clip.text.strip()
        total += clip.path.stat().st_size
        with clip.path.open("rb") as f:
            header = f.read(44)
        assert header[:4] == b"RIFF" and header[8:12] == b"WAVE"
        assert int.from_bytes(header[22:24], "little") == 1  # mono
        assert int.from_bytes(header[24:28], "little") == SAMPLE_RATE
    assert total < 2_000_000
    assert 4.5 < len(load_audio(dictation_clip().path)) / SAMPLE_RATE < 6.5


# -- transcription -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_word_error_rate_on_the_shipped_clips(transcriber: Transcriber) -> None:
    result = evaluate(transcriber)
    assert result.wer <= WER_THRESHOLD, list(zip([c.text for c in reference_clips()], result.hypotheses, strict=True))
    assert all(h.strip() for h in result.hypotheses)
    assert result.rtf > 0


@pytest.mark.slow
def test_segments_info_and_word_timestamps(transcriber: Transcriber, tmp_path: Path) -> None:
    path, _ = joined_clips(tmp_path / "two.wav", reference_clips()[:2], gap=1.5)
    transcript = transcriber.transcribe(path, word_timestamps=True)
    assert transcript.info.language == "en"  # English-only model: never detected
    assert transcript.info.duration == pytest.approx(len(load_audio(path)) / SAMPLE_RATE, abs=0.01)
    segments = list(transcript)
    assert len(segments) >= 2
    previous_end = 0.0
    for segment in segments:
        assert previous_end - 0.05 <= segment.start <= segment.end <= transcript.info.duration + 0.05
        previous_end = segment.end
        assert segment.words
        assert "".join(w.text for w in segment.words) == segment.text.replace(" ", "")
        for word in segment.words:
            assert segment.start - 0.05 <= word.start <= word.end <= segment.end + 0.05
    assert "lazy dog" in normalize_text(" ".join(s.text for s in segments))


@pytest.mark.slow
def test_array_input_matches_file_input(transcriber: Transcriber) -> None:
    clip = reference_clips()[6]
    assert transcriber.transcribe(load_audio(clip.path)).text() == transcriber.transcribe(clip.path).text()


@pytest.mark.slow
def test_silence_gives_no_text(transcriber: Transcriber) -> None:
    transcript = transcriber.transcribe(np.zeros(3 * SAMPLE_RATE, dtype=np.float32))
    assert transcript.text() == ""
    assert transcript.info.speech_duration < 0.5


@pytest.mark.slow
def test_short_encoder_window_gives_the_same_words_faster(transcriber: Transcriber) -> None:
    """``audio_context`` (used by dictation) must not change what a short clip says."""
    clips = reference_clips()
    full = [transcriber.transcribe(c.path, vad=False, timestamps=False).text() for c in clips]
    short = [transcriber.transcribe(c.path, vad=False, timestamps=False, audio_context=3.0).text() for c in clips]
    texts = [c.text for c in clips]
    assert word_error_rate(texts, short) <= word_error_rate(texts, full) + 0.03
    assert word_error_rate(full, short) <= 0.1


def test_options_reject_unknown_and_bad_values(transcriber: Transcriber) -> None:
    with pytest.raises(AssistantError, match="transcribe option"):
        transcriber.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), beam=3)
    with pytest.raises(AssistantError, match="beam_size"):
        transcriber.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), beam_size=0)


# -- inputs are checked before faster-whisper sees them ----------------------------------------------------


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    noise = tmp_path / "random.wav"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    zero = write_wav(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32))
    text = tmp_path / "notes.mp3"
    text.write_text("not audio at all\n")
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    image = tmp_path / "picture.wav"  # a PNG header: a real container, with no audio stream in it
    image.write_bytes(bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489") + bytes(40))
    return {
        "image": image,
        "empty": empty,
        "random": noise,
        "zero": zero,
        "text": text,
        "folder": folder,
        "missing": tmp_path / "missing.wav",
    }


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty file"),
        ("image", "no audio stream"),
        ("random", "not an audio file or corrupt"),
        ("zero", "zero length"),
        ("text", "not an audio file or corrupt"),
        ("folder", "is a directory"),
        ("missing", "no such file"),
    ],
)
def test_bad_inputs_are_one_line_errors_naming_the_file(bad_files: dict[str, Path], name: str, reason: str) -> None:
    path = bad_files[name]
    with pytest.raises(AssistantError) as caught:
        load_audio(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("audio", "reason"),
    [
        (np.zeros((2, 100), dtype=np.float32), "mono"),
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros(100, dtype=np.int16), "float"),
        (np.array([0.0, np.nan], dtype=np.float32), "NaN"),
    ],
)
def test_bad_arrays_are_rejected(audio: np.ndarray, reason: str) -> None:
    with pytest.raises(AssistantError, match=reason):
        load_audio(audio)


def test_other_formats_decode(tmp_path: Path) -> None:
    """PyAV (bundled with faster-whisper) decodes compressed formats and resamples to 16 kHz."""
    require_tool("sox")
    clip = reference_clips()[0]
    reference = load_audio(clip.path)
    for suffix in ("flac", "ogg"):
        out = tmp_path / f"clip.{suffix}"
        subprocess.run(["sox", str(clip.path), "-r", "44100", "-c", "2", str(out)], check=True)
        audio = load_audio(out)
        assert audio.dtype == np.float32
        assert abs(len(audio) - len(reference)) < SAMPLE_RATE // 10


@pytest.mark.slow
def test_mp3_and_m4a_transcribe_as_well_as_wav(transcriber: Transcriber, tmp_path: Path) -> None:
    """The compressed formats the README names, checked by what they transcribe to: mp3 at 44.1 kHz stereo
    (sox with libsox-fmt-mp3) and m4a (AAC in MP4, encoded by PyAV, which faster-whisper installs)."""
    require_tools("sox", install="apt-get install sox libsox-fmt-mp3")
    clips = reference_clips()
    references = [c.text for c in clips]
    # measured here: wav 0.059, mp3 0.098 (44.1 kHz stereo, resampled back), m4a 0.092 (16 kHz AAC)
    for suffix in ("mp3", "m4a"):
        heard = []
        for clip in clips:
            out = tmp_path / f"{clip.id}.{suffix}"
            if suffix == "mp3":
                made = subprocess.run(
                    ["sox", str(clip.path), "-r", "44100", "-c", "2", str(out)], capture_output=True, text=True
                )
                skip_unless(made.returncode == 0, f"sox cannot write mp3: {made.stderr.strip()} (libsox-fmt-mp3)")
                head = out.read_bytes()[:3]
                assert head == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3"), head  # really MPEG audio
            else:
                write_m4a(out, load_audio(clip.path))
                assert out.read_bytes()[4:8] == b"ftyp"  # really an MP4 container
            heard.append(transcriber.transcribe(out).text())
        wer = word_error_rate(references, heard)
        assert wer <= WER_THRESHOLD, (suffix, wer, heard)  # the limit the wav clips are held to


def test_model_not_installed_is_one_line_error() -> None:
    with pytest.raises(AssistantError, match="not installed"):
        Transcriber.from_settings("whisper-tiny.en:int8")


def test_from_settings_takes_the_configured_options(installed_models: dict[str, object]) -> None:
    from assistant import config, paths

    loaded = Transcriber.from_settings()
    assert loaded.model_id == WHISPER
    assert loaded.compute_type == "int8"  # the catalog variant's compute type
    assert loaded.options.beam_size == config.load().speech.beam_size
    config_file = paths.config_file()
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text('[speech]\ncompute_type = "float32"\nbeam_size = 3\nvad = false\n')
    loaded = Transcriber.from_settings(beam_size=2)
    assert loaded.compute_type == "float32"  # set by the user: wins over the catalog
    assert (loaded.options.beam_size, loaded.options.vad) == (2, False)


def test_a_chat_model_is_not_a_speech_model(installed_models: dict[str, object]) -> None:
    with pytest.raises(AssistantError, match="not a speech model"):
        Transcriber.from_settings("smollm2-135m-instruct:q4_1")


def test_a_folder_without_model_bin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AssistantError, match="not a CTranslate2 Whisper folder"):
        Transcriber(tmp_path)


# -- formats, normalization, VAD -----------------------------------------------------------------------------


SEGMENTS = [
    Segment(0.0, 2.5, "Hello there."),
    Segment(2.5, 3661.2346, "A long one, past an hour."),
    Segment(3700.0, 3700.0, ""),  # an empty segment is left out
]
INFO = TranscriptInfo(duration=3700.0, language="en", language_probability=1.0, speech_duration=3000.0)


def test_srt_and_vtt_parse() -> None:
    srt = parse_srt(format_srt(SEGMENTS))
    assert [(c.start, c.end, c.text) for c in srt] == [(0.0, 2.5, "Hello there."), (2.5, 3661.235, SEGMENTS[1].text)]
    vtt = parse_vtt(format_vtt(SEGMENTS))
    assert [(c.start, c.end, c.text) for c in vtt] == [(c.start, c.end, c.text) for c in srt]


def test_normalize_and_wer() -> None:
    assert normalize_text("At 3 o'clock, the FOX-jumped!") == "at three o'clock the fox jumped"
    assert normalize_text("twenty-one 21 1,500") == "twenty one twenty one one thousand five hundred"
    assert word_error_rate(["the quick brown fox"], ["The quick brown fox."]) == 0.0
    assert word_error_rate(["the quick brown fox"], ["the quick fox"]) == pytest.approx(0.25)


def test_speech_spans_find_the_speech() -> None:
    clip = load_audio(reference_clips()[0].path)
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    spans = speech_spans(np.concatenate([silence, clip, silence]))
    assert spans
    assert 0.7 < spans[0][0] < 1.3
    assert spans[-1][1] < 1.0 + len(clip) / SAMPLE_RATE + 0.5
    assert speech_spans(np.zeros(2 * SAMPLE_RATE, dtype=np.float32)) == []


# -- read aloud ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_espeak_round_trip(transcriber: Transcriber, tmp_path: Path) -> None:
    if not tts.available():
        cannot_run("espeak-ng is not installed (apt-get install espeak-ng)")
    out = tts.synthesize("Please open the kitchen window.", tmp_path / "say.wav", voice="en-us")
    assert not list(tmp_path.glob("*.partial"))
    heard = transcriber.transcribe(out).text()
    assert word_error_rate(["please open the kitchen window"], [heard]) <= 0.2, heard


def test_speech_text_drops_markdown() -> None:
    assert tts.clean("**Bold** and `code` with a [link](http://x.y) # heading") == "Bold and code with a link heading"


def test_speaker_speaks_each_sentence_as_it_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in espeak-ng records what it was asked to say, in order (no sound device needed)."""
    log = tmp_path / "said.txt"
    fake = tmp_path / "espeak-ng"
    fake.write_text(f'#!/bin/sh\n/bin/cat >> "{log}"\necho >> "{log}"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}")
    speaker = tts.Speaker()
    for piece in ["Hello the", "re. How are", " you? I am fine", " thanks."]:
        speaker.feed(piece)
    speaker.finish(timeout=30)
    assert log.read_text().splitlines() == ["Hello there.", "How are you?", "I am fine thanks."]


def test_speaker_skips_code_blocks_and_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "said.txt"
    fake = tmp_path / "espeak-ng"
    fake.write_text(f'#!/bin/sh\n/bin/cat >> "{log}"\necho >> "{log}"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}")
    speaker = tts.Speaker()
    reply = "Use **this**:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nIt costs 5 kg. Done"
    for n in range(0, len(reply), 7):  # as it streams, in pieces that cut the fences
        speaker.feed(reply[n : n + 7])
    speaker.finish(timeout=30)
    assert log.read_text().splitlines() == ["Use this:", "code block omitted.", "It costs 5 kg.", "Done"]


def test_missing_espeak_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AssistantError, match="espeak-ng is not installed"):
        tts.Speaker()
    with pytest.raises(AssistantError, match="espeak-ng is not installed"):
        tts.synthesize("hi", tmp_path / "x.wav")
