"""Bench and quantize workers: a full disk, and a parent killed with -9 (real SmolLM2, real llama.cpp quantizer)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from conftest import REPO, SMOL, register_model, run_cli, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 20 MB filesystem (tmpfs): writes past it fail with ENOSPC, as on a full disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a 20 MB tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.timeout(600)
def test_quantize_into_a_full_disk_says_so_and_leaves_nothing(
    small_disk: Path, starter_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to say "llama.cpp could not quantize ...: basic_ios::clear: iostream error"."""
    home = small_disk / "home"
    home.mkdir()
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    register_model(SMOL, starter_files[SMOL])
    before = sorted(p.relative_to(home) for p in home.rglob("*") if p.is_file())

    result = run_cli("models", "quantize", SMOL, "--to", "q8_0", "--threads", "1", env={"ASSISTANT_HOME": str(home)})

    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]  # after the progress and a note
    assert len(errors) == 1 and result.stderr.strip().endswith(errors[0]), result.stderr
    line = errors[0]
    assert "no space left on device in " in line and " MB" in line, line
    assert "iostream" not in line
    after = sorted(p.relative_to(home) for p in home.rglob("*") if p.is_file())
    assert [p for p in after if p not in before and "assistant.db" not in p.name] == []  # no partial
    assert not list(home.rglob("*.partial"))


_PARENT = """
import json, sys
from assistant.bench import worker
worker.run(sys.argv[1], json.loads(sys.argv[2]), lambda event: None)
"""


def _unread_bytes(fd: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, bytes(4)))[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FIFO and FIONREAD set-up is Linux-only")
@pytest.mark.timeout(300)
def test_a_quantize_worker_dies_with_its_parent_and_removes_its_output(
    starter_files: dict[str, Path], tmp_path: Path
) -> None:
    """Parent killed with -9 while its worker writes: the worker used to finish a hidden 271 MB ``.partial``.

    The output is a FIFO this test opens and never reads: it stands for a slow disk, so the worker is
    certainly still mid-write when the parent dies, whatever the machine's speed.
    """
    output = tmp_path / ".model.Q8_0.gguf.partial"
    os.mkfifo(output)
    reader = os.open(output, os.O_RDONLY | os.O_NONBLOCK)
    spec = {
        "source": str(starter_files[SMOL]),
        "output": str(output),
        "ftype": "Q8_0",
        "threads": 1,
        "allow_requantize": True,
    }
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, "quantize", json.dumps(spec)], cwd=REPO, env=env)
    child: psutil.Process | None = None
    try:
        wait_until(lambda: _unread_bytes(reader) > 0, timeout=240, what="the worker writing its output")
        (child,) = psutil.Process(parent.pid).children()
        parent.send_signal(signal.SIGKILL)
        parent.wait()

        def gone() -> bool:
            try:
                return child.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        wait_until(gone, timeout=60, what="the orphaned worker to exit")
        assert not output.exists()
    finally:
        os.close(reader)
        if parent.poll() is None:
            parent.kill()
        if child is not None and child.is_running():
            child.kill()
