"""Every directory the app uses, decided in one place.

``ASSISTANT_HOME`` overrides all of them (tests point it at a temp dir); otherwise platformdirs
picks the platform's conventional locations.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import PlatformDirs

APP_NAME = "assistant"


def _dirs() -> PlatformDirs:
    return PlatformDirs(APP_NAME, appauthor=False)


def home() -> Path | None:
    """The ``ASSISTANT_HOME`` override, if set."""
    value = os.environ.get("ASSISTANT_HOME")
    return Path(value).expanduser() if value else None


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


def bench_dir() -> Path:
    """Exported benchmark reports and plots."""
    return data_dir() / "bench"


def log_file() -> Path:
    return cache_dir() / "assistant.log"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it over: readers see the old file or the
    new one, never half of one. The temp file is removed if anything fails (OSError reaches the caller)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure(path: Path) -> Path:
    """Create ``path`` (a directory) if needed and return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path
