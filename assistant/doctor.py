"""``assistant doctor``: check a user's own installation the way the reliability suite checks the app.

``run()`` returns one ``Check`` per fact: the app's folders and file permissions, the database's integrity,
each installed model's file and header, leftover partial files, the offline switches, and the speech
dependencies (espeak-ng, PortAudio, a microphone). A check that fails says what to do (``fix``); those
``repair`` can mend safely (permissions, a damaged database) are mended when asked, and ``clean`` removes
leftovers. Text that came from files (ids, paths, error messages) is kept as data: fronts show it plain.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths
from .errors import AssistantError
from .units import human_size

OK, PROBLEM, WARNING, FIXED = "ok", "problem", "warning", "fixed"


@dataclass
class Check:
    area: str  # folders, database, models, leftovers, offline, speech
    name: str
    status: str  # ok | problem | warning | fixed
    detail: str
    fix: str = ""  # what to do, for a problem or warning

    def to_json(self) -> dict[str, Any]:
        return {"area": self.area, "name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def run(*, repair: bool = False, clean: bool = False) -> list[Check]:
    """Every check, in order; ``repair`` and ``clean`` act before the checks that would report what they fix."""
    checks: list[Check] = []
    checks += folders(repair=repair)
    checks += database(repair=repair)
    checks += models()
    checks += leftovers(clean=clean)
    checks += offline()
    checks += speech()
    return checks


def problems(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status == PROBLEM]


# -- folders and permissions ------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def folders(*, repair: bool = False) -> list[Check]:
    out = []
    for label, folder in (("config", paths.config_dir()), ("data", paths.data_dir()), ("cache", paths.cache_dir())):
        name = f"{label} folder"
        if not folder.exists():
            out.append(Check("folders", name, OK, f"{folder} (not created yet)"))
            continue
        if not folder.is_dir():
            out.append(Check("folders", name, PROBLEM, f"{folder} is not a folder", "move that file away"))
            continue
        if not os.access(folder, os.W_OK):
            out.append(Check("folders", name, WARNING, f"{folder} is read-only", "make it writable to save chats"))
        out.append(_private("folders", name, folder, repair))
    for target in [*paths.database_files(), paths.config_file()]:
        if target.exists():
            out.append(_private("folders", target.name, target, repair))
    return out


def _private(area: str, name: str, target: Path, repair: bool) -> Check:
    mode = _mode(target)
    if not mode & 0o077:
        return Check(area, name, OK, f"{target} ({mode:04o})")
    if repair and paths.private(target) and not _mode(target) & 0o077:
        return Check(area, name, FIXED, f"{target}: {mode:04o} -> {_mode(target):04o}")
    return Check(
        area,
        name,
        PROBLEM,
        f"{target} is readable by other users ({mode:04o})",
        "run 'assistant doctor --repair' (makes it private to you)",
    )


# -- database ---------------------------------------------------------------------------------------------


def integrity(path: Path) -> str:
    """``ok``, or SQLite's first complaint about ``path`` (opened read-only, nothing written)."""
    from .db import _uri

    try:
        conn = sqlite3.connect(_uri(path, mode="ro"), uri=True)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
        first = str(rows[0][0]) if rows else "no answer"
        return first if first == "ok" or len(rows) == 1 else f"{first} (and {len(rows) - 1} more)"
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()


def database(*, repair: bool = False) -> list[Check]:
    path = paths.database_file()
    if not path.exists():
        return [Check("database", path.name, OK, f"{path} (not created yet)")]
    verdict = integrity(path)
    if verdict == "ok":
        return [Check("database", path.name, OK, f"{path}: integrity ok")]
    if repair:
        try:
            saved = recover(path)
        except AssistantError as exc:
            return [Check("database", path.name, PROBLEM, f"{path}: {verdict}; repair failed: {exc}", _COPY_HINT)]
        return [Check("database", path.name, FIXED, f"{path}: rebuilt ({saved.summary()}); damaged copy kept")]
    return [
        Check(
            "database",
            path.name,
            PROBLEM,
            f"{path} is damaged: {verdict}",
            "run 'assistant doctor --repair' (keeps the damaged file beside the new one)",
        )
    ]


_COPY_HINT = "move the file away to start afresh (chats in it are lost), or ask SQLite's own '.recover'"


@dataclass
class Recovered:
    damaged_copy: Path
    rows: dict[str, int]
    method: str

    def summary(self) -> str:
        counts = ", ".join(f"{n} {table}" for table, n in self.rows.items() if n) or "no rows"
        return f"{counts} saved with {self.method}; the damaged file is now {self.damaged_copy.name}"


def recover(path: Path) -> Recovered:
    """Rebuild a damaged database: what SQLite can still read goes into a fresh, migrated file that replaces
    ``path``; the damaged file (and its -wal/-shm) is kept beside it as ``<name>.damaged-<time>``.

    The readable rows are extracted with the ``sqlite3`` program's ``.recover`` when it is installed (it reads
    around damaged pages), else by copying table by table as far as each can be read.
    """
    from . import db

    stamp = time.strftime("%Y%m%d-%H%M%S")
    scratch = path.with_name(f".{path.name}.recovering-{stamp}")
    fresh = path.with_name(f".{path.name}.new-{stamp}")
    try:
        method = _extract(path, scratch)
        conn = db.connect(fresh)
        conn.close()
        rows = _merge(scratch, fresh)
        if integrity(fresh) != "ok":
            raise AssistantError("the rebuilt database did not pass its own check")
        kept = path.with_name(f"{path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            old = path.with_name(path.name + suffix)
            if old.exists():
                os.replace(old, kept.with_name(kept.name + suffix))
        os.replace(fresh, path)
        paths.private(path)
        return Recovered(kept, rows, method)
    except OSError as exc:
        raise AssistantError(f"cannot rebuild {path}: {exc.strerror or exc}") from None
    finally:
        for leftover in (scratch, fresh):
            for suffix in ("", "-wal", "-shm", "-journal"):
                leftover.with_name(leftover.name + suffix).unlink(missing_ok=True)


def _extract(path: Path, scratch: Path) -> str:
    """Copy what is readable of ``path`` into the new database ``scratch``; return how."""
    program = shutil.which("sqlite3")
    if program:
        try:
            dump = subprocess.run(
                [program, "-readonly", str(path), ".recover"], capture_output=True, text=True, errors="replace"
            )
            if dump.returncode == 0 and dump.stdout.strip():
                target = sqlite3.connect(scratch)
                try:
                    target.executescript(dump.stdout)
                    return "sqlite3 .recover"
                except sqlite3.Error:
                    pass
                finally:
                    target.close()
                scratch.unlink(missing_ok=True)
        except OSError:
            pass
    _copy_tables(path, scratch)
    return "a table-by-table copy"


def _copy_tables(path: Path, scratch: Path) -> None:
    """The fallback: every table whose schema can be read, row by row, reading past damaged pages. When the
    schema itself is lost (page 1 damaged), a copy of the file with the app's own schema page grafted in is
    read instead: see ``_graft_schema``."""
    graft = scratch.with_name(scratch.name + ".graft")
    try:
        source = _open_ro(path)
        if not _schema(source):
            source.close()
            source = _open_ro(_graft_schema(path, graft))
    except (sqlite3.Error, OSError):
        return
    target = sqlite3.connect(scratch)
    try:
        for name, sql in _schema(source):
            target.execute(sql)
            for row in _readable_rows(source, name):
                marks = ", ".join("?" * len(row))
                with contextlib.suppress(sqlite3.Error):  # a row that does not fit its table: lost
                    target.execute(f'INSERT OR IGNORE INTO "{name}" VALUES ({marks})', row)
        target.commit()
    finally:
        source.close()
        target.close()
        graft.unlink(missing_ok=True)


def _open_ro(path: Path) -> sqlite3.Connection:
    from .db import _uri

    return sqlite3.connect(_uri(path, mode="ro"), uri=True)


PAGE = 4096  # SQLite's default page size; the app never sets another


def _graft_schema(path: Path, out: Path) -> Path:
    """A copy of ``path`` whose first page (header and schema) comes from a fresh database made by the app's
    migrations. A database created by this version of the app places every table's root page the same way,
    so the tables' own pages become readable again; if it was laid out otherwise, rows that do not fit are
    simply not recovered."""
    from . import db

    template = out.with_name(out.name + ".template")
    try:
        conn = db.connect(template)
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
        first = template.read_bytes()[:PAGE]
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            template.with_name(template.name + suffix).unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    if len(data) < 2 * PAGE or len(first) < PAGE:
        raise OSError("too short to graft")
    data[:PAGE] = first
    data[18:20] = b"\x01\x01"  # rollback journal, not WAL: no -shm needed to read the copy
    data[28:32] = (len(data) // PAGE).to_bytes(4, "big")  # page count
    data[32:40] = bytes(8)  # no freelist (the damaged one cannot be trusted)
    out.write_bytes(bytes(data))
    out.chmod(paths.FILE_MODE)
    return out


def _schema(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """The tables whose rows are worth recovering: not the full-text index (derived from the messages, and
    rebuilt from them after a repair)."""
    from .db import derived_tables

    try:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        derived = derived_tables(conn)
    except sqlite3.Error:
        return []
    return [(str(n), str(s)) for n, s in rows if n not in derived]


def _readable_rows(conn: sqlite3.Connection, table: str) -> Iterator[tuple[Any, ...]]:
    """Rows in rowid order; past a damaged page, seek further and further ahead until rows read again."""
    after, skip = -(2**63), 1
    while after < 2**63 - 1:
        try:
            # the table name comes from the file's own schema; rowid order lets a read resume past damage
            for row in conn.execute(f'SELECT rowid, * FROM "{table}" WHERE rowid > ? ORDER BY rowid', (after,)):
                after, skip = row[0], 1
                yield tuple(row[1:])
            return
        except sqlite3.Error:
            if after < 0:  # ids start at 1: skip the negative half at once, then step ahead, further each time
                after, skip = 0, 1
                continue
            after, skip = min(after + skip, 2**63 - 1), skip * 2


def _merge(scratch: Path, fresh: Path) -> dict[str, int]:
    """Copy the recovered rows into the fresh database's tables (the columns both have); give messages whose chat
    was lost a chat again, then bring stored paths to the current layout. Returns rows saved per table."""
    from . import history, store
    from .db import derived_tables

    conn = sqlite3.connect(fresh, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("ATTACH DATABASE ? AS old", (str(scratch),))
        old_tables = {r[0] for r in conn.execute("SELECT name FROM old.sqlite_master WHERE type = 'table'")}
        derived = derived_tables(conn)
        tables = [
            str(r[0])
            for r in conn.execute(
                "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " AND name != '_migrations' ORDER BY rowid"
            )
            if r[0] not in derived
        ]
        counts: dict[str, int] = {}
        had_branches = any(r[1] == "parent_id" for r in conn.execute('PRAGMA old.table_info("messages")'))
        conn.execute("BEGIN")
        for table in tables:
            if table not in old_tables:
                continue
            mine = [r[1] for r in conn.execute(f'PRAGMA main.table_info("{table}")')]
            theirs = {r[1] for r in conn.execute(f'PRAGMA old.table_info("{table}")')}
            cols = ", ".join(f'"{c}"' for c in mine if c in theirs)
            if not cols:
                continue
            try:
                conn.execute(f'INSERT OR IGNORE INTO main."{table}" ({cols}) SELECT {cols} FROM old."{table}"')
            except sqlite3.Error:
                continue  # rows that break this table's constraints: the table stays empty
        history.adopt_orphans(conn)
        history.mend_branches(conn, had_branches=had_branches)
        for table, rowid, _parent, _ in conn.execute("PRAGMA main.foreign_key_check").fetchall():
            conn.execute(f'DELETE FROM main."{table}" WHERE rowid = ?', (rowid,))
        store._relative_paths(conn)
        history.reindex(conn)
        for table in tables:
            counts[table] = int(conn.execute(f'SELECT COUNT(*) FROM main."{table}"').fetchone()[0])
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE old")
        return counts
    finally:
        conn.close()


# -- models -----------------------------------------------------------------------------------------------


def models() -> list[Check]:
    from . import db, gguf
    from .store import Store, is_whisper_dir

    try:
        store = Store(db.connect(paths.database_file(), readonly=True))  # a check changes nothing
        items = store.list()
    except AssistantError as exc:
        return [Check("models", "installed models", PROBLEM, f"cannot list them: {exc.message}", exc.hint or "")]
    out = []
    try:
        for item in items:
            name = item.id
            if not item.present:
                out.append(
                    Check(
                        "models",
                        name,
                        PROBLEM,
                        f"its file is gone: {item.path}",
                        f"run 'assistant models rm {item.id}', then pull or import it again",
                    )
                )
                continue
            if item.kind == "whisper":
                good = is_whisper_dir(item.path)
                detail = "" if good else "not a CTranslate2 whisper folder (no model.bin + config.json)"
            else:
                try:
                    gguf.read(item.path)
                    good, detail = True, ""
                except AssistantError as exc:
                    good, detail = False, exc.message
            if good:
                out.append(Check("models", name, OK, f"{human_size(item.size_bytes)}, header ok: {item.path}"))
            else:
                out.append(
                    Check("models", name, PROBLEM, detail, f"run 'assistant models rm {item.id}' and get it again")
                )
    finally:
        store.conn.close()
    if not out:
        out.append(Check("models", "installed models", WARNING, "none installed", "run 'assistant models pull'"))
    return out


# -- leftovers --------------------------------------------------------------------------------------------


def leftovers(*, clean: bool = False) -> list[Check]:
    from . import store

    found = store.leftovers()
    if not found:
        return [Check("leftovers", "partial files", OK, "none")]
    if clean:
        freed = store.clean(found)
        remaining = [f for f in found if f.path.exists()]
        out = [
            Check("leftovers", "partial files", FIXED, f"removed {len(found) - len(remaining)}, {human_size(freed)}")
        ]
        found = remaining
    else:
        out = []
    for item in found:
        out.append(
            Check(
                "leftovers",
                item.what,
                WARNING,
                f"{human_size(item.size_bytes)}: {item.path}",
                "run 'assistant doctor --clean' to remove it",
            )
        )
    return out


# -- offline and speech -----------------------------------------------------------------------------------

# What ``assistant/__init__.py`` sets unless the environment says otherwise.
OFFLINE_SWITCHES = (
    ("HF_HUB_OFFLINE", "1", "huggingface-hub may go online on its own"),
    ("HF_HUB_DISABLE_TELEMETRY", "1", "huggingface-hub may send telemetry"),
    ("DO_NOT_TRACK", "1", "libraries that honour DO_NOT_TRACK may send usage data"),
)


def offline() -> list[Check]:
    out = []
    for key, want, risk in OFFLINE_SWITCHES:
        value = os.environ.get(key)
        if value == want:
            out.append(Check("offline", key, OK, f"{key}={value}"))
        else:
            shown = "unset" if value is None else f"{key}={value}"
            out.append(Check("offline", key, PROBLEM, f"{shown}: {risk}", f"unset {key} in your environment"))
    return out


def speech() -> list[Check]:
    from . import tts

    out = []
    program = tts.executable()
    if program:
        out.append(Check("speech", "espeak-ng", OK, program))
    else:
        out.append(
            Check("speech", "espeak-ng", WARNING, "not installed: replies cannot be read aloud", tts.MISSING_HINT)
        )
    out += _audio()
    return out


def _audio() -> list[Check]:
    from . import audio

    try:
        audio._sounddevice()
    except AssistantError as exc:
        return [Check("speech", "PortAudio", WARNING, exc.message, exc.hint or "")]
    out = [Check("speech", "PortAudio", OK, "library found")]
    try:
        devices = audio.input_devices()
    except AssistantError as exc:
        return [*out, Check("speech", "microphone", WARNING, exc.message, exc.hint or "")]
    if devices:
        names = ", ".join(d.name for d in devices[:3])
        out.append(Check("speech", "microphone", OK, f"{len(devices)} input device(s): {names}"))
    else:
        out.append(
            Check(
                "speech",
                "microphone",
                WARNING,
                "no input device: dictation cannot record",
                "plug in a microphone, or transcribe files with 'assistant transcribe'",
            )
        )
    return out
