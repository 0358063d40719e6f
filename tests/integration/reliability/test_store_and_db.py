"""Hostile cases for the model store, ids and paths, and the database (issue 10: items 3, 9, 10 and the
unclear errors about chat ids, ASSISTANT_HOME, exports, ``models verify`` and leftovers).

Every case runs the real CLI in a subprocess, as a user would, against real starter models.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.speech import reference_clips

from conftest import REPO, SMOL, WHISPER, assert_one_line_error, run_cli

# As root, file permissions do not bind: drop the two capabilities that bypass them, so a chmod'ed file or
# folder is as unreadable / unwritable to the app as it would be for a normal user.
_PLAIN_USER = (
    ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]
    if os.geteuid() == 0
    else []
)


def run_as_user(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if _PLAIN_USER and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permissions cannot be made to bind")
    return subprocess.run(
        [*_PLAIN_USER, sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        cwd=REPO,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _chmod_tree(root: Path, remove: int) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(_mode(path) & ~remove)


def _restore_tree(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(_mode(path) | (0o700 if path.is_dir() else 0o600))


def _chats(n: int, words: int = 200) -> list[int]:
    from assistant.history import History

    history = History()
    ids = []
    for i in range(n):
        chat = history.create_chat(title=f"chat {i}")
        history.add_message(chat.id, "user", f"message {i} " + "hello " * words)
        ids.append(chat.id)
    history.close()
    return ids


def _damage(path: Path, pages: tuple[int, ...], seed: int = 1) -> None:
    rng = random.Random(seed)
    with open(path, "r+b") as fh:
        for page in pages:
            fh.seek(page * 4096)
            fh.write(rng.randbytes(4096))


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


# -- model files ----------------------------------------------------------------------------------------------


@pytest.fixture
def copied_models(starter_files: dict[str, Path], assistant_home: Path) -> dict[str, Path]:
    """SmolLM2 and whisper imported with --copy: managed files inside this home's models folder."""
    out = {}
    for model_id in (SMOL, WHISPER):
        result = run_cli("models", "import", str(starter_files[model_id]), "--copy", "--id", model_id, "--json")
        assert result.returncode == 0, result.stderr
        item = json.loads(result.stdout)
        assert item["id"] == model_id and item["managed"]
        out[model_id] = Path(item["path"])
        assert out[model_id].is_relative_to(assistant_home / "data" / "models")
    return out


def test_rm_in_a_copied_home_never_touches_the_original(
    copied_models: dict[str, Path], assistant_home: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(assistant_home), str(copy)], check=True)
    env = {"ASSISTANT_HOME": str(copy)}
    listed = run_cli("models", "list", "--installed", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)["models"]}
    assert {rows[SMOL]["status"], rows[WHISPER]["status"]} == {"installed"}
    assert rows[SMOL]["path"].startswith(str(copy)), "the copy must use its own files"

    for model_id in (SMOL, WHISPER):
        result = run_cli("models", "rm", model_id, env=env)
        assert result.returncode == 0, result.stderr
        assert "deleted" in result.stdout
    for model_id, original in copied_models.items():
        assert original.exists(), f"{model_id}: the original home's file was deleted"
        mirrored = copy / original.relative_to(assistant_home)
        assert not mirrored.exists(), f"{model_id}: the copy's own file was left behind"
    again = run_cli("models", "list", "--installed", "--json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["models"] == []
    original_list = run_cli("models", "list", "--installed", "--json")
    assert {r["status"] for r in json.loads(original_list.stdout)["models"]} == {"installed"}


def test_old_absolute_rows_are_migrated_and_outside_files_only_forgotten(
    copied_models: dict[str, Path], assistant_home: Path, tmp_path: Path
) -> None:
    db_file = assistant_home / "data" / "assistant.db"
    outside = tmp_path / "elsewhere" / "precious.gguf"
    outside.parent.mkdir()
    shutil.copyfile(copied_models[SMOL], outside)
    conn = sqlite3.connect(db_file)
    # what a database written before the fix holds: absolute paths, and a "managed" row outside the store
    conn.execute("UPDATE models SET path = ? WHERE id = ?", (str(copied_models[WHISPER]), WHISPER))
    conn.execute("UPDATE models SET path = ? WHERE id = ?", (str(outside), SMOL))
    conn.execute("DELETE FROM _migrations WHERE name = 'store_002_relative_paths'")
    conn.commit()
    conn.close()
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(assistant_home), str(copy)], check=True)
    env = {"ASSISTANT_HOME": str(copy)}

    listed = run_cli("models", "list", "--installed", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["id"]: r for r in json.loads(listed.stdout)["models"]}
    assert rows[WHISPER]["path"].startswith(str(copy)), "migrated to the copy's own folder"
    for model_id in (WHISPER, SMOL):
        result = run_cli("models", "rm", model_id, env=env)
        assert result.returncode == 0, result.stderr
    assert copied_models[WHISPER].exists(), "the original home's whisper folder was deleted"
    assert not (copy / copied_models[WHISPER].relative_to(assistant_home)).exists()
    assert outside.exists(), "a file outside the home's models folder was deleted"


@pytest.fixture
def unreadable_first(installed_models: dict[str, object], tmp_path: Path, assistant_home: Path) -> Path:
    """gemma's row points at a copy no one may read; the other starters stay readable."""
    from assistant.store import Store

    blocked = tmp_path / "blocked.gguf"
    shutil.copyfile(Store().require("gemma3-270m:q4_k_m").path, blocked)
    conn = sqlite3.connect(assistant_home / "data" / "assistant.db")
    conn.execute("UPDATE models SET path = ? WHERE id = 'gemma3-270m:q4_k_m'", (str(blocked),))
    conn.commit()
    conn.close()
    blocked.chmod(0)
    return blocked


def test_verify_reports_an_unreadable_file_and_goes_on(unreadable_first: Path) -> None:
    result = run_as_user("models", "verify", "--json")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "PermissionError" not in result.stderr
    status = {r["id"]: r["status"] for r in json.loads(result.stdout)}
    assert status["gemma3-270m:q4_k_m"] == "unreadable"
    assert status[SMOL] == "ok" and status[WHISPER] == "ok", "verify stopped at the unreadable file"


def test_leftovers_are_found_by_du_and_removed_by_doctor_clean(assistant_home: Path) -> None:
    data = assistant_home / "data"
    quantize_left = data / "models" / "smollm2-135m-instruct" / "q2_k" / ".model-q2_k.gguf.999999999.partial"
    download_left = data / "partial" / "gemma3-270m" / "q4_k_m" / "gemma.gguf.part"
    live = data / "models" / "smollm2-135m-instruct" / "q3_k_m" / f".model-q3_k_m.gguf.{os.getpid()}.partial"
    for path, size in ((quantize_left, 3000), (download_left, 2000), (live, 1000)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)

    result = run_cli("models", "du", "--json")
    assert result.returncode == 0, result.stderr
    found = {Path(f["path"]): f["size_bytes"] for f in json.loads(result.stdout)["leftovers"]}
    assert found == {quantize_left: 3000, download_left.parent: 2000}, "a live job's file is not a leftover"
    text = run_cli("models", "du")
    assert "doctor --clean" in text.stdout and str(quantize_left) in text.stdout

    cleaned = run_cli("doctor", "--clean", "--json")
    assert "Traceback" not in cleaned.stderr
    assert not quantize_left.exists() and not download_left.exists()
    assert live.exists(), "--clean removed the file of a job still running"
    assert json.loads(run_cli("models", "du", "--json").stdout)["leftovers"] == []


# -- ids and paths --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["chats", "show", str(10**23)],
        ["chats", "export", str(10**23)],
        ["chats", "rm", str(10**23)],
        ["chats", "rename", str(10**23), "new title"],
        ["chats", "show", "--", str(-(10**23))],
    ],
)
def test_huge_chat_ids_are_not_found(args: list[str]) -> None:
    _chats(1, words=1)
    line = assert_one_line_error(run_cli(*args))
    assert "no chat" in line and "OverflowError" not in line


@pytest.mark.slow
def test_huge_chat_id_to_chat(installed_models: dict[str, object]) -> None:
    line = assert_one_line_error(run_cli("chat", "--chat", str(10**23), "-p", "hi"))
    assert "no chat" in line


@pytest.mark.parametrize("kind", ["file", "proc", "dev"])
def test_assistant_home_that_is_not_a_folder(kind: str, tmp_path: Path) -> None:
    home = {"file": tmp_path / "a-file", "proc": Path("/proc/self"), "dev": Path("/dev/null")}[kind]
    if kind == "file":
        home.write_text("not a folder")
    for args in (["models", "list"], ["chats", "list"], ["paths"]):
        line = assert_one_line_error(run_cli(*args, env={"ASSISTANT_HOME": str(home)}))
        assert "ASSISTANT_HOME" in line, line
    if kind == "file":
        assert home.read_text() == "not a folder"


def test_exports_to_places_that_cannot_take_them(tmp_path: Path) -> None:
    (chat_id,) = _chats(1, words=3)
    fifo = tmp_path / "a-fifo"
    os.mkfifo(fifo)
    for target in ("/proc/chat.md", "/proc/self/chat.md", str(tmp_path / "missing" / "chat.md"), str(fifo)):
        line = assert_one_line_error(run_cli("chats", "export", str(chat_id), "-o", target))
        assert "FileNotFoundError" not in line and ".tmp" not in line, line
    assert stat.S_ISFIFO(fifo.lstat().st_mode), "the FIFO was replaced"
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


# -- chats and database ---------------------------------------------------------------------------------------


def _assert_damage_line(result: subprocess.CompletedProcess[str], db_file: Path) -> None:
    line = assert_one_line_error(result)
    assert str(db_file) in line and "doctor --repair" in line, line
    assert "DatabaseError" not in line


@pytest.mark.parametrize("pages", [(0, 1), (3, 10, 40, 80)], ids=["header", "inner-pages"])
def test_a_damaged_database_is_one_line_and_others_do_not_open_it(pages: tuple[int, ...], assistant_home: Path) -> None:
    _chats(300)
    db_file = assistant_home / "data" / "assistant.db"
    _checkpoint(db_file)
    _damage(db_file, pages)
    before = db_file.read_bytes()
    for args in (["chats", "search", "hello"], ["bench", "history"], ["models", "list"]):
        result = run_cli(*args)
        if result.returncode != 0:  # a listing may not touch a damaged page; if it does, one clear line
            _assert_damage_line(result, db_file)
    _assert_damage_line(run_cli("chats", "search", "hello"), db_file)
    for args in (["paths"], ["config"], ["--help"], ["models", "--help"]):
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
    assert db_file.read_bytes() == before, "the damaged file was written to"


@pytest.mark.slow
def test_transcribe_works_with_a_damaged_database(starter_files: dict[str, Path], assistant_home: Path) -> None:
    result = run_cli("models", "import", str(starter_files[WHISPER]), "--copy", "--id", WHISPER)
    assert result.returncode == 0, result.stderr
    _chats(50)
    db_file = assistant_home / "data" / "assistant.db"
    _checkpoint(db_file)
    _damage(db_file, (0, 1))
    clip = reference_clips()[0]
    result = run_cli("transcribe", str(clip.path), "--model", WHISPER)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


@pytest.fixture
def readonly_home(installed_models: dict[str, object], assistant_home: Path):
    (chat_id,) = _chats(1, words=3)
    _checkpoint(assistant_home / "data" / "assistant.db")
    _chmod_tree(assistant_home, 0o222)
    yield chat_id
    _restore_tree(assistant_home)


@pytest.mark.slow
def test_a_read_only_home_still_lists_and_transcribes(readonly_home: int, assistant_home: Path) -> None:
    listed = run_as_user("models", "list", "--installed", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["id"] for r in json.loads(listed.stdout)["models"]} >= {SMOL, WHISPER}
    chats = run_as_user("chats", "list", "--json")
    assert chats.returncode == 0, chats.stderr
    assert [c["id"] for c in json.loads(chats.stdout)] == [readonly_home]
    heard = run_as_user("transcribe", str(reference_clips()[0].path))
    assert heard.returncode == 0, heard.stderr
    assert heard.stdout.strip()
    line = assert_one_line_error(run_as_user("chats", "rename", str(readonly_home), "new"))
    assert "read-only" in line or "cannot" in line, line


def test_a_fresh_home_is_private_whatever_the_umask(assistant_home: Path, tmp_path: Path) -> None:
    export = tmp_path / "chat.md"
    script = (
        "import os, sys; os.umask(0)\n"
        "from assistant.history import History\n"
        "h = History(); c = h.create_chat(title='t'); h.add_message(c.id, 'user', 'hi'); h.close()\n"
        "from assistant.cli import main\n"
        f"main(['chats', 'export', str(c.id), '-o', {str(export)!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, env=os.environ)
    assert done.returncode == 0, done.stderr
    data = assistant_home / "data"
    assert _mode(data) == 0o700
    assert _mode(data / "assistant.db") == 0o600
    for name in ("assistant.db-wal", "assistant.db-shm"):
        if (data / name).exists():
            assert _mode(data / name) == 0o600, name
    assert _mode(export) == 0o600


def test_existing_open_files_are_made_private_at_start_up(assistant_home: Path, tmp_path: Path) -> None:
    (chat_id,) = _chats(1, words=3)
    data = assistant_home / "data"
    db_file = data / "assistant.db"
    data.chmod(0o755)
    for path in data.glob("assistant.db*"):
        path.chmod(0o644)
    result = run_cli("chats", "list")
    assert result.returncode == 0, result.stderr
    assert _mode(data) == 0o700 and _mode(db_file) == 0o600
    export = tmp_path / "chat.md"
    os.umask(umask := os.umask(0))
    try:
        assert run_cli("chats", "export", str(chat_id), "-o", str(export)).returncode == 0
    finally:
        os.umask(umask)
    assert _mode(export) == 0o600


def test_bad_bench_rows_are_skipped_with_a_warning() -> None:
    from assistant.bench import fingerprint, results

    good = {"id": "smollm2-135m-instruct:q4_1", "tg_tps": 80.0, "top1_agreement": 1.0, "size_bytes": 9e7}
    other = {"id": "smollm2-135m-instruct:q8_0", "tg_tps": 60.0, "top1_agreement": 1.0, "size_bytes": 1.4e8}
    rows = [good, dict(good, id="a:b"), dict(good, id="c:d"), dict(good, id="e:f"), other]
    run = results.Run(kind="llm", rows=rows, fingerprint=fingerprint.collect(2, 4096), threads=2, context=4096)
    run_id = results.save(run)
    from assistant import db

    conn = db.connect()
    for position, metrics in ((1, "{}"), (2, "[]"), (3, "not json {")):
        conn.execute(
            "UPDATE bench_results SET metrics = ? WHERE run_id = ? AND position = ?", (metrics, run_id, position)
        )
    conn.execute("UPDATE bench_results SET metrics = ? WHERE run_id = ? AND position = 0",
                 (json.dumps(dict(good, tg_tps="fast")), run_id))  # fmt: skip
    conn.close()
    for args in (["bench", "history"], ["bench", "compare", str(run_id)], ["bench", "plot", str(run_id)],
                 ["bench", "export", str(run_id), "--format", "csv"]):  # fmt: skip
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
        warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
        assert len(warnings) == 4, (args, result.stderr)
        assert "q8_0" in result.stdout, "the good row is still shown"
