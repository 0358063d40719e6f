"""The one SQLite database (installed models, chats, benchmark results), with named migrations.

Each domain module owns its tables: it declares ``MIGRATIONS = [(name, sql), ...]`` and is listed in
``MIGRATION_MODULES``. A migration runs once, in list order, and its name is recorded in
``_migrations`` — the same idea as simonw/llm's ``migrations.py``. WAL mode keeps readers and the
writer out of each other's way and makes a kill -9 lose nothing that was committed.
"""

from __future__ import annotations

import importlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import paths
from .errors import AssistantError

MIGRATION_MODULES = ("assistant.store", "assistant.history", "assistant.bench.results")


def _all_migrations() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
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
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
        applied.append(name)
    return applied


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


def connect(path: Path | None = None) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the database. One connection per thread."""
    target = path or paths.database_file()
    paths.ensure(target.parent)
    try:
        # Still one thread per connection; check_same_thread=False only lets its owner (History.close) close
        # the ones opened on threads that outlive it, such as llama.cpp's, where replies are stored.
        conn = sqlite3.connect(target, timeout=30, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise AssistantError(f"{target}: database error: {exc}", "is the disk full, or the file damaged?") from None
    return conn
