"""Dictation from a (virtual) microphone: PortAudio records, through MicrophoneSource, an espeak-ng clip.

The capture device is a private PulseAudio server with a null sink: what ``paplay`` plays into the sink
comes out of its monitor source in real time, and PortAudio sees the server as the ALSA ``pulse`` input
device (alsa-plugins' pulse plugin). So the test runs the real ``assistant dictate --device pulse`` and
speaks to it, as a user would.

(An ALSA-only ``file`` plugin device was tried first: PortAudio records through mmap, and alsa-lib's file
plugin re-reads its input file on every ``mmap_begin``, so the audio arrives scrambled.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import SAMPLE_RATE
from assistant.speech import dictation_clip, reference_clips, word_error_rate

from conftest import REPO, wait_until
from helpers.speech import require_tools, skip_unless

NEEDED = ("pulseaudio", "pactl", "paplay")

DEFAULT_PA = """
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name=virt_speaker rate=16000 channels=1 format=s16le
set-default-sink virt_speaker
set-default-source virt_speaker.monitor
"""


TWO_SINKS_PA = """
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name=mic rate=16000 channels=1 format=s16le
load-module module-null-sink sink_name=out rate=16000 channels=1 format=s16le
set-default-sink out
set-default-source mic.monitor
"""


def _pulse_server(tmp_path: Path, script_text: str) -> Iterator[dict[str, str]]:
    """A private PulseAudio server running ``script_text``; the env to reach it."""
    require_tools(*NEEDED, install="apt-get install pulseaudio pulseaudio-utils libasound2-plugins")
    runtime, home = tmp_path / "pulse-run", tmp_path / "pulse-home"
    runtime.mkdir(mode=0o700)
    home.mkdir()
    script = tmp_path / "default.pa"
    script.write_text(script_text)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "PULSE_RUNTIME_PATH": str(runtime)}
    log = (tmp_path / "pulse.log").open("w")
    command = ["pulseaudio", "-n", "-F", str(script), "--daemonize=no", "--exit-idle-time=-1"]
    command += ["--disable-shm=yes", "--use-pid-file=no", "--log-target=stderr"]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=log)

    def ready() -> bool:
        if server.poll() is not None:
            return True
        return subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0

    try:
        wait_until(ready, timeout=20)
        if server.poll() is not None:
            reason = (tmp_path / "pulse.log").read_text().strip().splitlines()[-1:] or ["exited"]
            skip_unless(False, f"cannot start a PulseAudio server here: {reason[0]}")
        yield env
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(10)
        log.close()


@pytest.fixture
def pulse_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A null sink whose monitor is the default source: what is played into it, the microphone hears."""
    yield from _pulse_server(tmp_path, DEFAULT_PA)


@pytest.fixture
def two_sinks(tmp_path: Path) -> Iterator[dict[str, str]]:
    """``mic`` (its monitor is the default source) and ``out`` (the default sink: where the app speaks)."""
    yield from _pulse_server(tmp_path, TWO_SINKS_PA)


def _recording(env: dict[str, str]) -> bool:
    out = subprocess.run(["pactl", "list", "short", "source-outputs"], env=env, capture_output=True, text=True)
    return bool(out.stdout.strip())


@pytest.mark.slow
def test_dictate_from_a_virtual_microphone(installed_models: dict[str, object], pulse_env: dict[str, str]) -> None:
    env = {**pulse_env, "ASSISTANT_HOME": os.environ["ASSISTANT_HOME"]}
    cli = [sys.executable, "-m", "assistant"]
    devices = subprocess.run([*cli, "dictate", "--list-devices", "--json"], env=env, capture_output=True, text=True)
    assert devices.returncode == 0, devices.stderr
    assert "pulse" in [d["name"] for d in json.loads(devices.stdout)]  # PortAudio sees the server as a microphone

    clip = dictation_clip()
    dictate = subprocess.Popen(
        [*cli, "dictate", "--device", "pulse", "--stop-after-silence", "1.5", "--max-seconds", "60", "--json"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: _recording(env) or dictate.poll() is not None, timeout=120)
        assert dictate.poll() is None, dictate.communicate()[1]
        played = subprocess.run(["paplay", "--device=virt_speaker", str(clip.path)], env=env, capture_output=True)
        assert played.returncode == 0, played.stderr
        stdout, stderr = dictate.communicate(timeout=120)
    finally:
        if dictate.poll() is None:
            dictate.kill()
    assert dictate.returncode == 0, stderr
    doc = json.loads(stdout)
    assert doc["source"] == "pulse"
    # the whole utterance was recorded, then 1.5 s of silence after its last word stopped it (timed on every
    # block: 0.1 s of slack for where the VAD puts the end), long before --max-seconds
    assert _last_sound(clip.path) + 1.5 - 0.1 <= doc["audio_seconds"] <= 20
    assert word_error_rate([clip.text], [doc["text"]]) <= 0.35, doc["text"]


def _streams_on(env: dict[str, str], source: str) -> int:
    """How many recording streams are open on ``source`` (the app's microphone, not the test's recorder)."""

    def rows(what: str) -> list[list[str]]:
        out = subprocess.run(["pactl", "list", "short", what], env=env, capture_output=True, text=True).stdout
        return [line.split("\t") for line in out.splitlines() if line.strip()]

    ids = {row[0] for row in rows("sources") if len(row) > 1 and row[1] == source}
    return sum(1 for row in rows("source-outputs") if len(row) > 1 and row[1] in ids)


def _last_sound(path: Path) -> float:
    """Seconds into a clip where its last 20 ms block above the noise floor ends."""
    from assistant.speech import load_audio

    audio = load_audio(path)
    blocks = audio[: len(audio) // 320 * 320].reshape(-1, 320)
    return (int(np.nonzero(np.sqrt((blocks**2).mean(axis=1)) > 0.02)[0][-1]) + 1) * 320 / SAMPLE_RATE


def _quiet_tail(raw: Path, seconds: float = 0.5) -> bool:
    data = np.frombuffer(raw.read_bytes(), dtype=np.int16)
    tail = data[-int(seconds * SAMPLE_RATE) :].astype(np.float32) / 32768
    return len(data) > SAMPLE_RATE and float(np.sqrt(np.mean(tail**2))) < 0.01


@pytest.mark.slow
def test_talk_speaks_its_reply_where_it_can_be_heard(
    installed_models: dict[str, object], whisper_base_dir: Path, two_sinks: dict[str, str], tmp_path: Path
) -> None:
    """One spoken turn of ``assistant talk --speak``, all in real audio: an espeak-ng question played into the
    virtual microphone, the real models, and the reply read by the real espeak-ng onto a second sink, recorded
    there and transcribed by whisper-base: it is the reply's text. Then the app listens again."""
    from assistant import paths, tts
    from assistant.speech import Transcriber, normalize_text

    require_tools("parec", "espeak-ng", install="apt-get install pulseaudio-utils espeak-ng")
    paths.config_file().parent.mkdir(parents=True, exist_ok=True)
    paths.config_file().write_text("[chat]\nmax_tokens = 32\ntemperature = 0\n")
    env = {**two_sinks, "ASSISTANT_HOME": os.environ["ASSISTANT_HOME"]}
    raw = tmp_path / "out.raw"
    recorder = subprocess.Popen(
        ["parec", "-d", "out.monitor", "--raw", "--format=s16le", "--rate=16000", "--channels=1"],
        stdout=raw.open("wb"),
        env=env,
    )
    printed = tmp_path / "talk.out"
    talk = subprocess.Popen(
        [sys.executable, "-m", "assistant", "talk", "--device", "pulse", "--speak"],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=printed.open("w"),
        stderr=subprocess.PIPE,
        text=True,
    )
    clip = next(c for c in reference_clips() if c.id == "weather")
    try:
        wait_until(lambda: _streams_on(env, "mic.monitor") == 1 or talk.poll() is not None, timeout=120)
        assert talk.poll() is None, talk.communicate()[1]
        played = subprocess.run(["paplay", "--device=mic", str(clip.path)], env=env, capture_output=True)
        assert played.returncode == 0, played.stderr

        def listening_again() -> bool:
            lines = printed.read_text().splitlines()
            return talk.poll() is not None or (len(lines) >= 2 and _streams_on(env, "mic.monitor") == 1)

        wait_until(listening_again, timeout=180, what="the reply to be read and the microphone to reopen")
        assert talk.poll() is None, talk.communicate()[1]
        wait_until(lambda: _quiet_tail(raw), timeout=30, what="the sink to fall silent")
    finally:
        talk.terminate()
        talk.wait(30)
        recorder.terminate()
        recorder.wait(10)
    said, reply = printed.read_text().splitlines()[:2]  # then the next turn's "you: " label
    assert said.startswith("you: ") and word_error_rate([clip.text], [said[5:]]) <= 0.35, said
    heard_audio = np.frombuffer(raw.read_bytes(), dtype=np.int16).astype(np.float32) / 32768
    # The listener is the best recognizer the tests have (base, beam 5), as what is checked is the audio path,
    # not recognition: espeak-ng's default voice at 175 words a minute is hard for tiny.en, and how hard
    # depends on the CPU (one machine heard 1 word of 12 wrong; another, "The weather donated solid wind and
    # light breeze from the west.", 5, with int8 and float32 alike). Base with beam 5 heard that recording right.
    transcriber = Transcriber(whisper_base_dir, compute_type="int8", threads=2)
    heard = transcriber.transcribe(heard_audio, beam_size=5, language="en").text()
    spoken = tts.clean(reply)
    wer = word_error_rate([normalize_text(spoken)], [normalize_text(heard)])
    assert wer <= 0.3, (spoken, heard, wer)
