"""Every directory the app uses, decided in one place.

``ASSISTANT_HOME`` overrides all of them (tests point it at a temp dir); otherwise platformdirs
picks the platform's conventional locations.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from platformdirs import PlatformDirs

from .errors import AssistantError

APP_NAME = "assistant"


def _dirs() -> PlatformDirs:
    return PlatformDirs(APP_NAME, appauthor=False)


def home() -> Path | None:
    """The ``ASSISTANT_HOME`` override, if set. It must be a folder (or not exist yet): a file, or a place
    under ``/proc``, ``/sys`` or ``/dev``, is refused with one line before anything is created in it."""
    value = os.environ.get("ASSISTANT_HOME")
    if not value:
        return None
    root = Path(value).expanduser()
    resolved = root.resolve()
    if any(resolved.is_relative_to(p) for p in _NOT_A_HOME):
        raise AssistantError(f"ASSISTANT_HOME={value}: not a place for the app's files", _HOME_HINT)
    if resolved.exists() and not resolved.is_dir():
        raise AssistantError(f"ASSISTANT_HOME={value}: not a folder", _HOME_HINT)
    return root


# Kernel and device file systems: mkdir fails there with confusing errors, or (worse) writes reach the kernel.
_NOT_A_HOME = tuple(Path(p) for p in ("/proc", "/sys", "/dev"))
_HOME_HINT = "point ASSISTANT_HOME at a folder of yours (it is created if missing), or unset it"

# The app's own folders hold chats and models: only their owner may list or read them, whatever the umask.
DIR_MODE = 0o700
FILE_MODE = 0o600


def _pick(sub: str, platform_dir: str) -> Path:
    root = home()
    path = root / sub if root else Path(platform_dir)
    return path


def config_dir() -> Path:
    return _pick("config", _dirs().user_config_dir)


def data_dir() -> Path:
    return _pick("data", _dirs().user_data_dir)


def cache_dir() -> Path:
    return _pick("cache", _dirs().user_cache_dir)


def config_file() -> Path:
    return config_dir() / "config.toml"


def user_catalog_file() -> Path:
    """The user's catalog, merged over the shipped ``models.toml``."""
    return config_dir() / "models.toml"


def database_file() -> Path:
    """One SQLite file for installed models, chats and benchmark results."""
    return data_dir() / "assistant.db"


def models_dir() -> Path:
    """Where pulled and quantized models live (imported models stay where they are)."""
    return data_dir() / "models"


def partial_dir() -> Path:
    """Downloads in progress. Nothing here is ever listed as installed."""
    return data_dir() / "partial"


def wheel_cache_dir() -> Path:
    """Wheels fetched by ``pip download``. ``ASSISTANT_WHEEL_CACHE`` lets tests share one outside the repo."""
    value = os.environ.get("ASSISTANT_WHEEL_CACHE")
    return Path(value).expanduser() if value else cache_dir() / "wheels"


def documents_dir() -> Path:
    """Where exports go unless the user names a place: the user's documents folder (``ASSISTANT_HOME``:
    its ``documents``), or the home folder when the platform has none."""
    root = home()
    if root:
        return root / "documents"
    documents = Path(_dirs().user_documents_dir)
    return documents if documents.is_dir() else Path.home()


def log_file() -> Path:
    return cache_dir() / "assistant.log"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it over: readers see the old file or the
    new one, never half of one. The file is private (0600). The temp file is removed if anything fails.

    Every way it can fail is one clear ``AssistantError``, never an ``OSError``, so every front (exports,
    transcripts, config edits) words a refused write the same: a folder that is missing, cannot be looked
    into or cannot take files, a target that is not a regular file (``/dev/null``, a FIFO, a folder), a full
    disk."""
    import tempfile

    folder = path.parent
    try:
        if not folder.is_dir():
            raise AssistantError(f"{path}: no such folder {folder}", "create it first or pick another path")
        if path.exists() and not path.is_file():
            raise AssistantError(f"{path}: not a regular file", "write to a new file name")
    except OSError as exc:  # a folder on the way that cannot be looked into
        raise AssistantError(f"{path}: cannot write there: {_reason(exc, folder)}", "pick another folder") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise AssistantError(f"{path}: cannot write there: {_reason(exc, folder)}", "pick another folder") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), FILE_MODE)
            fh.write(text)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise AssistantError(f"{path}: cannot write: {_reason(exc, folder)}", "pick another place") from None
        raise


def _reason(exc: OSError, folder: Path) -> str:
    import errno

    if exc.errno == errno.ENOENT:
        return "this folder does not take new files" if folder.is_dir() else f"no folder {folder}"
    if exc.errno == errno.ENOSPC:
        return "disk full"
    return exc.strerror or type(exc).__name__


def ensure(path: Path) -> Path:
    """Create the folder ``path`` (and missing parents) private to its owner (0700), and return it.

    Folders that already exist are left as they are (see ``secure`` for the app's own roots). A folder that
    cannot be created (a read-only disk, a file in the way) is one ``AssistantError`` naming it.
    """
    missing = []
    at = path
    while not at.is_dir():
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise AssistantError(f"{folder}: a file is in the way of a folder", "move the file away") from None
            continue
        except OSError as exc:
            raise AssistantError(
                f"cannot create folder {folder}: {exc.strerror or exc}", "check ASSISTANT_HOME and its permissions"
            ) from None
        private(folder)  # mkdir's mode is cut by the umask; the chmod is not
    return path


def private(path: Path) -> bool:
    """Take every permission away from group and others on an existing file or folder. False if that was not
    possible (a read-only disk: then nothing can be written there either)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)  # the owner's own bits stay as they are (a home made read-only stays so)
    except OSError:
        return False
    return True


def private_file(path: Path) -> Path:
    """Create ``path`` empty and 0600 if it does not exist (so it is never readable by others, not even for
    a moment), or make an existing one 0600. Returns ``path``.

    An existing file is never opened (``O_EXCL``): closing any descriptor of a file drops every POSIX lock
    this process holds on it, and SQLite's locks on the database are exactly that. An open and close here
    on each new connection let another process (``assistant chats`` beside a running server or TUI) take
    the database for unused, checkpoint and reset its WAL under the live connections, whose later commits
    then stayed invisible until they closed (SQLite's "How To Corrupt", section 2.2)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        pass
    except OSError:
        return path  # a read-only disk: the caller's open reports what matters
    else:
        os.close(fd)
    private(path)
    return path


def app_dirs() -> list[Path]:
    """The roots the app creates: config, data and cache (the wheel cache may be shared, so not that)."""
    return [config_dir(), data_dir(), cache_dir()]


def secure() -> list[Path]:
    """At start-up: the app's existing folders 0700 and its database files 0600, whatever made them. Returns
    what was changed (nothing on a read-only disk, where it fails quietly)."""
    changed = []
    targets = [*app_dirs(), *database_files(), config_file()]
    for target in targets:
        try:
            before = target.stat().st_mode
        except OSError:
            continue
        if private(target) and target.stat().st_mode != before:
            changed.append(target)
    return changed


def database_files() -> list[Path]:
    """The database and its WAL companions."""
    main = database_file()
    return [main, main.with_name(main.name + "-wal"), main.with_name(main.name + "-shm")]
