"""Installed models: what is on disk, where, and how it got there.

A model is installed when it has a row here *and* its file exists. Pulls write into
``paths.partial_dir()`` and only rename into ``paths.models_dir()`` after the checksum passed, and the
row is written last — so an interrupted or corrupt download can never be listed as installed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import catalog, db, paths
from .errors import AssistantError

MIGRATIONS = [
    (
        "store_001_models",
        """
        CREATE TABLE models (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('llm', 'whisper')),
            path TEXT NOT NULL,
            managed INTEGER NOT NULL,          -- 1: the store owns the file (rm deletes it)
            size_bytes INTEGER NOT NULL,
            sha256 TEXT,                       -- of the file, or of the folder's manifest
            source TEXT NOT NULL,              -- e.g. pypi:..., hf://..., import, quantize
            provenance TEXT NOT NULL DEFAULT '{}',  -- JSON: source variant, llama.cpp version...
            info TEXT NOT NULL DEFAULT '{}',   -- JSON: cached GGUF header summary
            installed_at REAL NOT NULL
        );
        """,
    ),
]


@dataclass
class Installed:
    id: str
    kind: str
    path: Path
    managed: bool
    size_bytes: int
    sha256: str | None
    source: str
    provenance: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    installed_at: float = 0.0

    @property
    def present(self) -> bool:
        return self.path.exists()

    @property
    def quant(self) -> str:
        return str(self.info.get("quant") or self.id.split(":", 1)[1].upper())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "path": str(self.path),
            "managed": self.managed,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "source": self.source,
            "provenance": self.provenance,
            "installed_at": self.installed_at,
            "present": self.present,
        }


def _row(row: sqlite3.Row) -> Installed:
    return Installed(
        id=row["id"],
        kind=row["kind"],
        path=Path(row["path"]),
        managed=bool(row["managed"]),
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        source=row["source"],
        provenance=json.loads(row["provenance"] or "{}"),
        info=json.loads(row["info"] or "{}"),
        installed_at=row["installed_at"],
    )


class Store:
    """The installed-model registry over the app database."""

    def __init__(self, conn: sqlite3.Connection | None = None) -> None:
        self.conn = conn or db.connect()

    def list(self, kind: str | None = None) -> list[Installed]:
        sql = "SELECT * FROM models" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        return [_row(r) for r in self.conn.execute(sql, (kind,) if kind else ())]

    def get(self, model_id: str) -> Installed | None:
        row = self.conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        return _row(row) if row else None

    def require(self, model_id: str) -> Installed:
        """The installed model ``model_id`` (a family name alone picks its installed variant)."""
        resolved = self.resolve(model_id)
        found = self.get(resolved)
        if found is None:
            raise AssistantError(f"model {resolved} is not installed", f"run 'assistant models pull {resolved}'")
        if not found.present:
            raise AssistantError(
                f"model {resolved}: its file {found.path} is gone",
                f"run 'assistant models rm {resolved}' then pull or import it again",
            )
        return found

    def resolve(self, model_id: str) -> str:
        text = model_id.strip().lower()
        if ":" not in text and catalog.PART_RE.match(text):
            for item in self.list():
                if item.id.split(":", 1)[0] == text:
                    return item.id
        return catalog.normalize_id(text, catalog.default())

    def by_path(self, path: Path) -> Installed | None:
        row = self.conn.execute("SELECT * FROM models WHERE path = ?", (str(path),)).fetchone()
        return _row(row) if row else None

    def add(self, item: Installed) -> Installed:
        """Register ``item`` (replacing a row with the same id). Called only once its files are final."""
        item.installed_at = item.installed_at or time.time()
        with db.transaction(self.conn):
            self.conn.execute(
                "INSERT OR REPLACE INTO models (id, kind, path, managed, size_bytes, sha256, source, provenance,"
                " info, installed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.id,
                    item.kind,
                    str(item.path),
                    int(item.managed),
                    item.size_bytes,
                    item.sha256,
                    item.source,
                    json.dumps(item.provenance),
                    json.dumps(item.info),
                    item.installed_at,
                ),
            )
        return item

    def remove(self, model_id: str) -> Installed:
        """Forget a model; delete its files only if the store owns them (imports stay where they were)."""
        item = self.get(model_id)
        if item is None:
            raise AssistantError(f"model {model_id} is not installed", "see 'assistant models list'")
        with db.transaction(self.conn):
            self.conn.execute("DELETE FROM models WHERE id = ?", (model_id,))
        if item.managed:
            own_dir = variant_dir(item.id)
            if item.path.is_relative_to(own_dir):
                shutil.rmtree(own_dir, ignore_errors=True)
                with contextlib.suppress(OSError):
                    own_dir.parent.rmdir()  # the family folder, once its last variant is gone
            elif item.path.is_dir():
                shutil.rmtree(item.path, ignore_errors=True)
            else:
                item.path.unlink(missing_ok=True)
        return item


def variant_dir(model_id: str) -> Path:
    """``models/<family>/<tag>``: validated id parts only, so it always stays inside the store."""
    family, tag = catalog.validate_id(model_id)
    return paths.models_dir() / family / tag


def dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sha256_file(path: Path, on_progress: Any = None) -> str:
    """Hash a file in 1 MiB blocks; ``on_progress(done_bytes)`` after each block."""
    import hashlib

    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            done += len(block)
            if on_progress:
                on_progress(done)
    return digest.hexdigest()


def manifest_sha256(digests: dict[str, str]) -> str:
    """One checksum for a folder: sha256 of its sorted ``<relative name> <sha256>`` lines."""
    import hashlib

    names = sorted(digests, key=lambda name: name.split("/"))
    return hashlib.sha256("\n".join(f"{name} {digests[name]}" for name in names).encode()).hexdigest()


def hash_path(path: Path) -> str:
    """sha256 of a file, or ``manifest_sha256`` of a folder (CTranslate2 whisper models)."""
    if path.is_file():
        return sha256_file(path)
    return manifest_sha256({p.relative_to(path).as_posix(): sha256_file(p) for p in path.rglob("*") if p.is_file()})


def is_whisper_dir(path: Path) -> bool:
    return path.is_dir() and (path / "model.bin").is_file() and (path / "config.json").is_file()


def import_path(path: Path, model_id: str | None = None, copy: bool = False, store: Store | None = None) -> Installed:
    """Register an existing GGUF file (or CTranslate2 whisper folder) — in place, or copied into the store."""
    from . import gguf

    store = store or Store()
    source = path.expanduser()
    if not source.exists():
        raise AssistantError(f"{path}: no such file or folder", "check the path")
    source = source.resolve()
    info: dict[str, Any] = {}
    if source.is_dir():
        if not is_whisper_dir(source):
            raise AssistantError(
                f"{path}: a folder, but not a CTranslate2 whisper model (no model.bin + config.json)",
                "give a .gguf file or a faster-whisper model folder",
            )
        kind = "whisper"
        derived = catalog.derive_id(source.name.removeprefix("faster-whisper-"), "local")
    else:
        header = gguf.read(source)  # refuses truncated, empty or non-GGUF files with one line
        info = header.summary()
        kind = "llm"
        derived = catalog.derive_id(source.name, header.quant)
    digest = hash_path(source)
    if not model_id:
        # a file the catalog knows (same checksum) keeps the catalog's id
        known = [v for v in catalog.default().variants.values() if v.kind == kind and v.entry.sha256 == digest]
        derived = known[0].id if known else derived
    final_id = catalog.normalize_id(model_id) if model_id else derived
    existing = store.get(final_id)
    if existing and existing.path != source:
        raise AssistantError(
            f"model id {final_id} is already installed ({existing.path})",
            "choose another with --id, or remove it first with 'assistant models rm'",
        )
    target = source
    if copy:
        target = variant_dir(final_id) / source.name
        partial = paths.ensure(paths.partial_dir()) / f"{final_id.replace(':', '_')}.import"
        try:
            if source.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
                shutil.copytree(source, partial)
            else:
                shutil.copyfile(source, partial)
            paths.ensure(target.parent)
            partial.replace(target)
        except BaseException:
            if partial.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.unlink(missing_ok=True)
            raise
        if info:
            info["path"] = str(target)
    item = Installed(
        id=final_id,
        kind=kind,
        path=target,
        managed=copy,
        size_bytes=dir_size(target),
        sha256=digest,
        source="import",
        provenance={"imported_from": str(source)},
        info=info,
    )
    return store.add(item)
