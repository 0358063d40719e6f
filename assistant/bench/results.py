"""Benchmark runs kept in the app database: one row per run (with its fingerprint), one per variant.

A run is written in one transaction after every variant has been measured, so an interrupted benchmark
leaves nothing behind, and a finished one is never half-visible. Metrics are stored as JSON (the keys are
the ``--json`` row keys), with the PER score in its own column for sorting.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from .. import db
from ..errors import AssistantError
from . import fingerprint as fp

MIGRATIONS = [
    (
        "bench_001_runs",
        """
        CREATE TABLE bench_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at REAL NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('llm', 'whisper')),
            quick INTEGER NOT NULL,
            threads INTEGER,
            context INTEGER,
            fingerprint TEXT NOT NULL,          -- JSON: CPU, flags, cores, RAM, OS, library versions
            fingerprint_digest TEXT NOT NULL,   -- hash of the machine part: equal = comparable hardware
            options TEXT NOT NULL DEFAULT '{}', -- JSON: repetitions, windows, task count...
            wall_s REAL
        );
        CREATE TABLE bench_results (
            run_id INTEGER NOT NULL REFERENCES bench_runs(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            model_id TEXT NOT NULL,
            reference TEXT,                     -- the variant this row's ratios are relative to
            per REAL,
            metrics TEXT NOT NULL,              -- JSON: the --json row
            PRIMARY KEY (run_id, position)
        );
        CREATE INDEX bench_results_model ON bench_results (model_id);
        """,
    ),
]


@dataclass
class Run:
    kind: str
    rows: list[dict[str, Any]]
    fingerprint: dict[str, Any]
    quick: bool = False
    threads: int | None = None
    context: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    wall_s: float | None = None
    created_at: float = 0.0
    id: int | None = None
    warnings: list[str] = field(default_factory=list)  # stored rows skipped or values dropped when loading

    @property
    def model_ids(self) -> list[str]:
        return [str(r["id"]) for r in self.rows]

    @property
    def verdict(self) -> dict[str, Any] | None:
        """The variant to use (``verdict.verdict``), kept with the run's options; None for older runs."""
        value = self.options.get("verdict")
        return value if isinstance(value, dict) else None

    @property
    def digest(self) -> str:
        return fp.digest(self.fingerprint)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "created_at": self.created_at,
            "kind": self.kind,
            "quick": self.quick,
            "threads": self.threads,
            "context": self.context,
            "wall_s": self.wall_s,
            "options": self.options,
            "fingerprint": self.fingerprint,
            "fingerprint_digest": self.digest,
            "verdict": self.verdict,
            "results": self.rows,
        }


def save(run: Run, conn: sqlite3.Connection | None = None) -> int:
    """Write ``run`` and its rows in one transaction; return its id."""
    own = conn is None
    conn = conn or db.connect()
    try:
        run.created_at = run.created_at or time.time()
        with db.transaction(conn):
            cur = conn.execute(
                "INSERT INTO bench_runs (created_at, kind, quick, threads, context, fingerprint, fingerprint_digest,"
                " options, wall_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.created_at,
                    run.kind,
                    int(run.quick),
                    run.threads,
                    run.context,
                    json.dumps(run.fingerprint),
                    run.digest,
                    json.dumps(run.options),
                    run.wall_s,
                ),
            )
            run_id = int(cur.lastrowid or 0)
            for position, row in enumerate(run.rows):
                conn.execute(
                    "INSERT INTO bench_results (run_id, position, model_id, reference, per, metrics)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, position, row["id"], row.get("reference"), row.get("per"), json.dumps(row)),
                )
        run.id = run_id
        return run_id
    finally:
        if own:
            conn.close()


# Keys the tables and plots format as numbers; a stored value that is not a number is dropped, not fatal.
NUMERIC_KEYS = frozenset(
    (
        "size_bytes", "bpw", "load_s", "load_s_sd", "pp_tps", "pp_tps_sd", "tg_tps", "tg_tps_sd", "ttft_ms",
        "ttft_ms_sd", "peak_rss_mb", "fit_estimate_mb", "fit_error_pct", "ppl", "ppl_ratio", "kld",
        "top1_agreement", "accuracy", "per", "rtf", "rtf_sd", "x_realtime", "wer", "latency_ms", "latency_ms_sd",
    )
)  # fmt: skip


def _json_object(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _metrics(text: str | None, where: str, warnings: list[str]) -> dict[str, Any] | None:
    """A stored result row, or None (with a warning) when it is not one: not JSON, not an object, no model id."""
    row = _json_object(text)
    if row is None or not isinstance(row.get("id"), str) or not row["id"]:
        warnings.append(f"{where}: not a valid result, skipped")
        return None
    for key in sorted(NUMERIC_KEYS & row.keys()):
        value = row[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            warnings.append(f"{where}: {key} is not a number, left out")
            del row[key]
    return row


def _number(value: Any, kind: type) -> Any:
    return kind(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _run(row: sqlite3.Row, rows: list[dict[str, Any]], warnings: list[str]) -> Run:
    fingerprint = _json_object(row["fingerprint"])
    if fingerprint is None:
        warnings.append(f"run {row['id']}: its machine fingerprint is damaged")
    return Run(
        id=row["id"],
        created_at=row["created_at"],
        kind=row["kind"],
        quick=bool(row["quick"]),
        threads=_number(row["threads"], int),
        context=_number(row["context"], int),
        fingerprint=fingerprint or {},
        options=_json_object(row["options"]) or {},
        wall_s=_number(row["wall_s"], float),
        rows=rows,
        warnings=warnings,
    )


def get(run_id: int, conn: sqlite3.Connection | None = None) -> Run:
    """Run ``run_id``; rows that cannot be read are skipped and named in ``Run.warnings``."""
    own = conn is None
    conn = conn or db.connect()
    try:
        head = conn.execute("SELECT * FROM bench_runs WHERE id = ?", (run_id,)).fetchone()
        if head is None:
            raise AssistantError(f"no benchmark run {run_id}", "see 'assistant bench history'")
        warnings: list[str] = []
        rows = []
        for r in conn.execute(
            "SELECT position, metrics FROM bench_results WHERE run_id = ? ORDER BY position", (run_id,)
        ):
            found = _metrics(r["metrics"], f"run {run_id} row {r['position'] + 1}", warnings)
            if found is not None:
                rows.append(found)
        return _run(head, rows, warnings)
    finally:
        if own:
            conn.close()


def history(limit: int | None = None, conn: sqlite3.Connection | None = None) -> list[Run]:
    """Runs, newest first, with their rows."""
    own = conn is None
    conn = conn or db.connect()
    try:
        sql = "SELECT id FROM bench_runs ORDER BY id DESC" + (" LIMIT ?" if limit else "")
        ids = [r["id"] for r in conn.execute(sql, (limit,) if limit else ())]
        return [get(run_id, conn) for run_id in ids]
    finally:
        if own:
            conn.close()


def resolve(ref: str, conn: sqlite3.Connection | None = None) -> int:
    """A run reference: its number, or ``last``/``latest`` (also ``-1``, ``-2``... counting back)."""
    text = ref.strip().lower()
    back: int | None = None
    if text in ("last", "latest"):
        back = 1
    elif text.startswith("-") and text[1:].isdigit():
        back = int(text[1:])
    if back is not None:
        own = conn is None
        conn = conn or db.connect()
        try:
            row = conn.execute("SELECT id FROM bench_runs ORDER BY id DESC LIMIT 1 OFFSET ?", (back - 1,)).fetchone()
        finally:
            if own:
                conn.close()
        if row is None:
            raise AssistantError("no benchmark runs yet", "run 'assistant bench MODEL...' first")
        return int(row["id"])
    if not text.isdigit():
        raise AssistantError(f"invalid run {ref!r}", "give a run number from 'assistant bench history', or 'last'")
    return int(text)


def delete(run_id: int, conn: sqlite3.Connection | None = None) -> None:
    own = conn is None
    conn = conn or db.connect()
    try:
        with db.transaction(conn):
            found = conn.execute("DELETE FROM bench_runs WHERE id = ?", (run_id,)).rowcount
        if not found:
            raise AssistantError(f"no benchmark run {run_id}", "see 'assistant bench history'")
    finally:
        if own:
            conn.close()
