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
    # managed files are stored relative to the models folder, so a home that is moved or copied keeps working
    # and a copy never points at (or deletes) the original's files
    ("store_002_relative_paths", lambda conn: _relative_paths(conn)),
]


def _relative_paths(conn: sqlite3.Connection) -> None:
    for model_id, stored in conn.execute("SELECT id, path FROM models WHERE managed = 1").fetchall():
        relative = _store_relative(model_id, Path(stored))
        if relative is not None:
            conn.execute("UPDATE models SET path = ? WHERE id = ?", (relative, model_id))


def _store_relative(model_id: str, path: Path) -> str | None:
    """``<family>/<tag>/...`` for an absolute ``.../models/<family>/<tag>/...`` path of ``model_id``: the layout
    every managed model has (``variant_dir``), whichever home it was recorded in."""
    if not path.is_absolute():
        return None
    try:
        family, tag = catalog.validate_id(model_id)
    except AssistantError:
        return None
    parts = path.parts
    for at in range(len(parts) - 3, -1, -1):
        if parts[at : at + 3] == ("models", family, tag):
            return Path(*parts[at + 1 :]).as_posix()
    return None


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
    deleted: bool = False  # set by Store.remove: its files were deleted (not only forgotten)

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


def _json_object(text: str | None) -> dict[str, Any]:
    """A JSON object column; anything else (damaged, hand-edited) reads as empty rather than failing a listing."""
    try:
        value = json.loads(text or "{}")
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _row(row: sqlite3.Row) -> Installed:
    return Installed(
        id=row["id"],
        kind=row["kind"],
        path=_loaded_path(row["path"]),
        managed=bool(row["managed"]),
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        source=row["source"],
        provenance=_json_object(row["provenance"]),
        info=_json_object(row["info"]),
        installed_at=row["installed_at"],
    )


def _loaded_path(stored: str) -> Path:
    path = Path(stored)
    return path if path.is_absolute() else paths.models_dir() / path


def _stored_path(item: Installed) -> str:
    """What the row keeps: managed files relative to this home's models folder, anything else absolute."""
    if item.managed:
        with contextlib.suppress(ValueError):
            return item.path.relative_to(paths.models_dir()).as_posix()
    return str(item.path)


def owned(path: Path) -> bool:
    """True if ``path`` is inside this home's models folder (after following links): the only files the
    store ever deletes."""
    root = paths.models_dir().resolve()
    try:
        target = path.resolve()
    except OSError:
        return False
    return target != root and target.is_relative_to(root)


class Store:
    """The installed-model registry over the app database."""

    def __init__(self, conn: sqlite3.Connection | None = None) -> None:
        # A damaged database must not stop a model that is on disk from loading (transcribe, chat): then
        # ``require`` finds managed models by their folder, and listings report the damage (see _check).
        self.damaged: db.DatabaseDamaged | None = None
        if conn is None:
            try:
                conn = db.connect()
            except db.DatabaseDamaged as exc:
                self.damaged = exc
                conn = db.empty(exc.path)
        self.conn = conn

    def _check(self) -> None:
        if self.damaged is not None:
            raise self.damaged

    def list(self, kind: str | None = None) -> list[Installed]:
        self._check()
        sql = "SELECT * FROM models" + (" WHERE kind = ?" if kind else "") + " ORDER BY id"
        return [_row(r) for r in self.conn.execute(sql, (kind,) if kind else ())]

    def get(self, model_id: str) -> Installed | None:
        self._check()
        row = self.conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        return _row(row) if row else None

    def require(self, model_id: str) -> Installed:
        """The installed model ``model_id`` (a family name alone picks its installed variant)."""
        if self.damaged is not None:
            return self._from_files(model_id)
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

    def _from_files(self, model_id: str) -> Installed:
        """A catalog model found in its store folder, for when the database cannot say where it is."""
        damage = self.damaged
        assert damage is not None
        variant = catalog.default().find(catalog.normalize_id(model_id.strip().lower(), catalog.default()))
        if variant is None:
            raise damage
        path = variant_dir(variant.id) / variant.install_name
        if not path.exists():
            raise damage
        info: dict[str, Any] = {}
        if variant.kind == "llm":
            from . import gguf

            info = gguf.read(path).summary()
        return Installed(variant.id, variant.kind, path, True, dir_size(path), None, "store folder", info=info)

    def resolve(self, model_id: str) -> str:
        text = model_id.strip().lower()
        if ":" not in text and catalog.PART_RE.match(text):
            for item in self.list():
                if item.id.split(":", 1)[0] == text:
                    return item.id
        return catalog.normalize_id(text, catalog.default())

    def add(self, item: Installed) -> Installed:
        """Register ``item`` (replacing a row with the same id). Called only once its files are final."""
        self._check()
        item.installed_at = item.installed_at or time.time()
        with db.transaction(self.conn):
            self.conn.execute(
                "INSERT OR REPLACE INTO models (id, kind, path, managed, size_bytes, sha256, source, provenance,"
                " info, installed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.id,
                    item.kind,
                    _stored_path(item),
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
        """Forget a model; delete its files only if the store owns them *and* they are inside this home's
        models folder (imports, and files of another home this one was copied from, stay where they are)."""
        item = self.get(model_id)
        if item is None:
            raise AssistantError(f"model {model_id} is not installed", "see 'assistant models list'")
        with db.transaction(self.conn):
            self.conn.execute("DELETE FROM models WHERE id = ?", (model_id,))
        if item.managed and owned(item.path):
            item.deleted = True
            own_dir = _own_variant_dir(item.id)
            if own_dir is not None and item.path.resolve().is_relative_to(own_dir.resolve()):
                shutil.rmtree(own_dir, ignore_errors=True)
                with contextlib.suppress(OSError):
                    own_dir.parent.rmdir()  # the family folder, once its last variant is gone
            elif item.path.is_dir() and not item.path.is_symlink():
                shutil.rmtree(item.path, ignore_errors=True)
            else:
                item.path.unlink(missing_ok=True)
        return item


def _own_variant_dir(model_id: str) -> Path | None:
    """This id's folder in the store, if the id is valid and the folder is really inside the store."""
    try:
        folder = variant_dir(model_id)
    except AssistantError:
        return None
    return folder if owned(folder) else None


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


# -- leftovers --------------------------------------------------------------------------------------


@dataclass
class Leftover:
    """Bytes an interrupted job left behind: a download to resume, a killed quantize's or copy's partial file."""

    path: Path
    size_bytes: int
    what: str

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "size_bytes": self.size_bytes, "what": self.what}


def leftovers() -> list[Leftover]:
    """Every partial file no running job is writing: unfinished downloads (``partial/``), ``.partial`` files of
    quantize or bench workers whose parent died, and temp files of interrupted writes. Read-only: see ``clean``."""
    found: list[Leftover] = []
    partial = paths.partial_dir()
    if partial.is_dir():
        for child in sorted(partial.iterdir()):
            if child.is_dir():
                found += _staged_downloads(child)
            elif not child.name.endswith(".lock"):
                found.append(Leftover(child, _size(child), "unfinished copy (import --copy)"))
    models = paths.models_dir()
    if models.is_dir():
        for hidden in sorted(models.rglob(".*")):
            if hidden.name.endswith(".partial") and not _writer_alive(hidden):
                found.append(Leftover(hidden, _size(hidden), "unfinished quantize (its process is gone)"))
            elif hidden.name.endswith(".tmp"):
                found.append(Leftover(hidden, _size(hidden), "temp file of an interrupted write"))
    for folder in (paths.data_dir(), paths.config_dir()):
        if folder.is_dir():
            found += [Leftover(t, _size(t), "temp file of an interrupted write") for t in sorted(folder.glob(".*.tmp"))]
    return found


def _staged_downloads(family_dir: Path) -> list[Leftover]:
    found = []
    for staging in sorted(family_dir.iterdir()):
        if staging.is_dir() and not _lock_held(family_dir / f"{staging.name}.lock"):
            found.append(Leftover(staging, _size(staging), "unfinished download ('models pull' resumes it)"))
    return found


def _size(path: Path) -> int:
    try:
        return dir_size(path)
    except OSError:
        return 0


def _lock_held(lock: Path) -> bool:
    """True while a pull holds ``lock`` (download.py's flock): its partial files are in use."""
    if not lock.exists():
        return False
    try:
        import fcntl
    except ImportError:
        return False
    try:
        with open(lock, "rb") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _writer_alive(partial: Path) -> bool:
    """``.<name>.<pid>.partial`` (quantize.py): in use while process ``pid`` lives."""
    import os

    pid_text = partial.name.removesuffix(".partial").rsplit(".", 1)[-1]
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def clean(found: list[Leftover]) -> int:
    """Delete the given leftovers (only ever inside the app's own folders); return the bytes freed."""
    roots = [p.resolve() for p in (paths.partial_dir(), paths.models_dir(), paths.data_dir(), paths.config_dir())]
    freed = 0
    for item in found:
        target = item.path
        if not any(target.resolve().is_relative_to(root) and target.resolve() != root for root in roots):
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
        if not target.exists():
            freed += item.size_bytes
    partial = paths.partial_dir()
    if partial.is_dir():
        for family in partial.iterdir():
            with contextlib.suppress(OSError):
                family.rmdir()  # only if empty
    return freed
