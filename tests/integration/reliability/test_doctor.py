"""``assistant doctor`` (issue 10, item 12) on real installations: healthy, and each kind of damage it must name,
with ``--repair`` and ``--clean`` mending what they can and the exit status saying whether a problem remains."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from assistant import paths
from assistant.units import human_size

from conftest import GEMMA, SMOL, WHISPER, run_cli


def _doctor(*flags: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = run_cli("doctor", "--json", *flags, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def _by(doc: dict[str, Any], area: str) -> list[dict[str, Any]]:
    return [c for c in doc["checks"] if c["area"] == area]


def _problems(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in doc["checks"] if c["status"] == "problem"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_healthy_installation_has_no_problem(installed_models: dict[str, object]) -> None:
    code, doc = _doctor()
    assert _problems(doc) == [] and code == 0 and doc["ok"]
    models = {c["name"]: c["status"] for c in _by(doc, "models")}
    assert models == {SMOL: "ok", GEMMA: "ok", WHISPER: "ok"}
    assert {c["name"] for c in _by(doc, "offline")} >= {"HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"}
    assert {c["name"] for c in _by(doc, "speech")} >= {"espeak-ng", "PortAudio"}
    table = run_cli("doctor")
    assert table.returncode == 0 and "no problems found" in table.stdout


def test_a_damaged_or_missing_model_file_is_named(
    installed_models: dict[str, object], starter_files: dict[str, Path], tmp_path: Path
) -> None:
    damaged = tmp_path / "[bold]copy.gguf"  # markup in a path must be shown as text
    shutil.copyfile(starter_files[SMOL], damaged)
    assert run_cli("models", "import", str(damaged), "--id", "broken:q4_1").returncode == 0
    with open(damaged, "r+b") as fh:
        fh.write(b"\0" * 64)  # the GGUF magic and header gone
    gone = tmp_path / "gone.gguf"
    shutil.copyfile(starter_files[SMOL], gone)
    assert run_cli("models", "import", str(gone), "--id", "gone:q4_1").returncode == 0
    gone.unlink()

    code, doc = _doctor()
    assert code == 1 and not doc["ok"]
    models = {c["name"]: c for c in _by(doc, "models")}
    assert models["broken:q4_1"]["status"] == "problem" and "models rm broken:q4_1" in models["broken:q4_1"]["fix"]
    assert models["gone:q4_1"]["status"] == "problem" and "gone" in models["gone:q4_1"]["detail"]
    assert models[SMOL]["status"] == "ok"
    table = run_cli("doctor")
    assert table.returncode == 1 and "[bold]copy" in table.stdout and "MarkupError" not in table.stderr


def test_open_permissions_are_problems_that_repair_fixes(assistant_home: Path) -> None:
    assert run_cli("chats", "list").returncode == 0  # creates the database
    data = assistant_home / "data"
    db_file = data / "assistant.db"
    data.chmod(0o755)
    db_file.chmod(0o644)
    code, doc = _doctor()
    assert code == 1
    named = {c["name"] for c in _problems(doc)}
    assert {"data folder", "assistant.db"} <= named
    assert _mode(data) == 0o755, "a check alone must not change anything"

    code, doc = _doctor("--repair")
    assert code == 0, _problems(doc)
    assert _mode(data) == 0o700 and _mode(db_file) == 0o600
    assert _doctor()[0] == 0


def _fill(n: int) -> None:
    from assistant.history import History

    history = History()
    for i in range(n):
        chat = history.create_chat(title=f"chat {i}")
        history.add_message(chat.id, "user", f"message {i} " + "words " * 200)
    history.close()


@pytest.mark.parametrize("pages", [(5, 20, 60, 90), (0, 1)], ids=["inner-pages", "header-and-schema"])
def test_repair_rebuilds_a_damaged_database_and_keeps_the_old_one(pages: tuple[int, ...], assistant_home: Path) -> None:
    _fill(300)
    db_file = assistant_home / "data" / "assistant.db"
    conn = sqlite3.connect(db_file)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    rng = random.Random(7)
    with open(db_file, "r+b") as fh:
        for page in pages:
            fh.seek(page * 4096)
            fh.write(rng.randbytes(4096))
    damaged_bytes = db_file.read_bytes()
    code, doc = _doctor()
    assert code == 1
    (check,) = _by(doc, "database")
    assert check["status"] == "problem" and "doctor --repair" in check["fix"]

    code, doc = _doctor("--repair")
    (check,) = _by(doc, "database")
    assert check["status"] == "fixed", check
    assert code == 0, _problems(doc)
    kept = [
        p
        for p in db_file.parent.iterdir()
        if p.name.startswith("assistant.db.damaged-") and p.name[-4:] not in ("-wal", "-shm")
    ]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged_bytes, "the damaged file must be kept as it was"
    assert _mode(db_file) == 0o600
    listed = run_cli("chats", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    chats = json.loads(listed.stdout)
    # four damaged pages out of ~120 (one of them the chats table's root): most messages survive, each in a chat
    assert len(chats) >= 250 and sum(c["messages"] for c in chats) >= 250, len(chats)
    search = run_cli("chats", "search", "words", "--json")  # no title has the word: the index was rebuilt
    assert search.returncode == 0, search.stderr
    assert len(json.loads(search.stdout)) == 50
    assert _doctor()[0] == 0


def test_leftovers_are_listed_with_sizes_and_clean_removes_them(assistant_home: Path) -> None:
    left = assistant_home / "data" / "models" / "gemma3-270m" / "q2_k" / ".gemma-q2_k.gguf.999999999.partial"
    paths.ensure(left.parent)  # as the app makes its folders (0700), so the leftover is the only finding
    left.write_bytes(b"\0" * 4096)
    code, doc = _doctor()
    assert code == 0, "a leftover is a warning, not a problem"
    (item,) = _by(doc, "leftovers")
    assert item["status"] == "warning" and str(left) in item["detail"] and human_size(4096) in item["detail"]
    assert "--clean" in item["fix"]
    _, doc = _doctor("--clean")
    assert not left.exists()
    assert [c["status"] for c in _by(doc, "leftovers")] == ["fixed"]


def test_online_switches_are_problems(assistant_home: Path) -> None:
    code, doc = _doctor(env={"HF_HUB_OFFLINE": "0"})
    assert code == 1
    (check,) = [c for c in _problems(doc) if c["name"] == "HF_HUB_OFFLINE"]
    assert "unset HF_HUB_OFFLINE" in check["fix"]


def test_missing_speech_tools_are_warnings_with_what_to_do(assistant_home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    code, doc = _doctor(env={"PATH": str(empty)})
    (espeak,) = [c for c in _by(doc, "speech") if c["name"] == "espeak-ng"]
    assert espeak["status"] == "warning" and "apt-get install espeak-ng" in espeak["fix"]
    assert code == 0, "a missing optional tool is not a problem"
