"""Installed models with their memory fit: the one listing that ``assistant models list`` and the TUI's model
picker both show, so the two fronts can never disagree about whether a model fits.

The estimate is ``fit.estimate_llm`` on the header summary the store cached at install, at the context size
capped at the model's training context. Both choices follow what loading the model does: ``LlamaEngine``
caps the context the same way (past its training context a model only produces noise, so nothing larger is
ever allocated), and the cached summary is the header the file had when it was checked in, read without
opening every model file each time a list is shown. Only a row without a cached summary (written by hand,
or by an older version) has its header read from the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import fit

if TYPE_CHECKING:
    from .catalog import Variant
    from .config import Settings
    from .store import Installed, Store

UNREADABLE = "unreadable"  # an LLM whose header is neither cached nor readable: listed, and said to be unusable
MISSING = "missing"  # its file is gone: a fit verdict would promise a model that cannot load


@dataclass(frozen=True)
class Fitted:
    """One installed model and what it needs in memory at the asked context."""

    item: Installed
    quant: str  # the header's, else the one the id names
    estimate: fit.Estimate | None  # None: no header to estimate from (see ``UNREADABLE``)
    verdict: str  # fits / tight / won't fit, or ``UNREADABLE`` / ``MISSING``

    @property
    def need_bytes(self) -> int | None:
        return None if self.estimate is None else self.estimate.total


def installed(
    n_ctx: int,
    n_batch: int,
    *,
    kind: str | None = None,
    store: Store | None = None,
    available: int | None = None,
) -> list[Fitted]:
    """Every installed model (of ``kind``, if given) with its estimate at ``n_ctx`` tokens of context.

    Blocking (the store, and the header of a row that has none cached): call it from a worker in the TUI.
    ``available`` is the free memory to judge against, read once for all rows when not given, so one listing
    never mixes two readings.
    """
    from .store import Store as _Store

    own = store is None
    registry = _Store() if store is None else store
    try:
        items = registry.list(kind)
    finally:
        if own:
            registry.conn.close()
    free = fit.available_bytes() if available is None else available
    return [_fitted(item, n_ctx, n_batch, free) for item in items]


def _fitted(item: Installed, n_ctx: int, n_batch: int, available: int) -> Fitted:
    if item.kind == "llm":
        header = item.info or _read_header(item)
        if header is None:
            return Fitted(item, item.quant, None, UNREADABLE)
        quant = str(header.get("quant") or item.quant)
        estimate = fit.estimate_llm(header, _capped(header, n_ctx), n_batch)
    else:
        quant = item.quant
        estimate = fit.estimate_whisper(item.size_bytes)
    return Fitted(item, quant, estimate, fit.verdict(estimate.total, available) if item.present else MISSING)


def _capped(header: Mapping[str, Any], n_ctx: int) -> int:
    """The context the engine would really allocate: never past the model's training context."""
    return min(n_ctx, int(header.get("context_length") or n_ctx))


def _read_header(item: Installed) -> dict[str, Any] | None:
    """The header summary of a row the store has none for; None if the file is missing or not a GGUF."""
    from . import gguf

    try:
        return gguf.read(item.path).summary()
    except Exception:  # missing, truncated or not a GGUF at all: the row says so instead of failing the list
        return None


def listing(
    settings: Settings, n_ctx: int, *, show_all: bool = False, only_installed: bool = False
) -> list[dict[str, Any]]:
    """What ``models list`` and the TUI's catalog screen show: the installed models (``installed``) and then
    what the catalog offers, one dict per row (id, kind, status installed / missing / available, default,
    quant, size_bytes, estimate_bytes, fit, source, path). Not installed: one variant per family none of
    whose variants is installed, or with ``show_all`` every variant."""
    from . import catalog

    defaults = {settings.models.chat, settings.models.speech}
    rows: list[dict[str, Any]] = []
    for fitted in installed(n_ctx, settings.runtime.batch_size):
        item = fitted.item
        rows.append(
            {
                "id": item.id,
                "kind": item.kind,
                "status": "installed" if item.present else "missing",
                "default": item.id in defaults,
                "quant": fitted.quant,
                "size_bytes": item.size_bytes,
                "estimate_bytes": fitted.need_bytes,
                "fit": fitted.verdict,
                "source": item.source,
                "path": str(item.path),
            }
        )
    if only_installed:
        return rows
    cat = catalog.default()
    have = {row["id"] for row in rows}
    families_with_install = {i.split(":")[0] for i in have}
    first_of_family: dict[str, str] = {}
    for variant in cat.variants.values():
        first_of_family.setdefault(variant.family, variant.id)
    for variant in cat.variants.values():
        if variant.id in have:
            continue
        if not show_all and (variant.family in families_with_install or first_of_family[variant.family] != variant.id):
            continue
        estimate, verdict = _fit_for_variant(variant)
        rows.append(
            {
                "id": variant.id,
                "kind": variant.kind,
                "status": "available",
                "default": variant.id in defaults,
                "quant": variant.quant,
                "size_bytes": variant.size,
                "estimate_bytes": estimate if variant.size else None,
                "fit": verdict,
                "source": variant.entry.sources[0].describe(),
                "path": None,
            }
        )
    return rows


def _fit_for_variant(variant: Variant) -> tuple[int, str]:
    """A catalog variant's memory need, from its download size (its header is not here yet), and the verdict."""
    estimate = fit.estimate_from_size(variant.size or 0, variant.kind)
    return estimate.total, (fit.verdict(estimate.total) if variant.size else "unknown")
