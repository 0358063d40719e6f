"""Many connections in one process, another process beside them: every commit is seen at once.

Closing any descriptor of a file drops every POSIX lock the process holds on it, and SQLite's locks are
exactly those. When opening a connection also opened and closed the database file (to keep it 0600), a second
connection in the app dropped the first one's locks; another process (``assistant chats`` beside a running
server or TUI) then took the database for unused, checkpointed and reset its WAL when it closed, and the first
connection's later commits stayed invisible to everyone else until it closed.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from assistant import paths
from assistant.history import History


def count_elsewhere(database: Path) -> int:
    """Chats, as a separate process reads them: it opens, reads and closes (the last one out, it believes)."""
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "print(c.execute('SELECT COUNT(*) FROM chats').fetchone()[0]); c.close()"
    )
    out = subprocess.run([sys.executable, "-c", code, str(database)], capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_a_commit_is_seen_by_another_process_while_other_connections_come_and_go(assistant_home: Path) -> None:
    history = History()
    history.create_chat(title="first")
    database = paths.database_file()
    assert count_elsewhere(database) == 1

    def another_thread_connects() -> None:  # a worker's first use of the history: a connection of its own
        history.list_chats()

    worker = threading.Thread(target=another_thread_connects)
    worker.start()
    worker.join()
    assert count_elsewhere(database) == 1  # the other process read and closed: no lock of ours may have gone

    history.create_chat(title="second")  # on the first connection, after all that
    assert count_elsewhere(database) == 2
    history.close()
