"""``assistant models list`` and the TUI's model picker show the same installed models with the same fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from assistant import fit, inventory, paths

from conftest import SMOL

MiB = 1024 * 1024
AVAILABLE = 400 * MiB  # one free-memory reading for both fronts, so the verdicts depend only on the models


def _header(context_length: int, layers: int) -> dict[str, Any]:
    """The header summary the store caches at install (only the fields the estimate reads, and the quant)."""
    return {
        "quant": "Q4_0",
        "context_length": context_length,
        "layers": layers,
        "heads": 9,
        "kv_heads": 3,
        "key_length": 64,
        "value_length": 64,
        "embedding_length": 576,
        "vocab_size": 49152,
        "file_size": 90 * MiB,
        "data_size": 88 * MiB,
    }


def _register(model_id: str, kind: str, *, info: dict[str, Any] | None = None, present: bool = True) -> None:
    from assistant.store import Installed, Store

    path = paths.ensure(paths.models_dir()) / model_id.replace(":", "-")
    if present:
        path.write_bytes(b"GGUF not really")
    store = Store()
    store.add(Installed(model_id, kind, path, True, 90 * MiB, None, "test", info=info or {}, installed_at=1.0))
    store.conn.close()


@pytest.fixture
def shelf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Models that tell the two old computations apart: a short training context (capped), an uncapped one,
    one big enough not to fit, a missing file, a row without a readable header, and a speech model."""
    monkeypatch.setattr(fit, "available_bytes", lambda: AVAILABLE)
    _register("short-ctx:q4_0", "llm", info=_header(2048, 30))
    _register("long-ctx:q4_0", "llm", info=_header(0, 30))
    _register("deep:q4_0", "llm", info=_header(131072, 200))
    _register("gone:q4_0", "llm", info=_header(2048, 30), present=False)
    _register("fake:q4_0", "llm")
    _register("whisper-x:int8", "whisper")


def _cli_rows(n_ctx: int) -> dict[str, dict[str, Any]]:
    from assistant.cli.models import models_group

    result = CliRunner().invoke(models_group, ["list", "--installed", "--json", "--ctx", str(n_ctx)])
    assert result.exit_code == 0, result.output
    return {row["id"]: row for row in json.loads(result.output)["models"]}


@pytest.mark.parametrize("n_ctx", [1024, 8192])
def test_models_list_and_the_picker_agree(shelf: None, n_ctx: int) -> None:
    from assistant.ui.screens.model_picker import installed_rows

    cli = _cli_rows(n_ctx)
    picker = installed_rows("long-ctx:q4_0", n_ctx, 512)  # 512: the configured batch size the CLI reads
    assert [row.id for row in picker] == sorted(i for i, r in cli.items() if r["kind"] == "llm")
    for row in picker:
        shown = cli[row.id]
        assert (row.size_bytes, row.quant, row.verdict, row.need_bytes) == (
            shown["size_bytes"],
            shown["quant"],
            shown["fit"],
            shown["estimate_bytes"],
        ), row.id
    assert [row.id for row in picker if row.current] == ["long-ctx:q4_0"]


def test_the_fit_is_at_the_context_the_engine_would_allocate(shelf: None) -> None:
    rows = {f.item.id: f for f in inventory.installed(8192, 512)}
    short, long = rows["short-ctx:q4_0"], rows["long-ctx:q4_0"]
    assert short.estimate is not None and long.estimate is not None
    assert short.estimate.context == 2048  # capped at its training context, as LlamaEngine caps it
    assert long.estimate.context == 8192  # no training context in the header: the asked one
    assert short.estimate.total == fit.estimate_llm(_header(2048, 30), 2048, 512).total
    assert {f.item.id: f.verdict for f in rows.values()} == {
        "short-ctx:q4_0": "fits",
        "long-ctx:q4_0": "won't fit",  # the same shape: only the cap makes the other one fit
        "deep:q4_0": "won't fit",
        "gone:q4_0": inventory.MISSING,
        "fake:q4_0": inventory.UNREADABLE,
        "whisper-x:int8": fit.verdict(fit.estimate_whisper(90 * MiB).total, AVAILABLE),
    }
    assert rows["fake:q4_0"].estimate is None and rows["gone:q4_0"].need_bytes is not None


def test_a_row_without_a_cached_header_reads_it_from_the_file(starter_files: dict[str, Path]) -> None:
    from assistant import gguf
    from assistant.store import Installed, Store

    path = starter_files[SMOL]
    store = Store()
    store.add(Installed(SMOL, "llm", path, False, path.stat().st_size, None, "test"))
    (row,) = inventory.installed(1024, 512, store=store)
    store.conn.close()
    header = gguf.read(path)
    assert row.quant == header.quant
    assert row.estimate is not None and row.estimate.total == fit.estimate_llm(header, 1024, 512).total
