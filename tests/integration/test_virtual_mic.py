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

import pytest

from assistant.speech import dictation_clip, word_error_rate

from conftest import REPO, wait_until
from helpers.speech import require_tools, skip_unless

NEEDED = ("pulseaudio", "pactl", "paplay")

DEFAULT_PA = """
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name=virt_speaker rate=16000 channels=1 format=s16le
set-default-sink virt_speaker
set-default-source virt_speaker.monitor
"""


@pytest.fixture
def pulse_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private PulseAudio server (null sink + its monitor as the default source); the env to reach it."""
    require_tools(*NEEDED, install="apt-get install pulseaudio pulseaudio-utils libasound2-plugins")
    runtime, home = tmp_path / "pulse-run", tmp_path / "pulse-home"
    runtime.mkdir(mode=0o700)
    home.mkdir()
    script = tmp_path / "default.pa"
    script.write_text(DEFAULT_PA)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "PULSE_RUNTIME_PATH": str(runtime)}
    log = (tmp_path / "pulse.log").open("w")
    command = ["pulseaudio", "-n", "-F", str(script), "--daemonize=no", "--exit-idle-time=-1"]
    command += ["--disable-shm=yes", "--use-pid-file=no", "--log-target=stderr"]
    server = subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=log,
    )

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
    # the whole utterance was recorded, then 1.5 s of silence stopped it (long before --max-seconds)
    assert 5.4 + 1.5 <= doc["audio_seconds"] <= 20
    assert word_error_rate([clip.text], [doc["text"]]) <= 0.35, doc["text"]
