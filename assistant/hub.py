"""The Hugging Face hub: file URLs, which endpoint (and token) a pull uses, the network gate, resumable GETs.

Hub downloads resume across process restarts: huggingface-hub (>= 1.18) only resumes inside one call,
so we do the GET ourselves with ``Range`` through its HTTP session, keeping the partial at a fixed path
with a JSON sidecar (url, etag, size). Never more than the announced size is written. The package keeps
huggingface-hub offline (``HF_HUB_OFFLINE``); :func:`network_allowed` lifts that only around a pull's calls.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from . import config, paths
from .catalog import HubSource, Variant
from .errors import AssistantError, one_line
from .partial import (
    CHUNK,
    SIDECAR_KEYS,
    Discard,
    Progress,
    Staged,
    Unavailable,
    fsync,
    open_partial,
    read_sidecar,
    shown,
    sidecar,
    staging_dir,
    verify,
    write,
    write_sidecar,
)
from .store import manifest_sha256

# Consecutive failed attempts (no byte received) before a hub download gives up for this run; an
# attempt that made progress resets the count, so a flaky link still finishes.
RETRIES = 3
RETRY_BACKOFF = 0.25  # seconds, doubled per consecutive failure
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DEFAULT_ENDPOINT = "https://huggingface.co"


# -- URLs ------------------------------------------------------------------------------------------


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


def lfs_sha256(etag: str | None) -> str | None:
    """The file's sha256 if the etag is one (the hub's etag for an LFS file is its sha256), else None."""
    return etag if _SHA256_RE.match(etag or "") else None


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


# -- endpoints and the token -----------------------------------------------------------------------


def endpoint(explicit: str | None, settings: config.Settings) -> str:
    """--endpoint, else config ``models.hub_endpoint``, else $HF_ENDPOINT, else huggingface.co.

    $HF_ENDPOINT is read now, not from huggingface-hub's constants (frozen at its import).
    """
    value = explicit or settings.models.hub_endpoint or os.environ.get("HF_ENDPOINT") or _DEFAULT_ENDPOINT
    return value.rstrip("/")


def token_endpoint(settings: config.Settings) -> str | None:
    """The one endpoint a token ($HF_TOKEN) may be sent to, or None.

    That is the hub the user configured (``models.hub_endpoint``, else $HF_ENDPOINT: their choice, whatever
    the scheme), else huggingface.co over https. Never a host that only came from a URL or a catalog entry,
    nor ``--endpoint``: pasting someone's link must not hand them the token.
    """
    configured = settings.models.hub_endpoint or os.environ.get("HF_ENDPOINT")
    value = (configured or _DEFAULT_ENDPOINT).rstrip("/")
    return value if configured or value.startswith("https://") else None


def token_for(endpoint: str, token_endpoint: str | None) -> str | bool:
    """$HF_TOKEN if ``endpoint`` is the token's own endpoint, else False (huggingface-hub: send none)."""
    token = os.environ.get("HF_TOKEN")
    if not token or token_endpoint is None or origin(endpoint) != origin(token_endpoint):
        return False
    return token


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in: what decides whether two URLs are one server."""
    split = urlsplit(url)
    scheme = split.scheme.lower()
    try:
        port = split.port
    except ValueError:
        port = None
    return scheme, (split.hostname or "").lower(), port or {"https": 443, "http": 80}.get(scheme)


def plain_endpoint(endpoint: str) -> str:
    """``scheme://host[:port]`` of ``endpoint`` (what a catalog entry can pin); refuse anything more."""
    split = urlsplit(endpoint)
    if split.username or split.password or split.path.strip("/") or split.query or split.fragment:
        raise AssistantError(  # the address is not repeated: it may hold a password
            "a hub address kept in the catalog must be just scheme://host[:port]",
            "drop the user, password, path or query from the URL or --endpoint",
        )
    return f"{split.scheme}://{split.netloc}"


# -- metadata --------------------------------------------------------------------------------------


def _http_of(obj: Any) -> Any:
    """The HTTP library ``obj`` comes from (httpx or httpx2, whichever huggingface-hub uses), for its errors."""
    return sys.modules[type(obj).__module__.split(".")[0]]


def file_metadata(endpoint: str, repo: str, filename: str, revision: str, *, token: str | bool) -> dict[str, Any]:
    """HEAD the file: size, etag (the sha256 for LFS files), commit, and where to GET it from.

    ``token`` is what ``token_for`` allows for this endpoint: the token, or False (none is sent).
    """
    from urllib.parse import urljoin

    from huggingface_hub import get_hf_file_metadata, get_session, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
    http = _http_of(get_session())
    try:
        # the package disables implicit tokens; an explicit one goes only where token_for allows
        meta = get_hf_file_metadata(url, token=token, timeout=CONNECT_TIMEOUT, endpoint=endpoint)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        what = "not found" if status == 404 else f"HTTP {status}"
        raise Unavailable(f"{what} at {shown(endpoint)} ({repo}/{filename}@{shown(revision)})") from None
    except OfflineModeIsEnabled:
        raise Unavailable("huggingface-hub is in offline mode") from None
    except (http.TransportError, OSError) as exc:
        raise Unavailable(f"cannot reach {shown(endpoint)}: {shown(one_line(exc))}") from None
    return {
        "url": url,
        "location": urljoin(url, meta.location) if meta.location else url,
        "etag": meta.etag,
        "commit": meta.commit_hash,
        "size": meta.size,
    }


# -- one pull from the hub -------------------------------------------------------------------------


class HubPull:
    """One variant's files from a hub source into the partial dir, resumed where a partial allows, verified."""

    def __init__(self, variant: Variant, progress: Progress, endpoint: str, token_endpoint: str | None) -> None:
        self.variant = variant
        self.progress = progress
        self.endpoint = endpoint
        self.token_endpoint = token_endpoint
        self.staging = staging_dir(variant)

    def fetch(self, source: HubSource) -> Staged:
        entry = self.variant.entry
        if entry.file is not None and len(source.files) != 1:
            raise Unavailable("a one-file variant needs exactly one hub file")
        with network_allowed():
            if entry.file is not None:
                part = self.staging / (entry.file + ".part")
                sha, size, meta = self._file(source, source.files[0], part, 0, self.variant.size, entry.sha256)
                return Staged(part, sha, size, source.describe(), meta, [sidecar(part)])
            return self._folder(source)

    def _folder(self, source: HubSource) -> Staged:
        entry = self.variant.entry
        folder = self.staging / (self.variant.install_name + ".part")
        paths.ensure(folder)
        digests: dict[str, str] = {}
        done = 0
        meta: dict[str, Any] = {}
        for repo_file in source.files:
            name = repo_file.rsplit("/", 1)[-1]
            want = (entry.files or {}).get(name)
            if entry.files is not None and want is None:
                raise AssistantError(
                    f"{self.variant.id}: hub file {name} has no checksum in the catalog; nothing installed",
                    "check the catalog entry",
                )
            sha, size, meta = self._file(source, repo_file, folder / (name + ".part"), done, self.variant.size, want)
            digests[name] = sha
            done += size
        missing = sorted(set(entry.files or {}) - set(digests))
        if missing:
            raise Unavailable(f"the source does not list {', '.join(missing)}")
        # every file verified: give them their names, then the folder is ready to rename
        for name in digests:
            os.replace(folder / (name + ".part"), folder / name)
            sidecar(folder / (name + ".part")).unlink(missing_ok=True)
        return Staged(folder, manifest_sha256(digests), done, source.describe(), meta)

    def _file(
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
        token = token_for(endpoint, self.token_endpoint)
        meta = file_metadata(endpoint, source.hub, repo_file, source.revision, token=token)
        size = self._bounded_size(meta["size"], base, total, repo_file, endpoint)
        expected = expected_sha or lfs_sha256(meta["etag"])
        total = total or base + size
        paths.ensure(part.parent)
        side = sidecar(part)
        wanted = {"url": meta["url"], "etag": meta["etag"], "size": size, "commit": meta["commit"]}
        label = "downloading" if self.variant.entry.file else f"downloading {repo_file.rsplit('/', 1)[-1]}"
        transfer = _Transfer(meta["location"], part, size, base, total, label, self.progress)
        if part.exists() and read_sidecar(side) == {k: wanted[k] for k in SIDECAR_KEYS}:
            offset = part.stat().st_size
            if offset <= size:
                transfer.hash_existing(offset)
        if not transfer.offset:
            part.unlink(missing_ok=True)
        write_sidecar(side, wanted)
        provenance = {
            "endpoint": endpoint,
            "commit": meta["commit"],
            "etag": meta["etag"],
            "resumed_at": transfer.offset,
        }
        try:
            with open_partial(part, "ab", size - transfer.offset) as out:
                transfer.run(out)
                fsync(out)
        except Discard as exc:
            part.unlink(missing_ok=True)
            side.unlink(missing_ok=True)
            raise Discard(f"{exc}; the download was deleted, nothing installed") from None
        sha = transfer.hasher.hexdigest()
        verify(self.variant, part.name.removesuffix(".part"), sha, expected, transfer.offset, size, part)
        return sha, transfer.offset, provenance

    def _bounded_size(self, announced: int | None, base: int, total: int | None, repo_file: str, endpoint: str) -> int:
        """The exact size to download: the server's, checked against the catalog; never unbounded."""
        name = repo_file.rsplit("/", 1)[-1]
        if self.variant.entry.file is not None and total is not None:  # one file: the catalog size is its size
            if announced is not None and announced != total:
                raise Unavailable(f"{endpoint} announces {announced} bytes for {name}, the catalog says {total}")
            return total
        if announced is None:
            raise Unavailable(f"{endpoint} does not announce the size of {name}; not downloading an unbounded file")
        if total is not None and base + announced > total:
            raise Unavailable(f"{endpoint} announces {announced} bytes for {name}, more than the catalog's {total}")
        return announced


# -- the resumable GET -----------------------------------------------------------------------------


@dataclass
class _Transfer:
    """One hub file on its way into its partial: what the retry loop and the body reader share.

    ``offset`` (bytes in the partial) and ``hasher`` (their sha256 so far) move as bytes arrive; both start
    over if the server ignores Range. ``base`` and ``total`` place this file in the variant's progress.
    """

    location: str
    part: Path
    size: int  # exactly this many bytes: one more and the download is discarded
    base: int
    total: int | None
    label: str
    progress: Progress
    offset: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)

    def report(self, label: str | None = None) -> None:
        self.progress(self.base + self.offset, self.total, label or self.label)

    def hash_existing(self, length: int) -> None:
        """Hash the first ``length`` bytes a partial already holds; the transfer goes on from there."""
        with open(self.part, "rb") as fh:
            while self.offset < length:
                chunk = fh.read(min(CHUNK, length - self.offset))
                if not chunk:
                    break
                self.hasher.update(chunk)
                self.offset += len(chunk)
                self.report("checking partial")

    def run(self, out: IO[bytes]) -> None:
        """GET ``location`` from ``offset`` (a Range request) up to exactly ``size`` bytes, retrying drops.

        Raises ``Discard`` when the server sends more than ``size`` or answers for another file, and
        ``Unavailable`` after ``RETRIES`` attempts in a row that got no further.
        """
        from huggingface_hub import get_session

        session = get_session()
        http = _http_of(session)
        timeout = http.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        failures = 0
        best = self.offset  # progress is getting further than ever, not refilling what a restart threw away
        while self.offset < self.size:
            self.report()
            try:
                problem = self._attempt(session, timeout, out)
            except http.TransportError as exc:
                problem = shown(one_line(exc))
            out.flush()
            if self.offset >= self.size:
                break
            failures = 0 if self.offset > best else failures + 1
            best = max(best, self.offset)
            if failures > RETRIES:
                raise Unavailable(
                    f"connection dropped at {self.offset} of {self.size} bytes ({problem});"
                    " the partial download is kept: run the same pull to resume"
                )
            self.progress.pause(RETRY_BACKOFF * (2 ** max(failures - 1, 0)))

    def _attempt(self, session: Any, timeout: Any, out: IO[bytes]) -> str:
        """One GET; returns why it stopped short ("" if it got every byte)."""
        headers = {"Accept-Encoding": "identity"}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        with session.stream("GET", self.location, headers=headers, timeout=timeout, follow_redirects=True) as resp:
            status = resp.status_code
            if status == 429 or status >= 500:
                return f"HTTP {status}"
            if status not in (200, 206):
                raise Unavailable(f"HTTP {status} for {shown(self.location)}")
            if status == 200 and self.offset:
                # the server ignored Range: start over rather than append a second copy
                out.seek(0)
                out.truncate()
                self.hasher = hashlib.sha256()
                self.offset = 0
            _check_answer(resp.headers, status, self.offset, self.size)
            problem = self._receive(resp, out)
            if self.offset < self.size and not problem:
                problem = f"connection closed after {self.offset} of {self.size} bytes"
            return problem

    def _receive(self, resp: Any, out: IO[bytes]) -> str:
        """Write the body as it arrives, never past ``size``: one byte more and the download is discarded.

        Returns why the connection failed midway, or "" (the bytes so far are kept either way).
        """
        http = _http_of(resp)
        try:
            for chunk in resp.iter_raw(CHUNK):
                if len(chunk) > self.size - self.offset:
                    name = self.part.name.removesuffix(".part")
                    raise Discard(f"the server sent more than the {self.size} bytes announced for {name}")
                write(out, chunk, self.part, self.size - self.offset, keeps_partial=True)
                self.hasher.update(chunk)
                self.offset += len(chunk)
                self.report()
        except http.TransportError as exc:
            return shown(one_line(exc))
        return ""


def _check_answer(headers: Any, status: int, offset: int, size: int) -> None:
    """Before reading a body: is it the part of the file we asked for, of the length we expect?"""
    if status == 206:
        start, whole = _content_range(headers.get("Content-Range"))
        if start != offset:
            raise Unavailable("the server answered a different range than asked for")
        if whole is not None and whole != size:
            raise Discard(f"the file changed on the server ({whole} bytes now, {size} announced)")
    length = headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) != size - offset:
        raise Discard(f"the server's answer is {int(length)} bytes where {size - offset} were announced")


def _content_range(content_range: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-199/200`` -> (100, 200); ``bytes 100-199/*`` -> (100, None)."""
    match = re.match(r"^\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*$", content_range or "")
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2)) if match.group(2) != "*" else None
