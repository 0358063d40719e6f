"""Where a pull's bytes wait until they are verified: the partial dir, and what every source shares there.

Whatever the source (a wheel, the hub), bytes go to a partial file under ``paths.partial_dir()`` while their
sha256 is computed; a full disk becomes one line saying how much room is needed; a checksum mismatch deletes
what was written. A hub file's partial keeps a JSON sidecar (url, etag, size) so a later run can tell whether
it may resume it. A source reports what it could not do with :class:`Unavailable` (try the next source) or
:class:`Discard` (what it sent cannot be kept), and what it did with a :class:`Staged`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import paths
from .errors import AssistantError, Cancelled

if TYPE_CHECKING:
    from .catalog import Variant

ProgressFn = Callable[[int, int | None, str], None]

CHUNK = 1 << 20
INTERRUPTED = "download interrupted; run the same pull to resume"
# What a partial's sidecar must match for the partial to be resumed (else it starts over).
SIDECAR_KEYS = ("url", "etag", "size")


class Unavailable(Exception):
    """This source cannot deliver the files now (network, missing wheel or file): try the next one."""


class Discard(Unavailable):
    """What this source sent cannot be kept (more bytes than announced, a file that changed): delete the partial."""


@dataclass
class Staged:
    """Verified bytes waiting in the partial dir to be renamed into the store."""

    path: Path
    sha256: str
    size: int
    source: str
    provenance: dict[str, Any] = field(default_factory=dict)
    leftovers: list[Path] = field(default_factory=list)  # sidecars to delete once installed


class Progress:
    """A pull's progress reports and its cancel check in one call: every loop that moves bytes makes it, so
    a cancel (Esc, the ``cancel`` event) stops the pull within one chunk."""

    def __init__(self, on_progress: ProgressFn | None, cancel: threading.Event | None) -> None:
        self.on_progress = on_progress
        self.cancel = cancel

    def __call__(self, done: int, total: int | None, label: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(INTERRUPTED)
        if self.on_progress is not None:
            self.on_progress(done, total, label)

    def pause(self, seconds: float) -> None:
        """Wait before a retry; a cancel during the wait ends the pull at once rather than after it."""
        if self.cancel is None:
            time.sleep(seconds)
        elif self.cancel.wait(seconds):
            raise Cancelled(INTERRUPTED)


def staging_dir(variant: Variant) -> Path:
    """The one folder a variant's partial files live in (its lock file sits beside it)."""
    return paths.partial_dir() / variant.family / variant.tag


def shown(text: str) -> str:
    """Server- or library-provided text for an error line: no control characters, one line, bounded."""
    from .untrusted import clean

    line = clean(text, one_line=True)
    return line if len(line) <= 300 else line[:300] + "..."


# -- writing ---------------------------------------------------------------------------------------


def _raw_write(out: IO[bytes], chunk: bytes) -> None:
    """The one place bytes hit the disk (tests swap it to simulate a full disk)."""
    out.write(chunk)


def write(out: IO[bytes], chunk: bytes, part: Path, remaining: int, *, keeps_partial: bool) -> None:
    """Write one chunk; a full disk becomes a one-line error saying how much room is needed."""
    try:
        _raw_write(out, chunk)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise AssistantError(f"cannot write {part}: {exc.strerror or exc}") from None
        need = max(remaining, len(chunk)) / 1e6
        kept = " (the partial download is kept to resume)" if keeps_partial else ""
        raise AssistantError(
            f"disk full while writing {part.name}; free {need:.0f} MB and run the pull again{kept}"
        ) from None


@contextlib.contextmanager
def open_partial(part: Path, mode: str, remaining: int) -> Iterator[IO[bytes]]:
    """Open a partial file; refuse early when the disk plainly has no room for what is left."""
    paths.ensure(part.parent)
    if remaining > 0:
        free = shutil.disk_usage(part.parent).free
        if free < remaining:
            raise AssistantError(
                f"not enough disk space for {part.name}: {remaining / 1e6:.0f} MB needed, {free / 1e6:.0f} MB free",
                f"free {(remaining - free) / 1e6:.0f} MB and run the pull again",
            )
    fh = open(part, mode)  # noqa: SIM115 - closed below, after the caller's fsync
    try:
        yield fh
    finally:
        try:
            fh.close()
        except OSError as exc:  # buffered bytes flushed at close can hit a full disk too
            if exc.errno == errno.ENOSPC:
                raise AssistantError(
                    f"disk full while writing {part.name}", "free some space and run the pull again"
                ) from None
            raise


def fsync(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def remove(part: Path) -> None:
    """Delete a partial file or folder, whichever it is."""
    if part.is_dir():
        shutil.rmtree(part, ignore_errors=True)
    else:
        part.unlink(missing_ok=True)


def prune_empty(path: Path, stop: Path) -> None:
    """Remove now-empty partial folders up to (not including) ``stop``."""
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


# -- verifying -------------------------------------------------------------------------------------


def verify(
    variant: Variant, name: str, got: str, expected: str | None, size: int, expected_size: int | None, cleanup: Path
) -> None:
    """Compare the computed sha256 (or, without one, the size); on mismatch delete the partial."""
    bad = None
    if expected is not None and got != expected:
        bad = f"checksum mismatch for {name} (expected {expected[:12]}..., got {got[:12]}...)"
    elif expected is None and expected_size is not None and size != expected_size:
        bad = f"size mismatch for {name} ({size} bytes, expected {expected_size})"
    if bad is None:
        return
    if cleanup.is_dir():
        shutil.rmtree(cleanup, ignore_errors=True)
    else:
        cleanup.unlink(missing_ok=True)
        sidecar(cleanup).unlink(missing_ok=True)
    raise AssistantError(
        f"{variant.id}: {bad}; the download was deleted, nothing installed",
        "run the pull again; if it repeats, the catalog entry or the source is wrong",
    )


# -- sidecars --------------------------------------------------------------------------------------


def sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {k: data.get(k) for k in SIDECAR_KEYS} if isinstance(data, dict) else None


def write_sidecar(path: Path, data: dict[str, Any]) -> None:
    paths.write_text_atomic(path, json.dumps(data))
