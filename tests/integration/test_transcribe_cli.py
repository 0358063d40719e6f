"""``assistant transcribe`` / ``dictate --file`` / ``say`` as a user runs them: a subprocess, the real model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from assistant import tts
from assistant.speech import normalize_text, reference_clips, word_error_rate

from conftest import assert_one_line_error, cannot_run, run_cli
from helpers.speech import parse_srt, parse_vtt, write_wav

CLIPS = reference_clips()
FOX, REMIND = CLIPS[0], CLIPS[1]


def _close(reference: str, heard: str, limit: float = 0.3) -> bool:
    return word_error_rate([reference], [heard]) <= limit


@pytest.mark.slow
def test_srt_and_vtt_parse_and_json_has_words(installed_models: dict[str, object]) -> None:
    result = run_cli("transcribe", str(REMIND.path), "--format", "srt")
    assert result.returncode == 0, result.stderr
    cues = parse_srt(result.stdout)
    assert cues and _close(REMIND.text, " ".join(c.text for c in cues))
    assert cues[-1].end <= 4.0

    result = run_cli("transcribe", str(REMIND.path), "--format", "vtt")
    assert result.returncode == 0, result.stderr
    assert [c.text for c in parse_vtt(result.stdout)] == [c.text for c in cues]

    result = run_cli("transcribe", str(REMIND.path), "--json", "--word-timestamps", "--beam", "2")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["language"] == "en" and doc["duration"] == pytest.approx(3.74, abs=0.05)
    words = [w for s in doc["segments"] for w in s["words"]]
    assert len(words) >= 8 and all(w["start"] <= w["end"] for w in words)
    assert result.stderr == ""


@pytest.mark.slow
def test_bad_files_are_one_line_each_and_the_good_ones_are_done(
    installed_models: dict[str, object], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 8192, dtype=np.uint8).tobytes())
    zero = write_wav(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32))
    folder = tmp_path / "folder"
    folder.mkdir()
    missing = tmp_path / "missing.wav"
    bad = [empty, noise, zero, folder, missing]
    out = tmp_path / "out"
    args = [str(FOX.path), *map(str, bad), str(REMIND.path)]
    result = run_cli("transcribe", *args, "--format", "srt", "--out", str(out))
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == len(bad), result.stderr  # one line per bad file, nothing else
    for path, line in zip(bad, errors, strict=True):
        assert line.startswith(f"error: {path}: "), line
    assert "Traceback" not in result.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == ["fox.srt", "remind.srt"]  # no partial or temporary file left behind
    assert _close(REMIND.text, " ".join(c.text for c in parse_srt((out / "remind.srt").read_text())))
    assert result.stdout.splitlines() == [f"wrote {out / 'fox.srt'}", f"wrote {out / 'remind.srt'}"]


@pytest.mark.slow
def test_several_files_to_stdout(installed_models: dict[str, object]) -> None:
    result = run_cli("transcribe", str(FOX.path), str(REMIND.path))
    assert result.returncode == 0, result.stderr
    assert f"==> {FOX.path} <==" in result.stdout and f"==> {REMIND.path} <==" in result.stdout
    result = run_cli("transcribe", str(FOX.path), str(REMIND.path), "--json")
    docs = json.loads(result.stdout)
    assert [Path(d["file"]).name for d in docs] == ["fox.wav", "remind.wav"]


def test_only_bad_files_fail_without_loading_a_model(tmp_path: Path) -> None:
    result = run_cli("transcribe", str(tmp_path / "missing.wav"))
    assert assert_one_line_error(result) == f"error: {tmp_path / 'missing.wav'}: no such file"


def test_model_not_installed(tmp_path: Path) -> None:
    result = run_cli("transcribe", str(FOX.path))
    line = assert_one_line_error(result)
    assert "whisper-tiny.en:int8 is not installed" in line and "assistant models pull" in line


@pytest.mark.slow
def test_dictate_a_file_through_the_streaming_path(installed_models: dict[str, object]) -> None:
    clip = next(c for c in CLIPS if c.id == "shopping")
    result = run_cli("dictate", "--file", str(clip.path), "--fast", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert _close(clip.text, doc["text"]) and doc["passes"] >= 2
    assert doc["audio_seconds"] == pytest.approx(5.42, abs=0.05)
    # piped (not a terminal): the committed words stream to stdout, then the rest of the final text
    result = run_cli("dictate", "--file", str(clip.path), "--fast")
    assert result.returncode == 0, result.stderr
    assert normalize_text(result.stdout) == normalize_text(doc["text"])


@pytest.mark.slow
def test_dictate_send_puts_the_dictation_in_a_chat_and_prints_the_reply(installed_models: dict[str, object]) -> None:
    """`dictate --send`: the dictated text becomes a new chat's user message and the real chat model
    (SmolLM2) replies; stdout has the dictation, then the streamed reply."""
    from assistant import paths

    paths.config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text("[chat]\nmax_tokens = 24\ntemperature = 0\n")
    clip = next(c for c in CLIPS if c.id == "capital")
    result = run_cli("dictate", "--file", str(clip.path), "--fast", "--send")
    assert result.returncode == 0, result.stderr
    chats = json.loads(run_cli("chats", "list", "--json").stdout)
    assert len(chats) == 1 and chats[0]["messages"] == 2, chats
    shown = json.loads(run_cli("chats", "show", str(chats[0]["id"]), "--json").stdout)
    asked, answered = shown["messages"]
    assert asked["role"] == "user" and _close(clip.text, asked["content"]), asked
    assert answered["role"] == "assistant" and answered["content"].strip() and not answered["partial"]
    out = normalize_text(result.stdout)
    assert out.startswith(normalize_text(asked["content"])), result.stdout  # what was sent is what was dictated
    assert out.endswith(normalize_text(answered["content"])), result.stdout  # then the reply, streamed


def test_dictate_without_a_microphone_is_one_line(tmp_path: Path) -> None:
    from assistant import audio

    try:
        if audio.input_devices():
            cannot_run("this machine has a microphone, so the no-microphone error cannot be checked")
    except Exception:
        pass  # no PortAudio at all: the command must say so in one line too
    line = assert_one_line_error(run_cli("dictate"))
    assert line.startswith("error: no microphone found")


@pytest.mark.slow
def test_say_writes_a_wav_the_model_understands(installed_models: dict[str, object], tmp_path: Path) -> None:
    if not tts.available():
        cannot_run("espeak-ng is not installed (apt-get install espeak-ng)")
    out = tmp_path / "hello.wav"
    result = run_cli("say", "Turn", "on", "the", "radio", "please.", "--out", str(out))
    assert result.returncode == 0, result.stderr
    heard = run_cli("transcribe", str(out))
    assert _close("turn on the radio please", heard.stdout), heard.stdout


@pytest.mark.slow
def test_talk_sends_what_was_said_and_reads_the_reply_aloud(
    installed_models: dict[str, object], tmp_path: Path
) -> None:
    """Voice chat, one turn: a spoken question (a file instead of the microphone) -> the real chat model's
    reply streamed to stdout and fed, sentence by sentence, to espeak-ng (here a stand-in that logs)."""
    from assistant import paths

    paths.config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text("[chat]\nmax_tokens = 24\ntemperature = 0\n")
    spoken = tmp_path / "spoken.txt"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "espeak-ng").write_text(f'#!/bin/sh\n/bin/cat >> "{spoken}"\necho >> "{spoken}"\n')
    (fake_bin / "espeak-ng").chmod(0o755)
    clip = next(c for c in CLIPS if c.id == "capital")
    env = {"PATH": f"{fake_bin}:{os.environ.get('PATH', '')}"}
    timings = tmp_path / "timings.jsonl"
    result = run_cli("talk", "--file", str(clip.path), "--speak", "--timings", str(timings), env=env)
    assert result.returncode == 0, result.stderr
    (turn,) = [json.loads(line) for line in timings.read_text().splitlines()]
    marks = [turn[k] for k in ("speech_end", "final", "first_text", "first_sentence", "voice_start")]
    assert marks == sorted(marks) and marks[-1] - marks[0] < 120, turn  # each step after the one before
    assert oct(timings.stat().st_mode & 0o777) == "0o600"
    said, _, reply = result.stdout.partition("\n")
    assert said.startswith("you: ") and _close(clip.text, said[5:])
    assert reply.strip()
    assert normalize_text(spoken.read_text()) == normalize_text(reply)
    chats = json.loads(run_cli("chats", "list", "--json").stdout)
    assert len(chats) == 1 and chats[0]["messages"] == 2
