"""The one SQLite database (installed models, chats, benchmark results), with named migrations.

Each domain module owns its tables: it declares ``MIGRATIONS = [(name, sql), ...]`` and is listed in
``MIGRATION_MODULES``. A migration runs once, in list order, and its name is recorded in
``_migrations`` — the same idea as simonw/llm's ``migrations.py``. WAL mode keeps readers and the
writer out of each other's way and makes a kill -9 lose nothing that was committed.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import paths
from .errors import AssistantError

MIGRATION_MODULES = ("assistant.store", "assistant.history", "assistant.bench.results")


Migration = tuple[str, "str | Callable[[sqlite3.Connection], None]"]


def _all_migrations() -> list[Migration]:
    found: list[Migration] = []
    for name in MIGRATION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # a real import error inside the module, not a module that doesn't exist (yet)
            continue
        found.extend(getattr(module, "MIGRATIONS", []))
    return found


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded; return the names applied."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, sql in _all_migrations():
        if name in done:
            continue
        with transaction(conn):
            if callable(sql):  # a migration that needs Python (e.g. rewriting paths)
                sql(conn)
            else:
                for statement in _statements(sql):
                    conn.execute(statement)
            conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
        applied.append(name)
    return applied


def derived_tables(conn: sqlite3.Connection) -> set[str]:
    """Tables that hold no data of their own: virtual tables (the full-text index) and their shadow tables,
    rebuilt from the real ones (``history.reindex``) rather than copied."""
    virtual = [
        str(r[0])
        for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL%'")
    ]
    names = [str(r[0]) for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")]
    return {n for n in names if any(n == v or n.startswith(f"{v}_") for v in virtual)}


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (connections run in autocommit mode)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(sql: str) -> list[str]:
    """Split a migration into statements, so each runs inside the migration's one transaction."""
    parts, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            parts.append(buf.strip())
            buf = ""
    if buf.strip():
        parts.append(buf.strip())
    return [p for p in parts if p]


# SQLite's primary result codes (the low byte of an extended code) that mean something the user can act on.
_CORRUPT, _NOTADB = 11, 26
_READONLY, _CANTOPEN, _PERM, _IOERR, _FULL = 8, 14, 3, 10, 13
_CANNOT_WRITE = (_READONLY, _CANTOPEN, _PERM, _IOERR)

REPAIR_HINT = "run 'assistant doctor --repair': it saves what it can into a new file and keeps the damaged one"


def _code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


class DatabaseDamaged(AssistantError):
    """The database file is corrupt (or not a database at all): ``assistant doctor --repair`` recovers it."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path}: the database is damaged", REPAIR_HINT)
        self.path = path


def _translate(exc: sqlite3.Error, path: Path) -> BaseException:
    """The error a user can act on, for the SQLite failures that have one; anything else as it was."""
    code = _code(exc)
    if code in (_CORRUPT, _NOTADB):
        return DatabaseDamaged(path)
    if code == _READONLY:
        return AssistantError(f"{path}: read-only, nothing can be saved", "make the app's folder writable")
    if code == _FULL:
        return AssistantError(f"{path}: disk full", "free some space and try again")
    return exc


class _Cursor(sqlite3.Cursor):
    """A cursor whose SQLite errors name the database file and say what to do (see ``_translate``).

    Damage can surface on any row, not only when a statement starts, so fetching is covered too."""

    def _path(self) -> Path:
        return getattr(self.connection, "path", Path("assistant.db"))

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise _translate(exc, self._path()) from None

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise _translate(exc, self._path()) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise _translate(exc, self._path()) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise _translate(exc, self._path()) from None


class Connection(sqlite3.Connection):
    """The app's connection: ``path`` is the file, ``readonly`` says writes will be refused."""

    path: Path
    readonly: bool = False

    def cursor(self, factory: Any = None) -> _Cursor:  # type: ignore[override]
        return super().cursor(factory or _Cursor)  # type: ignore[no-any-return]

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:  # type: ignore[override]
        return self.cursor().execute(sql, parameters)


def _open(uri: str, path: Path, *, readonly: bool) -> Connection:
    # Still one thread per connection; check_same_thread=False only lets its owner (History.close) close
    # the ones opened on threads that outlive it, such as llama.cpp's, where replies are stored.
    conn = sqlite3.connect(uri, timeout=30, isolation_level=None, check_same_thread=False, uri=True, factory=Connection)
    assert isinstance(conn, Connection)
    conn.path = path
    conn.readonly = readonly
    conn.row_factory = sqlite3.Row
    return conn


def _uri(path: Path, **params: str) -> str:
    from urllib.parse import quote

    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"file:{quote(str(path.absolute()))}" + (f"?{query}" if query else "")


def connect(path: Path | None = None, *, readonly: bool = False) -> Connection:
    """Open (creating and migrating if needed) the database. One connection per thread.

    A home that cannot be written (a read-only disk or folder) is opened read-only instead, so listings
    still work and a write fails with one clear line; so is every ``readonly`` open. A damaged file is one
    line naming it and ``assistant doctor --repair``.
    """
    target = path or paths.database_file()
    if path is None:
        paths.secure()  # folders 0700, database files 0600, whatever made them
    if not readonly:
        try:
            return _open_for_writing(target)
        except _CannotWrite:
            pass
    return _open_readonly(target)


class _CannotWrite(Exception):
    """The database (or its folder) cannot be written: fall back to reading."""


def _open_for_writing(target: Path) -> Connection:
    try:
        paths.ensure(target.parent)
    except AssistantError:
        raise _CannotWrite from None
    if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise _CannotWrite
    paths.private_file(target)  # created 0600 before SQLite opens it; its -wal and -shm copy that mode
    conn: Connection | None = None
    try:
        conn = _open(_uri(target), target, readonly=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        migrate(conn)
    except AssistantError:
        if conn is not None:
            conn.close()
        raise
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        if _code(exc) in _CANNOT_WRITE:
            raise _CannotWrite from None
        raise AssistantError(f"{target}: database error: {exc}", "is the disk full, or the file damaged?") from None
    for extra in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        paths.private(extra)
    return conn


def _open_readonly(target: Path) -> Connection:
    """Read ``target`` without writing anything; an empty, read-only database if it does not exist."""
    if not target.exists():
        return empty(target)
    last: Exception | None = None
    # mode=ro still needs the -shm file of a WAL database to be writable; immutable=1 reads the file as it is
    for params in ({"mode": "ro"}, {"mode": "ro", "immutable": "1"}):
        conn = _open(_uri(target, **params), target, readonly=True)
        try:
            conn.execute("PRAGMA query_only=ON")
            conn.execute("SELECT name FROM _migrations").fetchall()
            return conn
        except DatabaseDamaged:
            conn.close()
            raise
        except (AssistantError, sqlite3.Error) as exc:
            conn.close()
            last = exc
    raise AssistantError(f"{target}: cannot read the database: {last}", "check the file's permissions") from None


def empty(path: Path) -> Connection:
    """A read-only, empty database with every table (in memory), standing in for ``path``."""
    conn = _open(":memory:", path, readonly=True)
    migrate(conn)
    conn.execute("PRAGMA query_only=ON")
    return conn
