"""Every command that lists things takes ``--json`` and prints parseable JSON with the keys scripts rely on.

The commands come from the click group itself: each one is either a listing (run here with ``--json``), an
action that also reports in JSON, or in ``NO_JSON`` with the reason it prints nothing to parse. A new
command that is none of these fails ``test_every_command_is_classified``, so a listing command cannot be
added without ``--json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
import pytest

from conftest import GEMMA, SMOL, WHISPER, run_cli

# Commands that act (and report what they did in JSON too); they are run by their own tests.
JSON_ACTIONS = {
    "bench run", "chat", "dictate", "models add", "models import", "models pull", "models quantize", "models rm",
    "transcribe",
}  # fmt: skip
# Commands with nothing to list, and why they print no JSON.
NO_JSON = {
    "bench export": "writes a stored run in the --format asked for (csv, json or md)",
    "bench plot": "draws a chart",
    "bench rm": "deletes runs",
    "chats export": "writes a chat as Markdown",
    "chats rename": "renames a chat",
    "chats rm": "deletes chats",
    "models use": "sets a default",
    "say": "speaks, or writes a WAV",
    "serve": "runs the API server (its output is the access log)",
    "talk": "a spoken conversation",
}

Check = Callable[[Any, "Data"], None]


class Data:
    """What the test home holds: the starters, one chat with a reply, one stored benchmark run."""

    def __init__(self, chat_id: int, run_id: int) -> None:
        self.chat_id = chat_id
        self.run_id = run_id


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if command.hidden:
            continue
        if isinstance(command, click.Group):
            found.update(_commands(command, path + " "))
        else:
            found[path] = command
    return found


def _cli_commands() -> dict[str, click.Command]:
    from assistant.cli import bench, chat, doctor, models, pull, serve, settings, speech  # noqa: F401  (they register)
    from assistant.cli.root import cli

    return _commands(cli)


def _takes_json(command: click.Command) -> bool:
    return any(isinstance(p, click.Option) and "--json" in p.opts and p.is_flag for p in command.params)


def _rows_with(rows: list[dict[str, Any]], keys: set[str]) -> None:
    assert rows, "nothing listed"
    for row in rows:
        assert keys <= set(row), keys - set(row)


def _models_list(out: Any, data: Data) -> None:
    _rows_with(out["models"], {"id", "status", "size_bytes", "fit", "estimate_bytes", "default"})
    installed = {m["id"] for m in out["models"] if m["status"] == "installed"}
    assert installed == {SMOL, GEMMA, WHISPER}


def _models_du(out: Any, data: Data) -> None:
    assert {"models", "partial_downloads", "wheel_cache", "total_owned_bytes"} <= set(out)
    _rows_with(out["models"], {"id", "bytes", "managed", "path"})
    assert {m["id"] for m in out["models"]} == {SMOL, GEMMA, WHISPER}
    assert all(m["bytes"] > 0 for m in out["models"])
    assert out["total_owned_bytes"] == out["partial_downloads"] + out["wheel_cache"]  # the starters are imported


def _models_info(out: Any, data: Data) -> None:
    assert {"architecture", "parameters", "quant", "context_length", "memory", "fit"} <= set(out)
    assert out["architecture"] == "llama" and out["quant"] == "Q4_1"


def _models_verify(out: Any, data: Data) -> None:
    _rows_with(out, {"id", "status"})
    assert [row["id"] for row in out] == [SMOL]


def _chats_list(out: Any, data: Data) -> None:
    _rows_with(out, {"id", "title", "model", "created_at", "updated_at", "messages"})
    assert [(c["id"], c["messages"]) for c in out] == [(data.chat_id, 2)]


def _chats_show(out: Any, data: Data) -> None:
    assert out["id"] == data.chat_id and out["title"] == "Name a river."
    _rows_with(out["messages"], {"id", "role", "content", "partial", "model"})
    assert [(m["role"], m["content"]) for m in out["messages"]] == [("user", "Name a river."), ("assistant", "Danube")]


def _chats_search(out: Any, data: Data) -> None:
    _rows_with(out, {"chat", "message_id", "snippet"})
    assert [h["chat"]["id"] for h in out] == [data.chat_id] and "Danube" in out[0]["snippet"]


def _bench_history(out: Any, data: Data) -> None:
    _rows_with(out, {"run_id", "kind", "created_at", "fingerprint", "results"})
    assert [r["run_id"] for r in out] == [data.run_id]
    assert [row["id"] for row in out[0]["results"]] == [SMOL]


def _bench_compare(out: Any, data: Data) -> None:
    assert out["runs"] == [data.run_id, data.run_id] and out["differences"] == {str(data.run_id): []}
    assert out["rows"]


def _config(out: Any, data: Data) -> None:
    assert out["file"].endswith("config.toml")
    _rows_with(out["settings"], {"key", "value", "default", "description"})
    assert "runtime.threads" in {s["key"] for s in out["settings"]}


def _paths(out: Any, data: Data) -> None:
    assert {"config", "catalog", "database", "models", "wheel cache", "log"} <= set(out)
    assert all(isinstance(value, str) and value.startswith("/") for value in out.values())


def _devices(out: Any, data: Data) -> None:
    assert isinstance(out, list)  # empty on a machine without a microphone
    for device in out:
        assert {"index", "name", "channels"} <= set(device), device


def _doctor(out: Any, data: Data) -> None:
    assert out["ok"] is True, out
    names = {check["name"] for check in out["checks"]}
    assert "assistant.db" in names, names
    for check in out["checks"]:
        assert {"area", "name", "status", "detail", "fix"} <= set(check), check
        assert check["status"] in {"ok", "warning", "problem", "fixed"}, check
    models = [c for c in out["checks"] if c["area"] == "models"]
    assert any(SMOL in c["name"] for c in models), models


def _ps(out: Any, data: Data) -> None:
    assert out == {"server": None, "pid": None, "models": []}  # no server runs here (tests/integration run one)


# Listing command -> its arguments (without --json) and what its JSON must hold.
LISTING: dict[str, tuple[Callable[[Data], list[str]], Check]] = {
    "models list": (lambda d: [], _models_list),
    "models du": (lambda d: [], _models_du),
    "models info": (lambda d: [SMOL], _models_info),
    "models verify": (lambda d: [SMOL], _models_verify),
    "chats list": (lambda d: [], _chats_list),
    "chats show": (lambda d: [str(d.chat_id)], _chats_show),
    "chats search": (lambda d: ["danube"], _chats_search),
    "bench history": (lambda d: [], _bench_history),
    "bench compare": (lambda d: [str(d.run_id), str(d.run_id)], _bench_compare),
    "config": (lambda d: [], _config),
    "paths": (lambda d: [], _paths),
    "doctor": (lambda d: [], _doctor),
    "ps": (lambda d: [], _ps),
    # `dictate --list-devices --json` lists the microphones: checked below with its flag
}


def test_every_command_is_classified() -> None:
    commands = _cli_commands()
    listed = set(LISTING) | JSON_ACTIONS | set(NO_JSON)
    assert set(commands) - listed == set(), "new command: a listing (add it to LISTING), an action or NO_JSON?"
    assert listed - set(commands) == set(), "these commands no longer exist"
    missing = sorted(name for name in (*LISTING, *JSON_ACTIONS) if not _takes_json(commands[name]))
    assert missing == [], f"no --json flag: {missing}"


@pytest.fixture
def data(installed_models: dict[str, object]) -> Data:
    from assistant.bench import fingerprint, results
    from assistant.chat import Stats
    from assistant.history import History

    history = History()
    chat = history.create_chat(model_id=SMOL)
    history.add_message(chat.id, "user", "Name a river.")
    reply = history.start_reply(chat.id, SMOL)
    history.finish_reply(reply, "Danube", Stats(finish_reason="stop"))
    history.close()
    row = {"id": SMOL, "reference": SMOL, "is_reference": True, "tg_tps": 80.0, "per": 1.0}
    run = results.Run(kind="llm", rows=[row], fingerprint=fingerprint.collect(1, 2048), quick=True, threads=1,
                      context=2048, wall_s=1.0)  # fmt: skip
    return Data(chat.id, results.save(run))


@pytest.mark.parametrize("name", list(LISTING))
def test_listing_commands_print_json(data: Data, name: str) -> None:
    args, check = LISTING[name]
    result = run_cli(*name.split(), *args(data), "--json")
    assert result.returncode == 0, result.stderr
    check(json.loads(result.stdout), data)


def test_microphone_list_prints_json() -> None:
    result = run_cli("dictate", "--list-devices", "--json")
    assert result.returncode == 0, result.stderr
    _devices(json.loads(result.stdout), Data(0, 0))
